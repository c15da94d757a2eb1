"""The cloud-stub's API against a real etcd and the real process: addresses, errors,
deletes, restarts, and two cloud-stubs sharing one pool.

Nodes are stand-ins (`kubelab.testing.cloud.FakeNodes`) on random 127.10.R.N
addresses; each test's pool is a random 127.P.Q.0/24 (or smaller), so a test
never meets a user's cluster or another session's."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import grpc
import pytest

from kubelab.store import Store
from kubelab.testing.cloud import CloudStubProcess, FakeNodes, cloud_client, lb_spec, random_pool
from kubelab.testing.processes import EtcdServer
from kubelab.testing.traffic import connect_outcome, pod_behind
from kubelab.testing.wait import until_passes
from kubelab.v1 import cloud_pb2

pytestmark = pytest.mark.integration

Stubs = Callable[..., CloudStubProcess]


def key(name: str, namespace: str = "default") -> cloud_pb2.LoadBalancerKey:
    return cloud_pb2.LoadBalancerKey(namespace=namespace, name=name)


@pytest.fixture
def stubs(etcd: EtcdServer, tmp_path: Path) -> Iterator[Stubs]:
    """Start cloud-stubs on the test's etcd: `stubs(pool, name=...)`."""
    started: list[CloudStubProcess] = []

    def start(pool: str, name: str = "cloud-stub") -> CloudStubProcess:
        process = CloudStubProcess(etcd.endpoint, tmp_path, pool, name=name)
        process.start()
        started.append(process)
        return process

    yield start
    for process in started:
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


async def test_ensure_is_idempotent_and_keeps_the_address(
    stubs: Stubs, nodes: FakeNodes, store: Store
) -> None:
    pool = random_pool()
    cloud = stubs(pool)
    async with cloud_client(cloud.address) as api:
        first = await api.EnsureLoadBalancer(lb_spec("shop", nodes))
        assert first.ip == pool.replace("0/24", "1")  # the pool's first address
        assert [(n.name, n.healthy) for n in first.nodes] == [
            ("node-1", True),
            ("node-2", True),
            ("node-3", True),
        ]
        again = await api.EnsureLoadBalancer(lb_spec("shop", nodes, only=(0, 1)))
        assert again.ip == first.ip
        assert [n.name for n in again.spec.nodes] == ["node-1", "node-2"]
        # The Service deleted and re-created (new uid): same name, same address.
        recreated = await api.EnsureLoadBalancer(lb_spec("shop", nodes, uid="uid-2"))
        assert recreated.ip == first.ip
        got = await api.GetLoadBalancer(key("shop"))
        assert got.ip == first.ip and got.spec.uid == "uid-2"
        listed = await api.ListLoadBalancers(cloud_pb2.ListLoadBalancersRequest())
        assert [lb.ip for lb in listed.load_balancers] == [first.ip]
    claims = await store.lb_claims()
    assert list(claims) == [first.ip]
    assert (claims[first.ip].holder, claims[first.ip].uid) == ("default/shop", "uid-2")
    assert await pod_behind(first.ip, 8080) in nodes.names


async def test_requested_address_is_honoured_or_refused(
    stubs: Stubs, nodes: FakeNodes, store: Store
) -> None:
    pool = random_pool()
    base = pool.rpartition(".")[0]
    cloud = stubs(pool)
    async with cloud_client(cloud.address) as api:
        shop = await api.EnsureLoadBalancer(lb_spec("shop", nodes, requested_ip=f"{base}.7"))
        assert shop.ip == f"{base}.7"

        refusals = [
            (lb_spec("cart", nodes, requested_ip=f"{base}.7"), grpc.StatusCode.ALREADY_EXISTS),
            (lb_spec("cart", nodes, requested_ip="10.1.2.3"), grpc.StatusCode.INVALID_ARGUMENT),
            (lb_spec("cart", nodes, requested_ip=f"{base}.0"), grpc.StatusCode.INVALID_ARGUMENT),
            (lb_spec("cart", nodes, requested_ip="banana"), grpc.StatusCode.INVALID_ARGUMENT),
        ]
        for spec, code in refusals:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await api.EnsureLoadBalancer(spec)
            assert caught.value.code() == code
            details = caught.value.details() or ""
            assert details.startswith("spec.loadBalancerIP: ")
            if code == grpc.StatusCode.ALREADY_EXISTS:
                assert "already allocated to Service default/shop" in details

        bad_ports = lb_spec("cart", nodes)
        bad_ports.ports.add(name="dup", protocol="TCP", port=8080, node_port=nodes.tcp_port)
        bad_ports.ports.add(name="sctp", protocol="SCTP", port=9, node_port=nodes.tcp_port)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await api.EnsureLoadBalancer(bad_ports)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "spec.ports[1]: Duplicate value" in (caught.value.details() or "")
        assert "spec.ports[2].protocol: Unsupported value" in (caught.value.details() or "")

        # Bad input changed nothing: cart does not exist, shop is as it was.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await api.GetLoadBalancer(key("cart"))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert list(await store.lb_claims()) == [f"{base}.7"]

        # A changed request moves the load balancer and gives the old address back.
        moved = await api.EnsureLoadBalancer(lb_spec("shop", nodes, requested_ip=f"{base}.9"))
        assert moved.ip == f"{base}.9"
        assert list(await store.lb_claims()) == [f"{base}.9"]
        assert await connect_outcome(f"{base}.7", 8080) == "refused"
        assert await pod_behind(f"{base}.9", 8080) in nodes.names


