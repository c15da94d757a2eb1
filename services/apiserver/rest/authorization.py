"""The HTTP front's side of `services.apiserver.access`: the user of a request (its TLS
client certificate, then whom its Impersonate-* headers name, if it may), the
authorizer's answer as Kubernetes' Status objects (401 Unauthorized, 403 Forbidden with
Kubernetes' message and details), and the self-reviews `kubectl auth can-i` and
`kubectl auth whoami` post (`services.apiserver.logic.reviews`)."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

from aiohttp import web

from services.apiserver.access import Access, Unauthenticated
from services.apiserver.admission import REQUEST_USER
from services.apiserver.k8s.endpoints_mirror import RESOURCE as ENDPOINTS
from services.apiserver.logic import request_attributes, reviews
from services.apiserver.logic.rbac import ANONYMOUS, Attributes, UserInfo
from services.apiserver.logic.status_messages import forbidden_details
from services.apiserver.rest import convert, endpoints_wire, protobuf_body
from services.apiserver.rest.errors import ApiError, bad_request
from services.apiserver.rest.routing import Target

_UNAUTHORIZED = ApiError(401, "Unauthorized", "Unauthorized")
_USER_KEY = web.RequestKey("kubelab_user", UserInfo)


def user_of(request: web.Request, access: Access) -> UserInfo:
    """Who sent `request` (kept on the request: asked once)."""
    known: UserInfo | None = request.get(_USER_KEY)
    if known is not None:
        return known
    der = None
    transport = request.transport
    tls = transport.get_extra_info("ssl_object") if transport is not None else None
    if isinstance(tls, ssl.SSLObject):
        der = tls.getpeercert(binary_form=True)
    try:
        # Kubernetes' order: the client certificate, then a bearer token.
        requester = access.user_of_certificate(der)
        token = _bearer(request)
        if requester.name == ANONYMOUS and token:
            requester = access.user_of_token(token)
    except Unauthenticated:
        raise _UNAUTHORIZED from None
    try:
        user = reviews.run_as(requester, list(request.headers.items()), _refusal(access))
    except reviews.ImpersonationRefused as err:
        raise ApiError(403, "Forbidden", str(err), forbidden_details(err.attrs)) from None
    except reviews.ReviewError as err:
        raise bad_request(str(err)) from None
    request[_USER_KEY] = user
    REQUEST_USER.set(user)  # for admission in the registry (escalation checks)
    return user


def _bearer(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _refusal(access: Access) -> Callable[[Attributes], str | None]:
    def refused(attrs: Attributes) -> str | None:
        found = access.check(attrs)
        return None if found is None else found.message

    return refused


def check(access: Access, attrs: Attributes) -> None:
    refused = access.check(attrs)
    if refused is not None:
        raise ApiError(403, "Forbidden", refused.message, refused.details)


def resource(request: web.Request, access: Access, target: Target) -> None:
    info = target.info
    check(
        access,
        request_attributes.rest_attributes(
            user_of(request, access),
            request.method,
            resource=info.resource,
            group=request_attributes.api_group(info),
            namespace=target.namespace,
            name=target.name,
            subresource=target.subresource,
            query=request.query,
        ),
    )


def endpoints(request: web.Request, access: Access, target: endpoints_wire.Target) -> None:
    check(
        access,
        request_attributes.rest_attributes(
            user_of(request, access),
            request.method,
            resource=ENDPOINTS,
            group="",
            namespace=target.namespace,
            name=target.name,
            subresource="",
            query=request.query,
        ),
    )


def unrouted(request: web.Request, access: Access) -> None:
    """A path kubelab does not serve: authorized as Kubernetes would read it first, so
    only a caller who could use it learns it is not there."""
    check(
        access,
        request_attributes.path_request(
            user_of(request, access), request.method, request.path, request.query
        ),
    )


def path(request: web.Request, access: Access) -> None:
    check(
        access,
        request_attributes.path_attributes(user_of(request, access), request.method, request.path),
    )


async def review(request: web.Request, access: Access | None, found: reviews.Review) -> Any:
    """The answer to a SelfSubjectAccessReview or SelfSubjectReview POST (JSON data)."""
    if request.method != "POST":
        raise ApiError(
            405,
            "MethodNotAllowed",
            f"the server does not allow this method on "
            f"the requested resource ({found.resource}.{found.group})",
        )
    if found.version != "v1":
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    user = user_of(request, access) if access is not None else _UNSECURED
    if access is not None:
        check(
            access,
            request_attributes.rest_attributes(
                user,
                "POST",
                resource=found.resource,
                group=found.group,
                namespace="",
                name="",
                subresource="",
                query={},
            ),
        )
    if found.resource == reviews.SUBJECT_REVIEW:
        return reviews.subject_answer(user)
    content_type = request.headers.get("Content-Type", "")
    body = convert.parse_json(protobuf_body.json_bytes(await request.read(), content_type))
    try:
        asked = reviews.access_attributes(user, body)
    except reviews.ReviewError as err:
        raise bad_request(str(err)) from None
    if access is None:
        return reviews.access_answer(body, True, "no authorization: the apiserver runs without TLS")
    decision = access.decide(asked)
    return reviews.access_answer(body, decision.allowed, decision.reason)


# What an apiserver without TLS (no authentication, no authorization) answers to whoami,
# as kube-apiserver's old insecure port named its callers.
_UNSECURED = UserInfo("system:unsecured", ("system:masters", "system:authenticated"))
