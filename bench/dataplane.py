"""The data plane on loopback: a pod directly, through NodePort, through ClusterIP,
against HAProxy (one thread) doing the same job, all in one run.

    .venv/bin/python bench/dataplane.py [--seconds 5] [--rounds 2] [--connections 64]
        [--new-connections 64] [--udp-window 64] [--paths direct,haproxy,relay,nodeport,clusterip]
        [--skip-dataplane] [--skip-propagation] [--services 1000] [--changes 1500]

Needs `haproxy` and `wrk` from the distribution's packages (Debian: apt-get
install haproxy wrk); exits 2 without them. Takes about 4 minutes. Nothing is
pinned: load generator, proxy and pod share the machine's cores, so run it on
an otherwise idle machine (the load average before the run is printed).

Starts a real etcd, apiserver, controller and three node agents (node IPs
127.10.93.N, pods in 127.250.N.0/24), and applies ONE `kubelab/echo` pod (a
Deployment of 1 replica: HTTP on 8080, a raw TCP echo on 9000 named `tcp-echo`,
a UDP echo on 5353) behind a NodePort Service with the same three ports. The
paths to that pod, a row each:

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
  with SO_REUSEPORT, so the kernel spreads connections over three processes.

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
   rounds;
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
machine's idle share over the run. Goals apply to kubelab's rows (relay,
NodePort, ClusterIP).

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
import asyncio
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path as FsPath

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
from _dataplane_paths import (
    ChildProcess,
    NotAnswering,
    Path,
    haproxy,
    relay,
    start_answering,
    wait_answering,
)
from _dataplane_propagation import PropagationSettings, run_propagation
from _dataplane_report import print_report
from google.protobuf import json_format

from kubelab.client import Client
from kubelab.core.pods import is_ready, is_terminating
from kubelab.runtime.loop import run_actor
from kubelab.testing.processes import (
    ApiServerProcess,
    ControllerProcess,
    EtcdServer,
    NodeAgentProcess,
    free_port,
)
from kubelab.v1 import objects_pb2

NAME = "bench-dataplane"
NODES = (1, 2, 3)
NODE_IP_BASE = "127.10.93"
POD_BASE = "127.250"
HAPROXY_HOST = "127.253.0.1"
RELAY_HOST = "127.253.0.2"
HTTP_PORT, TCP_PORT, UDP_PORT = 8080, 9000, 5353  # the pod's, and the Service's
PATHS = ("direct", "haproxy", "relay", "nodeport", "clusterip")

# Deadlines, in seconds: generous, a healthy run takes a fraction of each.
POD_DEADLINE = 60.0
PROXY_DEADLINE = 20.0


# ---------------------------------------------------------------------- the pod


def backend_objects() -> tuple[objects_pb2.Deployment, objects_pb2.Service]:
    labels = {"app": NAME}
    container = {
        "name": "echo",
        "image": "kubelab/echo",
        "ports": [
            {"name": "http", "containerPort": HTTP_PORT},
            {"name": "tcp-echo", "containerPort": TCP_PORT},
            {"name": "udp", "containerPort": UDP_PORT, "protocol": "UDP"},
        ],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1},
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": NAME},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": NAME},
        "spec": {
            "type": "NodePort",
            "selector": labels,
            "ports": [
                {"name": "http", "port": HTTP_PORT, "targetPort": "http"},
                {"name": "tcp-echo", "port": TCP_PORT, "targetPort": "tcp-echo"},
                {"name": "udp", "port": UDP_PORT, "targetPort": "udp", "protocol": "UDP"},
            ],
        },
    }
    return (
        json_format.ParseDict(deployment, objects_pb2.Deployment()),
        json_format.ParseDict(service, objects_pb2.Service()),
    )


@dataclass(frozen=True)
class Backend:
    pod: str
    pod_ip: str
    node: str
    node_ip: str
    cluster_ip: str
    node_ports: dict[str, int]


async def apply_backend(api: Client) -> Backend:
    deployment, service = backend_objects()
    await api.apply(deployment)
    stored, _ = await api.apply(service)
    deadline = time.monotonic() + POD_DEADLINE
    seen = "no pod"
    while True:
        items, _ = await api.list("pods", label_selector=f"app={NAME}")
        pods = [p for p in items if isinstance(p, objects_pb2.Pod) and not is_terminating(p)]
        ready = [p for p in pods if is_ready(p) and p.status.pod_ip]
        if ready:
            pod = ready[0]
            break
        seen = ", ".join(f"{p.metadata.name} {p.status.phase or 'Pending'}" for p in pods)
        if time.monotonic() > deadline:
            raise TimeoutError(f"the echo pod not Ready within {POD_DEADLINE:g} s ({seen})")
        await asyncio.sleep(0.1)
    return Backend(
        pod=pod.metadata.name,
        pod_ip=pod.status.pod_ip,
        node=pod.spec.node_name,
        node_ip=pod.status.host_ip,
        cluster_ip=stored.spec.cluster_ip,
        node_ports={p.name: p.node_port for p in stored.spec.ports},
    )


# ---------------------------------------------------------------------- the paths


def build_paths(
    keys: Sequence[str],
    backend: Backend,
    nodes: dict[str, NodeAgentProcess],
    haproxy_ports: tuple[int, int],
    relay_ports: tuple[int, int, int],
) -> list[Path]:
    def agent_pids(names: Sequence[str]) -> Callable[[], Sequence[int]]:
        def pids() -> Sequence[int]:
            return [p.pid for n in names if (p := nodes[n].process) is not None]

        return pids

    def agents_alive(names: Sequence[str]) -> Callable[[], None]:
        def check() -> None:
            for name in names:
                process = nodes[name].process
                if process is None or process.poll() is not None:
                    raise RuntimeError(f"the node agent {name} exited (see {name}.log)")

        return check

    ports = backend.node_ports
    every: dict[str, Path] = {
        "direct": Path(
            "direct",
            "direct",
            (backend.pod_ip, HTTP_PORT),
            (backend.pod_ip, TCP_PORT),
            (backend.pod_ip, UDP_PORT),
            about=f"the pod's own address, {backend.pod_ip}",
        ),
        "haproxy": Path(
            "haproxy",
            "HAProxy (1 thread)",
            (HAPROXY_HOST, haproxy_ports[0]),
            (HAPROXY_HOST, haproxy_ports[1]),
            None,
            about=f"haproxy -db, nbthread 1, mode tcp, on {HAPROXY_HOST}",
        ),
        "relay": Path(
            "relay",
            "relay (static route)",
            (RELAY_HOST, relay_ports[0]),
            (RELAY_HOST, relay_ports[1]),
            (RELAY_HOST, relay_ports[2]),
            about=f"kubelab.relay alone in one process (uvloop), on {RELAY_HOST}",
        ),
        "nodeport": Path(
            "nodeport",
            "NodePort",
            (backend.node_ip, ports["http"]),
            (backend.node_ip, ports["tcp-echo"]),
            (backend.node_ip, ports["udp"]),
            pids=agent_pids([backend.node]),
            check=agents_alive([backend.node]),
            about=f"{backend.node}'s agent on {backend.node_ip}, nodePorts "
            f"{ports['http']}/{ports['tcp-echo']}/{ports['udp']}",
        ),
        "clusterip": Path(
            "clusterip",
            "ClusterIP",
            (backend.cluster_ip, HTTP_PORT),
            (backend.cluster_ip, TCP_PORT),
            (backend.cluster_ip, UDP_PORT),
            pids=agent_pids(sorted(nodes)),
            check=agents_alive(sorted(nodes)),
            about=f"{backend.cluster_ip}, bound by all {len(nodes)} agents (SO_REUSEPORT)",
        ),
    }
    return [every[key] for key in keys]


async def start_paths(
    keys: Sequence[str],
    backend: Backend,
    nodes: dict[str, NodeAgentProcess],
    workdir: FsPath,
    children: list[ChildProcess],
) -> list[Path]:
    """Every path in `keys`, answering: the comparison proxies started (added to
    `children`, which the caller stops), the node agents' proxy found listening."""
    haproxy_ports = (free_port(HAPROXY_HOST), free_port(HAPROXY_HOST))
    relay_ports = (free_port(RELAY_HOST), free_port(RELAY_HOST), free_port(RELAY_HOST))
    by_key = {p.key: p for p in build_paths(keys, backend, nodes, haproxy_ports, relay_ports)}
    expect = f'"pod":"{backend.pod}"'.encode()
    if "direct" in by_key:
        with phase("direct"):
            await wait_answering(by_key["direct"], PROXY_DEADLINE, expect)
    pod = backend.pod_ip
    if "haproxy" in by_key:
        path = by_key["haproxy"]
        child = haproxy(
            workdir,
            [("http", path.http, (pod, HTTP_PORT)), ("tcp-echo", path.tcp, (pod, TCP_PORT))],
        )
        children.append(child)
        by_key["haproxy"] = path = dataclasses.replace(path, pids=child.pids, check=child.check)
        with phase("HAProxy"):
            await start_answering(child, path, expect)
    if "relay" in by_key:
        child = relay(
            workdir,
            RELAY_HOST,
            [(relay_ports[0], (pod, HTTP_PORT)), (relay_ports[1], (pod, TCP_PORT))],
            [(relay_ports[2], (pod, UDP_PORT))],
        )
        children.append(child)
        by_key["relay"] = path = dataclasses.replace(
            by_key["relay"], pids=child.pids, check=child.check
        )
        with phase("relay (static route)"):
            await start_answering(child, path, expect)
    for key in ("nodeport", "clusterip"):
        if key in by_key:
            with phase(f"{by_key[key].name} through the node agents' proxy"):
                try:
                    await wait_answering(by_key[key], PROXY_DEADLINE, expect)
                except NotAnswering as err:
                    raise NotAnswering(
                        f"{err}. Do the node agents proxy (node_agent/proxy.py)? "
                        "--paths direct,haproxy,relay measures without them"
                    ) from None
    return [by_key[k] for k in keys]


