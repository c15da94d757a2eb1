"""The one worker loop (kubelab/runtime/worker.py): what a failure means, bounded retries with
back-off, metrics, and the queue's one-key-at-a-time guarantee seen through the worker.

Time is a FakeClock: back-off timers fire when the test advances it, never by waiting.
"""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest
from prometheus_client import REGISTRY

from kubelab.runtime.queue import WorkQueue
from kubelab.runtime.worker import PermanentError, TemporaryError, Worker
from kubelab.testing.fakes import FakeClock

_names = itertools.count()


class Boom(Exception):
    pass


class Fatal(Exception):
    pass


class Recorder:
    """A sync that records each key it is called with and fails as told."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls: list[tuple[str, str]] = []
        self.failures: list[BaseException | None] = []
        self.took = 0.0

    async def __call__(self, key: tuple[str, str]) -> None:
        self.calls.append(key)
        self.clock.advance(self.took)
        failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            raise failure


def setup(**options: object) -> tuple[Worker[tuple[str, str]], Recorder, FakeClock]:
    clock = FakeClock()
    queue: WorkQueue[tuple[str, str]] = WorkQueue(clock=clock)
    sync = Recorder(clock)
    worker = Worker(f"test-{next(_names)}", queue, sync, fatal=(Fatal,), **options)  # type: ignore[arg-type]
    return worker, sync, clock


def metric(name: str, worker: Worker[tuple[str, str]], **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"name": worker.name, **labels}) or 0.0


KEY = ("shop", "web")


async def test_success_forgets_the_back_off_and_times_the_sync() -> None:
    worker, sync, clock = setup()
    sync.failures = [Boom("once")]
    sync.took = 0.02
    worker.queue.add(KEY)
    await worker.process_next()
    clock.advance(1)
    await worker.process_next()
    assert sync.calls == [KEY, KEY]
    assert worker.queue.failures(KEY) == 0
    assert metric("kubelab_workqueue_work_duration_seconds_count", worker) == 2
    assert metric("kubelab_workqueue_work_duration_seconds_sum", worker) == pytest.approx(0.04)


async def test_back_off_doubles_from_5_ms_up_to_10_s() -> None:
    worker, sync, clock = setup(max_retries=None)
    sync.failures = [Boom("again")] * 14
    worker.queue.add(KEY)
    delays = []
    for _ in range(14):
        await worker.process_next()
        (due,) = clock.pending()
        delays.append(round(due - clock.now(), 3))
        clock.advance(due - clock.now())
    assert delays[:4] == [0.005, 0.01, 0.02, 0.04]
    assert delays[-3:] == [10.0, 10.0, 10.0]
    assert all(a <= b for a, b in itertools.pairwise(delays))
    assert metric("kubelab_workqueue_retries_total", worker) == 14


async def test_a_key_is_dropped_and_logged_once_the_retries_run_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker, sync, clock = setup(max_retries=3)
    sync.failures = [Boom("etcd is away")] * 10
    worker.queue.add(KEY)
    with caplog.at_level(logging.INFO):
        for _ in range(4):
            await worker.process_next()
            clock.advance(60)
    assert len(sync.calls) == 4  # the first try and 3 retries
    assert clock.pending() == [] and len(worker.queue) == 0 and worker.queue.idle
    assert worker.queue.failures(KEY) == 0  # its next change starts afresh
    assert metric("kubelab_workqueue_retries_total", worker) == 3
    assert metric("kubelab_workqueue_drops_total", worker, reason="retries") == 1
    (dropped,) = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert dropped.levelno == logging.WARNING
    assert "after 3 retries: etcd is away" in dropped.getMessage()
    assert dropped.__dict__["obj"] == "shop/web"


async def test_a_permanent_error_is_dropped_at_once(caplog: pytest.LogCaptureFixture) -> None:
    worker, sync, clock = setup()
    sync.failures = [PermanentError("spec.ports[0]: invalid")]
    worker.queue.add(KEY)
    with caplog.at_level(logging.INFO):
        await worker.process_next()
    assert clock.pending() == [] and len(worker.queue) == 0
    assert metric("kubelab_workqueue_retries_total", worker) == 0
    assert metric("kubelab_workqueue_drops_total", worker, reason="permanent") == 1
    (dropped,) = caplog.records
    assert dropped.levelno == logging.ERROR
    assert "spec.ports[0]: invalid" in dropped.getMessage()
    assert dropped.__dict__["obj"] == "shop/web"
    worker.queue.add(KEY)  # its next change is synced again
    await worker.process_next()
    assert sync.calls == [KEY, KEY]


async def test_a_temporary_error_can_name_its_delay() -> None:
    worker, sync, clock = setup()
    sync.failures = [TemporaryError("pool exhausted", delay=3.0)]
    worker.queue.add(KEY)
    await worker.process_next()
    assert clock.pending() == [clock.now() + 3.0]


@pytest.mark.parametrize(
    ("error", "level"),
    [
        pytest.param(TemporaryError("cloud away"), logging.INFO, id="temporary"),
        pytest.param(TemporaryError("said so", reported=True), logging.DEBUG, id="reported"),
        pytest.param(ConnectionError("expected"), logging.INFO, id="expected"),
        pytest.param(Boom("surprise"), logging.ERROR, id="unexpected-with-traceback"),
    ],
)
async def test_how_loud_a_retry_is(
    error: Exception, level: int, caplog: pytest.LogCaptureFixture
) -> None:
    worker, sync, _ = setup(expected=(ConnectionError,))
    sync.failures = [error]
    worker.queue.add(KEY)
    with caplog.at_level(logging.DEBUG):
        await worker.process_next()
    (line,) = caplog.records
    assert line.levelno == level
    assert (line.exc_info is not None) == (level == logging.ERROR)


async def test_a_fatal_error_ends_the_worker() -> None:
    worker, sync, _ = setup()
    sync.failures = [Fatal("leadership is over")]
    worker.queue.add(KEY)
    with pytest.raises(Fatal):
        await worker.run()
    assert worker.queue.idle  # the key was marked done on the way out


async def test_a_key_added_while_processing_is_processed_again_once() -> None:
    worker, sync, _ = setup()

    async def sync_and_re_add(key: tuple[str, str]) -> None:
        await sync(key)
        if len(sync.calls) == 1:
            for _ in range(3):
                worker.queue.add(key)

    worker.sync = sync_and_re_add
    worker.queue.add(KEY)
    await worker.process_next()
    assert len(worker.queue) == 1
    await worker.process_next()
    assert sync.calls == [KEY, KEY] and worker.queue.idle


async def test_one_key_is_never_synced_twice_at_once() -> None:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(clock=clock)
    running: set[str] = set()
    overlaps: list[str] = []
    seen: list[str] = []
    gates = {"a": asyncio.Event(), "b": asyncio.Event()}

    async def sync(key: str) -> None:
        if key in running:
            overlaps.append(key)
        running.add(key)
        seen.append(key)
        await gates[key].wait()
        running.discard(key)

    worker = Worker(f"test-{next(_names)}", queue, sync)
    task = asyncio.create_task(worker.run(concurrency=3))
    queue.add("a")
    queue.add("b")
    for _ in range(5):
        await asyncio.sleep(0)
    assert running == {"a", "b"}  # different keys run side by side
    queue.add("a")  # while "a" runs: waits for it, even with an idle worker free
    for _ in range(5):
        await asyncio.sleep(0)
    assert seen.count("a") == 1
    gates["a"].set()
    gates["b"].set()
    await asyncio.wait_for(queue.wait_idle(), 5)
    assert seen.count("a") == 2 and overlaps == []
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_queue_depth_is_exported() -> None:
    worker, _, _ = setup()
    for name in ("a", "b", "c"):
        worker.queue.add(("shop", name))
    assert metric("kubelab_workqueue_depth", worker) == 3
    await worker.process_next()
    assert metric("kubelab_workqueue_depth", worker) == 2
