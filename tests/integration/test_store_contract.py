"""The fake store keeps the real one's promises: the same steps against etcd (`Store`) and
`kubelab.testing.fakes.FakeStore` give the same answers, so unit tests on the fake say
something about the controllers on etcd. Only what `StoreProtocol` offers is compared.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from kubelab.core import kinds
from kubelab.core.allocators import Claim
from kubelab.store import (
    AlreadyExistsError,
    ClaimTakenError,
    ConflictError,
    EventType,
    Fence,
    NotFoundError,
    NotLeaderError,
    Store,
    StoreProtocol,
)
from kubelab.testing.fakes import FakeStore
from kubelab.testing.processes import EtcdServer
from kubelab.v1 import objects_pb2

pytestmark = pytest.mark.integration


@dataclass
class Subject:
    store: StoreProtocol
    elect: Callable[[], Awaitable[Fence]]
    depose: Callable[[Fence], Awaitable[None]]
    set_status: Callable[[str, str, objects_pb2.PodStatus], Awaitable[None]]


@pytest.fixture(params=["etcd", "fake"])
async def subject(request: pytest.FixtureRequest) -> AsyncIterator[Subject]:
    if request.param == "fake":
        fake = FakeStore()

        async def elect() -> Fence:
            return fake.elect()

        async def depose(fence: Fence) -> None:
            fake.depose(fence)

        async def set_status(ns: str, name: str, status: objects_pb2.PodStatus) -> None:
            fake.set_pod_status(ns, name, status)

        yield Subject(fake, elect, depose, set_status)
        return
    etcd: EtcdServer = request.getfixturevalue("etcd")
    real = Store(etcd.endpoint, timeout=2.0)
    leases = {}

    async def elect_real() -> Fence:
        lease = await real.grant_lease(10)
        fence = await real.campaign("contract", "me", lease)
        leases[fence] = lease
        return fence

    async def depose_real(fence: Fence) -> None:
        await real.revoke_lease(leases.pop(fence))

    async def set_status_real(ns: str, name: str, status: objects_pb2.PodStatus) -> None:
        await real.put_pod_status(ns, name, status, await real.grant_lease(10))

    yield Subject(real, elect_real, depose_real, set_status_real)
    await real.close()


def service(name: str, namespace: str = "default") -> objects_pb2.Service:
    svc = objects_pb2.Service(api_version="v1", kind="Service")
    svc.metadata.namespace, svc.metadata.name = namespace, name
    svc.spec.type = "ClusterIP"
    return svc


async def test_create_get_and_create_again(subject: Subject) -> None:
    store = subject.store
    created = await store.create(service("web"))
    assert created.metadata.uid and created.metadata.generation == 1
    assert created.metadata.HasField("creation_timestamp")
    got = await store.get(kinds.SERVICES, "default", "web")
    assert got == created
    with pytest.raises(AlreadyExistsError):
        await store.create(service("web"))
    with pytest.raises(NotFoundError):
        await store.get(kinds.SERVICES, "default", "nope")


async def test_updates_and_deletes_compare_the_revision_read(subject: Subject) -> None:
    store = subject.store
    created = await store.create(service("web"))
    read_at = int(created.metadata.resource_version)
    created.metadata.labels["a"] = "1"
    updated = await store.update(created, expected_revision=read_at)
    assert int(updated.metadata.resource_version) > read_at
    with pytest.raises(ConflictError) as stale:
        await store.update(service("web"), expected_revision=read_at)
    assert stale.value.current_revision == int(updated.metadata.resource_version)
    with pytest.raises(ConflictError):
        await store.delete(kinds.SERVICES, "default", "web", expected_revision=read_at)
    with pytest.raises(NotFoundError):
        await store.update(service("other"), expected_revision=read_at)
    await store.delete(
        kinds.SERVICES, "default", "web", expected_revision=int(updated.metadata.resource_version)
    )
    with pytest.raises(NotFoundError):
        await store.delete(kinds.SERVICES, "default", "web", expected_revision=read_at)


async def test_list_is_per_namespace_at_a_revision(subject: Subject) -> None:
    store = subject.store
    a = await store.create(service("a", "one"))
    await store.create(service("b", "two"))
    items, revision = await store.list(kinds.SERVICES, "one")
    assert [i.metadata.name for i in items] == ["a"]
    assert revision >= int(a.metadata.resource_version)
    everything, _ = await store.list(kinds.SERVICES)
    assert sorted(i.metadata.name for i in everything) == ["a", "b"]


async def test_a_watch_yields_every_change_after_its_revision_in_order(subject: Subject) -> None:
    store = subject.store
    before = await store.create(service("early"))
    created = await store.create(service("web"))
    created.metadata.labels["a"] = "1"
    updated = await store.update(created, expected_revision=int(created.metadata.resource_version))
    await store.delete(
        kinds.SERVICES, "default", "web", expected_revision=int(updated.metadata.resource_version)
    )
    seen = []
    async with asyncio.timeout(5):
        watch = store.watch(kinds.SERVICES, from_revision=int(before.metadata.resource_version))
        async for event in watch:
            seen.append((event.type, event.object.metadata.name, event.revision))
            if len(seen) == 3:
                break
    assert [(t, n) for t, n, _ in seen] == [
        (EventType.ADDED, "web"),
        (EventType.MODIFIED, "web"),
        (EventType.DELETED, "web"),
    ]
    assert [r for _, _, r in seen] == sorted(r for _, _, r in seen)
    assert seen[1][2] == int(updated.metadata.resource_version)


async def test_a_deposed_leaders_write_changes_nothing(subject: Subject) -> None:
    store = subject.store
    fence = await subject.elect()
    created = await store.create(service("web"), fence=fence)
    await subject.depose(fence)
    with pytest.raises(NotLeaderError):
        await store.create(service("late"), fence=fence)
    with pytest.raises(NotLeaderError):
        await store.delete(
            kinds.SERVICES,
            "default",
            "web",
            expected_revision=int(created.metadata.resource_version),
            fence=fence,
        )
    items, _ = await store.list(kinds.SERVICES)
    assert [i.metadata.name for i in items] == ["web"]


async def test_a_taken_claim_refuses_the_whole_create(subject: Subject) -> None:
    store = subject.store
    ip = Claim.cluster_ip("10.96.0.10")
    owner = await store.create(service("first"), [ip])
    with pytest.raises(ClaimTakenError) as taken:
        await store.create(service("second"), [ip])
    assert taken.value.claims == (ip,)
    with pytest.raises(NotFoundError):
        await store.get(kinds.SERVICES, "default", "second")
    claims, _ = await store.list_claims()
    assert claims == {ip: owner.metadata.uid}


async def test_pod_statuses_list_and_watch(subject: Subject) -> None:
    store = subject.store
    _, start = await store.list_pod_statuses()
    status = objects_pb2.PodStatus(phase="Running", pod_ip="10.244.1.5")
    await subject.set_status("default", "web-1", status)
    listed, _ = await store.list_pod_statuses()
    assert listed == {("default", "web-1"): status}
    async with asyncio.timeout(5):
        async for event in store.watch_pod_statuses(from_revision=start):
            assert (event.namespace, event.name, event.status) == ("default", "web-1", status)
            break
