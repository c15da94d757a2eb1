"""The apiserver's watch cache (Kubernetes' "cacher"): one etcd watch per kind, shared by
every watcher of both fronts.

Per kind, started with the apiserver (`start`; a kind not started then, or whose cache
failed, starts at its next watch, from that watch's revision) and kept for the life of
the process: one store watch (through `LiveViews`, so pods carry their reported status
and nodes their liveness), a `Ring` of the recent events for resuming, and the set of
open watchers.
Each event is decoded once (by the store watch) and wrapped once as a `CachedEvent`,
which memoizes its wire encodings (`encoded`): the HTTP front serializes an event's
object to JSON once for all its watchers, the gRPC front builds its message once.
The dispatch loop hands the event to every watcher whose namespace and selectors
match (`Interest.sees`, Kubernetes' filtered-watch rule) by appending a reference to
that watcher's queue. A watcher with `watcher_buffer` undelivered events gets a short
time to drain them (`slow_wait` per event, shared), then is terminated
(`FellBehindError`), as Kubernetes' cacher terminates a watcher whose buffer stays
full: a slow client holds up the others at most once, briefly; it re-watches from
the last revision it saw.

A watch from revision R:
* R at or above the ring's floor: events after R are replayed from the ring, then
  live ones follow, with no gap and no duplicate (the replay and the registration
  happen with no await between them). If R is behind the newest event, etcd is
  asked first whether it still keeps R (`Store.check_history`): a watch is 410 Gone
  exactly when etcd compacted its start, whether or not the cache still holds it, so
  an apiserver's answers do not depend on how warm its cache is;
* R below the floor (older than the window, or before this kind's cache started):
  a watch straight from the store, as before the cache, which etcd answers or
  refuses as compacted.

Periodic progress (`Progress`, the fronts' BOOKMARK events) is offered every
`bookmark_interval` seconds to watchers that ask, when their queue is empty, at the
newest revision the cache has processed: a client that resumes from it misses nothing.

If the cache's own store watch fails (etcd compacted past it after a long outage),
every watcher of that kind ends with the error (410: clients relist) and the next
watch starts a new cache, from that watch's revision.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from prometheus_client import Counter, Gauge

from kubelab.core.kinds import ApiObject, KindInfo
from kubelab.store import EventType, ObjectEvent
from services.apiserver.live_views import LiveViews
from services.apiserver.watch_window import DEFAULT_RING_SIZE, Interest, Ring, start_plan

log = logging.getLogger(__name__)

T = TypeVar("T")
# Undelivered events one watcher may have before it is terminated.
DEFAULT_WATCHER_BUFFER = 1024
# How long one event's dispatch may wait for full watchers to drain (Kubernetes: 100 ms).
DEFAULT_SLOW_WAIT = 0.1
# Kubernetes sends a watcher that asked for bookmarks one about every minute.
DEFAULT_BOOKMARK_INTERVAL = 60.0

WATCHERS = Gauge(
    "kubelab_apiserver_cached_watchers", "Watches served by the watch cache", ["resource"]
)
EVENTS = Counter(
    "kubelab_apiserver_watch_cache_events_total", "Changes the watch cache received", ["resource"]
)
TERMINATED = Counter(
    "kubelab_apiserver_watchers_terminated_total",
    "Watches ended because they fell too far behind",
    ["resource"],
)


@dataclass(slots=True, eq=False)
class CachedEvent:
    """One change, shared by every watcher it is delivered to: never mutate its objects."""

    type: EventType
    object: ApiObject
    previous: ApiObject | None
    revision: int
    _encodings: dict[Hashable, Any] = field(default_factory=dict)
    # Watchers it is queued for and not yet sent to: at 0 the encodings are dropped, so
    # the ring holds objects only, not every wire format of them.
    _pending: int = 0

    @classmethod
    def of(cls, event: ObjectEvent) -> CachedEvent:
        return cls(event.type, event.object, event.previous, event.revision)

    @property
    def namespace(self) -> str:
        return str(self.object.metadata.namespace)

    def encoded(self, key: Hashable, make: Callable[[], T]) -> T:
        """`make()`'s result, computed once per `key` (a wire format) for all watchers."""
        try:
            return cast(T, self._encodings[key])
        except KeyError:
            value = self._encodings[key] = make()
            return value

    def queued(self) -> None:
        self._pending += 1

    def sent(self) -> None:
        self._pending -= 1
        if self._pending <= 0:
            self._encodings.clear()


@dataclass(frozen=True, slots=True)
class Delivered:
    type: str  # what this watcher sees: ADDED, MODIFIED or DELETED
    event: CachedEvent


