"""`kubectl create token NAME`: the TokenRequest subresource of a ServiceAccount, as pure
functions of the request (the HTTP edge signs with the cluster's sa.key and answers).

A TokenRequest (authentication.k8s.io/v1) asks for a token for its ServiceAccount:
`spec.audiences` (default: the apiserver's own, `sa_tokens.DEFAULT_AUDIENCES`),
`spec.expirationSeconds` (default one hour; at least 10 minutes and at most 2^32 s, in
Kubernetes' words from `sa_tokens.validate_expiration`), and `spec.boundObjectRef`
(kubelab binds tokens to nothing: a reference is refused naming the field). The answer
is the request with `status.token` and `status.expirationTimestamp`.

Pure: no I/O.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from kubelab.core import errors, sa_tokens
from kubelab.core.errors import ErrorType, FieldError

KIND = "TokenRequest"
API_VERSION = "authentication.k8s.io/v1"


class TokenRequestInvalid(Exception):
    """A TokenRequest Kubernetes would refuse: 422 Invalid, the causes its field errors."""

    def __init__(self, name: str, problems: list[FieldError]) -> None:
        super().__init__(errors.format_invalid(f"{KIND}.authentication.k8s.io", name, problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Asked:
    audiences: tuple[str, ...]
    expiration_seconds: int


def asked(body: Any, name: str) -> Asked:
    """What a TokenRequest body asks for ServiceAccount `name`."""
    spec = body.get("spec") if isinstance(body, dict) else None
    spec = spec if isinstance(spec, dict) else {}
    problems: list[FieldError] = []
    raw_audiences = spec.get("audiences") or []
    if not isinstance(raw_audiences, list) or not all(isinstance(a, str) for a in raw_audiences):
        problems.append(
            FieldError(
                "spec.audiences", ErrorType.INVALID, "must be a list of strings", raw_audiences
            )
        )
        raw_audiences = []
    requested = spec.get("expirationSeconds")
    if requested is not None and (not isinstance(requested, int) or isinstance(requested, bool)):
        problems.append(
            FieldError("spec.expirationSeconds", ErrorType.INVALID, "must be an integer", requested)
        )
        requested = None
    seconds = sa_tokens.requested_expiration(requested)
    problems += sa_tokens.validate_expiration(seconds)
    if spec.get("boundObjectRef"):
        problems.append(
            FieldError(
                "spec.boundObjectRef",
                ErrorType.FORBIDDEN,
                "kubelab issues tokens bound to their ServiceAccount only",
            )
        )
    if problems:
        raise TokenRequestInvalid(name, problems)
    return Asked(tuple(raw_audiences) or sa_tokens.DEFAULT_AUDIENCES, seconds)


def answer(
    body: Any, namespace: str, name: str, issued: sa_tokens.IssuedToken, now: datetime.datetime
) -> dict[str, Any]:
    """The TokenRequest as Kubernetes answers it: spec as asked (defaults filled), status."""
    spec = dict(body.get("spec") or {}) if isinstance(body, dict) else {}
    spec.setdefault("audiences", list(sa_tokens.DEFAULT_AUDIENCES))
    expires = issued.expires_at.astimezone(datetime.UTC)
    spec["expirationSeconds"] = int((expires - now).total_seconds() + 0.5)
    return {
        "kind": KIND,
        "apiVersion": API_VERSION,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "creationTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "spec": spec,
        "status": {
            "token": issued.token,
            "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    }