# ---------------------------------------------------------------------- main


async def data_plane(
    args: argparse.Namespace, workdir: FsPath, started: float
) -> tuple[list[Path], Results, str]:
    """The cluster, the pod, every path; every metric over every path."""
    etcd = EtcdServer(workdir / "etcd")
    apiserver = ApiServerProcess(etcd.endpoint, workdir)
    controller = ControllerProcess(etcd.endpoint, workdir)
    nodes = {
        agent.name: agent
        for agent in (
            NodeAgentProcess(etcd.endpoint, workdir, n, ip_base=NODE_IP_BASE, pod_base=POD_BASE)
            for n in NODES
        )
    }
    children: list[ChildProcess] = []
    results = Results()
    try:
        with phase("cluster"):
            etcd.start()
            apiserver.start()
            controller.start()
            for agent in nodes.values():
                agent.start()
        async with Client(apiserver.address, timeout=10) as api:
            with phase("the echo pod and its Service"):
                backend = await apply_backend(api)
        progress(
            f"cluster up, pod {backend.pod} {backend.pod_ip} on {backend.node} "
            f"({time.monotonic() - started:.1f} s)"
        )
        keys = [k for k in PATHS if k in args.paths]
        paths = await start_paths(keys, backend, nodes, workdir, children)
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
        for agent in nodes.values():
            agent.stop()
        controller.stop()
        apiserver.stop()
        etcd.stop()
    return paths, results, f"{backend.pod_ip} on {backend.node}"


async def bench(args: argparse.Namespace, workdir: FsPath) -> None:
    started = time.monotonic()
    load = os.getloadavg()[0]
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
        print_report(args, *measured)
    if propagation is not None:
        print()
        propagation.print()
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
