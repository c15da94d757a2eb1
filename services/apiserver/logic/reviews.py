"""Who am I, may I, and acting as someone else: Kubernetes' self-reviews and impersonation,
as pure functions of the request (the apiserver's HTTP edge does the I/O).

- SelfSubjectAccessReview (`kubectl auth can-i VERB RESOURCE`): the review's
  `spec.resourceAttributes` (or `nonResourceAttributes`) asked for the requesting user;
  the answer is the review with `status.allowed` (and `denied`, `reason`).
- SelfSubjectReview (`kubectl auth whoami`): the user as authentication saw it.
- Impersonation (`kubectl --as=alice --as-group=g`): the `Impersonate-User`,
  `Impersonate-Group`, `Impersonate-Uid` and `Impersonate-Extra-<key>` headers name the
  user the request runs as. Each part must be allowed the `impersonate` verb first: on
  `users` (core group; a service account's name asks `serviceaccounts` in its
  namespace), `groups`, `uids` and `userextras/<key>` (authentication.k8s.io). An
  impersonated user is in `system:authenticated`, as Kubernetes adds it; a service
  account's groups are its own.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from services.apiserver.logic.rbac import (
    ALL_AUTHENTICATED,
    ALL_UNAUTHENTICATED,
    ANONYMOUS,
    SERVICE_ACCOUNT_PREFIX,
    Attributes,
    UserInfo,
    service_account_user,
)

AUTHORIZATION = "authorization.k8s.io"
AUTHENTICATION = "authentication.k8s.io"
ACCESS_REVIEW = "selfsubjectaccessreviews"
SUBJECT_REVIEW = "selfsubjectreviews"


class ReviewError(ValueError):
    """A review body that cannot be answered: Kubernetes' 400 BadRequest."""


@dataclass(frozen=True, slots=True)
class Review:
    """A review path: POST /apis/<group>/v1/<resource>."""

    group: str
    version: str
    resource: str


def review_of(path: str) -> Review | None:
    parts = [p for p in path.split("/") if p]
    if len(parts) != 4 or parts[0] != "apis":
        return None
    _, group, version, resource = parts
    if (group, resource) in ((AUTHORIZATION, ACCESS_REVIEW), (AUTHENTICATION, SUBJECT_REVIEW)):
        return Review(group, version, resource)
    return None


def _text(spec: Mapping[str, Any], key: str, where: str) -> str:
    value = spec.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ReviewError(f"{where}.{key}: Invalid value: must be a string")
    return value


def access_attributes(user: UserInfo, body: Any) -> Attributes:
    """The request a SelfSubjectAccessReview asks about, for `user`."""
    spec = body.get("spec") if isinstance(body, dict) else None
    if not isinstance(spec, dict):
        raise ReviewError("spec: Required value")
    resource = spec.get("resourceAttributes")
    non_resource = spec.get("nonResourceAttributes")
    if bool(resource) == bool(non_resource):
        raise ReviewError(
            "spec.resourceAttributes: Invalid value: exactly one of nonResourceAttributes or "
            "resourceAttributes must be specified"
        )
    if isinstance(non_resource, dict):
        where = "spec.nonResourceAttributes"
        return Attributes(
            user,
            _text(non_resource, "verb", where),
            resource_request=False,
            path=_text(non_resource, "path", where),
        )
    if not isinstance(resource, dict):
        raise ReviewError("spec.resourceAttributes: Invalid value: must be an object")
    where = "spec.resourceAttributes"
    return Attributes(
        user,
        _text(resource, "verb", where),
        namespace=_text(resource, "namespace", where),
        api_group=_text(resource, "group", where),
        resource=_text(resource, "resource", where),
        subresource=_text(resource, "subresource", where),
        name=_text(resource, "name", where),
    )


def access_answer(body: dict[str, Any], allowed: bool, reason: str) -> dict[str, Any]:
    """The review as Kubernetes answers it: what was asked, and the status."""
    status: dict[str, Any] = {"allowed": allowed}
    if reason:
        status["reason"] = reason
    return {
        "kind": "SelfSubjectAccessReview",
        "apiVersion": f"{AUTHORIZATION}/v1",
        "metadata": {"creationTimestamp": None},
        "spec": body.get("spec", {}),
        "status": status,
    }


