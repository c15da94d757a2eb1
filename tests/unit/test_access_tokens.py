"""Bearer tokens as Kubernetes' service-account token authenticator checks them
(`services.apiserver.access.Access.user_of_token`)."""

from __future__ import annotations

import datetime
import re

import pytest

from kubelab.core import certs, sa_tokens
from services.apiserver.access import Access, TokenKeys, Unauthenticated

NOW = datetime.datetime(2026, 12, 7, 12, 0, tzinfo=datetime.UTC)
CA = certs.self_signed_ca("kubernetes", now=NOW)
KEY = certs.new_key()


class Accounts:
    def __init__(self, uids: dict[tuple[str, str], str]) -> None:
        self.uids = uids

    def account_uid(self, namespace: str, name: str) -> str | None:
        return self.uids.get((namespace, name))


def token(key: certs.PrivateKey = KEY, **changes: object) -> str:
    fields: dict[str, object] = {
        "namespace": "default", "name": "ci", "uid": "u-1",
        "audiences": sa_tokens.DEFAULT_AUDIENCES, "expiration_seconds": 600, "now": NOW,
    }  # fmt: skip
    fields.update(changes)
    return sa_tokens.issue(key, **fields).token  # type: ignore[arg-type]


def access(uids: dict[tuple[str, str], str], at: datetime.datetime = NOW) -> Access:
    return Access(
        certs.cert_pem(CA.cert),
        clock=lambda: at,
        tokens=TokenKeys(KEY.public_key()),
        accounts=Accounts(uids),
    )


def test_a_good_token_is_its_service_account() -> None:
    user = access({("default", "ci"): "u-1"}).user_of_token(token())
    assert user.name == "system:serviceaccount:default:ci"
    assert user.groups == (
        "system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("presented", "uids", "at", "why"),
    [
        (token(), {}, NOW, 'serviceaccounts "ci" not found'),
        (
            token(), {("default", "ci"): "u-2"}, NOW,
            "service account UID (u-2) does not match claim (u-1)",
        ),
        (token(certs.new_key()), {("default", "ci"): "u-1"}, NOW, "cryptographic primitive"),
        (token(audiences=("vault",)), {("default", "ci"): "u-1"}, NOW, "audiences"),
        (token(), {("default", "ci"): "u-1"}, NOW + datetime.timedelta(hours=1), "expired"),
        ("not.a.token", {("default", "ci"): "u-1"}, NOW, "token"),
    ],
)  # fmt: skip
def test_a_token_that_does_not_hold_is_refused(
    presented: str, uids: dict[tuple[str, str], str], at: datetime.datetime, why: str
) -> None:
    with pytest.raises(Unauthenticated, match=re.escape(why)):
        access(uids, at).user_of_token(presented)


def test_without_keys_no_token_authenticates() -> None:
    with pytest.raises(Unauthenticated):
        Access(certs.cert_pem(CA.cert)).user_of_token(token())
