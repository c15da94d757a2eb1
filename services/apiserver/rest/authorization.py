"""The HTTP front's side of `services.apiserver.access`: the user of a request (its TLS
client certificate) and the authorizer's answer, as Kubernetes' Status objects
(401 Unauthorized, 403 Forbidden with Kubernetes' message and details)."""

from __future__ import annotations

import ssl

from aiohttp import web

from services.apiserver.access import Access, Unauthenticated
from services.apiserver.k8s.endpoints_mirror import RESOURCE as ENDPOINTS
from services.apiserver.logic import request_attributes
from services.apiserver.logic.rbac import Attributes, UserInfo
from services.apiserver.rest import endpoints_wire
from services.apiserver.rest.errors import ApiError
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
        user = access.user_of_certificate(der)
    except Unauthenticated:
        raise _UNAUTHORIZED from None
    request[_USER_KEY] = user
    return user


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


def path(request: web.Request, access: Access) -> None:
    check(
        access,
        request_attributes.path_attributes(user_of(request, access), request.method, request.path),
    )