def subject_answer(user: UserInfo) -> dict[str, Any]:
    info: dict[str, Any] = {"username": user.name, "groups": list(user.groups)}
    if user.extra:
        info["extra"] = {key: list(values) for key, values in user.extra}
    return {
        "kind": "SelfSubjectReview",
        "apiVersion": f"{AUTHENTICATION}/v1",
        "metadata": {"creationTimestamp": None},
        "status": {"userInfo": info},
    }


# ---------------------------------------------------------------- impersonation

USER_HEADER = "Impersonate-User"
GROUP_HEADER = "Impersonate-Group"
UID_HEADER = "Impersonate-Uid"
EXTRA_PREFIX = "Impersonate-Extra-"


@dataclass(frozen=True, slots=True)
class Impersonation:
    """What the Impersonate-* headers ask for."""

    user: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()


def impersonation_of(headers: Sequence[tuple[str, str]]) -> Impersonation | None:
    """The impersonation a request's headers ask for; None without any. A group, uid or
    extra without a user is a ReviewError, as Kubernetes refuses it."""
    user, groups, uid = "", [], ""
    extra: dict[str, list[str]] = {}
    for name, value in headers:
        lowered = name.lower()
        if lowered == USER_HEADER.lower():
            user = value
        elif lowered == GROUP_HEADER.lower():
            groups.append(value)
        elif lowered == UID_HEADER.lower():
            uid = value
        elif lowered.startswith(EXTRA_PREFIX.lower()):
            extra.setdefault(lowered[len(EXTRA_PREFIX) :], []).append(value)
    if not user:
        if groups or uid or extra:
            raise ReviewError(
                "requested impersonation of groups, uid or extra without impersonating a user"
            )
        return None
    return Impersonation(
        user, tuple(groups), uid, tuple((k, tuple(v)) for k, v in sorted(extra.items()))
    )


def impersonation_checks(requester: UserInfo, wanted: Impersonation) -> list[Attributes]:
    """The `impersonate` requests `requester` must be allowed, in Kubernetes' order."""
    checks = []
    if wanted.user.startswith(SERVICE_ACCOUNT_PREFIX):
        namespace, _, name = wanted.user[len(SERVICE_ACCOUNT_PREFIX) :].partition(":")
        checks.append(
            Attributes(
                requester,
                "impersonate",
                namespace=namespace,
                resource="serviceaccounts",
                name=name,
            )
        )
    else:
        checks.append(Attributes(requester, "impersonate", resource="users", name=wanted.user))
    checks += [
        Attributes(requester, "impersonate", resource="groups", name=group)
        for group in wanted.groups
    ]
    if wanted.uid:
        checks.append(
            Attributes(
                requester,
                "impersonate",
                api_group=AUTHENTICATION,
                resource="uids",
                name=wanted.uid,
            )
        )
    for key, values in wanted.extra:
        checks += [
            Attributes(
                requester,
                "impersonate",
                api_group=AUTHENTICATION,
                resource="userextras",
                subresource=key,
                name=value,
            )
            for value in values
        ]
    return checks


def impersonated(wanted: Impersonation) -> UserInfo:
    """The user the request then runs as: a service account without groups has its
    own; any user but the anonymous one is in `system:authenticated`, unless a group
    given is that or `system:unauthenticated` (Kubernetes' impersonation filter)."""
    if wanted.user.startswith(SERVICE_ACCOUNT_PREFIX) and not wanted.groups:
        namespace, _, name = wanted.user[len(SERVICE_ACCOUNT_PREFIX) :].partition(":")
        return service_account_user(namespace, name)
    groups = wanted.groups
    if wanted.user != ANONYMOUS and not {ALL_AUTHENTICATED, ALL_UNAUTHENTICATED} & set(groups):
        groups = (*groups, ALL_AUTHENTICATED)
    return UserInfo(wanted.user, groups, wanted.extra)


def run_as(
    requester: UserInfo,
    headers: Sequence[tuple[str, str]],
    refused: Callable[[Attributes], str | None],
) -> UserInfo:
    """The user a request runs as: `requester`, or who it may impersonate. `refused`
    answers an `impersonate` check with the 403 message (None: allowed); a refusal
    raises `ImpersonationRefused` with it."""
    wanted = impersonation_of(headers)
    if wanted is None:
        return requester
    for check in impersonation_checks(requester, wanted):
        message = refused(check)
        if message is not None:
            raise ImpersonationRefused(message, check)
    return impersonated(wanted)


class ImpersonationRefused(Exception):
    def __init__(self, message: str, attrs: Attributes) -> None:
        super().__init__(message)
        self.attrs = attrs
