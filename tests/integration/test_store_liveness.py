"""Leases, leased pod statuses and heartbeats, leader election and fencing, on a real etcd."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from kubelab.core.kinds import SERVICES
from kubelab.store import NotLeaderError, Store
from kubelab.store.etcd import RawEvent
from kubelab.testing.processes import EtcdServer
from kubelab.testing.wait import until
from kubelab.v1 import objects_pb2

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(etcd: EtcdServer) -> AsyncIterator[Store]:
    s = Store(etcd.endpoint, timeout=2.0)
    yield s
    await s.close()


def running(ip: str) -> objects_pb2.PodStatus:
    return objects_pb2.PodStatus(phase="Running", pod_ip=ip)


async def test_revoking_a_lease_deletes_its_heartbeat_and_statuses_at_once(store: Store) -> None:
    lease = await store.grant_lease(2)
    await store.put_heartbeat("node-1", lease)
    await store.put_pod_status("default", "a", running("127.244.1.2"), lease)
    assert (await store.live_nodes())[0] == {"node-1"}
    statuses, _ = await store.list_pod_statuses()
    assert statuses == {("default", "a"): running("127.244.1.2")}

    await store.revoke_lease(lease)
    assert (await store.live_nodes())[0] == set()
    assert (await store.list_pod_statuses())[0] == {}
    assert await store.get_pod_status("default", "a") is None


async def test_an_unrenewed_lease_expires_within_its_ttl(store: Store) -> None:
    kept, dropped = await store.grant_lease(2), await store.grant_lease(2)
    await store.put_heartbeat("kept", kept)
    await store.put_heartbeat("dropped", dropped)

    async def live_renewing_kept() -> set[str]:
        assert await store.keep_alive(kept)
        return (await store.live_nodes())[0]

    await until(
        "the unrenewed lease to expire (TTL + 1.5 s)",
        live_renewing_kept,
        lambda live: "dropped" not in live,
        timeout=2 + 1.5,
        interval=0.2,
    )
    assert (await store.live_nodes())[0] == {"kept"}
    assert not await store.keep_alive(dropped)


async def test_status_and_heartbeat_watches_see_the_node_die(store: Store) -> None:
    start = await store.current_revision()
    lease = await store.grant_lease(2)
    await store.put_heartbeat("n", lease)
    await store.put_pod_status("default", "p", running("127.244.1.9"), lease)
    await store.revoke_lease(lease)

    async def statuses() -> list[tuple[str, bool]]:
        seen = []
        async for event in store.watch_pod_statuses(from_revision=start):
            seen.append((event.name, event.status is not None))
            if len(seen) == 2:
                return seen
        raise AssertionError("watch ended")

    async def beats() -> list[bool]:
        seen = []
        async for event in store.watch_heartbeats(from_revision=start):
            seen.append(event.alive)
            if len(seen) == 2:
                return seen
        raise AssertionError("watch ended")

    assert await asyncio.wait_for(statuses(), 10) == [("p", True), ("p", False)]
    assert await asyncio.wait_for(beats(), 10) == [True, False]


async def test_one_leader_at_a_time_and_the_deposed_one_is_fenced(
    etcd: EtcdServer, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = Store(etcd.endpoint, timeout=2.0)
    try:
        first_lease, second_lease = await store.grant_lease(2), await other.grant_lease(2)
        first = await store.campaign("controller", "first", first_lease)
        assert await store.leader("controller") == ("first", first.revision)

        # A campaign that finds the seat taken watches for it to be freed: once the second
        # one does, it has lost its first try.
        watching = asyncio.Event()
        watch_prefix = other.watch_prefix

        def watch_for_vacancy(prefix: bytes, from_revision: int) -> AsyncIterator[RawEvent]:
            watching.set()
            return watch_prefix(prefix, from_revision)

        monkeypatch.setattr(other, "watch_prefix", watch_for_vacancy)
        second_task = asyncio.create_task(other.campaign("controller", "second", second_lease))
        await asyncio.wait_for(watching.wait(), 10)
        assert not second_task.done(), "a second leader was elected while the first leads"

        svc = objects_pb2.Service(api_version="v1", kind="Service")
        svc.metadata.name, svc.metadata.namespace, svc.metadata.uid = "s", "default", "u"
        await store.create(svc, fence=first)

        first_ends = await store.current_revision() + 1  # the revoke deletes the seat's key
        await store.revoke_lease(first_lease)
        second = await asyncio.wait_for(second_task, 5)
        assert second.revision > first_ends, "the second term began before the first ended"
        assert not await store.still_leads(first)
        assert await other.still_leads(second)

        svc.metadata.name = "late"
        with pytest.raises(NotLeaderError):
            await store.create(svc, fence=first)
        svc.metadata.name = "fresh"
        await other.create(svc, fence=second)
        names = {i.metadata.name for i in (await store.list(SERVICES))[0]}
        assert names == {"s", "fresh"}
    finally:
        await other.close()


async def test_the_leader_watch_sees_every_term_even_the_same_identity_again(
    store: Store,
) -> None:
    start = await store.current_revision()
    # Another election whose key this one's is a prefix of: not this election's.
    await store.campaign("controller-b", "other", await store.grant_lease(2))
    first = await store.campaign("controller", "c1", lease := await store.grant_lease(2))
    await store.revoke_lease(lease)
    again = await store.campaign("controller", "c1", await store.grant_lease(2))

    async def seen() -> list[tuple[str, int] | None]:
        holders: list[tuple[str, int] | None] = []
        async for holder, _ in store.watch_leader("controller", from_revision=start):
            holders.append(holder)
            if len(holders) == 3:
                return holders
        raise AssertionError("the watch ended")

    assert await asyncio.wait_for(seen(), 10) == [
        ("c1", first.revision),
        None,
        ("c1", again.revision),
    ]
