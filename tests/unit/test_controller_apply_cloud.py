"""The controller's other apply steps on the fakes: LoadBalancers against a fake cloud, pod
garbage collection, and the allocation repair (kubelab/testing/fakes.py, FakeClock time)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from kubelab.core import kinds
from kubelab.core.allocators import Claim
from kubelab.core.keys import ObjectKey
from kubelab.runtime.worker import TemporaryError
from kubelab.v1 import cloud_pb2, objects_pb2
from services.controller.cloud import CloudCallError
from services.controller.repair import repair_once
from tests.unit.controller_world import NS, World, node, pod, service, stop

KEY = ObjectKey((NS, "web"))


class FakeCloud:
    """The cloud-stub's API in memory: one address per load balancer, or a failure."""

    def __init__(self) -> None:
        self.balancers: dict[tuple[str, str], cloud_pb2.LoadBalancer] = {}
        self.failure: CloudCallError | None = None
        self.ensured = 0

    async def ensure(self, spec: cloud_pb2.LoadBalancerSpec) -> cloud_pb2.LoadBalancer:
        if self.failure is not None:
            raise self.failure
        self.ensured += 1
        key = (spec.namespace, spec.name)
        ip = (
            self.balancers[key].ip
            if key in self.balancers
            else f"127.200.0.{len(self.balancers) + 1}"
        )
        self.balancers[key] = cloud_pb2.LoadBalancer(spec=spec, ip=ip)
        return self.balancers[key]

    async def get(self, namespace: str, name: str) -> cloud_pb2.LoadBalancer:
        return self.balancers[(namespace, name)]

    async def delete(self, namespace: str, name: str) -> None:
        if self.failure is not None:
            raise self.failure
        self.balancers.pop((namespace, name), None)

    async def list(self) -> list[cloud_pb2.LoadBalancer]:
        return list(self.balancers.values())


@pytest.fixture
def cloud() -> FakeCloud:
    return FakeCloud()


@pytest.fixture
async def world(cloud: FakeCloud) -> AsyncIterator[World]:
    w = World(cloud=cloud)
    yield w
    await stop(w)


def load_balancer() -> objects_pb2.Service:
    svc = service()
    svc.spec.type = "LoadBalancer"
    svc.spec.ports[0].node_port = 30080
    return svc


async def stored_service(world: World) -> objects_pb2.Service:
    svc = await world.store.get(kinds.SERVICES, *KEY)
    assert isinstance(svc, objects_pb2.Service)
    return svc


# ---------------------------------------------------------------------- LoadBalancers


async def test_a_load_balancer_service_gets_its_address_once(
    world: World, cloud: FakeCloud
) -> None:
    await world.store.create(load_balancer())
    await world.start_informers()
    lbs = world.controllers.load_balancers
    await lbs.reconcile(KEY)
    svc = await stored_service(world)
    assert [i.ip for i in svc.status.load_balancer.ingress] == ["127.200.0.1"]
    await world.store.settle()
    writes = world.store.writes
    await lbs.reconcile(KEY)  # re-ensured (idempotent in the cloud); the status is as wanted
    assert world.store.writes == writes and cloud.ensured == 2


async def test_a_cloud_that_does_not_answer_is_retried_and_said(
    world: World, cloud: FakeCloud
) -> None:
    cloud.failure = CloudCallError("UNAVAILABLE", "connection refused")
    await world.store.create(load_balancer())
    await world.start_informers()
    with pytest.raises(TemporaryError):  # the worker backs off
        await world.controllers.load_balancers.reconcile(KEY)
    (condition,) = (await stored_service(world)).status.conditions
    assert condition.status == "False" and "does not answer" in condition.message


async def test_a_service_no_longer_a_load_balancer_releases_it(
    world: World, cloud: FakeCloud
) -> None:
    await world.store.create(load_balancer())
    await world.start_informers()
    lbs = world.controllers.load_balancers
    await lbs.reconcile(KEY)
    await world.store.settle()
    svc = await stored_service(world)
    svc.spec.type = "ClusterIP"
    await world.store.update(svc, expected_revision=int(svc.metadata.resource_version))
    await world.store.settle()
    await lbs.reconcile(KEY)
    assert cloud.balancers == {}
    released = await stored_service(world)
    assert not released.status.load_balancer.ingress and not released.status.conditions


async def test_a_release_the_cloud_refused_stays_known_for_the_resync(
    world: World, cloud: FakeCloud
) -> None:
    await world.store.create(load_balancer())
    await world.start_informers()
    lbs = world.controllers.load_balancers
    await lbs.reconcile(KEY)
    svc = await stored_service(world)
    await world.store.delete(
        kinds.SERVICES, *KEY, expected_revision=int(svc.metadata.resource_version)
    )
    await world.store.settle()
    cloud.failure = CloudCallError("UNAVAILABLE", "connection refused")
    with pytest.raises(TemporaryError):
        await lbs.reconcile(KEY)
    assert KEY in lbs.known  # so the periodic resync queues it even if the worker drops it
    cloud.failure = None
    await lbs.reconcile(KEY)
    assert cloud.balancers == {} and KEY not in lbs.known


# ---------------------------------------------------------------------- pod GC


async def test_a_pod_of_a_deleted_node_is_collected_after_the_quarantine(world: World) -> None:
    await world.store.create(pod("web-1", node="gone"))
    await world.store.create(pod("web-2", node="n1"))
    await world.store.create(node("n1"))
    await world.start_informers()
    gc = world.controllers.pod_gc
    await gc.collect(ObjectKey(("", "pod-gc")))
    assert len(await world.items(kinds.PODS)) == 2  # quarantined first
    world.clock.advance(gc.quarantine)
    await gc.collect(ObjectKey(("", "pod-gc")))
    assert [p.metadata.name for p in await world.items(kinds.PODS)] == ["web-2"]


async def test_a_node_back_in_the_store_keeps_its_pods(world: World) -> None:
    await world.store.create(pod("web-1", node="n9"))
    await world.start_informers()
    gc = world.controllers.pod_gc
    await gc.collect(ObjectKey(("", "pod-gc")))
    world.clock.advance(gc.quarantine)
    await world.store.create(node("n9"))  # the cache has not shown it yet: the store is read
    await gc.collect(ObjectKey(("", "pod-gc")))
    assert len(await world.items(kinds.PODS)) == 1


# ---------------------------------------------------------------------- repair


async def test_repair_releases_an_orphaned_claim_and_restores_a_missing_one(
    world: World,
) -> None:
    ip = Claim.cluster_ip("10.96.0.10")
    svc = await world.store.create(service())  # its ClusterIP claim is missing
    gone = service("gone")
    gone.metadata.uid = "uid-of-a-deleted-service"
    await world.store.restore_claims(gone, [Claim.cluster_ip("10.96.0.99")])
    await repair_once(world.store, world.fence)
    assert world.store.claims() == {ip: svc.metadata.uid}
