"""Who may call an actor's own gRPC API: the node agents' (the kubelet's port) and the
cloud-stub's.

TLS (`kubelab.rpc.tls`) already refused, at the handshake, a caller without a
certificate of the cluster's CA, or with an expired one. What is left is the identity
(Kubernetes' X.509 reading: the common name is the user, each organization a group):
`AllowIdentities` lets a call through when its caller is one of the allowed users or in
one of the allowed groups, and answers PERMISSION_DENIED, in Kubernetes' words,
otherwise. The gRPC health service answers any certificate of the cluster (probes).

Kubernetes' kubelet asks the apiserver (a SubjectAccessReview) whether a caller may use
its API; a node agent here has no apiserver connection, so its rule is fixed: the
apiserver's kubelet client and the admins (`system:masters`), as Kubernetes' default
RBAC grants `nodes/proxy` to nobody else.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import TYPE_CHECKING, Any

import grpc
from cryptography import x509
from cryptography.x509.oid import NameOID

from kubelab import pki

if TYPE_CHECKING:  # the stubs' generic handler type, not subscriptable at run time
    Continuation = Callable[
        [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
    ]

MASTERS = "system:masters"  # Kubernetes' group allowed everything
CONTROLLER_USER = pki.CONTROLLER_MANAGER.user
HEALTH_PREFIX = "/grpc.health.v1.Health/"
REFLECTION_PREFIX = "/grpc.reflection."


def identity_of_pem(pem: bytes) -> tuple[str, tuple[str, ...]]:
    """(user, groups) of a PEM client certificate: CN and O, as Kubernetes reads them."""
    cert = x509.load_pem_x509_certificate(pem)
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    groups = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    user = str(names[-1].value) if names else ""
    return user, tuple(str(g.value) for g in groups)


class AllowIdentities(grpc.aio.ServerInterceptor):
    def __init__(self, actor: str, users: Collection[str], groups: Collection[str]) -> None:
        self.actor = actor
        self.users = frozenset(users)
        self.groups = frozenset(groups)

    def refusal(self, context: grpc.aio.ServicerContext[Any, Any], method: str) -> str | None:
        """None when the caller may call `method`; else the message to answer."""
        pem = list(context.auth_context().get("x509_pem_cert", ()))
        if not pem:
            return f'forbidden: User "system:anonymous" cannot call {method} on the {self.actor}'
        user, groups = identity_of_pem(pem[0])
        if method.startswith((HEALTH_PREFIX, REFLECTION_PREFIX)):
            return None
        if user in self.users or self.groups & set(groups):
            return None
        return f'forbidden: User "{user}" cannot call {method} on the {self.actor}'

    async def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(details)
        if handler is None:
            return None
        method = details.method
        return _guarded(handler, lambda context: self.refusal(context, method))


def _guarded(
    handler: grpc.RpcMethodHandler[Any, Any],
    refusal: Callable[[Any], str | None],
) -> grpc.RpcMethodHandler[Any, Any]:
    """The same handler, answering PERMISSION_DENIED first when `refusal` says so."""
    if handler.unary_unary is not None:
        inner_uu = handler.unary_unary

        async def unary_unary(request: Any, context: Any) -> Any:
            if (why := refusal(context)) is not None:
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, why)
            return await inner_uu(request, context)

        return grpc.unary_unary_rpc_method_handler(
            unary_unary, handler.request_deserializer, handler.response_serializer
        )
    if handler.unary_stream is not None:
        inner_us = handler.unary_stream

        async def unary_stream(request: Any, context: Any) -> Any:
            if (why := refusal(context)) is not None:
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, why)
            async for item in _items(inner_us(request, context)):
                yield item

        return grpc.unary_stream_rpc_method_handler(
            unary_stream, handler.request_deserializer, handler.response_serializer
        )
    if handler.stream_unary is not None:
        inner_su = handler.stream_unary

        async def stream_unary(requests: Any, context: Any) -> Any:
            if (why := refusal(context)) is not None:
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, why)
            return await inner_su(requests, context)

        return grpc.stream_unary_rpc_method_handler(
            stream_unary, handler.request_deserializer, handler.response_serializer
        )
    inner_ss = handler.stream_stream
    assert inner_ss is not None

    async def stream_stream(requests: Any, context: Any) -> Any:
        if (why := refusal(context)) is not None:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, why)
        async for item in _items(inner_ss(requests, context)):
            yield item

    return grpc.stream_stream_rpc_method_handler(
        stream_stream, handler.request_deserializer, handler.response_serializer
    )


async def _items(result: Any) -> Any:
    """A streaming behaviour's messages: an async generator's, or none for a coroutine
    that writes them itself (`context.write`)."""
    if hasattr(result, "__aiter__"):
        async for item in result:
            yield item
    else:
        await result
