"""The pure parts of the watch cache: the ring of recent events, where a watch starts,
and which event a filtered watcher sees.

`Ring` keeps the last `capacity` events of one kind in arrival order and knows its
*floor*: every event with a revision above the floor that has arrived is still in the
ring, so a watch resuming from a revision at or above the floor is served from memory;
one below it is older than the window (Kubernetes' watch cache answers "too old
resource version"; kubelab asks etcd instead, which answers 410 only if it compacted
that history). Revisions normally arrive in order; the pod and node views merge two
etcd watches and may not, so the ring compares revisions instead of trusting order.

`start_plan` decides how a watch from a revision is served; `watch_type` is
Kubernetes' filtered-watch rule (an object that stops matching a selector is DELETED
for that watcher, one that starts matching is ADDED).

Pure: no I/O, no asyncio; event types are the plain strings "ADDED", "MODIFIED",
"DELETED" (kubelab.store's EventType is a str enum of them).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

E = TypeVar("E")
Obj = TypeVar("Obj")

# Events per kind the ring keeps when not configured: a few seconds of a busy cluster's
# changes (Kubernetes' fixed default was 100; its dynamic sizing aims at 75 s of history).
DEFAULT_RING_SIZE = 1024


class Ring(Generic[E]):
    """The most recent events of one kind, at most `capacity`, each with its revision."""

    def __init__(self, capacity: int, start_revision: int) -> None:
        if capacity < 1:
            raise ValueError(f"a watch cache ring holds at least one event, not {capacity}")
        self.capacity = capacity
        # Every event above `floor` that has arrived is in the ring.
        self.floor = start_revision
        # The highest revision seen (the revision the cache started at, before any event).
        self.head = start_revision
        self._events: deque[tuple[int, E]] = deque()

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[tuple[int, E]]:
        return iter(self._events)

    def append(self, revision: int, event: E) -> None:
        if len(self._events) == self.capacity:
            dropped, _ = self._events.popleft()
            self.floor = max(self.floor, dropped)
        self._events.append((revision, event))
        self.head = max(self.head, revision)

    def covers(self, revision: int) -> bool:
        """Whether every event after `revision` can be replayed from the ring."""
        return revision >= self.floor

    def since(self, revision: int) -> list[E] | None:
        """The events after `revision`, in arrival order; None when older than the window."""
        if not self.covers(revision):
            return None
        return [event for at, event in self._events if at > revision]


@dataclass(frozen=True, slots=True)
class StartPlan:
    # False: older than the ring's window; the store serves the watch (or answers 410).
    from_ring: bool
    # The watch reaches into history: ask etcd whether it still has it before replaying,
    # so a watch is 410 Gone exactly when etcd compacted its start, cache or no cache.
    check_history: bool


def start_plan(requested: int, *, floor: int, head: int) -> StartPlan:
    """How a watch of events after revision `requested` is served. At or past the head
    nothing is replayed: the watcher waits for live events after `requested` (a
    client that wrote and then watches from its write's revision may be ahead of the
    cache for a moment)."""
    return StartPlan(from_ring=requested >= floor, check_history=requested < head)


def watch_type(
    event: str, now_matches: bool, before_matches: bool, previous_known: bool
) -> str | None:
    """The event a selector's watcher sees, or None when the change is not its business."""
    if event == "DELETED":
        return "DELETED" if now_matches else None
    if now_matches and (before_matches or (event == "MODIFIED" and not previous_known)):
        return "MODIFIED"
    if now_matches:
        return "ADDED"
    if before_matches:
        return "DELETED"
    return None


@dataclass(frozen=True, slots=True)
class Interest(Generic[Obj]):
    """What one watcher wants: a namespace ("" for all), events after a revision, and
    objects its selectors match."""

    namespace: str
    after: int
    matches: Callable[[Obj], bool]

    def sees(
        self, event: str, revision: int, namespace: str, obj: Obj, previous: Obj | None
    ) -> str | None:
        """The event type this watcher is sent for a change, or None."""
        if self.namespace and namespace != self.namespace:
            return None
        if revision <= self.after:
            return None
        before = previous is not None and self.matches(previous)
        return watch_type(event, self.matches(obj), before, previous is not None)
