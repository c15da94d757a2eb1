"""Traffic through the cloud-stub's load balancers, real process and real sockets: round
robin over the nodes, nodes leaving and rejoining rotation (a dead nodePort, a 503 from
the health check node port), failing open, source ranges, UDP, metrics.

The nodes are stand-ins (`kubelab.testing.cloud.FakeNodes`) whose HTTP answer names
the node, so `RequestLoop` counts which node served each new connection."""

from __future__ import annotations

import asyncio
import random
import socket
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from kubelab.store import Store
from kubelab.testing.cloud import CloudStubProcess, FakeNodes, cloud_client, lb_spec, random_pool
from kubelab.testing.processes import EtcdServer, free_port
from kubelab.testing.traffic import RequestFailed, RequestLoop, http_get, pod_behind, udp_echo
from kubelab.testing.wait import until_passes
from kubelab.v1 import cloud_pb2

pytestmark = pytest.mark.integration

CHECK_INTERVAL = 0.5
CHECK_TIMEOUT = 0.3


@pytest.fixture
def cloud(etcd: EtcdServer, tmp_path: Path) -> Iterator[CloudStubProcess]:
    pool = random_pool()
    metrics = f"127.0.0.1:{free_port()}"
    process = CloudStubProcess(
        etcd.endpoint,
        tmp_path,
        pool,
        extra_args=(
            *("--check-interval", str(CHECK_INTERVAL), "--check-timeout", str(CHECK_TIMEOUT)),
            *("--metrics", metrics),
        ),
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture
async def nodes(etcd: EtcdServer) -> AsyncIterator[FakeNodes]:
    fakes = await FakeNodes(f"127.10.{random.randint(100, 254)}").start()
    store = Store(etcd.endpoint)
    await fakes.register(store)
    yield fakes
    await fakes.close()
    await store.close()


async def node_health(cloud: CloudStubProcess, name: str = "shop") -> dict[str, bool]:
    async with cloud_client(cloud.address) as api:
        lb = await api.GetLoadBalancer(cloud_pb2.LoadBalancerKey(namespace="default", name=name))
    return {n.name: n.healthy for n in lb.nodes}


async def health_becomes(
    cloud: CloudStubProcess, want: dict[str, bool], timeout: float, what: str
) -> float:
    """Wait until Get reports `want`; returns how long it took."""
    started = time.monotonic()

    async def check() -> None:
        assert await node_health(cloud) == want

    await until_passes(what, check, timeout=timeout)
    return time.monotonic() - started


async def test_connections_go_round_robin_and_udp_flows_spread(
    cloud: CloudStubProcess, nodes: FakeNodes
) -> None:
    async with cloud_client(cloud.address) as api:
        lb = await api.EnsureLoadBalancer(lb_spec("shop", nodes, udp_port=5353))
    served = Counter([await pod_behind(lb.ip, 8080) for _ in range(30)])
    assert served == Counter({"node-1": 10, "node-2": 10, "node-3": 10})

    # One flow per client address, each to the next node; a flow sticks to its node.
    answers = []
    for _ in range(3):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            first = await udp_echo(lb.ip, 5353, b"ping", sock=sock)
            assert await udp_echo(lb.ip, 5353, b"again", sock=sock) == first[:-4] + b"again"
            answers.append(first)
    assert sorted(answers) == [b"node-1:ping", b"node-2:ping", b"node-3:ping"]


async def test_nodes_change_in_place_and_open_connections_survive(
    cloud: CloudStubProcess, nodes: FakeNodes
) -> None:
    async with cloud_client(cloud.address) as api:
        lb = await api.EnsureLoadBalancer(lb_spec("shop", nodes))
        reader, writer = await asyncio.open_connection(lb.ip, 8080)
        try:
            # node-3 leaves the node set: the listener is not re-bound, so the open
            # connection (on whichever node) still gets its answer.
            again = await api.EnsureLoadBalancer(lb_spec("shop", nodes, only=(0, 1)))
            assert again.ip == lb.ip
            writer.write(b"GET / HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n")
            async with asyncio.timeout(5):
                assert (await reader.read()).startswith(b"HTTP/1.1 200")
        finally:
            writer.close()
    served = Counter([await pod_behind(lb.ip, 8080) for _ in range(10)])
    assert set(served) == {"node-1", "node-2"}


async def test_a_dead_node_leaves_rotation_without_a_failed_request(
    cloud: CloudStubProcess, nodes: FakeNodes
) -> None:
    async with cloud_client(cloud.address) as api:
        lb = await api.EnsureLoadBalancer(lb_spec("shop", nodes))
    loop = RequestLoop(lb.ip, 8080, concurrency=2).start()
    try:
        await loop.until_served(nodes.names, timeout=10)
        nodes[1].stop_listening()  # node-2's nodePort is gone: connects are refused
        took = await health_becomes(
            cloud,
            {"node-1": True, "node-2": False, "node-3": True},
            timeout=CHECK_INTERVAL + CHECK_TIMEOUT + 2,
            what="node-2 out of rotation",
        )
        assert took < CHECK_INTERVAL + CHECK_TIMEOUT + 0.5
        await loop.until_only({"node-1", "node-3"}, timeout=10)
    finally:
        await loop.stop()
    # A connect refused by node-2 was retried on another node: nobody saw it.
    assert loop.failures == [], [str(f) for f in loop.failures[:5]]
    assert loop.attempts > 30

    # Without traffic, the TCP check alone finds a dead node within an interval.
    nodes[2].stop_listening()
    took = await health_becomes(
        cloud,
        {"node-1": True, "node-2": False, "node-3": False},
        timeout=CHECK_INTERVAL + CHECK_TIMEOUT + 2,
        what="node-3 out of rotation",
    )
    assert took < CHECK_INTERVAL + CHECK_TIMEOUT + 0.5
    assert await pod_behind(lb.ip, 8080) == "node-1"


async def test_health_check_node_port_takes_nodes_out_and_fails_open(
    cloud: CloudStubProcess, nodes: FakeNodes
) -> None:
    async with cloud_client(cloud.address) as api:
        lb = await api.EnsureLoadBalancer(lb_spec("shop", nodes, health_check=True))
    loop = RequestLoop(lb.ip, 8080, concurrency=2).start()
    try:
        await loop.until_served(nodes.names, timeout=10)
        nodes[2].healthz = 503  # node-3 has no local endpoint any more
        took = await health_becomes(
            cloud,
            {"node-1": True, "node-2": True, "node-3": False},
            timeout=3 * CHECK_INTERVAL + 2,
            what="node-3 out of rotation",
        )
        assert took < 2 * CHECK_INTERVAL + CHECK_TIMEOUT + 0.5
        await loop.until_only({"node-1", "node-2"}, timeout=10)

        # Nobody healthy: the load balancer fails open and uses every node.
        for node in nodes.nodes:
            node.healthz = 503
        await health_becomes(
            cloud, dict.fromkeys(nodes.names, False), timeout=5, what="every node out"
        )
        loop.served.clear()
        await loop.until_served(nodes.names, timeout=10)

        for node in nodes.nodes:
            node.healthz = 200
        await health_becomes(cloud, dict.fromkeys(nodes.names, True), timeout=5, what="all back")
    finally:
        await loop.stop()
    assert loop.failures == []
    async with cloud_client(cloud.address) as api:
        lb = await api.GetLoadBalancer(cloud_pb2.LoadBalancerKey(namespace="default", name="shop"))
    assert all(n.last_error == "" for n in lb.nodes)


async def test_source_ranges_let_only_those_clients_in(
    cloud: CloudStubProcess, nodes: FakeNodes
) -> None:
    async with cloud_client(cloud.address) as api:
        lb = await api.EnsureLoadBalancer(
            lb_spec("shop", nodes, source_ranges=("127.55.0.0/16", "127.0.0.2/32"))
        )
    assert await pod_behind(lb.ip, 8080, source_ip="127.55.0.1") in nodes.names
    assert await pod_behind(lb.ip, 8080, source_ip="127.0.0.2") in nodes.names
    with pytest.raises(RequestFailed) as caught:
        await http_get(lb.ip, 8080, source_ip="127.0.0.1")
    assert caught.value.silent or isinstance(caught.value.cause, ConnectionResetError)

    # Ranges dropped: everyone again, on the same listener.
    async with cloud_client(cloud.address) as api:
        await api.EnsureLoadBalancer(lb_spec("shop", nodes))
    assert await pod_behind(lb.ip, 8080, source_ip="127.0.0.1") in nodes.names


async def test_metrics_count_per_load_balancer(cloud: CloudStubProcess, nodes: FakeNodes) -> None:
    async with cloud_client(cloud.address) as api:
        lb = await api.EnsureLoadBalancer(lb_spec("shop", nodes))
    for _ in range(5):
        await pod_behind(lb.ip, 8080)
    metrics_address = cloud.extra_args[cloud.extra_args.index("--metrics") + 1]

    def scrape() -> str:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://{metrics_address}/metrics", timeout=5) as response:
            return str(response.read().decode())

    async def counted() -> None:
        text = await asyncio.to_thread(scrape)
        assert "kubelab_cloud_load_balancers 1.0" in text
        assert 'kubelab_cloud_connections_total{lb="default/shop"} 5.0' in text
        assert 'kubelab_cloud_node_healthy{lb="default/shop",node="node-1"} 1.0' in text
        assert 'kubelab_cloud_pool_addresses{state="in_use"} 1.0' in text

    # The last connection's close may reach the relay just after the client's.
    await until_passes("the metrics", counted, timeout=5)
