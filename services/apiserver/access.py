"""Who asks and whether they may: the one authentication and authorization step in
front of both API fronts.

Authentication is Kubernetes' X.509 client-certificate authenticator: the TLS layer
(both fronts) asks for a client certificate and refuses, at the handshake, one the
cluster CA did not sign or that is outside its validity; `kubelab.core.certs.
verify_client` then reads the user (CN) and groups (O) and checks the window again
against this process's clock. A request with no certificate is `system:anonymous`
(group `system:unauthenticated`), as kube-apiserver's default `--anonymous-auth`,
which RBAC's defaults let read only /version, /healthz and the like; everything else
is a 403 in Kubernetes' words. A certificate refused after the handshake is a 401.

Authorization is the pure chain of `services.apiserver.logic.node_authorizer.
authorize_chain`: `system:masters`, then the Node authorizer, then RBAC. The RBAC state
is read at every check from `rbac` (the apiserver's `RbacView`: Kubernetes' bootstrap
policy with the stored Roles, ClusterRoles and bindings over it), or is a fixed `state`
(the bootstrap policy alone when neither is given): the admin credential `kubelab up`
writes into the kubeconfig is in `system:masters`.

A verified certificate's identity is kept (by its DER bytes, until it expires), so a
request on a kept-alive connection costs one dict lookup, not a signature check.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from kubelab.core import certs, sa_tokens
from services.apiserver.logic.node_authorizer import authorize_chain
from services.apiserver.logic.rbac import (
    ANONYMOUS_USER,
    Attributes,
    Decision,
    RbacState,
    UserInfo,
    authenticated,
)
from services.apiserver.logic.rbac_defaults import bootstrap_state
from services.apiserver.logic.status_messages import forbidden_details, forbidden_message

_KEPT = 4096  # verified certificates remembered


class Unauthenticated(Exception):
    """A credential that was presented and refused: Kubernetes' 401 Unauthorized."""


class Forbidden(Exception):
    """A request the authorizer refused; the message is Kubernetes' 403 message."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """A 403: Kubernetes' message and the Status details (group, kind, name)."""

    message: str
    details: dict[str, str]


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class RbacSource(Protocol):
    """Where the current RBAC state is read (`services.apiserver.rbac_view.RbacView`)."""

    @property
    def state(self) -> RbacState: ...


class AccountSource(Protocol):
    """Which ServiceAccounts exist now, by uid (`RbacView` keeps them too)."""

    def account_uid(self, namespace: str, name: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class TokenKeys:
    """How ServiceAccount tokens are checked: the key that signed them (sa.pub), the
    issuer and the audiences this apiserver answers to (kube-apiserver's
    --service-account-key-file, --service-account-issuer, --api-audiences)."""

    public_key: Any
    issuer: str = sa_tokens.ISSUER
    audiences: tuple[str, ...] = sa_tokens.DEFAULT_AUDIENCES


@dataclass(frozen=True, slots=True)
class _Fixed:
    state: RbacState


class Access:
    def __init__(
        self,
        client_ca: bytes,
        state: RbacState | None = None,
        clock: Callable[[], datetime.datetime] = _utc_now,
        *,
        rbac: RbacSource | None = None,
        tokens: TokenKeys | None = None,
        accounts: AccountSource | None = None,
    ) -> None:
        self.client_ca = client_ca
        self._rbac: RbacSource = rbac or _Fixed(state or bootstrap_state())
        self._tokens = tokens
        self._accounts = accounts
        self._clock = clock
        self._known: dict[bytes, tuple[UserInfo, datetime.datetime]] = {}

    @property
    def state(self) -> RbacState:
        """The RBAC state checks use now."""
        return self._rbac.state

    def user_of_certificate(self, der: bytes | None) -> UserInfo:
        """The user a client certificate (DER) names; anonymous without one."""
        if not der:
            return ANONYMOUS_USER
        now = self._clock()
        known = self._known.get(der)
        if known is not None and now <= known[1]:
            return known[0]
        try:
            identity = certs.verify_client(der, self.client_ca, now)
        except certs.CertificateRefused as err:
            raise Unauthenticated(str(err)) from None
        if identity is None:  # no CN: not this authenticator's, as Kubernetes has it
            return ANONYMOUS_USER
        user = authenticated(UserInfo(identity.user, identity.groups))
        if len(self._known) >= _KEPT:
            self._known.clear()
        self._known[der] = (user, certs.load_cert(der).not_valid_after_utc)
        return user

    def user_of_token(self, token: str) -> UserInfo:
        """The ServiceAccount a bearer token names, as Kubernetes' service-account token
        authenticator checks it: signed by sa.key, for this apiserver's audiences, in its
        lifetime, and its ServiceAccount still there with the uid it was issued for."""
        if self._tokens is None or self._accounts is None:
            raise Unauthenticated("no token authenticator")
        keys = self._tokens
        try:
            found = sa_tokens.verify(
                token, keys.public_key, keys.audiences, self._clock(), issuer=keys.issuer
            )
        except (sa_tokens.TokenRefused, ValueError) as err:
            raise Unauthenticated(str(err)) from None
        uid = self._accounts.account_uid(found.namespace, found.name)
        if uid is None:
            raise Unauthenticated(f'serviceaccounts "{found.name}" not found')
        if uid != found.uid:
            raise Unauthenticated(f"service account UID ({uid}) does not match claim ({found.uid})")
        extra = tuple((key, tuple(values)) for key, values in sorted(found.extra.items()))
        return UserInfo(found.username, found.groups, extra)

    def decide(self, attrs: Attributes) -> Decision:
        return authorize_chain(attrs, self.state)

    def check(self, attrs: Attributes) -> Refusal | None:
        """None when `attrs` is allowed; else why not, as Kubernetes' 403 words it."""
        decision = self.decide(attrs)
        if decision.allowed:
            return None
        return Refusal(forbidden_message(attrs, decision.reason), forbidden_details(attrs))
