"""The probes bench/propagation.py measures with, and its table.

`SliceWatch` follows every slice and tells when each readiness change arrived;
`LeaderWatch` and `SyncedLog` watch a controller's restart; `flip`/`propagate` make the
changes; `CpuHog` takes a core for the "one core taken" run; `print_runs` prints the
runs side by side. bench/_dataplane_propagation.py and bench/lb.py reuse them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass
from typing import Protocol

from _conditions import started_on, verdict
from _propagation_world import (
    BASELINE_NODE,
    LEASE_TTL,
    NAMESPACE,
    NotConverged,
    World,
)

from kubelab.core import kinds
from kubelab.core.kinds import SERVICE_NAME_LABEL
from kubelab.store import EventType, ObjectEvent, Store
from kubelab.testing.processes import ControllerProcess, controller_synced
from kubelab.testing.wait import LogTail
from kubelab.v1 import objects_pb2
from services.controller.leader import ELECTION

# Deadlines, in seconds: generous, a healthy run takes a fraction of each.
DRAIN_DEADLINE = 15.0
SETTLE_S = 1.0
SETTLE_DEADLINE = 20.0

CLOCK_TICK_S = 1 / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------- watching


@dataclass(slots=True)
class Change:
    pod: str
    ready: bool
    scheduled: float
    t0: float = 0.0
    acked: float = 0.0
    seen: float = 0.0


@dataclass(slots=True)
class SliceState:
    service: str
    # pod name -> ready, as the slice lists it
    ready: dict[str, bool]
    endpoints: list[objects_pb2.Endpoint]
    ports: list[objects_pb2.EndpointPort]


class SliceWatch:
    """Every slice event from a revision on: what each Service's slices say per pod,
    when each Service first listed all its pods ready, and which pending change each
    event delivered."""

    def __init__(self, store: Store, world: World) -> None:
        self.store = store
        self.world = world
        self.slices: dict[str, SliceState] = {}
        self.of_service: dict[str, set[str]] = {}
        self.times: list[float] = []  # monotonic time of every slice event
        self.complete: set[str] = set()
        self.all_complete_at: float | None = None
        self.pending: dict[str, Change] = {}
        self.tracking = False
        self.tracked = 0  # slice events while tracking
        self.delivering = 0  # ... that delivered at least one pending change
        self.unchanged = 0  # ... whose endpoints and ports equal the slice's previous ones
        self.task: asyncio.Task[None] | None = None

    def start(self, revision: int) -> None:
        self.task = asyncio.create_task(self._run(revision), name="slice watch")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    def check(self) -> None:
        if self.task is not None and self.task.done():
            error = None if self.task.cancelled() else self.task.exception()
            raise NotConverged(f"the slice watch ended: {error!r}")

    async def _run(self, revision: int) -> None:
        async for event in self.store.watch(kinds.ENDPOINTSLICES, from_revision=revision):
            self._apply(event, time.monotonic())

    def view(self, service: str) -> dict[str, bool]:
        """Pod -> ready over every slice of `service`."""
        merged: dict[str, bool] = {}
        for name in sorted(self.of_service.get(service, ())):
            merged.update(self.slices[name].ready)
        return merged

    def events_between(self, start: float, end: float) -> int:
        return sum(start <= t <= end for t in self.times)

    def _endpoint_pod(self, endpoint: objects_pb2.Endpoint) -> str:
        if endpoint.target_ref.name:
            return endpoint.target_ref.name
        return self.world.by_ip.get(endpoint.addresses[0] if endpoint.addresses else "", "")

    def _apply(self, event: ObjectEvent, now: float) -> None:
        self.times.append(now)
        eps = event.object
        assert isinstance(eps, objects_pb2.EndpointSlice)
        name = eps.metadata.name
        old = self.slices.pop(name, None)
        if old is not None:
            self.of_service[old.service].discard(name)
        new = None
        service = eps.metadata.labels.get(SERVICE_NAME_LABEL, "")
        if event.type is not EventType.DELETED and service:
            ready = {
                self._endpoint_pod(ep): (
                    ep.conditions.ready if ep.conditions.HasField("ready") else True
                )
                for ep in eps.endpoints
            }
            new = SliceState(service, ready, list(eps.endpoints), list(eps.ports))
            self.slices[name] = new
            self.of_service.setdefault(service, set()).add(name)
        delivered = 0
        for touched in {s.service for s in (old, new) if s is not None}:
            delivered += self._service_changed(touched, now)
        if self.tracking:
            self.tracked += 1
            self.delivering += delivered > 0
            self.unchanged += (
                old is not None
                and new is not None
                and old.endpoints == new.endpoints
                and old.ports == new.ports
            )

    def _service_changed(self, service: str, now: float) -> int:
        view = self.view(service)
        if frozenset(view) == self.world.members.get(service) and all(view.values()):
            self.complete.add(service)
            if self.all_complete_at is None and len(self.complete) == len(self.world.services):
                self.all_complete_at = now
        else:
            self.complete.discard(service)
        delivered = 0
        for pod, ready in view.items():
            change = self.pending.get(pod)
            if change is not None and change.t0 and ready == change.ready:
                change.seen = now
                del self.pending[pod]
                delivered += 1
        return delivered

    def mismatches(self) -> list[str]:
        """Pods whose slices do not say what their status says."""
        wrong = []
        for service in self.world.services:
            view = self.view(service)
            want = {p: self.world.ready[p] for p in self.world.members[service]}
            if view != want:
                for pod in sorted(want.keys() | view.keys()):
                    if view.get(pod) != want.get(pod):
                        wrong.append(f"{pod}: slice {view.get(pod)}, status {want.get(pod)}")
        return wrong


class LeaderWatch:
    """Who holds the controller election, polled every few ms, with when it changed."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.history: list[tuple[float, str | None]] = []
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name="leader watch")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            holder = await self.store.leader(ELECTION)
            identity = holder[0] if holder is not None else None
            if not self.history or self.history[-1][1] != identity:
                self.history.append((time.monotonic(), identity))
            await asyncio.sleep(0.005)

    def since(self, identity: str) -> float | None:
        return next((t for t, who in self.history if who == identity), None)

    def released(self, identity: str, after: float) -> float | None:
        return next((t for t, who in self.history if t >= after and who != identity), None)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (clock-tick resolution)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) * CLOCK_TICK_S


