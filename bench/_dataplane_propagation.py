"""Propagation end to end, for bench/dataplane.py: pod status write -> every node
proxy using the new endpoint set.

The world is bench/propagation.py's (imported, not copied): a real etcd and a real
controller; this process plays three node agents, writing Nodes with live
heartbeats, SERVICES ClusterIP Services (one port each; 8080 here, so the proxies
need no privilege to bind it), SERVICES x PODS bound pods and their statuses,
attached to the nodes' leases. Then three node proxies, `ServiceProxy` from
node_agent/proxy.py, each in its own process (bench/_dataplane_proxy.py), which
print a line per endpoint set they start using.

1. cold build: controller start -> every Service's slices list all its pods ready
   (watched here, bench/propagation.py's SliceWatch);
2. proxies: process start -> every proxy reported every Service with all its pods
   ready (it binds a listener per ClusterIP as it goes);
3. flips: readiness of random pods flipped at RATE changes/s, scheduled by absolute
   times, never a pod whose previous flip is still on its way to a slice or to a
   proxy. Per change, t0 just before its status put; the slice event's arrival
   here; and the timestamps in the first and the LAST proxy's report of a set for
   that Service in which the pod's presence matches its new readiness.
   The figure: last proxy - t0, p50/p99/max (goal: p99 <= 25 ms).
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from _propagation_probes import Change, Row, SliceWatch, flip, ms, print_table
from _propagation_world import NODE_IPS, NotConverged, World, keep_leases, populate
from _stats import percentile

from kubelab.store import Store
from kubelab.testing.processes import ControllerProcess, EtcdServer

HERE = Path(__file__).resolve().parent
SERVICE_PORT = 8080
GOAL_P99_MS = 25.0

# Deadlines, in seconds: generous, a healthy run takes a fraction of each.
COLD_DEADLINE = 60.0
PROXY_SYNC_DEADLINE = 90.0
DRAIN_DEADLINE = 15.0
STOP_GRACE = 10.0


class PropagationError(RuntimeError):
    """The world or a proxy did not reach a step's goal before its deadline."""


@dataclass(frozen=True)
class PropagationSettings:
    services: int
    pods: int
    rate: float
    changes: int
    seed: int


# ---------------------------------------------------------------------- the world


# ---------------------------------------------------------------------- the proxies


@dataclass
class Pending:
    change: Change
    seen: dict[str, float] = field(default_factory=dict)  # proxy -> its report's time


class ProxyTracker:
    """What every proxy reported: each Service's ready set, when each proxy first had
    the whole world, and which pending change each report delivered."""

    def __init__(self, world: World, proxies: list[str]) -> None:
        self.world = world
        self.proxies = proxies
        self.want = {
            s: frozenset(world.pods[p].ip for p in members) for s, members in world.members.items()
        }
        self.sets: dict[str, dict[str, frozenset[str]]] = {p: {} for p in proxies}
        self.complete: dict[str, set[str]] = {p: set() for p in proxies}
        self.complete_at: dict[str, float] = {}
        self.synced_at: dict[str, float] = {}
        self.pending: dict[str, Pending] = {}
        self.by_service: dict[str, set[str]] = {}
        self.finished: list[Pending] = []
        self.reports: Counter[str] = Counter()

    def add(self, change: Change) -> None:
        self.pending[change.pod] = Pending(change)
        self.by_service.setdefault(self.world.pods[change.pod].service, set()).add(change.pod)

    def report(self, proxy: str, line: str) -> None:
        words = line.split()
        if len(words) == 2 and words[0] == "synced":
            self.synced_at[proxy] = int(words[1]) / 1e9
            return
        if len(words) != 3:
            raise PropagationError(f"{proxy}: unexpected line {line!r}")
        key, stamp, ips = words
        service = key.partition("/")[2]
        at = int(stamp) / 1e9
        ready = frozenset(ips.split(",")) if ips != "-" else frozenset()
        self.sets[proxy][service] = ready
        self.reports[proxy] += 1
        if proxy not in self.complete_at:
            complete = self.complete[proxy]
            if ready == self.want.get(service):
                complete.add(service)
                if len(complete) == len(self.want):
                    self.complete_at[proxy] = at
            else:
                complete.discard(service)
        waiting = self.by_service.get(service)
        if not waiting:
            return
        for pod in list(waiting):
            pending = self.pending[pod]
            change = pending.change
            if not change.t0 or proxy in pending.seen or at < change.t0:
                continue
            if (self.world.pods[pod].ip in ready) == change.ready:
                pending.seen[proxy] = at
                if len(pending.seen) == len(self.proxies):
                    del self.pending[pod]
                    waiting.discard(pod)
                    self.finished.append(pending)


