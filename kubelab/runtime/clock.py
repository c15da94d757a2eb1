"""Time, injected (STYLE habit 9): what the work queue's back-off and timed adds read.

`Clock` is the narrow interface: a monotonic `now()` and `call_later`, the two
things a timer needs. `LoopClock` is the running event loop's own clock (what
`asyncio.sleep` and `loop.call_later` use), so production code behaves exactly
as if it called the loop directly. Tests pass `kubelab.testing.fakes.FakeClock`
and advance time by hand: back-off and expectations' deadlines run instantly
and exactly, with no wall-clock waits.

Wall-clock time for what is written into objects (a deletionTimestamp, a
condition's lastTransitionTime) is a separate `Callable[[], float]` (`time.time`)
where it is needed; `FakeClock` is callable so it can stand in for that too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol


class Timer(Protocol):
    def cancel(self) -> None: ...
    def when(self) -> float: ...


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic clock, in the same scale as `call_later`'s timers."""
        ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        """Call `callback` once, `delay` seconds from now (soonest first, ties in order)."""
        ...


class LoopClock:
    """The running event loop's clock (asyncio.TimerHandle is a `Timer`)."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(delay, callback)
