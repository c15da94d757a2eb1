"""kubelab.store against a real etcd: round trips, compare-and-swap, claims, watches, outages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from kubelab.core import kinds
from kubelab.core.allocators import Claim
from kubelab.store import (
    AlreadyExistsError,
    ClaimTakenError,
    ConflictError,
    EventType,
    NotFoundError,
    ObjectEvent,
    RequestTooLargeError,
    Store,
    StoreUnavailableError,
)
from kubelab.testing.processes import EtcdServer
from kubelab.testing.wait import until_passes
from kubelab.v1 import objects_pb2

pytestmark = pytest.mark.integration


def service(name: str, uid: str = "", labels: dict[str, str] | None = None) -> objects_pb2.Service:
    svc = objects_pb2.Service(api_version="v1", kind="Service")
    svc.metadata.name = name
    svc.metadata.namespace = "default"
    svc.metadata.uid = uid or f"uid-{name}"
    svc.metadata.labels.update(labels or {})
    svc.spec.type = "ClusterIP"
    return svc


@pytest.fixture
async def store(etcd: EtcdServer) -> AsyncIterator[Store]:
    s = Store(etcd.endpoint, timeout=2.0)
    yield s
    await s.close()


async def test_create_get_update_delete_round_trip(store: Store) -> None:
    created = await store.create(service("shop", labels={"app": "shop"}))
    assert int(created.metadata.resource_version) > 0

    got = await store.get(kinds.SERVICES, "default", "shop")
    assert got == created

    got.metadata.labels["env"] = "prod"
    read_at = int(got.metadata.resource_version)
    updated = await store.update(got, expected_revision=read_at)
    assert int(updated.metadata.resource_version) > read_at
    assert dict((await store.get(kinds.SERVICES, "default", "shop")).metadata.labels) == {
        "app": "shop",
        "env": "prod",
    }

    await store.delete(
        kinds.SERVICES, "default", "shop", expected_revision=int(updated.metadata.resource_version)
    )
    with pytest.raises(NotFoundError):
        await store.get(kinds.SERVICES, "default", "shop")


async def test_create_twice_is_already_exists_and_writes_nothing(store: Store) -> None:
    await store.create(service("shop"))
    before = await store.current_revision()
    with pytest.raises(AlreadyExistsError):
        await store.create(service("shop", uid="other"), [Claim.cluster_ip("10.0.0.1")])
    assert await store.current_revision() == before
    claims, _ = await store.list_claims()
    assert claims == {}


async def test_stale_revision_is_a_conflict(store: Store) -> None:
    first = await store.create(service("shop"))
    revision = int(first.metadata.resource_version)
    await store.update(first, expected_revision=revision)
    with pytest.raises(ConflictError) as caught:
        await store.update(first, expected_revision=revision)
    assert caught.value.current_revision > revision
    with pytest.raises(ConflictError):
        await store.delete(kinds.SERVICES, "default", "shop", expected_revision=revision)


async def test_claims_are_exclusive_and_released_with_the_owner(store: Store) -> None:
    ip, port = Claim.cluster_ip("10.0.0.7"), Claim.node_port("TCP", 30080)
    a = await store.create(service("a"), [ip, port])
    with pytest.raises(ClaimTakenError) as caught:
        await store.create(service("b"), [Claim.cluster_ip("10.0.0.8"), port])
    assert caught.value.claims == (port,)
    with pytest.raises(NotFoundError):
        await store.get(kinds.SERVICES, "default", "b")

    claims, _ = await store.list_claims()
    assert claims == {ip: "uid-a", port: "uid-a"}

    await store.delete(
        kinds.SERVICES,
        "default",
        "a",
        expected_revision=int(a.metadata.resource_version),
        release=[ip, port],
    )
    assert (await store.list_claims())[0] == {}
    await store.create(service("b"), [port])


async def test_update_moves_claims_atomically(store: Store) -> None:
    old, new = Claim.node_port("TCP", 30001), Claim.node_port("TCP", 30002)
    svc = await store.create(service("a"), [old])
    await store.update(
        svc, expected_revision=int(svc.metadata.resource_version), claim=[new], release=[old]
    )
    assert set((await store.list_claims())[0]) == {new}


async def _collect(
    store: Store, from_revision: int, count: int, timeout: float = 10.0
) -> list[ObjectEvent]:
    events: list[ObjectEvent] = []

    async def run() -> None:
        async for event in store.watch(kinds.SERVICES, from_revision=from_revision):
            events.append(event)
            if len(events) == count:
                return

    await asyncio.wait_for(run(), timeout)
    return events


async def test_watch_from_revision_misses_and_repeats_nothing(store: Store) -> None:
    start = await store.current_revision()
    names = [f"svc-{i}" for i in range(20)]
    for name in names:
        await store.create(service(name))
    middle = await store.current_revision()
    doomed = await store.get(kinds.SERVICES, "default", "svc-0")
    await store.delete(
        kinds.SERVICES, "default", "svc-0", expected_revision=int(doomed.metadata.resource_version)
    )

    everything = await _collect(store, start, 21)
    assert [e.object.metadata.name for e in everything[:20]] == names
    assert [e.type for e in everything] == [EventType.ADDED] * 20 + [EventType.DELETED]
    assert everything[-1].object.metadata.name == "svc-0"
    revisions = [e.revision for e in everything]
    assert revisions == sorted(set(revisions))

    resumed = await _collect(store, middle, 1)
    assert [(e.type, e.object.metadata.name) for e in resumed] == [(EventType.DELETED, "svc-0")]


async def test_etcd_down_is_unavailable_and_recovers(etcd: EtcdServer, store: Store) -> None:
    await store.create(service("before"))
    etcd.stop()
    with pytest.raises(StoreUnavailableError):
        await store.get(kinds.SERVICES, "default", "before")
    with pytest.raises(StoreUnavailableError):
        await store.create(service("during"))
    etcd.start()
    got = await until_passes(
        "a read once etcd is back",
        lambda: store.get(kinds.SERVICES, "default", "before"),
        timeout=15,
        interval=0.1,
        retry_on=(StoreUnavailableError,),
    )
    assert got.metadata.name == "before"
    await store.create(service("after"))


async def test_watch_survives_an_etcd_restart(etcd: EtcdServer, store: Store) -> None:
    start = await store.current_revision()
    seen: list[str] = []
    done = asyncio.Event()

    async def consume() -> None:
        async for event in store.watch(kinds.SERVICES, from_revision=start):
            seen.append(event.object.metadata.name)
            if len(seen) == 2:
                done.set()
                return

    task = asyncio.create_task(consume())
    writer = Store(etcd.endpoint, timeout=2.0)
    try:
        await writer.create(service("one"))
        etcd.stop()
        etcd.start()
        await until_passes(
            "a write once etcd is back",
            lambda: writer.create(service("two")),
            timeout=15,
            interval=0.1,
            retry_on=(StoreUnavailableError,),
        )
        await asyncio.wait_for(done.wait(), 20)
        assert seen == ["one", "two"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await writer.close()


async def test_a_reconnect_keeps_calls_and_open_watches_whole(store: Store) -> None:
    # The node agent reconnects after losing its lease (a stale TCP connection from
    # before a network cut must not hold up its registration): watches resume from
    # their last revision, nothing missed or repeated.
    start = await store.current_revision()
    seen: list[str] = []
    three = asyncio.Event()

    async def consume() -> None:
        async for event in store.watch(kinds.SERVICES, from_revision=start):
            seen.append(event.object.metadata.name)
            if len(seen) == 3:
                three.set()

    task = asyncio.create_task(consume())
    try:
        await store.create(service("before"))
        await store.reconnect()
        await store.create(service("after"))
        await store.reconnect()
        assert (await store.get(kinds.SERVICES, "default", "after")).metadata.name == "after"
        await store.create(service("last"))
        try:
            await asyncio.wait_for(three.wait(), 10)
        except TimeoutError:
            raise AssertionError(f"seen {seen}") from None
        assert seen == ["before", "after", "last"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_request_etcd_finds_too_large_is_refused_and_stores_nothing(store: Store) -> None:
    """Validation keeps objects under 1 MiB; if one got past it, etcd's own limit (1.5 MiB)
    is a clear error the API answers INVALID_ARGUMENT, not an internal one."""
    big = service("big")
    big.metadata.annotations["blob"] = "x" * (2 * 1024 * 1024)
    small = service("small")
    results = await asyncio.gather(store.create(big), store.create(small), return_exceptions=True)
    assert isinstance(results[0], RequestTooLargeError)
    assert isinstance(results[1], objects_pb2.Service)
    names = [s.metadata.name for s in (await store.list(kinds.SERVICES, "default"))[0]]
    assert names == ["small"]
