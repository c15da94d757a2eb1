"""The watch cache's fan-out over an in-memory store (services.apiserver.watch_cache):
one store watch for every watcher, each event encoded once, replay then live with no
gap, a slow watcher ended alone, history older than the ring from the store, 410 for
compacted history, progress for bookmarks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import cast

import pytest

from kubelab.core import kinds
from kubelab.core.kinds import ApiObject
from kubelab.store import CompactedError, Store
from kubelab.testing.fakes import FakeStore
from kubelab.testing.wait import until_read
from kubelab.v1 import objects_pb2
from services.apiserver.live_views import LiveViews
from services.apiserver.watch_cache import (
    Delivered,
    FellBehindError,
    Progress,
    WatchCache,
)

SERVICES = kinds.SERVICES


def svc(name: str, env: str = "prod", namespace: str = "default") -> objects_pb2.Service:
    obj = objects_pb2.Service()
    obj.metadata.name, obj.metadata.namespace = name, namespace
    obj.metadata.labels["env"] = env
    return obj


def everything(_: ApiObject) -> bool:
    return True


def prod(obj: ApiObject) -> bool:
    return obj.metadata.labels.get("env") == "prod"


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


async def started(store: FakeStore, **config: float) -> WatchCache:
    cache = WatchCache(LiveViews(cast(Store, store)), **config)  # type: ignore[arg-type]
    await cache.start([SERVICES])
    return cache


Changes = AsyncGenerator[Delivered | Progress, None]


class Reader:
    """A watcher consumed in the background into `got` (name, type)."""

    def __init__(self, changes: Changes) -> None:
        self.changes = changes
        self.got: list[tuple[str, str]] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for change in self.changes:
            if isinstance(change, Delivered):
                self.got.append((change.type, change.event.object.metadata.name))

    async def until(self, count: int) -> list[tuple[str, str]]:
        await until_read(f"{count} events", lambda: len(self.got) >= count)
        return self.got

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def first(changes: AsyncIterator[Delivered | Progress]) -> Delivered | Progress:
    return await asyncio.wait_for(anext(changes), 5)


async def test_every_watcher_shares_one_store_watch_and_one_encoding(store: FakeStore) -> None:
    cache = await started(store)
    start = store.revision
    readers = [Reader(cache.watch(SERVICES, "", everything, start)) for _ in range(5)]
    readers.append(Reader(cache.watch(SERVICES, "default", prod, start)))
    await store.create(svc("a"))
    for reader in readers:
        assert await reader.until(1) == [("ADDED", "a")]
    assert store.watching == 1
    for reader in readers:
        await reader.close()
    await cache.stop()


async def test_an_encoding_is_made_once_and_dropped_once_every_watcher_sent_it(
    store: FakeStore,
) -> None:
    cache = await started(store)
    start = store.revision
    watches = [cache.watch(SERVICES, "", everything, start) for _ in range(3)]
    pending = [asyncio.ensure_future(first(w)) for w in watches]
    await asyncio.sleep(0)
    await store.create(svc("a"))
    made: list[str] = []

    def encode(change: Delivered) -> Callable[[], bytes]:
        def make() -> bytes:
            made.append(change.event.object.metadata.name)
            return b"json"

        return make

    changes = [await p for p in pending]
    for change in changes:
        assert isinstance(change, Delivered)
        assert change.event.encoded("json", encode(change)) == b"json"
    assert made == ["a"]
    # Every watcher has gone on to the next event: all have sent this one, its bytes go.
    after = [asyncio.ensure_future(first(w)) for w in watches]
    await store.create(svc("b"))
    nexts = await asyncio.gather(*after)
    assert [c.event.object.metadata.name for c in nexts if isinstance(c, Delivered)] == ["b"] * 3
    event = changes[0]
    assert isinstance(event, Delivered)
    event.event.encoded("json", encode(event))
    assert made == ["a", "a"]
    await cache.stop()


async def test_a_resume_replays_from_the_ring_then_goes_on_live(store: FakeStore) -> None:
    cache = await started(store)
    a = await store.create(svc("a"))
    await store.create(svc("b", env="dev"))
    await store.settle()
    reader = Reader(cache.watch(SERVICES, "", prod, int(a.metadata.resource_version) - 1))
    await store.create(svc("c"))
    b_to_prod = svc("b")
    current = await store.get(SERVICES, "default", "b")
    b_to_prod.metadata.resource_version = current.metadata.resource_version
    await store.update(b_to_prod, expected_revision=int(current.metadata.resource_version))
    assert await reader.until(3) == [("ADDED", "a"), ("ADDED", "c"), ("ADDED", "b")]
    assert store.watching == 1
    await reader.close()
    await cache.stop()


async def test_a_slow_watcher_is_ended_and_a_fast_one_rides_out_a_burst(store: FakeStore) -> None:
    cache = await started(store, watcher_buffer=2)
    start = store.revision
    slow = cache.watch(SERVICES, "", everything, start)
    fast = Reader(cache.watch(SERVICES, "", everything, start))
    taking = asyncio.ensure_future(first(slow))
    await store.create(svc("a"))
    assert isinstance(await taking, Delivered)
    # A burst twice the buffer, dispatched in one go: the fast watcher is given the time
    # to drain its queue and keeps up; the slow one is not reading and is ended.
    for name in "bcde":
        await store.create(svc(name))
    assert [name for _, name in await fast.until(5)] == list("abcde")
    with pytest.raises(FellBehindError):
        await first(slow)
    await store.create(svc("f"))
    assert [name for _, name in await fast.until(6)] == list("abcdef")
    await fast.close()
    await cache.stop()


async def test_history_older_than_the_ring_comes_from_the_store(store: FakeStore) -> None:
    cache = await started(store, ring_size=2)
    start = store.revision
    for name in "abc":
        await store.create(svc(name))
    await store.settle()
    older = Reader(cache.watch(SERVICES, "", everything, start))
    assert [name for _, name in await older.until(3)] == list("abc")
    assert store.watching == 2  # the cache's and this one's
    await older.close()
    await cache.stop()


async def test_compacted_history_is_gone_even_while_the_ring_holds_it(store: FakeStore) -> None:
    cache = await started(store)
    start = store.revision
    await store.create(svc("a"))
    await store.create(svc("b"))
    await store.settle()
    store.compact()
    with pytest.raises(CompactedError):
        await first(cache.watch(SERVICES, "", everything, start))
    # From the compaction on, it resumes.
    await store.create(svc("c"))
    resumed = await first(cache.watch(SERVICES, "", everything, store.revision - 1))
    assert isinstance(resumed, Delivered) and resumed.event.object.metadata.name == "c"
    await cache.stop()


async def test_progress_is_offered_when_nothing_matched(store: FakeStore) -> None:
    cache = await started(store, bookmark_interval=0.01)
    changes = cache.watch(SERVICES, "", prod, store.revision, bookmarks=True)
    dev = await store.create(svc("a", env="dev"))
    written = int(dev.metadata.resource_version)
    while True:
        change = await first(changes)
        assert isinstance(change, Progress)
        if change.revision >= written:
            break
    await changes.aclose()
    await cache.stop()


async def test_a_cache_started_by_a_watch_serves_from_that_watch_on(store: FakeStore) -> None:
    cache = WatchCache(LiveViews(cast(Store, store)))  # no start(): the first watch starts it
    start = store.revision
    await store.create(svc("a"))
    readers = [Reader(cache.watch(SERVICES, "", everything, start)) for _ in range(3)]
    await store.create(svc("b"))
    for reader in readers:
        assert await reader.until(2) == [("ADDED", "a"), ("ADDED", "b")]
        await reader.close()
    assert store.watching == 1
    await cache.stop()


@pytest.mark.parametrize(
    "config",
    [
        pytest.param({"ring_size": 0}, id="empty-ring"),
        pytest.param({"watcher_buffer": 0}, id="no-buffer"),
        pytest.param({"bookmark_interval": 0}, id="no-interval"),
    ],
)
def test_bad_configuration_is_refused(config: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        WatchCache(LiveViews(cast(Store, FakeStore())), **config)  # type: ignore[arg-type]
