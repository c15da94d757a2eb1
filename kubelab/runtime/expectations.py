"""Expectations: a reconciler's own writes it waits to see (Kubernetes' ControllerExpectations).

A reconcile that writes objects (a Deployment's pods, a Service's slices) must
not plan again from a cache that does not show those writes yet, or it would
create the same replicas twice or overwrite a slice with a stale copy. So,
before writing, it `begin`s an expectation for its owner key; for each write
that succeeded it `expect`s the written object to show up in one of the given
states (a pod "present" or "gone", a slice at a resourceVersion); `finish`
closes the writing. The informer's handler `observe`s every object it sees.

* While the owner is still writing, its expectation is never met (events for
  its first writes may arrive before its last ones are made).
* Once every expected object was seen, the expectation is removed and
  `on_met(owner)` queues the owner again.
* `wait(owner)` tells a reconcile whether to plan: None (nothing expected, met,
  or expired — logged once, naming the owner) or the seconds left. A write
  never seen within `timeout` (a lost event, someone else's write in between)
  costs one planning delay, never a stuck owner.

An object already showing the wanted state when `expect` is called (the
informer was quicker than the write's reply) is not waited for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
N = TypeVar("N", bound=Hashable)


@dataclass(slots=True)
class _Expectation(Generic[N]):
    deadline: float
    pending: dict[N, frozenset[str]] = field(default_factory=dict)
    writing: bool = True


def _name(key: Hashable) -> str:
    return "/".join(map(str, key)) if isinstance(key, tuple) else str(key)


class Expectations(Generic[K, N]):
    def __init__(
        self,
        *,
        kind: str,
        what: str,
        timeout: float,
        clock: Callable[[], float],
        on_met: Callable[[K], None] = lambda owner: None,
        logger: logging.Logger = log,
    ) -> None:
        self.kind = kind  # the log field naming an owner: "svc", "deploy"
        self.what = what  # what is awaited, for the expiry line: "slice writes"
        self.timeout = timeout
        self.clock = clock
        self.on_met = on_met
        self.log = logger
        self._owners: dict[K, _Expectation[N]] = {}
        self._awaited_by: dict[N, set[K]] = {}

    def __contains__(self, owner: object) -> bool:
        return owner in self._owners

    def pending(self, owner: K) -> dict[N, frozenset[str]]:
        """What `owner` still waits for (a copy; empty when nothing)."""
        found = self._owners.get(owner)
        return dict(found.pending) if found is not None else {}

    def begin(self, owner: K) -> None:
        """Start writing for `owner` (any earlier expectation of it is replaced)."""
        self._drop(owner)
        self._owners[owner] = _Expectation(self.clock() + self.timeout)

    def expect(self, owner: K, obj: N, *wanted: str, seen: Collection[str] = ()) -> None:
        """After a successful write: wait for `obj` to show one of `wanted`, unless what
        the informer shows of it now (`seen`) already does."""
        found = self._owners.get(owner)
        if found is None or not set(wanted).isdisjoint(seen):
            return
        found.pending[obj] = frozenset(wanted)
        self._awaited_by.setdefault(obj, set()).add(owner)

    def finish(self, owner: K) -> None:
        """Writing is over (successfully or not): with nothing awaited, forget it."""
        found = self._owners.get(owner)
        if found is None:
            return
        found.writing = False
        if not found.pending:
            self._drop(owner)

    def observe(self, obj: N, *seen: str) -> None:
        """The informer shows `obj` in the states `seen` (e.g. "gone" for a deletion)."""
        for owner in list(self._awaited_by.get(obj, ())):
            found = self._owners[owner]
            if found.pending[obj].isdisjoint(seen):
                continue
            del found.pending[obj]
            self._unindex(obj, owner)
            if not found.pending and not found.writing:
                self._drop(owner)
                self.on_met(owner)

    def wait(self, owner: K) -> float | None:
        """Seconds `owner` should still wait before planning, or None to plan now."""
        found = self._owners.get(owner)
        if found is None:
            return None
        if not found.pending and not found.writing:
            self._drop(owner)
            return None
        left = found.deadline - self.clock()
        if left > 0:
            return left
        self.log.warning(
            "%s never showed up; planning anew", self.what, extra={self.kind: _name(owner)}
        )
        self._drop(owner)
        return None

    def _drop(self, owner: K) -> None:
        found = self._owners.pop(owner, None)
        if found is not None:
            for obj in found.pending:
                self._unindex(obj, owner)

    def _unindex(self, obj: N, owner: K) -> None:
        owners = self._awaited_by.get(obj)
        if owners is not None:
            owners.discard(owner)
            if not owners:
                del self._awaited_by[obj]
