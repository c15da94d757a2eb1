"""LoadBalancer provisioning latency: a Service applied → its first answer through its
external IP, as a user sees it, on a real cluster.

    .venv/bin/python bench/lb.py [--services 100] [--warmup 2] [--probe-timeout 0.2]

Starts a real etcd, apiserver, cloud-stub (external IPs from 127.202.0.0/24),
controller (with --cloud, as `kubelab up` starts it) and three node agents
(node IPs 127.10.94.N, pods in 127.251.N.0/24), and ONE `kubelab/echo` pod as
the backend. Then, one Service at a time, `--services` times (after `--warmup`
unmeasured ones: the first Ensure also opens the controller's channel to the
cloud-stub and warms the code paths):

1. t0 just before the Apply RPC of a `type: LoadBalancer` Service (port 8080,
   to the pod's HTTP port; a new name each time, so no status is ever reused);
2. the external IP as a client learns it: one watch on the bench's Services,
   open for the whole run (`kubelab get svc -w`), reports the first event
   showing `status.loadBalancer.ingress`; t1 is when this process received it;
3. then GETs through <ip>:8080, each on a new connection bounded by
   `--probe-timeout`, 5 ms apart, until one answers HTTP 200 from the echo pod
   (its body names the pod): t2. A refused or reset attempt is counted.

Reported: t2 - t0 (the goal: p99 <= 250 ms) and its two parts, t1 - t0 (the
apiserver stores the Service, the controller sees it, asks the cloud-stub, which
plans an address, writes it to etcd, health-checks the nodes' new nodePort and
binds its listener; the controller writes the status; the watch delivers it) and
t2 - t1 (the first request through the cloud-stub, a node proxy and the pod).
Between Services, each one is deleted and the bench waits until the cloud has
released its load balancer (timed too, for scale), so every Service meets the
same empty pool and an idle controller. Percentiles are nearest rank.

Every wait has a deadline; on failure it exits 1 naming the phase, and keeps the
process logs.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from _cluster import (
    BenchCluster,
    IngressWatch,
    echo_deployment,
    echo_service,
    ready_pod,
    until_in_rotation,
    until_released,
)
from _conditions import load_average, started_on, verdict
from _dataplane_measure import PhaseFailed, phase, progress
from _dataplane_report import print_table
from _propagation_probes import ms
from _stats import percentile

from kubelab.client import Client
from kubelab.runtime.loop import run_actor
from kubelab.testing.cloud import cloud_client
from kubelab.testing.traffic import RequestFailed, http_get

if TYPE_CHECKING:  # a stub-only class (see kubelab.testing.cloud.cloud_client)
    from kubelab.v1.cloud_pb2_grpc import CloudProviderAsyncStub

NAME = "bench-lb"
LABELS = {"bench": "lb"}  # the watch's selector: the bench's Services only
NODE_IP_BASE = "127.10.94"
POD_BASE = "127.251"
LB_POOL = "127.202.0.0/24"
PORT = 8080  # the Service's and the pod's; >= 1024, so the cloud-stub needs no privilege
GOAL_P99_S = 0.250
RETRY_S = 0.005  # between failed GETs: a refused connect returns at once, so do not spin

# Deadlines, in seconds: generous, a healthy run takes a fraction of each.
POD_DEADLINE = 60.0
STEP_DEADLINE = 10.0


@dataclass(frozen=True)
class Sample:
    ip: str
    to_ip: float  # apply → ingress IP seen by the watch
    to_answer: float  # apply → first HTTP 200 through the IP
    failed: int  # GETs that failed before it
    released: float  # delete → the cloud has no load balancer for it


async def first_answer(ip: str, pod: str, timeout: float, deadline: float) -> int:
    """Until a GET through ip:PORT answers 200 from `pod`; how many failed before."""
    failed = 0
    while True:
        try:
            answer = await http_get(ip, PORT, timeout=timeout)
            if answer.get("pod") == pod:
                return failed
            raise RuntimeError(f"{ip}:{PORT} answered from {answer.get('pod')!r}, not {pod}")
        except RequestFailed as err:
            failed += 1
            if time.monotonic() > deadline:
                raise TimeoutError(f"{ip}:{PORT}: no answer after {failed} tries ({err})") from None
        await asyncio.sleep(RETRY_S)


@dataclass(frozen=True)
class Bench:
    api: Client
    watch: IngressWatch
    cloud: CloudProviderAsyncStub  # to see a release (the bench's only look behind the API)
    pod: str
    probe_timeout: float


async def measure(bench: Bench, name: str) -> Sample:
    service = echo_service(name, NAME, "LoadBalancer", [("http", PORT, "TCP")], LABELS)
    with phase(f"{name}: apply → ingress IP"):
        t0 = time.perf_counter()
        await bench.api.apply(service)
        ip, t1 = await bench.watch.ingress(name, STEP_DEADLINE)
    with phase(f"{name}: ingress IP {ip} → first answer"):
        deadline = time.monotonic() + STEP_DEADLINE
        failed = await first_answer(ip, bench.pod, bench.probe_timeout, deadline)
        t2 = time.perf_counter()
    with phase(f"{name}: delete → released"):
        deleted = time.perf_counter()
        await bench.api.delete("services", name)
        await until_released(bench.cloud, name, STEP_DEADLINE)
        released = time.perf_counter() - deleted
    bench.watch.forget(name)
    return Sample(ip, t1 - t0, t2 - t0, failed, released)


async def run(args: argparse.Namespace, workdir: Path) -> list[Sample]:
    cluster = BenchCluster(workdir, NODE_IP_BASE, POD_BASE, LB_POOL)
    try:
        with phase("cluster"):
            cluster.start()
        assert cluster.cloud is not None
        async with (
            Client(cluster.apiserver.address, timeout=10) as api,
            cloud_client(cluster.cloud.address) as cloud,
        ):
            with phase("the echo pod"):
                await api.apply(echo_deployment(NAME, [{"name": "http", "containerPort": PORT}]))
                pod = (await ready_pod(api, NAME, POD_DEADLINE)).metadata.name
            watch = IngressWatch(api, ",".join(f"{k}={v}" for k, v in LABELS.items()))
            with phase("the Service watch"):
                await watch.start()
            try:
                bench = Bench(api, watch, cloud, pod, args.probe_timeout)
                return await measure_all(bench, args, len(cluster.nodes))
            finally:
                await watch.stop()
    finally:
        cluster.stop()


async def measure_all(bench: Bench, args: argparse.Namespace, nodes: int) -> list[Sample]:
    # The first Service waits (unmeasured) until every node is in rotation: the
    # controller must have seen all of them Ready, or a later Service would be measured
    # while the controller re-ensures every load balancer for a node that came.
    with phase("every node in rotation"):
        first = echo_service("warm-0", NAME, "LoadBalancer", [("http", PORT, "TCP")], LABELS)
        await bench.api.apply(first)
        await until_in_rotation(bench.cloud, "warm-0", nodes, POD_DEADLINE)
        await bench.api.delete("services", "warm-0")
        await until_released(bench.cloud, "warm-0", STEP_DEADLINE)
    for n in range(args.warmup):
        await measure(bench, f"warm-{n + 1}")
    samples = []
    for n in range(args.services):
        samples.append(await measure(bench, f"lb-{n}"))
        if (n + 1) % 25 == 0:
            progress(f"{n + 1} of {args.services} Services measured")
    return samples


def report(args: argparse.Namespace, samples: list[Sample], load: float, wall: float) -> None:
    def row(what: str, values: list[float], goal: bool = False) -> list[str]:
        p99 = percentile(values, 0.99)
        cells = [what, *(ms(v) for v in (percentile(values, 0.5), p99, max(values)))]
        if not goal:
            return [*cells, "", ""]
        return [*cells, f"p99 <= {GOAL_P99_S * 1000:.0f} ms", verdict(p99 <= GOAL_P99_S, load)]

    failed = [s.failed for s in samples]
    print(
        f"LoadBalancer provisioning: {len(samples)} Services applied one at a time (after "
        f"{args.warmup} unmeasured), each deleted once it answered; 3 node agents, one echo "
        f"pod; {started_on(load)}"
    )
    print_table(
        ["", "p50", "p99", "max", "goal", "met"],
        [
            row(
                "apply → first HTTP 200 through the external IP",
                [s.to_answer for s in samples],
                goal=True,
            ),
            row("  apply → ingress IP in the Service's status (watch)", [s.to_ip for s in samples]),
            row("  ingress IP seen → first HTTP 200", [s.to_answer - s.to_ip for s in samples]),
            row("for scale: delete → load balancer released", [s.released for s in samples]),
        ],
        right=(1, 2, 3),
    )
    print(
        f"GETs that failed before a Service's first 200: {sum(failed)} in all, at most "
        f"{max(failed)} for one Service ({sum(1 for f in failed if f)} Services had any); "
        f"each GET on a new connection, {args.probe_timeout * 1000:.0f} ms timeout, "
        f"{RETRY_S * 1000:.0f} ms apart. External IPs used: "
        f"{', '.join(sorted({s.ip for s in samples}))} (pool {LB_POOL}). Percentiles: nearest "
        f"rank. Whole run {wall:.0f} s."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--services", type=int, default=100, help="measured, one at a time")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured Services first")
    parser.add_argument(
        "--probe-timeout", type=float, default=0.2, help="s, one GET through the external IP"
    )
    args = parser.parse_args()
    if args.services < 1 or args.warmup < 0 or args.probe_timeout <= 0:
        parser.error("--services: at least 1; --warmup: at least 0; --probe-timeout: above 0")
    load = load_average()
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="kubelab-bench-lb-"))
    try:
        samples = run_actor(run(args, workdir))
    except PhaseFailed as err:
        print(f"error: phase {err.phase!r} failed: {err.message}", file=sys.stderr)
        print(f"process logs kept in {workdir}", file=sys.stderr)
        raise SystemExit(1) from None
    report(args, samples, load, time.monotonic() - started)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
