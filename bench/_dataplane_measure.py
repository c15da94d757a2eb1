"""Measuring one metric over every path, for bench/dataplane.py.

Every path is measured with the same generator, settings and duration, one after
the other, in rounds (a noisy moment then hits one round of every path, not all
of one path); a path's value is the median of its rounds. The proxy's CPU time is
read from /proc around each measured run (not wrk's warm-up). `wrk` runs as is;
bulk, UDP and latency run bench/_dataplane_load.py as a child process per job. A
generator that fails or overruns its deadline, or a proxy that dies, fails the
phase, which names the metric and the path.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from _dataplane_paths import HERE, CpuMeter, Path

from kubelab.client import ApiError
from kubelab.store import StoreError

TOOL_SLACK = 60.0  # s, beyond a generator's own duration
METRICS = {
    "keepalive": "keep-alive requests/s",
    "newconn": "new connections/s",
    "bulk": "bulk MB/s (echo stream)",
    "bulk_in": "bulk MB/s in (one way)",
    "bulk_out": "bulk MB/s out (one way)",
    "udp": "UDP datagrams/s",
    "p50": "latency p50 µs (added)",
    "p99": "latency p99 µs (added)",
}


class PhaseFailed(Exception):
    def __init__(self, phase: str, message: str) -> None:
        super().__init__(f"{phase}: {message}")
        self.phase = phase
        self.message = message


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    """Failures inside carry the phase's name to the exit message."""
    try:
        yield
    except PhaseFailed:
        raise
    except (ApiError, StoreError, TimeoutError, RuntimeError, OSError) as err:
        raise PhaseFailed(name, str(err) or repr(err)) from err


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass
class Result:
    value: float  # the metric, in its unit
    ops: float = 0.0  # requests, connections, datagrams the proxy moved while `cpu` was read
    cpu: float | None = None  # proxy CPU seconds over `wall`
    wall: float = 0.0
    note: str = ""
    rounds: list[float] = field(default_factory=list)  # latency: the value in each round
    idle_ticks: int = 0  # the whole machine's, over `wall` (0 of 0: not measured)
    total_ticks: int = 0
    cpu_parts: dict[str, float] = field(default_factory=dict)  # `cpu` by `Path.parts`


@dataclass
class Results:
    by_metric: dict[str, dict[str, Result]] = field(default_factory=dict)

    def put(self, metric: str, path: str, result: Result) -> None:
        self.by_metric.setdefault(metric, {})[path] = result