@dataclass(frozen=True, slots=True)
class Progress:
    """Every change up to `revision` this watcher cares about has been delivered."""

    revision: int


class FellBehindError(Exception):
    """The watcher did not keep up; it was ended so that the others are not held up."""


class _Watcher:
    def __init__(self, interest: Interest[ApiObject], limit: int) -> None:
        self.interest = interest
        self.limit = limit
        self.queue: deque[Delivered] = deque()
        self.ready = asyncio.Event()
        self.drained = asyncio.Event()
        self.seen = interest.after
        self.error: Exception | None = None

    @property
    def full(self) -> bool:
        return self.error is None and len(self.queue) >= self.limit

    async def wait_drained(self, timeout: float) -> None:
        """Until the queue has room again, for at most `timeout` seconds."""
        self.drained.clear()
        if timeout > 0 and self.full:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self.drained.wait()

    def offer(self, event: CachedEvent, *, bounded: bool = True) -> bool:
        """Queue the event if it is this watcher's business; False when the watcher
        has fallen too far behind (and is closed)."""
        kind = self.interest.sees(
            event.type, event.revision, event.namespace, event.object, event.previous
        )
        self.seen = max(self.seen, event.revision)
        if kind is None or self.error is not None:
            return True
        if bounded and len(self.queue) >= self.limit:
            self.close(
                FellBehindError(
                    f"the watcher fell more than {self.limit} events behind; "
                    f"watch again from the last resourceVersion it received"
                )
            )
            return False
        self.queue.append(Delivered(kind, event))
        event.queued()
        self.ready.set()
        return True

    def close(self, error: Exception) -> None:
        self.error = error
        for left in self.queue:
            left.event.sent()
        self.queue.clear()
        self.ready.set()

    async def next(self, timeout: float | None) -> Delivered | Progress:
        """The next event, or `Progress` when none came for `timeout` seconds (None:
        wait as long as it takes). Raises the error the watcher was closed with."""
        while not self.queue:
            if self.error is not None:
                raise self.error
            self.ready.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self.ready.wait()
            except TimeoutError:
                if not self.queue and self.error is None:
                    return Progress(self.seen)
        item = self.queue.popleft()
        if len(self.queue) < self.limit:
            self.drained.set()
        return item


class _KindCache:
    def __init__(
        self, info: KindInfo, views: LiveViews, revision: int, ring_size: int, slow_wait: float
    ) -> None:
        self.info = info
        self.slow_wait = slow_wait
        self.ring: Ring[CachedEvent] = Ring(ring_size, revision)
        self.watchers: set[_Watcher] = set()
        self.failed = False
        self.task = asyncio.create_task(self._run(views, revision), name=f"cacher-{info.resource}")

    async def _run(self, views: LiveViews, revision: int) -> None:
        try:
            async for event in views.watch(self.info, "", revision):
                cached = CachedEvent.of(event)
                self.ring.append(cached.revision, cached)
                EVENTS.labels(self.info.resource).inc()
                await self._dispatch(cached)
        except Exception as err:
            # The store watch resumes by itself across etcd restarts; what ends up here
            # (a compacted start, a bug) ends this kind's cache: its watchers get the
            # error and the next watch starts afresh.
            log.warning("watch cache of %s stopped: %s", self.info.resource, err)
            self.failed = True
            for watcher in self.watchers:
                watcher.close(err)
            self.watchers.clear()

    async def _dispatch(self, event: CachedEvent) -> None:
        """Queue the event for every watcher. A watcher whose queue is full gets a little
        time to drain it, from one budget per event (Kubernetes' cacher blocks on a full
        watcher within a 100 ms budget): a fast client behind a burst of events catches
        up; a stuck one delays the others at most that once, and is ended. A watcher
        that registers meanwhile has this event from the ring, not from here."""
        deadline: float | None = None
        loop = asyncio.get_running_loop()
        for watcher in list(self.watchers):
            if watcher.full:
                deadline = deadline or loop.time() + self.slow_wait
                await watcher.wait_drained(deadline - loop.time())
            if not watcher.offer(event):
                self.watchers.discard(watcher)
                TERMINATED.labels(self.info.resource).inc()
                log.info(
                    "watcher terminated: fell behind",
                    extra={"resource": self.info.resource, "revision": event.revision},
                )

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        for watcher in self.watchers:
            watcher.close(FellBehindError("the apiserver is shutting down"))
        self.watchers.clear()