@dataclass
class ProxyRunner:
    """bench/_dataplane_proxy.py for one node, its stdout read into the tracker.

    Started with `subprocess.Popen` (no Python code runs between fork and exec), not
    the event loop's subprocess support: uvloop runs the interpreter's after-fork
    hooks in the child, where gRPC's crash (SIGSEGV) while this process's gRPC
    threads are busy."""

    node: str
    node_ip: str
    etcd: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    reader: asyncio.Task[None] | None = None
    spawned: float = 0.0

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, "KUBELAB_LOG_FORMAT": "text", "PYTHONPATH": str(HERE.parent)}
        command = [sys.executable, str(HERE / "_dataplane_proxy.py"), "--etcd", self.etcd]
        command += ["--node", self.node, "--node-ip", self.node_ip]
        with open(self.log_path, "ab") as log:
            return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, env=env)

    async def start(self, tracker: ProxyTracker) -> None:
        self.spawned = time.monotonic()
        self.process = self._spawn()
        assert self.process.stdout is not None
        loop = asyncio.get_running_loop()
        lines = asyncio.StreamReader(limit=1 << 20)
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(lines), self.process.stdout
        )
        self.reader = asyncio.create_task(
            self._read(lines, tracker), name=f"proxy {self.node} reader"
        )

    async def _read(self, lines: asyncio.StreamReader, tracker: ProxyTracker) -> None:
        while line := await lines.readline():
            tracker.report(self.node, line.decode())

    def check(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace").splitlines()[-3:]
            raise PropagationError(
                f"the {self.node} proxy exited (code {self.process.returncode}): "
                + " | ".join(tail)
            )
        if self.reader is not None and self.reader.done() and not self.reader.cancelled():
            error = self.reader.exception()
            if error is not None:
                raise PropagationError(f"reading the {self.node} proxy: {error!r}")

    async def stop(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                await asyncio.to_thread(process.wait, STOP_GRACE)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)
        if self.reader is not None:
            # What the proxy printed until it exited is read to its end.
            await asyncio.gather(self.reader, return_exceptions=True)


# ---------------------------------------------------------------------- the phase


async def until(
    done: Callable[[], bool], timeout: float, what: Callable[[], str], alive: Callable[[], None]
) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        alive()
        if time.monotonic() > deadline:
            raise PropagationError(f"{what()}: not within {timeout:g} s")
        await asyncio.sleep(0.01)


@dataclass
class PropagationResult:
    rows: list[Row]
    notes: list[str]
    title: str

    def print(self, load: float) -> None:
        print_table(self.title, self.rows, self.notes, load)


async def run_propagation(
    settings: PropagationSettings, workdir: Path, progress: Callable[[str], None]
) -> PropagationResult:
    etcd = EtcdServer(workdir / "etcd-propagation")
    controller = ControllerProcess(etcd.endpoint, workdir, name="controller-propagation")
    world = World.build(settings.services, settings.pods)
    rng = random.Random(settings.seed)
    store = Store(etcd.endpoint)
    watch = SliceWatch(store, world)
    runners = [
        ProxyRunner(node, ip, etcd.endpoint, workdir / f"proxy-{node}.log")
        for node, ip in sorted(NODE_IPS.items())
    ]
    tracker = ProxyTracker(world, [r.node for r in runners])
    background: list[asyncio.Task[None]] = []
    try:
        etcd.start()
        began = time.monotonic()
        await populate(store, world, SERVICE_PORT)
        progress(
            f"propagation: world written in {time.monotonic() - began:.1f} s "
            f"({len(world.services)} Services, {len(world.pods)} pods)"
        )
        background.append(asyncio.create_task(keep_leases(store, list(world.leases.values()))))
        watch.start(await store.current_revision())

        def alive() -> None:
            try:
                watch.check()
            except NotConverged as err:
                raise PropagationError(str(err)) from None
            for task in background:
                if task.done():
                    error = None if task.cancelled() else task.exception()
                    raise PropagationError(f"the simulated nodes' leases: {error!r}")
            process = controller.process
            if process is not None and process.poll() is not None:
                raise PropagationError(f"the controller exited (code {process.returncode})")
            for runner in runners:
                runner.check()

        # 1. cold build
        spawned = time.monotonic()
        await asyncio.to_thread(controller.start)
        await until(
            lambda: watch.all_complete_at is not None,
            COLD_DEADLINE,
            lambda: f"cold build: {len(watch.complete)} of {len(world.services)} Services' slices",
            alive,
        )
        assert watch.all_complete_at is not None
        cold_s = watch.all_complete_at - spawned
        progress(f"propagation: slices complete {cold_s:.2f} s after the controller started")

        # 2. the proxies
        for runner in runners:
            await runner.start(tracker)
        await until(
            lambda: len(tracker.complete_at) == len(runners),
            PROXY_SYNC_DEADLINE,
            lambda: (
                "proxies programming every Service: "
                + ", ".join(
                    f"{r.node} {len(tracker.complete[r.node])}/{len(world.services)}"
                    for r in runners
                )
            ),
            alive,
        )
        proxy_cold = {r.node: tracker.complete_at[r.node] - r.spawned for r in runners}
        progress(
            "propagation: proxies programmed in "
            + ", ".join(f"{n} {s:.2f} s" for n, s in proxy_cold.items())
        )

        # 3. flips
        watch.tracked = watch.delivering = watch.unchanged = 0
        watch.tracking = True
        reports_before = sum(tracker.reports.values())
        flipping = asyncio.create_task(
            flip(store, world, watch, rng, settings.changes, settings.rate, [tracker])
        )

        def flipping_alive() -> None:
            alive()
            if flipping.done() and flipping.exception() is not None:
                raise PropagationError(f"a status write failed: {flipping.exception()!r}")

        await until(
            flipping.done,
            settings.changes / settings.rate + 30,
            lambda: "flips",
            flipping_alive,
        )
        changes = flipping.result()
        await until(
            lambda: not watch.pending and not tracker.pending,
            DRAIN_DEADLINE,
            lambda: (
                f"{len(watch.pending)} changes not in a slice, {len(tracker.pending)} not in "
                "every proxy, e.g. "
                + ", ".join(
                    f"{p.change.pod} ready={p.change.ready} seen by {sorted(p.seen)}"
                    for p in list(tracker.pending.values())[:3]
                )
            ),
            alive,
        )
        watch.tracking = False
        reports = sum(tracker.reports.values()) - reports_before
    finally:
        await watch.stop()
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        for runner in runners:
            await runner.stop()
        await store.close()
        await asyncio.to_thread(controller.stop)
        etcd.stop()

    last = [max(p.seen.values()) - p.change.t0 for p in tracker.finished]
    first = [min(p.seen.values()) - p.change.t0 for p in tracker.finished]
    to_slice = [c.seen - c.t0 for c in changes]
    span = changes[-1].t0 - changes[0].t0
    achieved = (len(changes) - 1) / span if span > 0 else float("nan")
    lag = max(c.t0 - c.scheduled for c in changes)
    p99 = percentile(last, 0.99)
    n = len(world.services)
    rows = [
        Row(
            f"{len(changes)} flips at {achieved:.1f}/s: status put -> every proxy, p50",
            ms(percentile(last, 0.5)),
        ),
        Row(
            "  status put -> every proxy (last of 3), p99",
            ms(p99),
            f"<= {GOAL_P99_MS:g} ms",
            p99 * 1000 <= GOAL_P99_MS,
        ),
        Row("  status put -> every proxy, max", ms(max(last))),
        Row(
            "  status put -> first proxy, p50 / p99",
            f"{percentile(first, 0.5) * 1000:.2f} / {ms(percentile(first, 0.99))}",
        ),
        Row(
            "  status put -> slice event here, p50 / p99",
            f"{percentile(to_slice, 0.5) * 1000:.2f} / {ms(percentile(to_slice, 0.99))}",
        ),
        Row(
            "  proxy reports per change per proxy",
            f"{reports / len(changes) / len(runners):.3f}",
        ),
        Row("  worst pacing lag (t0 - scheduled)", ms(lag)),
        Row("cold: controller start -> all slices complete", f"{cold_s:.2f} s"),
        Row(
            f"cold: proxy start -> all {n} Services programmed, worst of 3",
            f"{max(proxy_cold.values()):.2f} s",
        ),
    ]
    notes = [
        "Proxy times are the proxies' own CLOCK_MONOTONIC stamps, taken in on_programmed "
        "right after the endpoint set changed; t0 is taken here just before the status put.",
        "This process also writes the statuses and decodes every slice event; etcd, the "
        "controller and the three proxies share the machine's cores with it.",
    ]
    title = (
        f"Propagation end to end: {n} Services x {settings.pods} pods, 3 node proxies "
        f"(ServiceProxy, one process each), real etcd and controller (seed {settings.seed})"
    )
    return PropagationResult(rows, notes, title)
