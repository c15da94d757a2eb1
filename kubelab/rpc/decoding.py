"""Registering a servicer so that a request that does not decode is the client's error.

A generated `add_*Servicer_to_server` registers `Message.FromString` as each method's
request deserializer. When it raises, grpc answers UNKNOWN with the exception's text
(and logs a traceback), and on a client stream it just ends the stream, so a chunk of
garbage on `ApplyStream` was answered OK with nothing applied. `add_servicer` registers
the same handlers through a deserializer that never raises: an undecodable request
reaches the method wrapper as `_Undecodable`, which answers INVALID_ARGUMENT naming the
message type, after whatever the method already answered for the requests before it.

Every actor's gRPC server registers its servicers through `add_servicer` (`start_server`
does it for health as well). It relies on generated code from grpcio-tools >= 1.63, which
calls `add_registered_method_handlers` with the method table.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

S = TypeVar("S")
Context = grpc.aio.ServicerContext[Any, Any]


@dataclass(frozen=True, slots=True)
class _Undecodable:
    message: str


class _UndecodableRequestError(Exception):
    """Raised into a servicer reading a client stream, to end its reading."""


def _safe(deserializer: Callable[[bytes], Any] | None, type_name: str) -> Callable[[bytes], Any]:
    def decode(data: bytes) -> Any:
        if deserializer is None:
            return data
        try:
            return deserializer(data)
        except Exception:  # any failure to decode is the client's bytes, never our fault
            return _Undecodable(f"the request is not a valid {type_name} message")

    return decode


def _type_name(deserializer: Callable[[bytes], Any] | None) -> str:
    owner = getattr(deserializer, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    return str(getattr(descriptor, "full_name", "request"))


async def _refuse(context: Context, bad: _Undecodable) -> None:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, bad.message)


def _wrap_unary(behavior: Callable[..., Any]) -> Callable[..., Any]:
    async def unary(request: Any, context: Context) -> Any:
        if isinstance(request, _Undecodable):
            await _refuse(context, request)
        return await behavior(request, context)

    return unary


def _wrap_unary_stream(behavior: Callable[..., Any]) -> Callable[..., Any]:
    async def unary_stream(request: Any, context: Context) -> AsyncIterator[Any]:
        if isinstance(request, _Undecodable):
            await _refuse(context, request)
        async for response in behavior(request, context):
            yield response

    return unary_stream


class _Requests:
    """A client stream that stops at the first undecodable message and remembers it."""

    def __init__(self, requests: AsyncIterator[Any]) -> None:
        self.requests = requests
        self.bad: _Undecodable | None = None

    async def __aiter__(self) -> AsyncIterator[Any]:
        async for request in self.requests:
            if isinstance(request, _Undecodable):
                self.bad = request
                raise _UndecodableRequestError(request.message)
            yield request


def _wrap_stream_unary(behavior: Callable[..., Any]) -> Callable[..., Any]:
    async def stream_unary(requests: AsyncIterator[Any], context: Context) -> Any:
        reading = _Requests(requests)
        result = None
        try:
            result = await behavior(reading.__aiter__(), context)
        except _UndecodableRequestError:
            pass
        if reading.bad is not None:
            await _refuse(context, reading.bad)
        return result

    return stream_unary


def _wrap_stream_stream(behavior: Callable[..., Any]) -> Callable[..., Any]:
    async def stream_stream(requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
        reading = _Requests(requests)
        try:
            async for response in behavior(reading.__aiter__(), context):
                yield response
        except _UndecodableRequestError:
            pass
        # The servicer may have read in a task of its own and swallowed the error there.
        if reading.bad is not None:
            await _refuse(context, reading.bad)

    return stream_stream


def safe_handler(handler: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
    """`handler` with a deserializer that never raises and a behaviour that refuses
    what did not decode."""
    decode = _safe(handler.request_deserializer, _type_name(handler.request_deserializer))
    serialize = handler.response_serializer
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            _wrap_unary(handler.unary_unary), decode, serialize
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            _wrap_unary_stream(handler.unary_stream), decode, serialize
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            _wrap_stream_unary(handler.stream_unary), decode, serialize
        )
    assert handler.stream_stream is not None
    return grpc.stream_stream_rpc_method_handler(
        _wrap_stream_stream(handler.stream_stream), decode, serialize
    )


class _SafeRegistration:
    """Stands in for the server while generated code registers its method table."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self.server = server
        self.registered = False

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        # The same table arrives through add_registered_method_handlers.
        pass

    def add_registered_method_handlers(
        self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        safe = {method: safe_handler(handler) for method, handler in handlers.items()}
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, safe),))
        self.server.add_registered_method_handlers(service, safe)
        self.registered = True


def add_servicer(server: grpc.aio.Server, add: Callable[[S, Any], None], servicer: S) -> None:
    """`add(servicer, server)` (a generated `add_*Servicer_to_server`), every request
    decoded safely."""
    registration = _SafeRegistration(server)
    add(servicer, registration)
    if not registration.registered:
        raise RuntimeError(f"{add.__name__} registered no method table (grpcio-tools too old?)")