class WatchCache:
    def __init__(
        self,
        views: LiveViews,
        *,
        ring_size: int = DEFAULT_RING_SIZE,
        watcher_buffer: int = DEFAULT_WATCHER_BUFFER,
        bookmark_interval: float = DEFAULT_BOOKMARK_INTERVAL,
        slow_wait: float = DEFAULT_SLOW_WAIT,
    ) -> None:
        if watcher_buffer < 1 or bookmark_interval <= 0 or slow_wait < 0:
            raise ValueError("the watch buffer and the bookmark interval must be positive")
        Ring[CachedEvent](ring_size, 0)  # refuse a bad size now, not at the first watch
        self.views = views
        self.ring_size = ring_size
        self.watcher_buffer = watcher_buffer
        self.bookmark_interval = bookmark_interval
        self.slow_wait = slow_wait
        self._kinds: dict[str, _KindCache] = {}
        self._starting = asyncio.Lock()

    async def start(self, infos: Iterable[KindInfo]) -> None:
        """Start the caches of these kinds now, at the current revision, so that any watch
        from a revision read after this is served by them (as Kubernetes' apiserver starts
        its caches with itself). A kind not started here starts at its first watch."""
        revision = await self.views.store.current_revision()
        for info in infos:
            if info.resource not in self._kinds:
                self._kinds[info.resource] = _KindCache(
                    info, self.views, revision, self.ring_size, self.slow_wait
                )

    async def _kind(self, info: KindInfo, after: int) -> _KindCache:
        cache = self._kinds.get(info.resource)
        if cache is not None and not cache.failed:
            return cache
        async with self._starting:
            cache = self._kinds.get(info.resource)
            if cache is None or cache.failed:
                revision = await self.views.store.current_revision()
                if 0 < after < revision:
                    # Started by a watch from the past: from there (etcd still has it, or
                    # this is the watch's 410), so that it and the watches after it are
                    # served, not sent to etcd one by one.
                    await self.views.store.check_history(after)
                    revision = after
                cache = self._kinds[info.resource] = _KindCache(
                    info, self.views, revision, self.ring_size, self.slow_wait
                )
        return cache

    async def watch(
        self,
        info: KindInfo,
        namespace: str,
        matches: Callable[[ApiObject], bool],
        after: int,
        *,
        bookmarks: bool = False,
        listed: bool = False,
    ) -> AsyncGenerator[Delivered | Progress, None]:
        """The changes to `info` objects in `namespace` ("" all) after revision `after`
        that `matches` selects, as this watcher sees them; `Progress` about every
        `bookmark_interval` seconds when `bookmarks`. Raises CompactedError when etcd
        no longer has `after`, FellBehindError when the watcher did not keep up.
        `listed`: the caller has just listed at `after` (a watch's initial events), so
        etcd has it and is not asked again."""
        interest = Interest(namespace, after, matches)
        cache = await self._kind(info, after)
        plan = start_plan(after, floor=cache.ring.floor, head=cache.ring.head)
        if plan.check_history and not listed:
            await self.views.store.check_history(after)
        # The ring may have moved during that await: decide on what it holds now.
        replay = cache.ring.since(after)
        if replay is None:
            async for event in self.views.watch(info, namespace, after):
                cached = CachedEvent.of(event)
                kind = interest.sees(
                    event.type, event.revision, cached.namespace, event.object, event.previous
                )
                if kind is not None:
                    yield Delivered(kind, cached)
            return
        watcher = _Watcher(interest, self.watcher_buffer)
        for past in replay:
            watcher.offer(past, bounded=False)
        cache.watchers.add(watcher)
        WATCHERS.labels(info.resource).inc()
        try:
            async for item in self._deliver(watcher, bookmarks):
                yield item
        finally:
            cache.watchers.discard(watcher)
            watcher.close(FellBehindError("the watch is over"))
            WATCHERS.labels(info.resource).dec()

    async def _deliver(
        self, watcher: _Watcher, bookmarks: bool
    ) -> AsyncIterator[Delivered | Progress]:
        interval = self.bookmark_interval
        due = time.monotonic() + interval
        while True:
            if bookmarks and not watcher.queue and time.monotonic() >= due:
                # Due while events kept coming: between two of them, all is delivered.
                due = time.monotonic() + interval
                yield Progress(watcher.seen)
                continue
            item = await watcher.next(max(due - time.monotonic(), 0.0) if bookmarks else None)
            if isinstance(item, Progress):
                due = time.monotonic() + interval
                yield item
            else:
                yield item
                item.event.sent()

    async def stop(self) -> None:
        for cache in self._kinds.values():
            await cache.stop()
        self._kinds.clear()
