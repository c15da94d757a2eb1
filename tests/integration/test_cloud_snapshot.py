"""A restarted cloud-stub forwards from its snapshot before its control side is up.

Real etcd, the real cloud-stub process with `--snapshot-file`, stand-in nodes
(`kubelab.testing.cloud.FakeNodes`). The decisive case restarts it with etcd out of
reach: nothing but the snapshot can then tell it what to forward."""

from __future__ import annotations

import json
import random
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from kubelab.store import Store
from kubelab.testing.cloud import CloudStubProcess, FakeNodes, cloud_client, lb_spec, random_pool
from kubelab.testing.processes import EtcdServer
from kubelab.testing.traffic import RequestFailed, connect_outcome, pod_behind, udp_echo
from kubelab.testing.wait import until
from kubelab.v1 import cloud_pb2

pytestmark = pytest.mark.integration


@pytest.fixture
def cloud(etcd: EtcdServer, tmp_path: Path) -> Iterator[CloudStubProcess]:
    process = CloudStubProcess(etcd.endpoint, tmp_path, random_pool(), snapshot=True)
    process.start()
    yield process
    process.stop()


@pytest.fixture
async def nodes(etcd: EtcdServer) -> AsyncIterator[FakeNodes]:
    store = Store(etcd.endpoint)
    fakes = await FakeNodes(f"127.10.{random.randint(100, 254)}").start()
    await fakes.register(store)
    yield fakes
    await fakes.close()
    await store.close()


def snapshot_ips(cloud: CloudStubProcess) -> set[str]:
    doc = json.loads(cloud.snapshot_file.read_text())
    return {listener["ip"] for listener in doc["listeners"]}


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_with_etcd_out_of_reach_a_restart_forwards_from_the_snapshot(
    cloud: CloudStubProcess, nodes: FakeNodes
) -> None:
    async with cloud_client(cloud.address) as api:
        shop = await api.EnsureLoadBalancer(lb_spec("shop", nodes, udp_port=5353))
    assert snapshot_ips(cloud) == {shop.ip}
    cloud.kill()
    assert await connect_outcome(shop.ip, 8080) == "refused"

    cloud.etcd_endpoint = f"127.0.0.1:{unused_port()}"  # nothing listens there
    cloud.spawn()  # never SERVING without etcd; the snapshot's listeners forward anyway
    first = await until(
        "the LoadBalancer to answer from the snapshot",
        lambda: pod_behind(shop.ip, 8080, timeout=1.0),
        lambda pod: pod in nodes.names,
        timeout=15,
        retry_on=(RequestFailed,),
    )
    seen = {first} | {await pod_behind(shop.ip, 8080) for _ in range(6)}
    assert seen == set(nodes.names), "round robin over the snapshot's nodes"
    assert (await udp_echo(shop.ip, 5353, b"ping")).endswith(b"ping")


async def test_resumed_load_balancers_take_the_listeners_over(
    cloud: CloudStubProcess, nodes: FakeNodes
) -> None:
    async with cloud_client(cloud.address) as api:
        shop = await api.EnsureLoadBalancer(lb_spec("shop", nodes))
        cart = await api.EnsureLoadBalancer(lb_spec("cart", nodes))
    assert snapshot_ips(cloud) == {shop.ip, cart.ip}
    cloud.stop()
    cloud.start()  # SERVING: every load balancer resumed from etcd
    assert await pod_behind(shop.ip, 8080) in nodes.names
    async with cloud_client(cloud.address) as api:
        # The resumed load balancer owns the listener now: deleting it closes it, and
        # the snapshot forgets it.
        await api.DeleteLoadBalancer(cloud_pb2.LoadBalancerKey(namespace="default", name="cart"))
    assert await connect_outcome(cart.ip, 8080) == "refused"
    assert snapshot_ips(cloud) == {shop.ip}
    assert await pod_behind(shop.ip, 8080) in nodes.names


async def test_a_load_balancer_deleted_while_down_is_not_forwarded_after_the_restart(
    cloud: CloudStubProcess, nodes: FakeNodes, etcd: EtcdServer
) -> None:
    async with cloud_client(cloud.address) as api:
        shop = await api.EnsureLoadBalancer(lb_spec("shop", nodes))
    cloud.kill()
    store = Store(etcd.endpoint)
    try:
        stored = await store.get_load_balancer("default", "shop")
        assert stored is not None
        claims = await store.lb_claims()
        await store.delete_load_balancer(stored, claims.get(shop.ip))
    finally:
        await store.close()
    cloud.start()
    assert await connect_outcome(shop.ip, 8080) == "refused"
    assert snapshot_ips(cloud) == set()
