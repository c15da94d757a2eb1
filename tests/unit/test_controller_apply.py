"""The controller's apply steps on the in-memory fakes (kubelab/testing/fakes.py): each
reconciler's sync reads real informers over a FakeStore and writes back to it with the
same compare-and-swap and fencing rules as etcd. Time is a FakeClock.

The pure planners have their own table tests; these check what the plumbing does with a
plan: what is written, that nothing is written twice, that a reconcile waits for its own
writes, and that a deposed leader writes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from kubelab.core import kinds
from kubelab.core.keys import ObjectKey
from kubelab.store import ConflictError, NotLeaderError
from kubelab.v1 import objects_pb2
from services.controller.node_lifecycle import EVICT
from services.controller.scheduler import SCHEDULE
from tests.unit.controller_world import (
    NS,
    World,
    deployment,
    node,
    pod,
    ready_status,
    service,
    stop,
    with_a_ready_pod,
)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    w = World()
    yield w
    await stop(w)


# ---------------------------------------------------------------------- EndpointSlices


async def test_a_service_gets_one_slice_and_a_second_pass_writes_nothing(world: World) -> None:
    await with_a_ready_pod(world)
    await world.controllers.endpoints.reconcile(ObjectKey((NS, "web")))
    (slice_,) = await world.items(kinds.ENDPOINTSLICES)
    assert isinstance(slice_, objects_pb2.EndpointSlice)
    assert [e.addresses[0] for e in slice_.endpoints] == ["10.244.1.5"]
    assert slice_.endpoints[0].conditions.ready
    writes = world.store.writes
    await world.store.settle()
    await world.controllers.endpoints.reconcile(ObjectKey((NS, "web")))
    assert world.store.writes == writes


async def test_a_reconcile_waits_for_its_own_writes_before_planning_again(world: World) -> None:
    await with_a_ready_pod(world)
    endpoints = world.controllers.endpoints
    await endpoints.reconcile(ObjectKey((NS, "web")))
    # The slice informer has not shown the new slice yet: planning now would make another.
    assert (NS, "web") in endpoints.expected
    await endpoints.reconcile(ObjectKey((NS, "web")))
    assert len(await world.items(kinds.ENDPOINTSLICES)) == 1
    await world.store.settle()
    assert (NS, "web") not in endpoints.expected


async def test_a_deleted_service_takes_its_slices(world: World) -> None:
    await with_a_ready_pod(world)
    await world.controllers.endpoints.reconcile(ObjectKey((NS, "web")))
    svc = await world.store.get(kinds.SERVICES, NS, "web")
    await world.store.delete(
        kinds.SERVICES, NS, "web", expected_revision=int(svc.metadata.resource_version)
    )
    await world.store.settle()
    await world.controllers.endpoints.reconcile(ObjectKey((NS, "web")))
    assert await world.items(kinds.ENDPOINTSLICES) == []


async def test_a_deposed_leader_writes_nothing(world: World) -> None:
    await with_a_ready_pod(world)
    world.store.depose(world.fence)
    with pytest.raises(NotLeaderError):
        await world.controllers.endpoints.reconcile(ObjectKey((NS, "web")))
    assert await world.items(kinds.ENDPOINTSLICES) == []


# ---------------------------------------------------------------------- scheduler


async def test_the_scheduler_binds_a_pending_pod_to_the_ready_node(world: World) -> None:
    await world.store.create(node("n1"))
    await world.store.create(node("n2"))
    world.store.set_heartbeat("n2")
    await world.store.create(pod("web-1", node=""))
    await world.start_informers()
    await world.controllers.scheduler.sync(SCHEDULE)
    bound = await world.store.get(kinds.PODS, NS, "web-1")
    assert isinstance(bound, objects_pb2.Pod) and bound.spec.node_name == "n2"


async def test_a_pod_changed_under_the_scheduler_is_a_conflict(world: World) -> None:
    await world.store.create(node("n1"))
    world.store.set_heartbeat("n1")
    await world.store.create(pod("web-1", node=""))
    await world.start_informers()
    world.store.fail_next("update", ConflictError("modified meanwhile", 99))
    writes = world.store.writes
    with pytest.raises(ConflictError):  # the worker retries; the next pass plans afresh
        await world.controllers.scheduler.sync(SCHEDULE)
    assert world.store.writes == writes


# ---------------------------------------------------------------------- deployments


async def test_a_deployment_creates_its_pods_once(world: World) -> None:
    await world.store.create(deployment(2))
    await world.start_informers()
    rollouts = world.controllers.rollouts
    await rollouts.sync(ObjectKey((NS, "web")))
    created = await world.items(kinds.PODS)
    assert len(created) == 2
    assert all(p.metadata.owner_references[0].kind == "Deployment" for p in created)
    await rollouts.sync(ObjectKey((NS, "web")))  # before the informer shows them: expectations hold
    assert len(await world.items(kinds.PODS)) == 2
    await world.store.settle()
    assert (NS, "web") not in rollouts.expectations
    await rollouts.sync(ObjectKey((NS, "web")))
    assert len(await world.items(kinds.PODS)) == 2
    stored = await world.store.get(kinds.DEPLOYMENTS, NS, "web")
    assert isinstance(stored, objects_pb2.Deployment) and stored.status.replicas == 2


# ---------------------------------------------------------------------- node lifecycle


async def test_a_lost_nodes_pods_are_evicted_once_its_grace_ends(world: World) -> None:
    await world.store.create(node("n1"))
    await world.store.create(pod("web-1", node="n1"))
    await world.start_informers()
    lifecycle = world.controllers.lifecycle
    lifecycle.start()  # n1 has no heartbeat: gone from now
    await lifecycle.queue.get()
    await lifecycle.sync(EVICT)
    lifecycle.queue.done(EVICT)
    assert len(await world.items(kinds.PODS)) == 1  # within its grace
    world.clock.advance(40.0)  # the pass scheduled itself for when the grace ends
    assert len(lifecycle.queue) == 1
    await lifecycle.sync(EVICT)
    assert await world.items(kinds.PODS) == []


# ---------------------------------------------------------------------- all of it


async def test_the_controllers_turn_a_deployment_into_endpoints(world: World) -> None:
    await world.store.create(node("n1"))
    world.store.set_heartbeat("n1")
    await world.store.create(service())
    await world.store.create(deployment(2))
    run = asyncio.create_task(world.controllers.run())
    try:
        bound: list[objects_pb2.Pod] = []

        def all_bound() -> bool:
            pods = world.controllers.pods.cache.values()
            bound[:] = [p for p in pods if isinstance(p, objects_pb2.Pod) and p.spec.node_name]
            return len(bound) == 2

        await world.until(all_bound)
        for i, p in enumerate(bound):
            world.store.set_pod_status(NS, p.metadata.name, ready_status(f"10.244.1.{i + 2}"))

        def endpoints() -> set[str]:
            return {
                address
                for s in world.controllers.slices.cache.values()
                if isinstance(s, objects_pb2.EndpointSlice)
                for e in s.endpoints
                if e.conditions.ready
                for address in e.addresses
            }

        await world.until(lambda: endpoints() == {"10.244.1.2", "10.244.1.3"})
    finally:
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