class SyncedLog:
    """When a controller says it has reconciled everything once: the moment this process
    finds its "synced" line in the controller's log (polled every 20 ms; a log record is
    flushed as it is written), and the controller's CPU time from its start to then.
    Made before the controller starts, so it reads that run's lines only."""

    def __init__(self, controller: ControllerProcess) -> None:
        self.controller = controller
        self.at: float | None = None  # monotonic
        self.cpu: float | None = None
        self._log = LogTail(controller.log_path)

    def poll(self) -> bool:
        """True once the line is there."""
        if self.at is not None:
            return True
        if self._log.find(controller_synced) is None:
            return False
        self.at = time.monotonic()
        process = self.controller.process
        if process is not None:
            with contextlib.suppress(OSError):
                self.cpu = cpu_seconds(process.pid)
        return True


# ---------------------------------------------------------------------- phases


async def until(
    done: Callable[[], bool],
    timeout: float,
    what: Callable[[], str],
    alive: Callable[[], None],
) -> None:
    """Poll `done` (the times measured are taken where things happen, not here)."""
    deadline = time.monotonic() + timeout
    while not done():
        alive()
        if time.monotonic() > deadline:
            raise NotConverged(f"{what()}: not within {timeout:g} s")
        await asyncio.sleep(0.01)


async def settle(watch: SliceWatch, alive: Callable[[], None], what: str) -> None:
    """Wait until no slice event has come for SETTLE_S."""
    started = time.monotonic()

    def quiet() -> bool:
        last = watch.times[-1] if watch.times else started
        return time.monotonic() - max(last, started) >= SETTLE_S

    await until(quiet, SETTLE_DEADLINE, lambda: f"{what}: slice writes never stopped", alive)


async def measure_baseline(store: Store, count: int = 300, warmup: int = 30) -> list[float]:
    """Seconds from a heartbeat put to its watch event, one put at a time."""
    lease = await store.grant_lease(LEASE_TTL)
    revision = await store.current_revision()
    arrivals: asyncio.Queue[float] = asyncio.Queue()

    async def watch() -> None:
        async for event in store.watch_heartbeats(from_revision=revision):
            if event.node == BASELINE_NODE and event.alive:
                arrivals.put_nowait(time.monotonic())

    task = asyncio.create_task(watch())
    latencies = []
    try:
        for i in range(warmup + count):
            started = time.monotonic()
            await store.put_heartbeat(BASELINE_NODE, lease)
            arrived = await asyncio.wait_for(arrivals.get(), 10)
            if i >= warmup:
                latencies.append(arrived - started)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.revoke_lease(lease)
    return latencies


