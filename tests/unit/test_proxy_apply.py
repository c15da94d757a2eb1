"""The node proxy's sync driven through the store, on the fakes: a Service and its
EndpointSlice written to a FakeStore reach the proxy through its informers, and the
proxy's listeners (real loopback sockets) carry a connection to the endpoint. Retries run
on a FakeClock. No etcd, no processes.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator

import pytest

from kubelab.core import kinds
from kubelab.core.keys import ObjectKey
from kubelab.testing.fakes import FakeClock, FakeStore
from kubelab.v1 import objects_pb2
from node_agent import proxy_report
from node_agent.proxy import ServiceProxy

NS = "default"
KEY = ObjectKey((NS, "web"))


class Setup:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.store = FakeStore(clock=self.clock)
        self.proxy = ServiceProxy(
            self.store, node_name="n1", node_ips=["127.0.0.1"], timers=self.clock
        )
        # A loopback address of this test's own: its ports are free.
        self.cluster_ip = (
            f"127.{random.randint(100, 120)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
        )
        self.backends: list[asyncio.Server] = []

    async def synced(self) -> None:
        """Let the proxy's informers hand on every change and its worker finish."""
        async with asyncio.timeout(5):
            await self.store.settle()
            await self.proxy.idle()

    async def backend(self, answer: bytes) -> int:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(answer)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.backends.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def ask(self, port: int = 80) -> bytes:
        reader, writer = await asyncio.open_connection(self.cluster_ip, port)
        try:
            return await asyncio.wait_for(reader.read(100), 5)
        finally:
            writer.close()


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    s = Setup()
    yield s
    await s.proxy.stop(grace=0)
    for server in s.backends:
        server.close()


def service(cluster_ip: str, port: int = 80) -> objects_pb2.Service:
    svc = objects_pb2.Service(api_version="v1", kind="Service")
    svc.metadata.namespace, svc.metadata.name = KEY
    svc.spec.type = "ClusterIP"
    svc.spec.cluster_ip = cluster_ip
    svc.spec.ports.add(name="http", protocol="TCP", port=port, target_port="http")
    return svc


def endpoint_slice(backend_port: int) -> objects_pb2.EndpointSlice:
    eps = objects_pb2.EndpointSlice(api_version="discovery.k8s.io/v1", kind="EndpointSlice")
    eps.metadata.namespace, eps.metadata.name = NS, "web-abcde"
    eps.metadata.labels[kinds.SERVICE_NAME_LABEL] = "web"
    eps.address_type = "IPv4"
    eps.ports.add(name="http", protocol="TCP", port=backend_port)
    endpoint = eps.endpoints.add(addresses=["127.0.0.1"], node_name="n1")
    endpoint.conditions.ready = endpoint.conditions.serving = True
    return eps


async def test_a_service_written_to_the_store_is_served(setup: Setup) -> None:
    await setup.store.create(service(setup.cluster_ip))
    await setup.store.create(endpoint_slice(await setup.backend(b"first")))
    await setup.proxy.start()
    assert await setup.ask() == b"first"


async def test_new_endpoints_are_picked_up_and_a_deleted_service_stops(setup: Setup) -> None:
    await setup.proxy.start()
    await setup.store.create(service(setup.cluster_ip))
    eps = await setup.store.create(endpoint_slice(await setup.backend(b"first")))
    await setup.synced()
    assert await setup.ask() == b"first"
    moved = endpoint_slice(await setup.backend(b"second"))
    moved.metadata.resource_version = eps.metadata.resource_version
    await setup.store.update(moved, expected_revision=int(eps.metadata.resource_version))
    await setup.synced()
    assert await setup.ask() == b"second"
    svc = await setup.store.get(kinds.SERVICES, *KEY)
    await setup.store.delete(
        kinds.SERVICES, *KEY, expected_revision=int(svc.metadata.resource_version)
    )
    await setup.synced()
    assert KEY not in setup.proxy.services
    with pytest.raises(ConnectionRefusedError):
        await setup.ask()


async def test_a_port_taken_by_someone_else_is_retried_until_it_is_free(setup: Setup) -> None:
    blocker = socket.socket()
    blocker.bind((setup.cluster_ip, 80))
    blocker.listen()
    await setup.proxy.start()
    await setup.store.create(service(setup.cluster_ip))
    await setup.store.create(endpoint_slice(await setup.backend(b"served")))
    await setup.synced()
    problem = setup.proxy.problems.problems[KEY]
    assert problem.reason == proxy_report.BIND
    (due,) = setup.clock.pending()  # the worker's back-off, not a poll
    blocker.close()
    setup.clock.advance(due - setup.clock.now())
    await setup.synced()
    assert KEY not in setup.proxy.problems.problems
    assert await setup.ask() == b"served"
