"""The one worker loop every keyed reconciler runs (Kubernetes' `processNextWorkItem`).

A `Worker` takes keys from its `WorkQueue` (which guarantees a key is never
handed to two workers at once, and that a key re-added while it is processed
comes back once, after), calls `sync(key)`, and decides what a failure means
(STYLE habit 4, Kopf's TemporaryError / PermanentError):

* success: the key's back-off is forgotten;
* `PermanentError`: retrying cannot help (the object itself is wrong). One
  log line names the object and the key is dropped; the object's next change
  queues it again;
* any other exception is temporary (Kubernetes retries every error): the key
  is re-queued with its exponential back-off, or after `TemporaryError.delay`.
  After `max_retries` retries in a row (15, as Kubernetes' controllers) the
  key is dropped with one warning; `None` retries for ever, for the data-plane
  agents, which must converge the way kube-proxy and the kubelet do by
  resyncing until they succeed;
* exceptions in `fatal` (a controller's `NotLeaderError`) end the worker: the
  caller's whole term is over, not one key's sync.

Log levels: an error the caller listed as `expected` (etcd away, a conflict) or
a `TemporaryError` is one line (info, or the worker's `expected_level`); a
`TemporaryError(reported=True)` was already logged by the sync in its own words
and goes to debug; anything else is unexpected and logged with its traceback.

Metrics, labelled by the worker's `name` and named after Kubernetes'
workqueue metrics: `kubelab_workqueue_depth`, `kubelab_workqueue_work_duration_seconds`
(a histogram of syncs), `kubelab_workqueue_retries_total` and
`kubelab_workqueue_drops_total{reason="permanent"|"retries"}`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar

from prometheus_client import Counter, Gauge, Histogram

from kubelab.runtime.queue import WorkQueue

log = logging.getLogger(__name__)

K = TypeVar("K")

MAX_RETRIES = 15

DEPTH = Gauge("kubelab_workqueue_depth", "keys waiting in a worker's queue", ["name"])
WORK_DURATION = Histogram(
    "kubelab_workqueue_work_duration_seconds",
    "how long one sync of one key takes",
    ["name"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
RETRIES = Counter("kubelab_workqueue_retries_total", "keys re-queued after a failure", ["name"])
DROPS = Counter(
    "kubelab_workqueue_drops_total",
    "keys given up on: a permanent error, or too many retries",
    ["name", "reason"],
)


class TemporaryError(Exception):
    """The sync should run again: after `delay` seconds, or the key's back-off.
    `reported`: the sync has logged the problem itself; the worker stays quiet."""

    def __init__(self, message: str, *, delay: float | None = None, reported: bool = False):
        super().__init__(message)
        self.delay = delay
        self.reported = reported


class PermanentError(Exception):
    """Retrying cannot fix this (the object is wrong): log it and drop the key."""


def name_key(key: object) -> dict[str, Any]:
    """Log fields naming a key: `obj=ns/name` for a (namespace, name) pair."""
    if isinstance(key, tuple):
        return {"obj": "/".join(str(part) for part in key)}
    return {"obj": str(key)}


class Worker(Generic[K]):
    def __init__(
        self,
        name: str,
        queue: WorkQueue[K],
        sync: Callable[[K], Awaitable[None]],
        *,
        describe: Callable[[K], Mapping[str, Any]] = name_key,
        max_retries: int | None = MAX_RETRIES,
        expected: tuple[type[Exception], ...] = (),
        expected_level: int = logging.INFO,
        fatal: tuple[type[BaseException], ...] = (),
        logger: logging.Logger = log,
    ) -> None:
        self.name = name
        self.queue = queue
        self.sync = sync
        self.describe = describe
        self.max_retries = max_retries
        self.expected = expected
        self.expected_level = expected_level
        self.fatal = fatal
        self.log = logger
        DEPTH.labels(name).set_function(lambda: len(queue))
        # Children looked up once: a sync costs one observe, not a label lookup too.
        self._duration = WORK_DURATION.labels(name)
        self._retries = RETRIES.labels(name)
        self._dropped = {reason: DROPS.labels(name, reason) for reason in ("permanent", "retries")}

    async def run(self, concurrency: int = 1) -> None:
        """Process keys until cancelled (or a `fatal` error), `concurrency` at a time;
        never the same key twice at once (the queue sees to that)."""
        if concurrency == 1:
            while True:
                await self.process_next()
        # gather, not a TaskGroup: a fatal error comes out as itself, not in a group.
        loops = [asyncio.create_task(self.run()) for _ in range(concurrency)]
        try:
            await asyncio.gather(*loops)
        finally:
            for loop in loops:
                loop.cancel()
            await asyncio.gather(*loops, return_exceptions=True)

    async def process_next(self) -> None:
        """Wait for one key and handle it: the loop's body, callable on its own in tests."""
        key = await self.queue.get()
        started = self.queue.clock.now()
        try:
            await self.sync(key)
        except self.fatal:
            raise
        except PermanentError as err:
            self.queue.forget(key)
            self._dropped["permanent"].inc()
            self.log.error(
                "%s: %s; dropped (retrying cannot fix it)",
                self.name,
                err,
                extra=dict(self.describe(key)),
            )
        except Exception as err:
            self._retry(key, err)
        else:
            self.queue.forget(key)
        finally:
            self._duration.observe(max(0.0, self.queue.clock.now() - started))
            self.queue.done(key)

    def _retry(self, key: K, err: Exception) -> None:
        extra = dict(self.describe(key))
        retries = self.queue.failures(key)
        if self.max_retries is not None and retries >= self.max_retries:
            # Kubernetes: "Dropping <key> out of the queue"; its next change queues it again.
            self.queue.forget(key)
            self._dropped["retries"].inc()
            self.log.warning(
                "%s: dropped after %d retries: %s", self.name, retries, err, extra=extra
            )
            return
        delay = self.queue.retry(key, err.delay if isinstance(err, TemporaryError) else None)
        self._retries.inc()
        if isinstance(err, TemporaryError) and err.reported:
            self.log.debug("%s: %s; retrying in %.3fs", self.name, err, delay, extra=extra)
        elif isinstance(err, (TemporaryError, *self.expected)):
            self.log.log(
                self.expected_level,
                "%s: %s; retrying in %.3fs",
                self.name,
                err,
                delay,
                extra=extra,
            )
        else:
            self.log.error(
                "%s: sync failed; retrying in %.3fs", self.name, delay, extra=extra, exc_info=err
            )
