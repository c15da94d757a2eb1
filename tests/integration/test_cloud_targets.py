"""The cloud-stub is no open relay: it forwards only to NodePorts of the cluster's Ready
nodes, as etcd has them, whatever an EnsureLoadBalancer names. Real cloud-stub process,
real etcd, real sockets; the nodes are stand-ins registered as the cluster's
(`FakeNodes.register`), and a bystander listener proves what is never connected to."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from kubelab.store import Store
from kubelab.testing.cloud import CloudStubProcess, FakeNodes, cloud_client, lb_spec, random_pool
from kubelab.testing.processes import EtcdServer, free_port
from kubelab.testing.traffic import connect_outcome, pod_behind
from kubelab.testing.wait import until_passes
from kubelab.v1 import cloud_pb2

pytestmark = pytest.mark.integration


class Bystander:
    """A TCP listener somewhere the cloud-stub must never forward to; counts connections."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def start(self, ip: str, port: int) -> Bystander:
        self.server = await asyncio.start_server(self._accept, ip, port)
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        writer.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


@pytest.fixture
def cloud(etcd: EtcdServer, tmp_path: Path) -> Iterator[CloudStubProcess]:
    process = CloudStubProcess(
        etcd.endpoint, tmp_path, random_pool(), extra_args=("--check-interval", "0.3")
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture
async def store(etcd: EtcdServer) -> AsyncIterator[Store]:
    client = Store(etcd.endpoint)
    yield client
    await client.close()


@pytest.fixture
async def nodes(store: Store) -> AsyncIterator[FakeNodes]:
    fakes = await FakeNodes(f"127.10.{random.randint(100, 254)}").start()
    await fakes.register(store)
    yield fakes
    await fakes.close()


async def served_by(ip: str, count: int = 12) -> set[str]:
    return {await pod_behind(ip, 8080) for _ in range(count)}


async def test_an_arbitrary_target_is_never_forwarded_to(
    cloud: CloudStubProcess, nodes: FakeNodes
) -> None:
    base = f"127.11.{random.randint(100, 254)}"  # no node of the cluster
    elsewhere, spoofed = f"{base}.9", f"{base}.10"
    bystanders = [
        await Bystander().start(elsewhere, nodes.tcp_port),
        await Bystander().start(spoofed, nodes.tcp_port),
        # On a real node's address, but a port the cluster never allocated.
        await Bystander().start(nodes[0].ip, unclaimed := free_port(nodes[0].ip)),
    ]
    try:
        spec = lb_spec("shop", nodes)
        spec.nodes.add(name="evil", address=elsewhere)
        spec.nodes[1].address = spoofed  # "node-2" at an address that is not node-2's
        async with cloud_client(cloud.address) as api:
            lb = await api.EnsureLoadBalancer(spec)
            health = {n.name: n for n in lb.nodes}
            assert [n.name for n in lb.nodes] == ["node-1", "node-2", "node-3", "evil"]
            assert health["node-1"].healthy and health["node-3"].healthy
            assert not health["evil"].healthy
            assert "the cluster has no node evil" in health["evil"].last_error
            assert not health["node-2"].healthy
            assert "is not the address of node node-2" in health["node-2"].last_error
            assert await served_by(lb.ip, 30) == {"node-1", "node-3"}

            only_evil = lb_spec("relay", nodes)
            del only_evil.nodes[:]
            only_evil.nodes.add(name="evil", address=elsewhere)
            relay = await api.EnsureLoadBalancer(only_evil)
            assert await connect_outcome(relay.ip, 8080) == "refused"

            bad_port = lb_spec("ssh", nodes)
            bad_port.ports[0].node_port = unclaimed
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await api.EnsureLoadBalancer(bad_port)
            assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert (caught.value.details() or "").startswith(
                f"spec.ports[0].nodePort: Invalid value: {unclaimed}: is not a NodePort"
            )
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await api.GetLoadBalancer(
                    cloud_pb2.LoadBalancerKey(namespace="default", name="ssh")
                )
            assert caught.value.code() is grpc.StatusCode.NOT_FOUND
        assert [b.connections for b in bystanders] == [0, 0, 0]
    finally:
        for bystander in bystanders:
            bystander.close()


async def test_forwarding_follows_the_cluster_without_a_new_ensure(
    cloud: CloudStubProcess, nodes: FakeNodes
) -> None:
    async with cloud_client(cloud.address) as api:
        lb = await api.EnsureLoadBalancer(lb_spec("shop", nodes))

        async def all_three() -> None:
            assert await served_by(lb.ip) == nodes.names

        await until_passes("every node serving", all_three, timeout=10)
        await nodes.leave(2)  # node-3's heartbeat ends: it is no longer Ready

        async def two() -> None:
            assert await served_by(lb.ip) == {"node-1", "node-2"}
            got = await api.GetLoadBalancer(
                cloud_pb2.LoadBalancerKey(namespace="default", name="shop")
            )
            node3 = next(n for n in got.nodes if n.name == "node-3")
            assert not node3.healthy and "node node-3 is not Ready" in node3.last_error

        await until_passes("node-3 out of the load balancer", two, timeout=10)
