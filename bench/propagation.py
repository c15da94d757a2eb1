"""EndpointSlice propagation at scale: 1,000 Services x 10 pods, readiness flips at 100/s.

    .venv/bin/python bench/propagation.py [--services 1000] [--pods 10] [--rate 100]
        [--changes 2000] [--seed 1]

Starts a real etcd and a real controller process. 10,000 pod processes do not fit on
the project's 2-core machine, so this process plays the three node agents: it creates
three Nodes and keeps their heartbeats alive (one etcd lease per node), creates the pods
already bound to them, and writes every pod's status (phase Running, a unique podIP in
127.249.0.0/16, Ready/ContainersReady conditions with lastTransitionTime) attached to
its node's lease, as a node agent does. Services (`svc-NNNN`, selector app=svc-NNNN,
port 80 -> 8080, a ClusterIP in 127.96.0.0/16 with its claim) are stored as the
apiserver stores them. The controller sees all of it only through etcd.

Phases:

1. baseline: put -> watch event on this etcd, from this process (heartbeat puts of a
   node nobody else knows, before the controller runs): the floor under every
   figure below, measured in the same run;
2. cold build: with the world written and no slices, start the controller; from the
   process start until every Service has slices listing exactly its pods, all ready
   (watched on /registry/endpointslices); also process start -> leader, and how many
   slice writes it took;
3. propagation: flip the readiness of random pods (never one whose previous flip is
   still on its way) at --rate changes/s, scheduled by absolute times; per change, t0
   just before its status put and t1 when the slice watch delivers a slice of its
   Service listing that pod with the new ready value. p50/p99/max of t1 - t0; slice
   writes per change (slice events from the first change until 1 s after the last one
   is seen, divided by the changes), and the writes that delivered no change;
4. restart: SIGTERM the controller and start a new one over the unchanged world;
   process start -> leader, slice writes from its start until 5 s after it leads
   (goal: none), and process start -> resync done. The controller exposes no "synced"
   signal, so resync is measured by proxy: the start of the first 200 ms, after it
   leads, in which its CPU time (/proc/PID/stat) grows by at most one clock tick.
   Then a few more flips, to show the new leader does reconcile (no writes from a
   controller that does nothing would prove nothing), and a final check that every
   Service's slices match every pod's status.

Prints a table (metric, value, goal). Each phase has a deadline; if the world does not
converge in time, exits 1 naming the phase and keeps the process logs.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import math
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Container, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from _conditions import load_average, started_on, verdict
from google.protobuf.timestamp_pb2 import Timestamp

from kubelab.core import kinds
from kubelab.core.allocators import service_claims
from kubelab.core.pods import to_timestamp
from kubelab.core.validation import apply_defaults
from kubelab.runtime.loop import run_actor
from kubelab.store import EventType, Lease, ObjectEvent, Store
from kubelab.testing.processes import ControllerProcess, EtcdServer
from kubelab.v1 import objects_pb2
from services.controller.leader import ELECTION

NAMESPACE = "default"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
NODE_IPS = {f"node-{n}": f"127.10.92.{n}" for n in (1, 2, 3)}
BASELINE_NODE = "bench-baseline"
# The simulated node agents' lease: long, so a busy moment in this process loses nothing.
LEASE_TTL = 10
WRITERS = 256  # setup writes in flight

# Goals (the issue).
GOAL_P99_MS = 15.0
GOAL_COLD_S = 3.0
GOAL_RESYNC_S = 1.0
RESTART_WINDOW_S = 5.0

# Deadlines, in seconds: generous, a healthy run takes a fraction of each.
COLD_DEADLINE = 60.0
LEADER_DEADLINE = 30.0
DRAIN_DEADLINE = 15.0
SETTLE_S = 1.0
SETTLE_DEADLINE = 20.0

# Resync proxy: CPU quiet for this long, sampled this often.
QUIET_WINDOW_S = 0.2
CPU_SAMPLE_S = 0.02
CLOCK_TICK_S = 1 / os.sysconf("SC_CLK_TCK")


class NotConverged(Exception):
    """The world did not reach a phase's goal before its deadline."""


# ---------------------------------------------------------------------- the world


@dataclass(frozen=True, slots=True)
class PodInfo:
    name: str
    service: str
    ip: str
    node: str