async def run_tool(argv: Sequence[str], timeout: float, what: str) -> str:
    """Run a generator; its stdout. Fails (naming `what`) on a non-zero exit or timeout.
    `subprocess.run` in a thread, not the loop's subprocess support: see
    _dataplane_propagation.ProxyRunner for why."""
    try:
        done = await asyncio.to_thread(
            subprocess.run, list(argv), capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise TimeoutError(f"{what}: no result within {timeout:g} s") from None
    if done.returncode != 0:
        raise RuntimeError(f"{what}: exit {done.returncode}: {done.stderr.strip()[-500:]}")
    return done.stdout


def load_tool(job: str, *args: str) -> list[str]:
    return [sys.executable, str(HERE / "_dataplane_load.py"), job, *args]


async def wrk(path: Path, connections: int, seconds: int, close: bool) -> Result:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s"]
    if close:
        argv += ["-H", "Connection: close"]
    argv.append(path.url())
    meter = CpuMeter(path.pids, path.parts)
    started = time.monotonic()
    out = await run_tool(argv, seconds + TOOL_SLACK, f"wrk {path.name}")
    wall = time.monotonic() - started
    cpu, idle, total = meter.read()
    parts = meter.read_parts()
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    requests = re.search(r"(\d+) requests in", out)
    path.check()
    if rate is None or requests is None:
        raise RuntimeError(f"wrk {path.name}: no result in {out!r}")
    if not int(requests.group(1)):
        raise RuntimeError(f"wrk {path.name}: not one request answered: {out!r}")
    notes = []
    errors = re.search(r"Socket errors: (.*)", out)
    if errors:
        notes.append(f"socket errors: {errors.group(1)}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad:
        notes.append(f"{bad.group(1)} non-2xx answers")
    return Result(
        float(rate.group(1)),
        float(requests.group(1)),
        cpu,
        wall,
        "; ".join(notes),
        idle_ticks=idle,
        total_ticks=total,
        cpu_parts=parts,
    )


def combine(rounds: Sequence[Result], per_round: bool = True) -> Result:
    """One path's rounds as one result: the median value; CPU, operations and time
    summed (so CPU per operation is over every round); notes joined."""
    notes = [r.note for r in rounds if r.note]
    if per_round and len(rounds) > 1:
        notes.insert(0, " / ".join(f"{r.value:,.0f}" for r in rounds))
    cpu = [r.cpu for r in rounds if r.cpu is not None]
    parts: dict[str, float] = {}
    for r in rounds:
        for name, seconds in r.cpu_parts.items():
            parts[name] = parts.get(name, 0.0) + seconds
    return Result(
        statistics.median(r.value for r in rounds),
        ops=sum(r.ops for r in rounds),
        cpu=sum(cpu) if cpu else None,
        wall=sum(r.wall for r in rounds),
        note="; ".join(notes),
        idle_ticks=sum(r.idle_ticks for r in rounds),
        total_ticks=sum(r.total_ticks for r in rounds),
        cpu_parts=parts,
    )


async def measure_wrk(
    paths: Sequence[Path], args: argparse.Namespace, results: Results, metric: str
) -> None:
    close = metric == "newconn"
    connections = args.new_connections if close else args.connections
    rounds: dict[str, list[Result]] = {p.key: [] for p in paths}
    for number in range(args.rounds):
        for path in paths:
            with phase(f"{METRICS[metric]}: {path.name}"):
                if args.warmup and not number:
                    await wrk(path, connections, args.warmup, close)
                result = await wrk(path, connections, args.seconds, close)
            rounds[path.key].append(result)
            progress(f"{METRICS[metric]}: {path.name} {result.value:,.0f} {result.note}")
    for path in paths:
        results.put(metric, path.key, combine(rounds[path.key]))


# bench/_dataplane_load.py's bulk --direction of each metric.
BULK_DIRECTIONS = {"bulk": "both", "bulk_in": "in", "bulk_out": "out"}


async def bulk_stream(path: Path, args: argparse.Namespace, metric: str) -> Result:
    direction = BULK_DIRECTIONS[metric]
    host, port = path.tcp if direction == "both" else path.bulk
    meter = CpuMeter(path.pids, path.parts)
    out = await run_tool(
        load_tool("bulk", f"{host}:{port}", "--direction", direction, "--bytes", str(args.bulk)),
        TOOL_SLACK * 2,
        f"bulk stream {path.name} ({direction})",
    )
    cpu, _, _ = meter.read()  # the machine's idle share: not over the streams alone
    parts = meter.read_parts()
    path.check()
    report = json.loads(out)
    # CPU over the warm-up stream too: the proxy moved both.
    wall = report["seconds"] + report["warmup_seconds"]
    return Result(report["mb_per_s"], cpu=cpu, wall=wall, cpu_parts=parts)


async def measure_bulk(paths: Sequence[Path], args: argparse.Namespace, results: Results) -> None:
    """The echo stream and both one-way streams, each in `--bulk-rounds` rounds over
    the paths."""
    for metric in BULK_DIRECTIONS:
        rounds: dict[str, list[Result]] = {p.key: [] for p in paths}
        for _ in range(args.bulk_rounds):
            for path in paths:
                with phase(f"{METRICS[metric]}: {path.name}"):
                    result = await bulk_stream(path, args, metric)
                rounds[path.key].append(result)
                progress(f"{METRICS[metric]}: {path.name} {result.value:,.0f}")
        for path in paths:
            results.put(metric, path.key, combine(rounds[path.key]))


async def udp_window(path: Path, args: argparse.Namespace, warmup: int) -> Result:
    assert path.udp is not None
    meter = CpuMeter(path.pids, path.parts)
    out = await run_tool(
        load_tool(
            "udp",
            f"{path.udp[0]}:{path.udp[1]}",
            *("--seconds", str(args.seconds), "--warmup", str(warmup)),
            *("--window", str(args.udp_window)),
        ),
        args.seconds + warmup + TOOL_SLACK,
        f"UDP {path.name}",
    )
    cpu, idle, total = meter.read()
    parts = meter.read_parts()
    path.check()
    report = json.loads(out)
    return Result(
        report["per_s"],
        report["total_datagrams"],
        cpu,
        report["total_seconds"],
        f"{report['lost']} lost" if report["lost"] else "",
        idle_ticks=idle,
        total_ticks=total,
        cpu_parts=parts,
    )


async def measure_udp(paths: Sequence[Path], args: argparse.Namespace, results: Results) -> None:
    udp_paths = [p for p in paths if p.udp is not None]
    rounds: dict[str, list[Result]] = {p.key: [] for p in udp_paths}
    for number in range(args.rounds):
        for path in udp_paths:
            with phase(f"{METRICS['udp']}: {path.name}"):
                result = await udp_window(path, args, 0 if number else args.warmup)
            rounds[path.key].append(result)
            progress(f"{METRICS['udp']}: {path.name} {result.value:,.0f} {result.note}")
    for path in udp_paths:
        results.put("udp", path.key, combine(rounds[path.key]))


async def measure_latency(
    paths: Sequence[Path], args: argparse.Namespace, results: Results
) -> None:
    targets = [f"{p.key}={p.http[0]}:{p.http[1]}" for p in paths]
    with phase("latency"):
        out = await run_tool(
            load_tool(
                "latency",
                *targets,
                *("--seconds", str(args.seconds), "--warmup", str(args.warmup)),
                *("--rounds", str(args.latency_rounds)),
            ),
            args.seconds * len(paths) + TOOL_SLACK,
            "latency ping-pong",
        )
    reports = json.loads(out)
    for key, report in reports.items():
        note = f"{report['samples']:,} round trips"
        results.put("p50", key, Result(report["p50_us"], note=note, rounds=report["rounds_p50_us"]))
        results.put("p99", key, Result(report["p99_us"], note=note, rounds=report["rounds_p99_us"]))
    progress("latency p50: " + ", ".join(f"{k} {r['p50_us']:.1f} us" for k, r in reports.items()))
