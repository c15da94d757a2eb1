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
   (goal: none), and process start -> resynced: the controller's own "synced" log
   line (every work queue drained once since it leads).
   Then a few more flips, to show the new leader does reconcile (no writes from a
   controller that does nothing would prove nothing), and a final check that every
   Service's slices match every pod's status.

Prints a table (metric, value, goal). Each phase has a deadline; if the world does not
converge in time, exits 1 naming the phase and keeps the process logs.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _conditions import load_average
from _propagation_probes import (
    CpuHog,
    LeaderWatch,
    Row,
    SliceWatch,
    SyncedLog,
    measure_baseline,
    ms,
    print_runs,
    propagate,
    settle,
    until,
)
from _propagation_world import NODE_IPS, NotConverged, World, keep_leases, populate
from _stats import percentile

from kubelab.runtime.loop import run_actor
from kubelab.store import Store
from kubelab.testing.processes import ControllerProcess, EtcdServer

# Goals (the issue).
GOAL_P99_MS = 15.0
GOAL_COLD_S = 3.0
GOAL_RESYNC_S = 1.0
RESTART_WINDOW_S = 5.0

# Deadlines, in seconds: generous, a healthy run takes a fraction of each.
COLD_DEADLINE = 60.0
LEADER_DEADLINE = 30.0

RUNS = {"idle": 0, "hog": 1}  # run name -> busy-loop processes beside it