async def write_change(store: Store, world: World, change: Change) -> None:
    status = world.status(change.pod, change.ready, time.time())
    change.t0 = time.monotonic()
    await store.put_pod_status(
        NAMESPACE, change.pod, status, world.leases[world.pods[change.pod].node]
    )
    change.acked = time.monotonic()


class ChangeTracker(Protocol):
    """Something else that follows each change (bench/dataplane.py's proxies)."""

    @property
    def pending(self) -> Container[str]: ...

    def add(self, change: Change) -> None: ...


async def flip(
    store: Store,
    world: World,
    watch: SliceWatch,
    rng: random.Random,
    count: int,
    rate: float,
    trackers: Sequence[ChangeTracker] = (),
) -> list[Change]:
    """`count` readiness flips of random pods, the i-th at begin + i/rate; never a pod
    whose previous flip the watch or a tracker still waits for."""
    names = sorted(world.pods)
    changes: list[Change] = []
    writes: list[asyncio.Task[None]] = []
    begin = time.monotonic() + 0.05
    for i in range(count):
        scheduled = begin + i / rate
        delay = scheduled - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        name = rng.choice(names)
        while name in watch.pending or any(name in t.pending for t in trackers):
            name = rng.choice(names)
        ready = not world.ready[name]
        world.ready[name] = ready
        change = Change(name, ready, scheduled)
        watch.pending[name] = change
        for tracker in trackers:
            tracker.add(change)
        changes.append(change)
        writes.append(asyncio.create_task(write_change(store, world, change)))
    await asyncio.gather(*writes)
    return changes


async def propagate(
    store: Store,
    world: World,
    watch: SliceWatch,
    rng: random.Random,
    count: int,
    rate: float,
    alive: Callable[[], None],
    what: str,
) -> tuple[list[Change], int, int, int]:
    """Flip, wait for every change to show, settle; the changes and the slice writes."""
    watch.tracked = watch.delivering = watch.unchanged = 0
    watch.tracking = True
    flipping = asyncio.create_task(flip(store, world, watch, rng, count, rate))

    def flipping_alive() -> None:
        alive()
        if flipping.done() and flipping.exception() is not None:
            raise NotConverged(f"{what}: a status write failed: {flipping.exception()!r}")

    await until(flipping.done, count / rate + 30, lambda: f"{what}: flips", flipping_alive)
    changes = flipping.result()
    await until(
        lambda: not watch.pending,
        DRAIN_DEADLINE,
        lambda: (
            f"{what}: {len(watch.pending)} of {count} changes never reached a slice, e.g. "
            + ", ".join(f"{c.pod} ready={c.ready}" for c in list(watch.pending.values())[:5])
        ),
        alive,
    )
    await settle(watch, alive, what)
    watch.tracking = False
    return changes, watch.tracked, watch.delivering, watch.unchanged


# ---------------------------------------------------------------------- the table


@dataclass
class Row:
    metric: str
    value: str
    goal: str = ""
    met: bool | None = None


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def print_table(title: str, rows: list[Row], notes: list[str], load: float) -> None:
    print(title)
    print(started_on(load))
    width = max(len(r.metric) for r in rows)
    print(f"{'metric':<{width}}  {'value':>16}  {'goal':<16}  met")
    for r in rows:
        met = "" if r.met is None else verdict(r.met, load)
        print(f"{r.metric:<{width}}  {r.value:>16}  {r.goal:<16}  {met}")
    for note in notes:
        print(note)


def print_runs(
    title: str, runs: Sequence[tuple[str, list[Row]]], notes: list[str], load: float
) -> None:
    """One table, a value and a verdict column per run; every run has the same rows."""
    print(title)
    print(started_on(load))
    width = max(len(r.metric) for _, rows in runs for r in rows)
    header = f"{'metric':<{width}}"
    for name, _ in runs:
        header += f"  {name:>16}  {'met':<24}"
    print(f"{header}  goal")
    for index, row in enumerate(runs[0][1]):
        line = f"{row.metric:<{width}}"
        for _, rows in runs:
            mine = rows[index]
            met = "" if mine.met is None else verdict(mine.met, load)
            line += f"  {mine.value:>16}  {met:<24}"
        print(f"{line}  {row.goal}")
    for note in notes:
        print(note)


class CpuHog:
    """`count` busy-loop processes for as long as the block runs: with one on this
    2-core machine, one core is taken, as another user's job would take it."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.processes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> CpuHog:
        for _ in range(self.count):
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL
                )
            )
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            process.kill()
            process.wait()
