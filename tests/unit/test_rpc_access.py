"""Who may call an actor's own API (`kubelab.rpc.access.AllowIdentities`): the identity in
the client certificate TLS verified, read as Kubernetes reads it."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from kubelab.core import certs
from kubelab.rpc.access import AllowIdentities, identity_of_pem

NOW = datetime.datetime(2026, 12, 7, tzinfo=datetime.UTC)
CA = certs.self_signed_ca("kubernetes", now=NOW)


def pem(user: str, groups: tuple[str, ...] = ()) -> bytes:
    return certs.cert_pem(certs.sign_client(CA, user, groups, now=NOW).cert)


class Context:
    """What the interceptor reads of a call: its auth context (TLS fills it in)."""

    def __init__(self, cert: bytes | None) -> None:
        self.cert = cert

    def auth_context(self) -> dict[str, Any]:
        return {"x509_pem_cert": [self.cert]} if self.cert else {}


def test_the_identity_is_the_common_name_and_the_organizations() -> None:
    assert identity_of_pem(pem("system:node:n1", ("system:nodes",))) == (
        "system:node:n1",
        ("system:nodes",),
    )


ALLOW = AllowIdentities("cloud-stub", ("system:kube-controller-manager",), ("system:masters",))
CALL = "/kubelab.v1.CloudProvider/ListLoadBalancers"


@pytest.mark.parametrize(
    ("cert", "method", "refused"),
    [
        (pem("system:kube-controller-manager"), CALL, None),
        (pem("kubernetes-admin", ("system:masters",)), CALL, None),
        (
            pem("system:node:n1", ("system:nodes",)),
            CALL,
            f'forbidden: User "system:node:n1" cannot call {CALL} on the cloud-stub',
        ),
        (pem("system:node:n1"), "/grpc.health.v1.Health/Check", None),
        (None, CALL, f'forbidden: User "system:anonymous" cannot call {CALL} on the cloud-stub'),
    ],
)
def test_who_may_call(cert: bytes | None, method: str, refused: str | None) -> None:
    assert ALLOW.refusal(Context(cert), method) == refused  # type: ignore[arg-type]