@dataclass
class World:
    services: list[str]
    pods: dict[str, PodInfo]
    members: dict[str, frozenset[str]]
    by_ip: dict[str, str]
    # What each pod's status says now (what the slices must come to say).
    ready: dict[str, bool]
    started: Timestamp = field(default_factory=lambda: to_timestamp(time.time()))
    leases: dict[str, Lease] = field(default_factory=dict)

    @classmethod
    def build(cls, services: int, pods: int) -> World:
        names = [f"svc-{i:04d}" for i in range(services)]
        infos: dict[str, PodInfo] = {}
        members: dict[str, frozenset[str]] = {}
        nodes = sorted(NODE_IPS)
        for i, service in enumerate(names):
            mine = []
            for j in range(pods):
                k = i * pods + j
                name = f"{service}-{j}"
                ip = f"127.249.{k // 250}.{k % 250 + 1}"
                infos[name] = PodInfo(name, service, ip, nodes[k % len(nodes)])
                mine.append(name)
            members[service] = frozenset(mine)
        return cls(
            services=names,
            pods=infos,
            members=members,
            by_ip={p.ip: p.name for p in infos.values()},
            ready=dict.fromkeys(infos, True),
        )

    def status(self, name: str, ready: bool, since: float) -> objects_pb2.PodStatus:
        """The status a node agent reports for a running pod, Ready or not since `since`."""
        pod = self.pods[name]
        status = objects_pb2.PodStatus(
            phase="Running",
            pod_ip=pod.ip,
            pod_ips=[objects_pb2.PodIP(ip=pod.ip)],
            host_ip=NODE_IPS[pod.node],
        )
        status.start_time.CopyFrom(self.started)
        changed = to_timestamp(since)
        for kind, value, at in (
            ("Initialized", True, self.started),
            ("Ready", ready, changed),
            ("ContainersReady", ready, changed),
            ("PodScheduled", True, self.started),
        ):
            condition = status.conditions.add(type=kind, status="True" if value else "False")
            condition.last_transition_time.CopyFrom(at)
            if not value:
                condition.reason = "ContainersNotReady"
                condition.message = "containers with unready status: [echo]"
        container = status.container_statuses.add(
            name="echo", ready=ready, started=True, image="kubelab/echo"
        )
        container.state.running.started_at.CopyFrom(self.started)
        return status


def node_object(name: str, ip: str) -> objects_pb2.Node:
    node = objects_pb2.Node(api_version="v1", kind="Node")
    node.metadata.name = name
    node.metadata.labels.update({"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"})
    node.spec.pod_cidr = "127.249.0.0/16"
    node.status.addresses.add(type="InternalIP", address=ip)
    node.status.addresses.add(type="Hostname", address=name)
    return node


def service_object(index: int, name: str) -> objects_pb2.Service:
    svc = objects_pb2.Service()
    svc.metadata.name = name
    svc.metadata.namespace = NAMESPACE
    svc.metadata.labels["app"] = name
    svc.spec.type = "ClusterIP"
    svc.spec.selector["app"] = name
    svc.spec.ports.add(name="http", port=80, target_port="8080", protocol="TCP")
    ip = f"127.96.{index // 250}.{index % 250 + 1}"
    svc.spec.cluster_ip = ip
    svc.spec.cluster_ips.append(ip)
    apply_defaults(kinds.SERVICES, svc)
    return svc


def pod_object(pod: PodInfo) -> objects_pb2.Pod:
    obj = objects_pb2.Pod()
    obj.metadata.name = pod.name
    obj.metadata.namespace = NAMESPACE
    obj.metadata.labels["app"] = pod.service
    obj.spec.node_name = pod.node
    container = obj.spec.containers.add(name="echo", image="kubelab/echo")
    container.ports.add(name="http", container_port=8080, protocol="TCP")
    apply_defaults(kinds.PODS, obj)
    return obj


async def run_bounded(jobs: Iterable[Callable[[], Awaitable[object]]], limit: int) -> None:
    """Run every job, at most `limit` at a time (the store group-commits them)."""
    iterator = iter(jobs)

    async def worker() -> None:
        for job in iterator:
            await job()

    await asyncio.gather(*(worker() for _ in range(limit)))