class Bench:
    """One run: the world, the two controllers, and the phases in order, each returning
    its rows of the table."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.etcd = EtcdServer(workdir / "etcd")
        self.first = ControllerProcess(self.etcd.endpoint, workdir, name="controller")
        self.second = ControllerProcess(self.etcd.endpoint, workdir, name="controller-2")
        self.controller = self.first  # the one that must stay alive
        self.world = World.build(args.services, args.pods)
        self.rng = random.Random(args.seed)
        self.store = Store(self.etcd.endpoint)
        self.watch = SliceWatch(self.store, self.world)
        self.leaders = LeaderWatch(self.store)
        self.background: list[asyncio.Task[Any]] = []  # must run until the end
        self.starts: list[asyncio.Task[None]] = []  # controller starts (blocking, in threads)
        self.setup_s = 0.0

    def alive(self) -> None:
        """Raise NotConverged if anything the run depends on has ended."""
        self.watch.check()
        for task in self.background:
            if task.done():
                error = None if task.cancelled() else task.exception()
                raise NotConverged(f"{task.get_name()} ended: {error!r}")
        for task in self.starts:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise NotConverged(f"starting the controller: {task.exception()}")
        process = self.controller.process
        if process is not None and process.poll() is not None:
            raise NotConverged(f"{self.controller.name} exited (code {process.returncode})")

    def start(self, controller: ControllerProcess) -> asyncio.Task[None]:
        self.controller = controller
        task = asyncio.create_task(asyncio.to_thread(controller.start), name=controller.name)
        self.starts.append(task)
        return task

    async def run(self) -> tuple[list[Row], list[str]]:
        try:
            self.etcd.start()
            rows = await self.baseline()
            await self.write_world()
            rows += await self.cold_build()
            rows += await self.propagation()
            rows += await self.restart()
        finally:
            await self.close()
        notes = [
            "Latencies are from just before the status put to the slice event's arrival in this "
            "process (which also writes the statuses and decodes every slice event).",
            "Resynced: when the new controller logs 'synced' (every work queue drained once "
            "after it leads; also the kubelab_controller_synced gauge).",
            f"p50/p99 nearest rank; world written in {self.setup_s:.1f} s.",
        ]
        return rows, notes

    async def close(self) -> None:
        await self.watch.stop()
        await self.leaders.stop()
        for task in self.background:
            task.cancel()
        await asyncio.gather(*self.background, *self.starts, return_exceptions=True)
        await self.store.close()
        await asyncio.to_thread(self.first.stop)
        await asyncio.to_thread(self.second.stop)
        self.etcd.stop()

    async def baseline(self) -> list[Row]:
        """1. put -> watch event on this etcd, before the controller runs."""
        baseline = await measure_baseline(self.store)
        return [
            Row("etcd put -> watch event, p50 (baseline, this run)", ms(percentile(baseline, 0.5))),
            Row("etcd put -> watch event, p99", ms(percentile(baseline, 0.99))),
        ]

    async def write_world(self) -> None:
        started = time.monotonic()
        await populate(self.store, self.world)
        self.setup_s = time.monotonic() - started
        world = self.world
        note(
            f"world written in {self.setup_s:.1f} s: {len(world.services)} Services, "
            f"{len(world.pods)} pods with statuses, {len(NODE_IPS)} nodes"
        )
        leases = list(world.leases.values())
        self.background.append(
            asyncio.create_task(keep_leases(self.store, leases), name="node leases")
        )
        self.watch.start(await self.store.current_revision())
        self.leaders.start()

    async def cold_build(self) -> list[Row]:
        """2. the controller's start over the world with no slices, until all are right."""
        watch, first = self.watch, self.first
        spawned = time.monotonic()
        starting = self.start(first)
        await until(
            lambda: self.leaders.since(first.name) is not None,
            LEADER_DEADLINE,
            lambda: "cold build: the controller leading",
            self.alive,
        )
        await self.leaders.stop()
        await until(
            lambda: watch.all_complete_at is not None,
            COLD_DEADLINE,
            lambda: (
                f"cold build: {len(watch.complete)} of {len(self.world.services)} Services "
                f"with all {self.args.pods} pods ready in their slices"
            ),
            self.alive,
        )
        await starting
        assert watch.all_complete_at is not None
        leader = (self.leaders.since(first.name) or spawned) - spawned
        cold_s = watch.all_complete_at - spawned
        writes = watch.events_between(spawned, watch.all_complete_at)
        await settle(watch, self.alive, "after the cold build")
        extra = len(watch.times) - writes
        note(f"cold build: {cold_s:.2f} s ({writes} slice writes)")
        n = len(self.world.services)
        return [
            Row(
                "cold build: process start -> all slices complete",
                f"{cold_s:.2f} s",
                f"<= {GOAL_COLD_S:g} s",
                cold_s <= GOAL_COLD_S,
            ),
            Row("  of which process start -> leader", f"{leader:.2f} s"),
            Row("  leader -> all slices complete", f"{cold_s - leader:.2f} s"),
            Row(
                "  slice writes to complete (per Service)",
                f"{writes} ({writes / n:.2f})",
                "1 per Service",
                writes == n,
            ),
            Row("  slice writes after complete (1 s settle)", str(extra), "0", extra == 0),
        ]

    async def propagation(self) -> list[Row]:
        """3. readiness flips at the rate asked, each timed to its slice event."""
        args = self.args
        changes, writes, delivering, unchanged = await propagate(
            self.store,
            self.world,
            self.watch,
            self.rng,
            args.changes,
            args.rate,
            self.alive,
            "propagation",
        )
        latencies = [c.seen - c.t0 for c in changes]
        acks = [c.acked - c.t0 for c in changes]
        after_ack = [c.seen - c.acked for c in changes]
        lag = max(c.t0 - c.scheduled for c in changes)
        span = changes[-1].t0 - changes[0].t0
        achieved = (len(changes) - 1) / span if span > 0 else float("nan")
        p99 = percentile(latencies, 0.99)
        note(f"propagation: p50 {ms(percentile(latencies, 0.5))}, p99 {ms(p99)}")
        return [
            Row(
                f"propagation: {len(changes)} flips at {achieved:.1f}/s, p50",
                ms(percentile(latencies, 0.5)),
            ),
            Row(
                "  status put -> slice event, p99",
                ms(p99),
                f"<= {GOAL_P99_MS:g} ms",
                p99 * 1000 <= GOAL_P99_MS,
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
        ]

    async def restart(self) -> list[Row]:
        """4. SIGTERM the controller, start another over the unchanged world: no writes, a
        quick resync, then a few flips to show it reconciles, and a final check."""
        first, second, watch, leaders = self.first, self.second, self.watch, self.leaders
        leaders.start()
        await asyncio.sleep(0.05)
        signalled = time.monotonic()
        await asyncio.to_thread(first.stop)
        exited = time.monotonic()
        synced = SyncedLog(second)
        respawned = time.monotonic()
        starting = self.start(second)
        await until(
            lambda: leaders.since(second.name) is not None,
            LEADER_DEADLINE,
            lambda: "restart: the new controller leading",
            self.alive,
        )
        await leaders.stop()
        led = leaders.since(second.name)
        assert led is not None
        window_end = led + RESTART_WINDOW_S
        while (left := window_end - time.monotonic()) > 0:
            self.alive()
            synced.poll()
            await asyncio.sleep(min(left, 0.02))
        await starting
        await until(synced.poll, LEADER_DEADLINE, lambda: "restart: the 'synced' line", self.alive)
        restart_writes = watch.events_between(respawned, window_end)
        released = leaders.released(first.name, signalled)
        resynced = synced.at
        assert resynced is not None

        probes, probe_writes, _, _ = await propagate(
            self.store,
            self.world,
            watch,
            self.rng,
            self.args.probes,
            self.args.rate,
            self.alive,
            "after the restart",
        )
        probe_latencies = [c.seen - c.t0 for c in probes]
        wrong = watch.mismatches()
        if wrong:
            raise NotConverged(
                f"final check: {len(wrong)} pods' slices disagree with their status, e.g. "
                + "; ".join(wrong[:5])
            )
        return [
            Row("restart: SIGTERM -> old process exited", f"{exited - signalled:.2f} s"),
            Row(
                "  SIGTERM -> old leader's election key gone",
                f"{released - signalled:.2f} s" if released is not None else "?",
            ),
            Row("  new process start -> leader", f"{led - respawned:.2f} s"),
            Row(
                "  new process start -> resynced (its 'synced' log line)",
                f"{resynced - respawned:.2f} s",
                f"<= {GOAL_RESYNC_S:g} s",
                resynced - respawned <= GOAL_RESYNC_S,
            ),
            Row("  leader -> resynced", f"{resynced - led:.2f} s"),
            Row(
                "  controller CPU, start -> resynced",
                f"{synced.cpu:.2f} s" if synced.cpu is not None else "?",
            ),
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


def note(line: str) -> None:
    """Progress, on stderr, as the run goes."""
    print(line, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=10, help="pods per Service")
    parser.add_argument("--rate", type=float, default=100.0, help="readiness changes per second")
    parser.add_argument("--changes", type=int, default=2000)
    parser.add_argument("--probes", type=int, default=20, help="changes after the restart")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--runs",
        default="idle,hog",
        help="comma-separated: idle (nothing beside it), hog (one core taken by a busy loop)",
    )
    args = parser.parse_args()
    if args.services < 1 or args.pods < 1 or args.changes < 2 or args.probes < 1:
        parser.error("--services, --pods and --probes must be at least 1, --changes at least 2")
    if args.services * args.pods > 250 * 256 or args.services > 250 * 256:
        parser.error("at most 64,000 pods and Services (addresses in a /16 each)")
    if args.rate <= 0:
        parser.error("--rate must be positive")
    runs = [name.strip() for name in args.runs.split(",") if name.strip()]
    if not runs or any(name not in RUNS for name in runs):
        parser.error(f"--runs: a comma-separated list of {', '.join(RUNS)}")

    load = load_average()  # before anything of ours runs: the machine's own load
    results: list[tuple[str, list[Row]]] = []
    notes: list[str] = []
    for name in runs:
        workdir = Path(tempfile.mkdtemp(prefix=f"kubelab-bench-propagation-{name}-"))
        print(f"--- run: {name}", file=sys.stderr, flush=True)
        try:
            with CpuHog(RUNS[name]):
                rows, notes = run_actor(Bench(args, workdir).run())
        except (NotConverged, TimeoutError, RuntimeError) as err:
            print(f"error: the world did not converge ({name} run): {err}", file=sys.stderr)
            print(f"process logs kept in {workdir}", file=sys.stderr)
            raise SystemExit(1) from None
        shutil.rmtree(workdir, ignore_errors=True)
        results.append((name if name == "idle" else "one core taken", rows))
    print_runs(
        f"EndpointSlice propagation: {args.services} Services x {args.pods} pods on "
        f"{len(NODE_IPS)} simulated nodes, real etcd and controller (seed {args.seed})",
        results,
        [
            *notes,
            *(
                [
                    "one core taken: a busy-loop process of this bench's runs beside it for the "
                    "whole run; goals are judged on the load average before the first run."
                ]
                if "hog" in runs
                else []
            ),
        ],
        load,
    )


if __name__ == "__main__":
    main()
