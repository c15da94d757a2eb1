"""In-memory fakes for the I/O edges (STYLE habits 6 and 9): a store and a clock.

`FakeStore` implements `kubelab.store.StoreProtocol` the way etcd behind
`kubelab.store.Store` does, for what controllers and proxies use:

* one revision counter for everything; `metadata.resourceVersion` is the
  object's mod revision, set on read, never stored;
* create compares "does not exist" (`AlreadyExistsError`), update and delete
  compare the revision read (`ConflictError`, `NotFoundError`); claims are
  taken and released in the same step (`ClaimTakenError`); a write carrying a
  `Fence` the store no longer honours raises `NotLeaderError` and writes
  nothing; creates fill in uid, creationTimestamp and generation;
* watches yield every change strictly after the revision asked, in order,
  and raise `CompactedError` for a revision before `compact(...)`;
* pod statuses and node heartbeats are set by the test (`set_pod_status`,
  `set_heartbeat`), as node agents would.

It also helps tests observe and disturb: `writes` counts successful writes
(a reconcile with nothing to do must write nothing), `fail_next(method, err)`
makes the next call of a method raise.

`FakeClock` is a `kubelab.runtime.clock.Clock` whose time moves only when the
test says (`advance`), firing due timers in order; calling it returns the time,
so it also stands in for a `Callable[[], float]` wall clock.
"""

from __future__ import annotations

import asyncio
import bisect
import builtins
import heapq
import itertools
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from google.protobuf.message import Message

from kubelab.core import kinds
from kubelab.core.allocators import Claim, ClaimKind
from kubelab.core.keys import ObjectKey
from kubelab.core.kinds import ApiObject, KindInfo, ObjectT
from kubelab.store import (
    AlreadyExistsError,
    ClaimTakenError,
    CompactedError,
    ConflictError,
    EventType,
    Fence,
    HeartbeatEvent,
    NotFoundError,
    NotLeaderError,
    ObjectEvent,
    PodStatusEvent,
)
from kubelab.v1 import objects_pb2

# ---------------------------------------------------------------------- clock


@dataclass(order=True)
class _FakeTimer:
    due: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True

    def when(self) -> float:
        return self.due


class FakeClock:
    def __init__(self, start: float = 1_000.0) -> None:
        self._now = start
        self._timers: list[_FakeTimer] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def __call__(self) -> float:
        return self._now

    def call_later(self, delay: float, callback: Callable[[], None]) -> _FakeTimer:
        timer = _FakeTimer(self._now + max(0.0, delay), next(self._seq), callback)
        heapq.heappush(self._timers, timer)
        return timer

    def advance(self, seconds: float) -> None:
        """Move time on by `seconds`, firing every timer due by then, soonest first."""
        target = self._now + seconds
        while self._timers and self._timers[0].due <= target:
            timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._now = max(self._now, timer.due)
            timer.callback()
        self._now = target

    def pending(self) -> list[float]:
        """When the live timers are due, soonest first."""
        return sorted(t.due for t in self._timers if not t.cancelled)


# ---------------------------------------------------------------------- store


@dataclass(frozen=True, slots=True)
class _Change:
    revision: int
    event: ObjectEvent | PodStatusEvent | HeartbeatEvent


def _meta(obj: Message) -> Any:
    return obj.metadata  # type: ignore[attr-defined]


def _copy(obj: ObjectT, revision: int | None = None) -> ObjectT:
    copy = type(obj)()
    Message.CopyFrom(copy, obj)
    _meta(copy).resource_version = "" if revision is None else str(revision)
    return copy


def _owner(obj: ApiObject) -> str:
    return str(_meta(obj).uid)