async def populate(store: Store, world: World, service_port: int = 80) -> None:
    """Nodes with live heartbeats, Services with their claims, bound pods, Ready statuses."""
    for name, ip in NODE_IPS.items():
        world.leases[name] = await store.grant_lease(LEASE_TTL)
        await store.create(node_object(name, ip))
        await store.put_heartbeat(name, world.leases[name])
    services = [service_object(i, name) for i, name in enumerate(world.services)]
    for svc in services:
        svc.spec.ports[0].port = service_port
    await run_bounded(
        (functools.partial(store.create, svc, service_claims(svc)) for svc in services), WRITERS
    )
    await run_bounded(
        (functools.partial(store.create, pod_object(p)) for p in world.pods.values()), WRITERS
    )
    since = time.time()
    await run_bounded(
        (
            functools.partial(
                store.put_pod_status,
                NAMESPACE,
                p.name,
                world.status(p.name, True, since),
                world.leases[p.node],
            )
            for p in world.pods.values()
        ),
        WRITERS,
    )


async def keep_leases(store: Store, leases: Sequence[Lease]) -> None:
    while True:
        await asyncio.sleep(LEASE_TTL / 3)
        for lease in leases:
            if not await store.keep_alive(lease):
                raise NotConverged("a simulated node's lease expired: its pod statuses are gone")


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


class CpuSampler:
    def __init__(self, controller: ControllerProcess) -> None:
        self.controller = controller
        self.samples: list[tuple[float, float]] = []
        self.task = asyncio.create_task(self._run(), name="cpu sampler")

    async def _run(self) -> None:
        while True:
            process = self.controller.process
            if process is not None:
                try:
                    self.samples.append((time.monotonic(), cpu_seconds(process.pid)))
                except OSError:
                    return
            await asyncio.sleep(CPU_SAMPLE_S)

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    def quiet_since(self, after: float) -> tuple[float, float] | None:
        """Start of the first QUIET_WINDOW_S at or after `after` with at most one clock
        tick of CPU, and the CPU seconds used from the first sample to it."""
        for i, (start, used) in enumerate(self.samples):
            if start < after:
                continue
            for end, later in self.samples[i + 1 :]:
                if end - start >= QUIET_WINDOW_S:
                    if later - used <= CLOCK_TICK_S * 1.01:
                        return start, used - self.samples[0][1]
                    break
        return None


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


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest rank: the smallest value with at least q of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


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


# ---------------------------------------------------------------------- main