async def test_pool_exhaustion_and_release(stubs: Stubs, nodes: FakeNodes) -> None:
    pool = random_pool(30)  # two usable addresses
    cloud = stubs(pool)
    async with cloud_client(cloud.address) as api:
        a = await api.EnsureLoadBalancer(lb_spec("a", nodes))
        b = await api.EnsureLoadBalancer(lb_spec("b", nodes))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await api.EnsureLoadBalancer(lb_spec("c", nodes))
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert caught.value.details() == f"no free address in pool {pool}"
        await api.DeleteLoadBalancer(key("a"))
        c = await api.EnsureLoadBalancer(lb_spec("c", nodes))
        assert c.ip == a.ip and c.ip != b.ip


async def test_delete_resets_connections_releases_and_is_idempotent(
    stubs: Stubs, nodes: FakeNodes, store: Store
) -> None:
    cloud = stubs(random_pool())
    async with cloud_client(cloud.address) as api:
        lb = await api.EnsureLoadBalancer(lb_spec("shop", nodes))
        reader, writer = await asyncio.open_connection(lb.ip, 8080)
        try:
            writer.write(b"GET / HTTP/1.1\r\n")  # half a request: the node waits for more
            await api.DeleteLoadBalancer(key("shop"))
            with pytest.raises(ConnectionResetError):  # reset, not closed, not left hanging
                async with asyncio.timeout(5):
                    await reader.read(1024)
        finally:
            writer.close()
        assert await connect_outcome(lb.ip, 8080) == "refused"
        assert await store.lb_claims() == {}
        assert await store.list_load_balancers() == []
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await api.GetLoadBalancer(key("shop"))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        await api.DeleteLoadBalancer(key("shop"))  # again: OK


async def test_killed_cloud_stub_comes_back_with_the_same_addresses(
    stubs: Stubs, nodes: FakeNodes, store: Store
) -> None:
    cloud = stubs(random_pool())
    async with cloud_client(cloud.address) as api:
        shop = await api.EnsureLoadBalancer(lb_spec("shop", nodes, udp_port=5353))
        cart = await api.EnsureLoadBalancer(lb_spec("cart", nodes, namespace="prod"))
    cloud.kill()
    assert await connect_outcome(shop.ip, 8080) == "refused"
    cloud.start()  # returns once SERVING: every load balancer runs again by then
    assert await pod_behind(shop.ip, 8080) in nodes.names
    assert await pod_behind(cart.ip, 8080) in nodes.names
    async with cloud_client(cloud.address) as api:
        listed = await api.ListLoadBalancers(cloud_pb2.ListLoadBalancersRequest())
        again = await api.EnsureLoadBalancer(lb_spec("shop", nodes, udp_port=5353))
    by_name = {f"{lb.spec.namespace}/{lb.spec.name}": lb.ip for lb in listed.load_balancers}
    assert by_name == {"default/shop": shop.ip, "prod/cart": cart.ip}
    assert again.ip == shop.ip
    assert sorted(await store.lb_claims()) == sorted([shop.ip, cart.ip])


async def test_two_cloud_stubs_never_hand_out_one_address(
    stubs: Stubs, nodes: FakeNodes, store: Store
) -> None:
    pool = random_pool(29)  # six usable addresses
    first, second = stubs(pool, name="cloud-a"), stubs(pool, name="cloud-b")
    async with cloud_client(first.address) as a, cloud_client(second.address) as b:
        answers = await asyncio.gather(
            *((a if i % 2 else b).EnsureLoadBalancer(lb_spec(f"svc-{i}", nodes)) for i in range(6))
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await a.EnsureLoadBalancer(lb_spec("svc-7", nodes))
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    ips = [lb.ip for lb in answers]
    assert len(set(ips)) == 6
    claims = await store.lb_claims()
    assert {ip: c.holder for ip, c in claims.items()} == {
        lb.ip: f"default/{lb.spec.name}" for lb in answers
    }

    async def every_address_answers() -> None:
        for ip in ips:
            assert await pod_behind(ip, 8080) in nodes.names

    await until_passes("every load balancer answering", every_address_answers, timeout=10)