class FakeStore:
    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.revision = 1
        self.writes = 0
        self.fences: set[Fence] = set()
        self._objects: dict[tuple[str, str, str], tuple[ApiObject, int]] = {}
        self._claims: dict[Claim, str] = {}
        self._statuses: dict[ObjectKey, objects_pb2.PodStatus] = {}
        self._heartbeats: set[str] = set()
        self._log: list[_Change] = []
        self._compacted = 0
        self._dropped = 0  # changes compacted away from the front of `_log`
        self._wake = asyncio.Event()
        self._faults: dict[str, list[BaseException]] = defaultdict(list)
        # Each running watch: True while it waits, caught up with every change.
        self._watchers: dict[int, bool] = {}
        self._watcher_ids = itertools.count()

    # ------------------------------------------------------------------ test controls

    def elect(self) -> Fence:
        """A fence the store honours until `depose`."""
        fence = Fence(b"/election/fake", self._bump())
        self.fences.add(fence)
        return fence

    def depose(self, fence: Fence) -> None:
        self.fences.discard(fence)

    def fail_next(self, method: str, error: BaseException) -> None:
        """The next call of `method` (e.g. "update") raises `error` and changes nothing."""
        self._faults[method].append(error)

    def compact(self) -> None:
        """Forget history: a watch from before now raises CompactedError."""
        self._compacted = self.revision
        self._dropped += len(self._log)
        self._log.clear()

    def set_pod_status(
        self, namespace: str, name: str, status: objects_pb2.PodStatus | None
    ) -> None:
        key = ObjectKey((namespace, name))
        if status is None:
            if self._statuses.pop(key, None) is not None:
                self._record(PodStatusEvent(namespace, name, None, self._bump()))
            return
        stored = objects_pb2.PodStatus()
        stored.CopyFrom(status)
        self._statuses[key] = stored
        revision = self._bump()
        self._record(PodStatusEvent(namespace, name, _status_copy(stored), revision))

    def set_heartbeat(self, node: str, alive: bool = True) -> None:
        if alive == (node in self._heartbeats):
            return
        (self._heartbeats.add if alive else self._heartbeats.discard)(node)
        self._record(HeartbeatEvent(node, alive, self._bump()))

    def claims(self) -> dict[Claim, str]:
        return dict(self._claims)

    @property
    def watching(self) -> int:
        """How many watches are running."""
        return len(self._watchers)

    async def settle(self, *, turns: int = 10_000) -> None:
        """Return once every running watch has handed on every change so far (an
        informer's handlers have run for them); yields to the loop, never sleeps."""
        for _ in range(turns):
            if all(self._watchers.values()):
                return
            await asyncio.sleep(0)
        raise AssertionError("watchers never caught up: is a handler blocking?")

    # ------------------------------------------------------------------ objects

    async def get(self, info: KindInfo[ObjectT], namespace: str, name: str) -> ObjectT:
        self._fault("get")
        found = self._objects.get((info.resource, namespace, name))
        if found is None:
            raise NotFoundError(f'{info.qualified_resource} "{name}" not found')
        return cast(ObjectT, _copy(*found))  # stored under info.resource: of its kind

    async def list(
        self, info: KindInfo[ObjectT], namespace: str = ""
    ) -> tuple[builtins.list[ObjectT], int]:
        self._fault("list")
        items = [
            cast(ObjectT, _copy(obj, revision))  # stored under info.resource: of its kind
            for (resource, ns, _), (obj, revision) in sorted(self._objects.items())
            if resource == info.resource and (not namespace or ns == namespace)
        ]
        return items, self.revision

    async def create(
        self, obj: ObjectT, claims: Iterable[Claim] = (), *, fence: Fence | None = None
    ) -> ObjectT:
        self._fault("create")
        info = kinds.info_of(obj)
        meta = _meta(obj)
        self._check_fence(fence)
        key = (info.resource, meta.namespace, meta.name)
        if key in self._objects:
            raise AlreadyExistsError(f'{info.qualified_resource} "{meta.name}" already exists')
        wanted = sorted(set(claims))
        self._check_claims(wanted)
        if not meta.uid:
            meta.uid = str(uuid.uuid4())
        if not meta.HasField("creation_timestamp"):
            meta.creation_timestamp.seconds = int(self.clock())
        if not meta.generation:
            meta.generation = 1
        revision = self._bump()
        self._objects[key] = (_copy(obj), revision)
        self._claims.update(dict.fromkeys(wanted, _owner(obj)))
        meta.resource_version = str(revision)
        self.writes += 1
        self._record(ObjectEvent(EventType.ADDED, info, _copy(obj, revision), revision))
        return obj

    async def update(
        self,
        obj: ObjectT,
        *,
        expected_revision: int,
        claim: Iterable[Claim] = (),
        release: Iterable[Claim] = (),
        fence: Fence | None = None,
    ) -> ObjectT:
        self._fault("update")
        info = kinds.info_of(obj)
        meta = _meta(obj)
        self._check_fence(fence)
        key = (info.resource, meta.namespace, meta.name)
        previous = self._current(info, key, expected_revision)
        wanted = sorted(set(claim))
        self._check_claims(wanted)
        revision = self._bump()
        self._objects[key] = (_copy(obj), revision)
        self._claims.update(dict.fromkeys(wanted, _owner(obj)))
        for gone in release:
            self._claims.pop(gone, None)
        meta.resource_version = str(revision)
        self.writes += 1
        event = ObjectEvent(EventType.MODIFIED, info, _copy(obj, revision), revision, previous)
        self._record(event)
        return obj

    async def delete(
        self,
        info: KindInfo,
        namespace: str,
        name: str,
        *,
        expected_revision: int,
        release: Iterable[Claim] = (),
        fence: Fence | None = None,
    ) -> None:
        self._fault("delete")
        self._check_fence(fence)
        key = (info.resource, namespace, name)
        previous = self._current(info, key, expected_revision)
        del self._objects[key]
        for gone in release:
            self._claims.pop(gone, None)
        revision = self._bump()
        self.writes += 1
        gone_obj = _copy(previous, revision)
        self._record(ObjectEvent(EventType.DELETED, info, gone_obj, revision, previous))

    async def current_revision(self) -> int:
        return self.revision

    async def check_history(self, revision: int) -> None:
        """As etcd: CompactedError when the changes after `revision` are forgotten."""
        if revision < self._compacted:
            raise CompactedError(self._compacted)

    async def watch(
        self, info: KindInfo, namespace: str = "", *, from_revision: int
    ) -> AsyncIterator[ObjectEvent]:
        async for event in self._follow(from_revision):
            if (
                isinstance(event, ObjectEvent)
                and event.info.resource == info.resource
                and (not namespace or _meta(event.object).namespace == namespace)
            ):
                yield event

    # ------------------------------------------------------------------ liveness

    async def list_pod_statuses(
        self, namespace: str = ""
    ) -> tuple[dict[ObjectKey, objects_pb2.PodStatus], int]:
        self._fault("list_pod_statuses")
        statuses = {
            key: _status_copy(status)
            for key, status in self._statuses.items()
            if not namespace or key[0] == namespace
        }
        return statuses, self.revision

    async def watch_pod_statuses(self, *, from_revision: int) -> AsyncIterator[PodStatusEvent]:
        async for event in self._follow(from_revision):
            if isinstance(event, PodStatusEvent):
                yield event

    async def live_nodes(self) -> tuple[set[str], int]:
        self._fault("live_nodes")
        return set(self._heartbeats), self.revision

    async def watch_heartbeats(self, *, from_revision: int) -> AsyncIterator[HeartbeatEvent]:
        async for event in self._follow(from_revision):
            if isinstance(event, HeartbeatEvent):
                yield event

    # ------------------------------------------------------------------ claims

    async def list_claims(self, kind: ClaimKind | None = None) -> tuple[dict[Claim, str], int]:
        self._fault("list_claims")
        claims = {c: uid for c, uid in self._claims.items() if kind is None or c.kind is kind}
        return claims, self.revision

    async def release_claims(self, owned: dict[Claim, str], *, fence: Fence | None = None) -> int:
        self._fault("release_claims")
        self._check_fence(fence)
        released = 0
        for claim, uid in owned.items():
            if self._claims.get(claim) == uid:
                del self._claims[claim]
                self._bump()
                released += 1
        return released

    async def restore_claims(
        self, obj: ApiObject, claims: Iterable[Claim], *, fence: Fence | None = None
    ) -> builtins.list[Claim]:
        self._fault("restore_claims")
        self._check_fence(fence)
        restored = []
        for claim in sorted(set(claims)):
            if claim not in self._claims:
                self._claims[claim] = _owner(obj)
                self._bump()
                restored.append(claim)
        return restored

    # ------------------------------------------------------------------ internals

    def _fault(self, method: str) -> None:
        queued = self._faults.get(method)
        if queued:
            raise queued.pop(0)

    def _bump(self) -> int:
        self.revision += 1
        return self.revision

    def _check_fence(self, fence: Fence | None) -> None:
        if fence is not None and fence not in self.fences:
            raise NotLeaderError(f"leadership {fence.key.decode()}@{fence.revision} is over")

    def _check_claims(self, wanted: builtins.list[Claim]) -> None:
        taken = [c for c in wanted if c in self._claims]
        if taken:
            raise ClaimTakenError(taken)

    def _current(self, info: KindInfo, key: tuple[str, str, str], expected: int) -> ApiObject:
        found = self._objects.get(key)
        if found is None:
            raise NotFoundError(f'{info.qualified_resource} "{key[2]}" not found')
        obj, revision = found
        if revision != expected:
            raise ConflictError.modified(info.qualified_resource, key[2], revision)
        return _copy(obj, revision)

    def _record(self, event: ObjectEvent | PodStatusEvent | HeartbeatEvent) -> None:
        self._log.append(_Change(self.revision, event))
        self._watchers = dict.fromkeys(self._watchers, False)
        self._wake.set()
        self._wake = asyncio.Event()

    async def _follow(
        self, from_revision: int
    ) -> AsyncIterator[ObjectEvent | PodStatusEvent | HeartbeatEvent]:
        if from_revision < self._compacted:
            raise CompactedError(self._compacted)
        position = self._dropped + bisect.bisect_right(
            [c.revision for c in self._log], from_revision
        )
        me = next(self._watcher_ids)
        self._watchers[me] = False
        try:
            while True:
                # A watch already running outlives a compaction (as in etcd); it goes on
                # from the oldest change kept.
                position = max(position, self._dropped)
                while position - self._dropped < len(self._log):
                    change = self._log[position - self._dropped]
                    position += 1
                    yield change.event
                self._watchers[me] = True
                await self._wake.wait()
                self._watchers[me] = False
        finally:
            self._watchers.pop(me, None)


def _status_copy(status: objects_pb2.PodStatus) -> objects_pb2.PodStatus:
    copy = objects_pb2.PodStatus()
    copy.CopyFrom(status)
    return copy
