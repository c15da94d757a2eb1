"""`kubectl create token`'s TokenRequest, read and answered as Kubernetes does."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from kubelab.core import certs, sa_tokens
from services.apiserver.logic.token_requests import Asked, TokenRequestInvalid, answer, asked

NOW = datetime.datetime(2026, 12, 7, 12, 0, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("body", "wanted"),
    [
        ({}, Asked(sa_tokens.DEFAULT_AUDIENCES, 3600)),
        ({"spec": {"expirationSeconds": 600}}, Asked(sa_tokens.DEFAULT_AUDIENCES, 600)),
        ({"spec": {"audiences": ["vault"]}}, Asked(("vault",), 3600)),
    ],
)
def test_what_a_request_asks(body: dict[str, Any], wanted: Asked) -> None:
    assert asked(body, "ci") == wanted


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"expirationSeconds": 60},
            'TokenRequest.authentication.k8s.io "ci" is invalid: spec.expirationSeconds: '
            "Invalid value: 60: may not specify a duration less than 10 minutes",
        ),
        (
            {"expirationSeconds": "ten"},
            'TokenRequest.authentication.k8s.io "ci" is invalid: spec.expirationSeconds: '
            'Invalid value: "ten": must be an integer',
        ),
        (
            {"boundObjectRef": {"kind": "Pod", "name": "p"}},
            'TokenRequest.authentication.k8s.io "ci" is invalid: spec.boundObjectRef: '
            "Forbidden: kubelab issues tokens bound to their ServiceAccount only",
        ),
    ],
)
def test_a_request_kubernetes_refuses(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(TokenRequestInvalid) as caught:
        asked({"spec": spec}, "ci")
    assert str(caught.value) == message


def test_the_answer_carries_a_token_that_verifies_as_the_service_account() -> None:
    key = certs.new_key()
    issued = sa_tokens.issue(
        key, namespace="default", name="ci", uid="u-1", audiences=sa_tokens.DEFAULT_AUDIENCES,
        expiration_seconds=600, now=NOW,
    )  # fmt: skip
    body = answer({"spec": {"expirationSeconds": 600}}, "default", "ci", issued, NOW)
    assert body["status"]["expirationTimestamp"] == "2026-12-07T12:10:00Z"
    assert body["spec"] == {
        "expirationSeconds": 600,
        "audiences": list(sa_tokens.DEFAULT_AUDIENCES),
    }
    user = sa_tokens.verify(
        body["status"]["token"], key.public_key(), sa_tokens.DEFAULT_AUDIENCES, NOW
    )
    assert (user.username, user.uid) == ("system:serviceaccount:default:ci", "u-1")
