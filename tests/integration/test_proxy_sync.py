"""The node proxy's per-Service sync over real sockets, without etcd: the rules a Service's
sync applies, one after another, and what happens to connections already open."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kubelab.core.endpoint_choice import Backend, Target
from kubelab.core.keys import ObjectKey
from kubelab.core.proxy_rules import CLUSTER_IP, Frontend, PortRules
from kubelab.testing.fakes import FakeStore
from node_agent.proxy import ServiceProxy

pytestmark = pytest.mark.integration

KEY = ObjectKey(("default", "svc"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Slow:
    """A backend that answers each connection's first read after `delay` seconds."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        await asyncio.sleep(self.delay)
        writer.write(b"late answer")
        await writer.drain()
        writer.close()

    async def start(self) -> Target:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return Target("127.0.0.1", self.server.sockets[0].getsockname()[1])


def backend(target: Target, *, ready: bool = True, terminating: bool = False) -> Backend:
    return Backend(target, "n1", ready, ready, terminating, f"default/{target.port}")


@pytest.fixture
async def proxy() -> AsyncIterator[ServiceProxy]:
    proxy = ServiceProxy(FakeStore(), node_name="n1", node_ips=["127.0.0.1"])
    yield proxy
    await proxy.stop(grace=0)


def rules(frontend: Frontend, *backends: Backend) -> tuple[PortRules, ...]:
    return (PortRules("", "TCP", 80, 0, (frontend,), backends, None, False, False),)


async def request(
    proxy: ServiceProxy, port: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A request through the proxy, returned once the proxy has it connected upstream."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"q")
    await writer.drain()
    async with asyncio.timeout(5):
        while not any(p.connections() for p in proxy.services[KEY].ports.values()):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    return reader, writer


async def answer(reader: asyncio.StreamReader) -> Any:
    try:
        return await asyncio.wait_for(reader.read(100), 5)
    except ConnectionError as err:
        return err


async def test_a_relabelled_endpoint_drains_through_later_updates(proxy: ServiceProxy) -> None:
    a, b = await Slow(1.0).start(), await Slow(1.0).start()
    frontend = Frontend("TCP", "127.0.0.1", free_port(), CLUSTER_IP)
    # One sync, straight from nothing: the port is new (no update has run on it yet).
    await proxy._apply(KEY, rules(frontend, backend(a), backend(b)))
    reader, _ = await request(proxy, frontend.port)  # round robin: the first goes to a
    await proxy._apply(KEY, rules(frontend, backend(b)))  # a relabelled out: drain
    await proxy._apply(KEY, rules(frontend, backend(b, ready=False)))  # an unrelated change
    assert await answer(reader) == b"late answer"


async def test_a_deleted_pod_loses_its_connections(proxy: ServiceProxy) -> None:
    a, b = await Slow(5.0).start(), await Slow(5.0).start()
    frontend = Frontend("TCP", "127.0.0.1", free_port(), CLUSTER_IP)
    await proxy._apply(KEY, rules(frontend, backend(a), backend(b)))
    reader, _ = await request(proxy, frontend.port)
    await proxy._apply(KEY, rules(frontend, backend(a, ready=False, terminating=True), backend(b)))
    await proxy._apply(KEY, rules(frontend, backend(b)))  # gone after terminating: deleted
    assert isinstance(await answer(reader), ConnectionResetError)


async def test_a_deleted_service_stops_listening_and_resets(proxy: ServiceProxy) -> None:
    a = await Slow(5.0).start()
    frontend = Frontend("TCP", "127.0.0.1", free_port(), CLUSTER_IP)
    await proxy._apply(KEY, rules(frontend, backend(a)))
    reader, _ = await request(proxy, frontend.port)
    await proxy._apply(KEY, ())
    assert isinstance(await answer(reader), ConnectionResetError)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", frontend.port)
    assert KEY not in proxy.services