async def bench(args: argparse.Namespace, workdir: Path) -> None:
    etcd = EtcdServer(workdir / "etcd")
    first = ControllerProcess(etcd.endpoint, workdir, name="controller")
    second = ControllerProcess(etcd.endpoint, workdir, name="controller-2")
    world = World.build(args.services, args.pods)
    rng = random.Random(args.seed)
    rows: list[Row] = []
    notes: list[str] = []
    store = Store(etcd.endpoint)
    watch = SliceWatch(store, world)
    leaders = LeaderWatch(store)
    background: list[asyncio.Task[Any]] = []  # must run until the end
    starts: list[asyncio.Task[None]] = []  # controller starts (blocking, in threads)
    try:
        etcd.start()

        # 1. baseline
        baseline = await measure_baseline(store)

        started = time.monotonic()
        await populate(store, world)
        setup_s = time.monotonic() - started
        print(
            f"world written in {setup_s:.1f} s: {len(world.services)} Services, "
            f"{len(world.pods)} pods with statuses, {len(NODE_IPS)} nodes",
            file=sys.stderr,
            flush=True,
        )
        background.append(
            asyncio.create_task(keep_leases(store, list(world.leases.values())), name="node leases")
        )

        watch.start(await store.current_revision())
        leaders.start()
        controller = first

        def alive() -> None:
            watch.check()
            for task in background:
                if task.done():
                    error = None if task.cancelled() else task.exception()
                    raise NotConverged(f"{task.get_name()} ended: {error!r}")
            for task in starts:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    raise NotConverged(f"starting the controller: {task.exception()}")
            process = controller.process
            if process is not None and process.poll() is not None:
                raise NotConverged(f"{controller.name} exited (code {process.returncode})")

        # 2. cold build
        spawned = time.monotonic()
        starting = asyncio.create_task(asyncio.to_thread(first.start), name="controller start")
        starts.append(starting)
        await until(
            lambda: leaders.since(first.name) is not None,
            LEADER_DEADLINE,
            lambda: "cold build: the controller leading",
            alive,
        )
        await leaders.stop()
        await until(
            lambda: watch.all_complete_at is not None,
            COLD_DEADLINE,
            lambda: (
                f"cold build: {len(watch.complete)} of {len(world.services)} Services with "
                f"all {args.pods} pods ready in their slices"
            ),
            alive,
        )
        await starting
        assert watch.all_complete_at is not None
        cold_leader = (leaders.since(first.name) or spawned) - spawned
        cold_s = watch.all_complete_at - spawned
        cold_writes = watch.events_between(spawned, watch.all_complete_at)
        await settle(watch, alive, "after the cold build")
        cold_extra = len(watch.times) - cold_writes
        print(
            f"cold build: {cold_s:.2f} s ({cold_writes} slice writes)", file=sys.stderr, flush=True
        )

        # 3. propagation
        changes, writes, delivering, unchanged = await propagate(
            store, world, watch, rng, args.changes, args.rate, alive, "propagation"
        )
        latencies = [c.seen - c.t0 for c in changes]
        acks = [c.acked - c.t0 for c in changes]
        after_ack = [c.seen - c.acked for c in changes]
        lag = max(c.t0 - c.scheduled for c in changes)
        span = changes[-1].t0 - changes[0].t0
        achieved = (len(changes) - 1) / span if span > 0 else float("nan")
        print(
            f"propagation: p50 {ms(percentile(latencies, 0.5))}, "
            f"p99 {ms(percentile(latencies, 0.99))}",
            file=sys.stderr,
            flush=True,
        )

        # 4. restart
        leaders.start()
        await asyncio.sleep(0.05)
        signalled = time.monotonic()
        await asyncio.to_thread(first.stop)
        exited = time.monotonic()
        controller = second
        sampler = CpuSampler(second)
        respawned = time.monotonic()
        starting = asyncio.create_task(asyncio.to_thread(second.start), name="controller-2 start")
        starts.append(starting)
        await until(
            lambda: leaders.since(second.name) is not None,
            LEADER_DEADLINE,
            lambda: "restart: the new controller leading",
            alive,
        )
        await leaders.stop()
        led = leaders.since(second.name)
        assert led is not None
        window_end = led + RESTART_WINDOW_S
        while (left := window_end - time.monotonic()) > 0:
            alive()
            await asyncio.sleep(min(left, 0.1))
        await starting
        await sampler.stop()
        restart_writes = watch.events_between(respawned, window_end)
        released = leaders.released(first.name, signalled)
        quiet = sampler.quiet_since(led)

        probes, probe_writes, _, _ = await propagate(
            store, world, watch, rng, args.probes, args.rate, alive, "after the restart"
        )
        probe_latencies = [c.seen - c.t0 for c in probes]
        wrong = watch.mismatches()
        if wrong:
            raise NotConverged(
                f"final check: {len(wrong)} pods' slices disagree with their status, e.g. "
                + "; ".join(wrong[:5])
            )
    finally:
        await watch.stop()
        await leaders.stop()
        for task in background:
            task.cancel()
        await asyncio.gather(*background, *starts, return_exceptions=True)
        await store.close()
        await asyncio.to_thread(first.stop)
        await asyncio.to_thread(second.stop)
        etcd.stop()

    n = len(world.services)
    rows += [
        Row("etcd put -> watch event, p50 (baseline, this run)", ms(percentile(baseline, 0.5))),
        Row("etcd put -> watch event, p99", ms(percentile(baseline, 0.99))),
        Row(
            "cold build: process start -> all slices complete",
            f"{cold_s:.2f} s",
            f"<= {GOAL_COLD_S:g} s",
            cold_s <= GOAL_COLD_S,
        ),
        Row("  of which process start -> leader", f"{cold_leader:.2f} s"),
        Row("  leader -> all slices complete", f"{cold_s - cold_leader:.2f} s"),
        Row(
            "  slice writes to complete (per Service)",
            f"{cold_writes} ({cold_writes / n:.2f})",
            "1 per Service",
            cold_writes == n,
        ),
        Row("  slice writes after complete (1 s settle)", str(cold_extra), "0", cold_extra == 0),
        Row(
            f"propagation: {len(changes)} flips at {achieved:.1f}/s, p50",
            ms(percentile(latencies, 0.5)),
        ),
        Row(
            "  status put -> slice event, p99",
            ms(percentile(latencies, 0.99)),
            f"<= {GOAL_P99_MS:g} ms",
            percentile(latencies, 0.99) * 1000 <= GOAL_P99_MS,
        ),
        Row("  status put -> slice event, max", ms(max(latencies))),
        Row(
            f"  changes over {GOAL_P99_MS:g} ms",
            f"{sum(t * 1000 > GOAL_P99_MS for t in latencies)} of {len(latencies)}",
        ),
        Row(
            "  status put acknowledged, p50 / p99",
            f"{percentile(acks, 0.5) * 1000:.2f} / {ms(percentile(acks, 0.99))}",
        ),
        Row(
            "  status put acknowledged -> slice event, p50 / p99",
            f"{percentile(after_ack, 0.5) * 1000:.2f} / {ms(percentile(after_ack, 0.99))}",
        ),
        Row(
            "  slice writes per change",
            f"{writes / len(changes):.3f}",
            "1 (<= 1)",
            writes <= len(changes),
        ),
        Row(
            "  slice writes delivering no change",
            str(writes - delivering),
            "0",
            writes == delivering,
        ),
        Row("    of which endpoints unchanged", str(unchanged), "0", unchanged == 0),
        Row("  worst pacing lag (t0 - scheduled)", ms(lag)),
        Row("restart: SIGTERM -> old process exited", f"{exited - signalled:.2f} s"),
        Row(
            "  SIGTERM -> old leader's election key gone",
            f"{released - signalled:.2f} s" if released is not None else "?",
        ),
        Row("  new process start -> leader", f"{led - respawned:.2f} s"),
        Row(
            "  new process start -> resync done (CPU proxy)",
            f"{quiet[0] - respawned:.2f} s" if quiet else f"> {led + 5 - respawned:.2f} s",
            f"<= {GOAL_RESYNC_S:g} s",
            quiet is not None and quiet[0] - respawned <= GOAL_RESYNC_S,
        ),
        Row("  leader -> resync done (CPU proxy)", f"{quiet[0] - led:.2f} s" if quiet else "?"),
        Row("  controller CPU, start -> resync done", f"{quiet[1]:.2f} s" if quiet else "?"),
        Row(
            f"  slice writes, start -> leader + {RESTART_WINDOW_S:g} s",
            str(restart_writes),
            "0",
            restart_writes == 0,
        ),
        Row(
            f"  then {len(probes)} flips: p50 / max",
            f"{percentile(probe_latencies, 0.5) * 1000:.2f} / {ms(max(probe_latencies))}",
        ),
        Row(
            "  ... slice writes per change",
            f"{probe_writes / len(probes):.3f}",
            "1 (<= 1)",
            probe_writes <= len(probes),
        ),
    ]
    notes += [
        "Latencies are from just before the status put to the slice event's arrival in this "
        "process (which also writes the statuses and decodes every slice event).",
        "No 'synced' signal exists in the controller: resync done = start of the first "
        f"{QUIET_WINDOW_S * 1000:.0f} ms after it leads in which its CPU time grows by at most "
        f"one clock tick ({CLOCK_TICK_S * 1000:.0f} ms), sampled every "
        f"{CPU_SAMPLE_S * 1000:.0f} ms.",
        f"p50/p99 nearest rank; world written in {setup_s:.1f} s.",
    ]
    print_table(
        f"EndpointSlice propagation: {n} Services x {args.pods} pods on {len(NODE_IPS)} "
        f"simulated nodes, real etcd and controller (seed {args.seed})",
        rows,
        notes,
        args.load,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=10, help="pods per Service")
    parser.add_argument("--rate", type=float, default=100.0, help="readiness changes per second")
    parser.add_argument("--changes", type=int, default=2000)
    parser.add_argument("--probes", type=int, default=20, help="changes after the restart")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.services < 1 or args.pods < 1 or args.changes < 2 or args.probes < 1:
        parser.error("--services, --pods and --probes must be at least 1, --changes at least 2")
    if args.services * args.pods > 250 * 256 or args.services > 250 * 256:
        parser.error("at most 64,000 pods and Services (addresses in a /16 each)")
    if args.rate <= 0:
        parser.error("--rate must be positive")

    args.load = load_average()  # before anything of ours runs: the machine's own load
    workdir = Path(tempfile.mkdtemp(prefix="kubelab-bench-propagation-"))
    try:
        run_actor(bench(args, workdir))
    except (NotConverged, TimeoutError, RuntimeError) as err:
        print(f"error: the world did not converge: {err}", file=sys.stderr)
        print(f"process logs kept in {workdir}", file=sys.stderr)
        raise SystemExit(1) from None
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
