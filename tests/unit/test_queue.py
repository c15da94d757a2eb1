"""The work queue: de-duplication, one worker per key, back-off, timed adds."""

from __future__ import annotations

import asyncio

from kubelab.runtime.queue import WorkQueue
from kubelab.testing.fakes import FakeClock


async def test_a_key_added_many_times_is_queued_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for _ in range(5):
        queue.add("a")
    queue.add("b")
    assert len(queue) == 2
    assert [await queue.get(), await queue.get()] == ["a", "b"]


async def test_a_key_is_not_handed_out_while_processing_and_comes_back_after() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    assert await queue.get() == "a"
    queue.add("a")
    assert len(queue) == 0
    waiter = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)  # the waiter's first step: a get with a key to give returns in it
    assert not waiter.done()
    queue.done("a")
    assert await asyncio.wait_for(waiter, 1) == "a"


async def test_retry_backs_off_exponentially_and_forget_resets() -> None:
    queue: WorkQueue[str] = WorkQueue(base_delay=0.01, max_delay=0.04)
    delays = []
    for _ in range(4):
        queue.add("a")
        key = await queue.get()
        queue.done(key)
        delays.append(queue.retry(key))
    assert delays == [0.01, 0.02, 0.04, 0.04]
    queue.forget("a")
    assert queue.retry("a") == 0.01
    queue.close()


async def test_add_after_fires_once_at_the_earliest_time() -> None:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(clock=clock)
    queue.add_after("a", 0.2)
    queue.add_after("a", 0.05)  # sooner: replaces the first
    queue.add_after("a", 0.3)  # later than the one pending: ignored
    clock.advance(0.049)
    assert len(queue) == 0
    clock.advance(0.001)
    assert len(queue) == 1
    assert await queue.get() == "a"
    queue.done("a")
    clock.advance(1.0)  # the replaced and ignored timers never fire
    assert len(queue) == 0 and clock.pending() == []


async def test_wait_idle_returns_once_everything_is_done() -> None:
    queue: WorkQueue[str] = WorkQueue()
    await asyncio.wait_for(queue.wait_idle(), 1)
    queue.add("a")
    waiter = asyncio.ensure_future(queue.wait_idle())
    key = await queue.get()
    await asyncio.sleep(0)
    assert not waiter.done()
    queue.done(key)
    await asyncio.wait_for(waiter, 1)
