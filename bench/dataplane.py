"""The data plane on loopback: a pod directly, through NodePort, through ClusterIP,
through a LoadBalancer, against HAProxy (one thread) doing the same job, all in one run.

    .venv/bin/python bench/dataplane.py [--seconds 5] [--rounds 2] [--connections 64]
        [--new-connections 64] [--udp-window 64]
        [--paths direct,haproxy,relay,nodeport,clusterip,loadbalancer]
        [--skip-dataplane] [--skip-propagation] [--services 1000] [--changes 1500]

Needs `haproxy` and `wrk` from the distribution's packages (Debian: apt-get
install haproxy wrk); exits 2 without them. Takes about 5 minutes. Nothing is
pinned: load generator, proxy and pod share the machine's cores, so run it on
an otherwise idle machine (the load average before the run is printed).

Starts a real etcd, apiserver, controller and three node agents (node IPs
127.10.93.N, pods in 127.250.N.0/24) and, for the LoadBalancer path, the
cloud-stub (external IPs from 127.201.0.0/24; the controller gets its address
with --cloud), and applies ONE `kubelab/echo` pod (a Deployment of 1 replica:
HTTP on 8080, a raw TCP echo on 9000 named `tcp-echo`, one-way streams on 9100
named `bulk`, a UDP echo on 5353) behind a Service with the same four ports,
`type: LoadBalancer` (NodePort when the LoadBalancer path is not measured; the
node proxy serves a LoadBalancer Service's nodePorts and clusterIP as a NodePort
Service's), whose external IP the bench learns from a watch, as a user would.
The paths to that pod, a row each:

- direct: the pod's IP and ports, no proxy (the baseline);
- HAProxy (1 thread): `haproxy -db` from the machine's packages, `nbthread 1`,
  mode tcp, defaults otherwise, on 127.253.0.1: the userspace proxy a user would
  pick instead. It has no UDP proxying: its UDP cell says so, and UDP compares
  to direct only;
- relay (static route): `kubelab.relay` alone in its own process on 127.253.0.2
  (bench/_dataplane_relay.py), every connection to the pod: the relay's own
  cost, without the node proxy around it;
- NodePort: the pod's node agent, on its node IP and the Service's nodePorts;
- ClusterIP: the Service's clusterIP and ports, which all three node agents bind
  with SO_REUSEPORT, so the kernel spreads connections over three processes;
- LoadBalancer: the Service's external IP and ports, served by the cloud-stub,
  which sends each connection (UDP flow) to the next node's nodePort, round
  robin over the three, and that node's agent on to the pod: two relays in
  series (the bench waits until the cloud-stub has all three nodes in rotation).

Every path must answer a real request (HTTP 200 from the pod, a TCP echo, a UDP
echo) before anything is measured. Then, per metric, every path in turn with the
same generator, settings and duration (`--seconds`; `--warmup` seconds before a
path's first run), in `--rounds` rounds over the paths; a value is the median of
its rounds:

1. keep-alive requests/s: `wrk -t1 -c<--connections>`, GET / over HTTP/1.1;
2. new connections/s: the same with `Connection: close` (one request per
   connection), `-c<--new-connections>`;
3. bulk MB/s: a 1 GiB stream through the TCP echo port and back (MB = 10^6
   bytes, one direction), after a 64 MiB warm-up stream, in `--bulk-rounds`
   rounds; then the same one way, into the pod and out of it (its bulk port,
   workloads/echo/bulk.py: PUT and GET of 1 GiB), as an upload or download is;
4. UDP datagrams/s: 64-byte datagrams, `--udp-window` in flight on one socket;
5. latency: one keep-alive connection per path, one GET in flight, every round
   trip timed, the paths interleaved in `--latency-rounds` short rounds. p50 and
   p99 are over all round trips; the added latency of a path is the median over
   the rounds of (its p50 - direct's p50 in the same round), and likewise for
   p99 (why: `_dataplane_report.added`).

The settings were chosen by measurement on the project's 2-core machines: 64
connections is where HAProxy's keep-alive and new-connection rates stop rising
(with 8 keep-alive connections it gets ~20% less, with 16 new-connection clients
~10% less; the relay's new-connection rate is flat from 16 on, its CPU at 100%);
with 64 datagrams in flight the relay is past its knee (with 8 it gets ~60%).
Generators 3-5 are bench/_dataplane_load.py, a child process per job. Each value
comes with its ratio to direct and to HAProxy, the proxy's CPU (its processes'
user + system time over the measured run, from /proc): what a request, connection
or datagram cost the proxy, whichever component was the bottleneck; and the
machine's idle share over the run. Goals apply to kubelab's single-relay rows
(relay, NodePort, ClusterIP). The LoadBalancer row has none: it is two relays,
so its figure that means something is its ratio to NodePort (the "x NodePort"
column; for latency, the microseconds it adds to NodePort's), which is what the
cloud-stub in front of the node proxy costs. Its proxy CPU is the cloud-stub's
plus the three node agents' (it forwarded to all three), and a note splits it.

6. propagation (bench/_dataplane_propagation.py): a fresh etcd and controller and
   three `ServiceProxy` instances (node_agent/proxy.py), each in its own process
   (bench/_dataplane_proxy.py), over 1,000 Services x 10 pods whose statuses this
   process writes as three node agents would (bench/propagation.py's world);
   readiness flips at `--rate` changes/s; per change, from just before the status
   put to the moment the LAST of the three proxies reports the Service's new
   endpoint set (CLOCK_MONOTONIC is system-wide, so the proxies' timestamps compare
   with ours).

Every wait has a deadline; on failure it exits 1 naming the phase, and keeps the
process logs.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path as FsPath

from _cluster import BenchCluster
from _conditions import load_average
from _dataplane_measure import (
    PhaseFailed,
    Results,
    measure_bulk,
    measure_latency,
    measure_udp,
    measure_wrk,
    phase,
    progress,
)
from _dataplane_paths import ChildProcess, Path
from _dataplane_propagation import PropagationSettings, run_propagation
from _dataplane_report import print_report
from _dataplane_setup import PATHS, apply_backend, start_paths

from kubelab.client import Client
from kubelab.runtime.loop import run_actor

NODE_IP_BASE = "127.10.93"
POD_BASE = "127.250"
LB_POOL = "127.201.0.0/24"  # the cloud-stub's external IPs: met by nothing else here


# ---------------------------------------------------------------------- main


async def data_plane(
    args: argparse.Namespace, workdir: FsPath, started: float
) -> tuple[list[Path], Results, str]:
    """The cluster, the pod, every path; every metric over every path."""
    load_balancer = "loadbalancer" in args.paths
    cluster = BenchCluster(workdir, NODE_IP_BASE, POD_BASE, LB_POOL if load_balancer else "")
    children: list[ChildProcess] = []
    results = Results()
    try:
        with phase("cluster"):
            cluster.start()
        async with Client(cluster.apiserver.address, timeout=10) as api:
            with phase("the echo pod and its Service"):
                backend = await apply_backend(api, load_balancer)
        progress(
            f"cluster up, pod {backend.pod} {backend.pod_ip} on {backend.node}"
            + (f", external IP {backend.external_ip}" if load_balancer else "")
            + f" ({time.monotonic() - started:.1f} s)"
        )
        keys = [k for k in PATHS if k in args.paths]
        paths = await start_paths(keys, backend, cluster, workdir, children)
        progress(f"every path answers ({time.monotonic() - started:.1f} s)")
        await measure_wrk(paths, args, results, "keepalive")
        await measure_wrk(paths, args, results, "newconn")
        await measure_bulk(paths, args, results)
        await measure_udp(paths, args, results)
        await measure_latency(paths, args, results)
        progress(f"data plane measured ({time.monotonic() - started:.1f} s)")
    finally:
        for child in children:
            child.stop()
        cluster.stop()
    return paths, results, f"{backend.pod_ip} on {backend.node}"


async def bench(args: argparse.Namespace, workdir: FsPath) -> None:
    started = time.monotonic()
    load = load_average()
    measured = None if args.skip_dataplane else await data_plane(args, workdir, started)
    propagation = None
    if not args.skip_propagation:
        with phase("propagation"):
            propagation = await run_propagation(
                PropagationSettings(
                    services=args.services,
                    pods=args.pods,
                    rate=args.rate,
                    changes=args.changes,
                    seed=args.seed,
                ),
                workdir,
                progress,
            )
    if measured is not None:
        print_report(args, *measured, load)
    if propagation is not None:
        print()
        propagation.print(load)
    print(
        f"\nwhole run: {time.monotonic() - started:.0f} s; load average before it: {load:.2f} "
        "(other work on the machine skews every figure)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--seconds", type=int, default=5, help="per measurement")
    parser.add_argument("--warmup", type=int, default=1, help="seconds, before a path's first")
    parser.add_argument("--rounds", type=int, default=2, help="wrk and UDP: rounds over paths")
    parser.add_argument("--paths", default=",".join(PATHS), help="comma-separated subset")
    parser.add_argument("--connections", type=int, default=64, help="wrk -c, keep-alive")
    parser.add_argument("--new-connections", type=int, default=64, help="wrk -c, new conns")
    parser.add_argument("--bulk", type=int, default=1 << 30, help="bytes per stream")
    parser.add_argument("--bulk-rounds", type=int, default=3)
    parser.add_argument("--udp-window", type=int, default=64, help="datagrams in flight")
    parser.add_argument("--latency-rounds", type=int, default=20)
    parser.add_argument("--skip-dataplane", action="store_true", help="propagation only")
    parser.add_argument("--skip-propagation", action="store_true")
    parser.add_argument("--services", type=int, default=1000, help="propagation")
    parser.add_argument("--pods", type=int, default=10, help="propagation: pods per Service")
    parser.add_argument("--rate", type=float, default=100.0, help="propagation: changes/s")
    parser.add_argument("--changes", type=int, default=1500, help="propagation")
    parser.add_argument("--seed", type=int, default=1, help="propagation")
    args = parser.parse_args()
    args.paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    unknown = set(args.paths) - set(PATHS)
    if unknown or not args.paths:
        parser.error(f"--paths: choose from {', '.join(PATHS)}")
    if min(args.seconds, args.rounds, args.bulk_rounds, args.latency_rounds) < 1 or args.warmup < 0:
        parser.error("--seconds, --rounds, --bulk-rounds and --latency-rounds: at least 1")
    if args.services < 1 or args.pods < 1 or args.changes < 2 or args.rate <= 0:
        parser.error("--services and --pods must be at least 1, --changes 2, --rate above 0")
    if args.services * args.pods > 250 * 256 or args.services > 250 * 256:
        parser.error("at most 64,000 pods and Services (addresses in a /16 each)")
    missing = [tool for tool in ("haproxy", "wrk") if shutil.which(tool) is None]
    if missing:
        print(
            f"error: {' and '.join(missing)} not installed; this benchmark needs them "
            "(Debian/Ubuntu: apt-get install haproxy wrk)",
            file=sys.stderr,
        )
        raise SystemExit(2)

    workdir = FsPath(tempfile.mkdtemp(prefix="kubelab-bench-dataplane-"))
    try:
        run_actor(bench(args, workdir))
    except PhaseFailed as err:
        print(f"error: phase {err.phase!r} failed: {err.message}", file=sys.stderr)
        print(f"process logs kept in {workdir}", file=sys.stderr)
        raise SystemExit(1) from None
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
