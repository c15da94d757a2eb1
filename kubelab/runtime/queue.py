"""A keyed, de-duplicating work queue (Kubernetes' workqueue, STYLE habit 2).

Event handlers only `add` keys; workers `get` a key, re-read current state
from their caches (level-triggered), and call `done`. Guarantees:

* a key waiting in the queue is held once, however often it is added;
* a key is never handed to two workers at once: added while being processed,
  it is queued again when that processing is `done`;
* `retry` re-adds with per-key exponential back-off (5 ms doubling to 10 s),
  `forget` resets it after a success; `failures` counts the retries since,
  which `kubelab.runtime.worker` bounds (Kubernetes' `NumRequeues`).
  Kubernetes' per-item limiter grows to 1000 s; kubelab stops at 10 s because
  its failures are short outages (an etcd leader change, a restarting peer)
  that a 10 s retry finds over far sooner, and a key is dropped after 15
  failures anyway;
* `add_after` schedules a key for later (a timed wake-up, e.g. a grace
  period ending) without anyone polling.

Timers run on an injected `Clock` (the event loop's by default), so tests
drive back-off with a fake clock instead of waiting.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

from kubelab.runtime.clock import Clock, LoopClock, Timer

K = TypeVar("K")


class WorkQueue(Generic[K]):
    def __init__(
        self, *, base_delay: float = 0.005, max_delay: float = 10.0, clock: Clock | None = None
    ) -> None:
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._failures: dict[K, int] = {}
        self._timers: dict[K, Timer] = {}
        self.clock: Clock = clock or LoopClock()
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._base = base_delay
        self._max = max_delay

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing being processed (timed adds may still be pending)."""
        return not self._queue and not self._processing

    def add(self, key: K) -> None:
        if key in self._dirty:
            return
        self._dirty.add(key)
        self._idle.clear()
        if key not in self._processing:
            self._queue.append(key)
            self._ready.set()

    def add_after(self, key: K, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        earlier = self._timers.get(key)
        if earlier is not None:
            if earlier.when() <= self.clock.now() + delay:
                return
            earlier.cancel()
        self._timers[key] = self.clock.call_later(delay, lambda: self._fire(key))

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    async def get(self) -> K:
        while not self._queue:
            self._ready.clear()
            await self._ready.wait()
        key = self._queue.popleft()
        self._dirty.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._ready.set()
        elif self.idle:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Return once nothing is queued or being processed."""
        while not self.idle:
            self._idle.clear()
            await self._idle.wait()

    def retry(self, key: K, delay: float | None = None) -> float:
        """Re-add after this key's back-off (or after `delay`, when the caller knows
        better); returns the delay chosen."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        if delay is None:
            delay = min(self._base * (2.0**failures), self._max)
        self.add_after(key, delay)
        return delay

    def failures(self, key: K) -> int:
        """Retries of `key` since it last succeeded (was forgotten)."""
        return self._failures.get(key, 0)

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
