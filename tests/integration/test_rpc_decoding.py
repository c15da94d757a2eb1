"""`kubelab.rpc.decoding.add_servicer` on a real grpc.aio server, for the four call shapes:
valid requests are served as before; one that does not decode is INVALID_ARGUMENT (after
the answers to the valid requests before it, on a client stream)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from kubelab.rpc.decoding import add_servicer
from kubelab.v1 import meta_pb2

pytestmark = pytest.mark.integration

Meta = meta_pb2.ObjectMeta
GARBAGE = b"\x0a\x05\xff\xff"
SERVICE = "test.Echo"


class Echo:
    async def Unary(self, request: Meta, context: Any) -> Meta:
        return request

    async def ServerStream(self, request: Meta, context: Any) -> AsyncIterator[Meta]:
        yield request
        yield request

    async def ClientStream(self, requests: AsyncIterator[Meta], context: Any) -> Meta:
        names = [r.name async for r in requests]
        return Meta(name=",".join(names))

    async def BidiStream(self, requests: AsyncIterator[Meta], context: Any) -> AsyncIterator[Meta]:
        async for request in requests:
            yield request


def add_echo(servicer: Echo, server: Any) -> None:
    decode, encode = Meta.FromString, Meta.SerializeToString
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "Unary": grpc.unary_unary_rpc_method_handler(servicer.Unary, decode, encode),
        "ServerStream": grpc.unary_stream_rpc_method_handler(servicer.ServerStream, decode, encode),
        "ClientStream": grpc.stream_unary_rpc_method_handler(servicer.ClientStream, decode, encode),
        "BidiStream": grpc.stream_stream_rpc_method_handler(servicer.BidiStream, decode, encode),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)


def _identity(data: bytes) -> bytes:
    return data


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    server = grpc.aio.server()
    add_servicer(server, add_echo, Echo())
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as opened:
        yield opened
    await server.stop(0)


def _valid(name: str) -> bytes:
    return Meta(name=name).SerializeToString()


async def _call(channel: grpc.aio.Channel, method: str, requests: list[bytes]) -> list[str]:
    """The names answered, in order."""
    path = f"/{SERVICE}/{method}"
    if method == "Unary":
        answers = [await channel.unary_unary(path, _identity, _identity)(requests[0])]
    elif method == "ServerStream":
        call = channel.unary_stream(path, _identity, _identity)(requests[0])
        answers = [a async for a in call]
    elif method == "ClientStream":
        answers = [await channel.stream_unary(path, _identity, _identity)(iter(requests))]
    else:
        answers = []
        try:
            async for answer in channel.stream_stream(path, _identity, _identity)(iter(requests)):
                answers.append(answer)
        except grpc.aio.AioRpcError as err:
            err.answers = [Meta.FromString(a).name for a in answers]  # type: ignore[attr-defined]
            raise
    return [Meta.FromString(a).name for a in answers]


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        pytest.param("Unary", ["a"], id="unary"),
        pytest.param("ServerStream", ["a", "a"], id="server-stream"),
        pytest.param("ClientStream", ["a,b"], id="client-stream"),
        pytest.param("BidiStream", ["a", "b"], id="bidi-stream"),
    ],
)
async def test_valid_requests_are_served(
    channel: grpc.aio.Channel, method: str, expected: list[str]
) -> None:
    assert await _call(channel, method, [_valid("a"), _valid("b")]) == expected


@pytest.mark.parametrize("method", ["Unary", "ServerStream", "ClientStream", "BidiStream"])
async def test_an_undecodable_request_is_invalid_argument(
    channel: grpc.aio.Channel, method: str
) -> None:
    requests = [GARBAGE] if method in ("Unary", "ServerStream") else [_valid("a"), GARBAGE]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _call(channel, method, requests)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == "the request is not a valid kubelab.v1.ObjectMeta message"
    if method == "BidiStream":
        assert caught.value.answers == ["a"]  # type: ignore[attr-defined]
