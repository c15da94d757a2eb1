"""Pods start and fail over: a 30-replica Deployment on three real node agents.

    .venv/bin/python bench/pods.py [--runs 5] [--replicas 30] [--lease-ttl 2] [--node-grace 5]

Starts a real etcd, apiserver, controller and three node agents (node IPs
127.10.91.N, pods in 127.248.N.0/24; every pod is a real process answering
HTTP), then, in each run:

1. applies a Deployment of `--replicas` pods (readiness probe: httpGet
   /healthz every second) and polls the API every `--poll` seconds until all
   are Ready: *apply -> all Ready*;
2. SIGKILLs the node agent holding the most pods (its pod processes die with
   it) and, from the kill, times
   * *statuses gone*: every pod status key of its pods has left etcd (they are
     attached to the agent's lease, so this is the lease running out);
   * *evicted*: no pod in the API is bound to the dead node any more (the
     controller saw the node's heartbeat go and waited `--node-grace`);
   * *replaced*: all replicas Ready again, none on the dead node;
3. restarts the dead agent, deletes the Deployment and waits until its pods
   and their statuses are gone and all three nodes are Ready, so every run
   starts from the same state.

Prints p50 and p99 (nearest rank: with 5 runs p99 is the slowest run) of each
metric, with Kubernetes' defaults beside them. Times are as the API (or etcd,
for status keys) shows them to a client polling it, so they include up to one
poll interval plus one List. Each phase has a deadline; if the cluster does not
converge in time, exits 1 naming the phase, and keeps the process logs.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from _conditions import load_average, started_on
from _stats import percentile
from google.protobuf import json_format

from kubelab.client import ApiError, Client
from kubelab.core.pods import is_ready, is_terminating
from kubelab.store import Store
from kubelab.testing.processes import (
    ApiServerProcess,
    ControllerProcess,
    EtcdServer,
    NodeAgentProcess,
)
from kubelab.v1 import objects_pb2

NAME = "bench-pods"
SELECTOR = "app=bench-pods"
NODES = (1, 2, 3)

# Deadlines per phase, in seconds (generous: a healthy run takes a fraction of each).
APPLY_DEADLINE = 60.0
FAILOVER_DEADLINE = 60.0
RESET_DEADLINE = 60.0

METRICS = {
    "ready": "apply -> {n}/{n} Ready",
    "statuses": "SIGKILL agent -> its pod statuses gone",
    "evicted": "SIGKILL agent -> its pods evicted (API)",
    "replaced": "SIGKILL agent -> {n}/{n} Ready elsewhere",
}


class NotConverged(Exception):
    """The cluster did not reach a phase's goal before its deadline."""


@dataclass
class Cluster:
    etcd: EtcdServer
    apiserver: ApiServerProcess
    controller: ControllerProcess
    nodes: dict[str, NodeAgentProcess]


def deployment(replicas: int) -> objects_pb2.Deployment:
    container = {
        "name": "echo",
        "image": "kubelab/echo",
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": 1,
            "failureThreshold": 3,
        },
    }
    labels = {"app": NAME}
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": NAME},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [container], "terminationGracePeriodSeconds": 2},
            },
        },
    }
    return json_format.ParseDict(body, objects_pb2.Deployment())


async def list_pods(api: Client) -> list[objects_pb2.Pod]:
    items, _ = await api.list("pods", label_selector=SELECTOR)
    return [p for p in items if isinstance(p, objects_pb2.Pod)]


def summary(pods: list[objects_pb2.Pod]) -> str:
    """Pods per node as `node: ready/total (+terminating)`, for failure messages."""
    total: Counter[str] = Counter()
    ready: Counter[str] = Counter()
    going: Counter[str] = Counter()
    for pod in pods:
        node = pod.spec.node_name or "(unbound)"
        if is_terminating(pod):
            going[node] += 1
        else:
            total[node] += 1
            ready[node] += is_ready(pod)
    parts = []
    for node in sorted(set(total) | set(going)):
        part = f"{node}: {ready[node]}/{total[node]} ready"
        parts.append(part + (f" +{going[node]} terminating" if going[node] else ""))
    return "; ".join(parts) or "no pods"


def all_ready(pods: list[objects_pb2.Pod], replicas: int, avoid: str = "") -> bool:
    live = [p for p in pods if not is_terminating(p)]
    return (
        len(live) == replicas
        and all(is_ready(p) for p in live)
        and all(p.spec.node_name != avoid for p in live)
    )


async def poll(
    check: Callable[[], Awaitable[bool]],
    started: float,
    timeout: float,
    interval: float,
    what: Callable[[], str],
) -> float:
    """Seconds from `started` until `check()` first answers True (time of that answer)."""
    while True:
        if await check():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise NotConverged(f"{what()}: not within {timeout:.0f} s")
        await asyncio.sleep(interval)


async def measure_apply(api: Client, replicas: int, interval: float) -> float:
    last: list[objects_pb2.Pod] = []

    async def ready() -> bool:
        nonlocal last
        last = await list_pods(api)
        return all_ready(last, replicas)

    started = time.monotonic()
    await api.apply(deployment(replicas))
    return await poll(
        ready,
        started,
        APPLY_DEADLINE,
        interval,
        lambda: f"apply: {replicas} Ready replicas ({summary(last)})",
    )


async def measure_failover(
    cluster: Cluster, api: Client, store: Store, replicas: int, interval: float
) -> tuple[str, int, dict[str, float]]:
    """Kill the agent holding the most pods; seconds from the kill to each milestone."""
    pods = await list_pods(api)
    victim = Counter(p.spec.node_name for p in pods).most_common(1)[0][0]
    on_victim = {
        (p.metadata.namespace, p.metadata.name) for p in pods if p.spec.node_name == victim
    }
    marks: dict[str, float] = {}
    last: list[objects_pb2.Pod] = []

    async def check() -> bool:
        nonlocal last
        if "statuses" not in marks:
            statuses, _ = await store.list_pod_statuses()
            if not on_victim & statuses.keys():
                marks["statuses"] = time.monotonic() - started
        last = await list_pods(api)
        now = time.monotonic() - started
        if "evicted" not in marks and all(p.spec.node_name != victim for p in last):
            marks["evicted"] = now
        if "replaced" not in marks and all_ready(last, replicas, avoid=victim):
            marks["replaced"] = now
        return len(marks) == 3

    def what() -> str:
        missing = ", ".join(m for m in ("statuses", "evicted", "replaced") if m not in marks)
        return f"after killing {victim}: {missing} ({summary(last)})"

    started = time.monotonic()
    cluster.nodes[victim].kill()
    await poll(check, started, FAILOVER_DEADLINE, interval, what)
    return victim, len(on_victim), marks


async def reset(cluster: Cluster, api: Client, store: Store, victim: str, interval: float) -> None:
    """Back to the starting state: all agents up, no Deployment, no pods, no statuses."""
    if victim:
        await asyncio.to_thread(cluster.nodes[victim].start)
    try:
        await api.delete("deployments", NAME)
    except ApiError as err:
        if err.code is not grpc.StatusCode.NOT_FOUND:
            raise
    last: list[objects_pb2.Pod] = []
    statuses_left = 0
    nodes_ready: set[str] = set()

    async def clean() -> bool:
        nonlocal last, statuses_left, nodes_ready
        last = await list_pods(api)
        statuses, _ = await store.list_pod_statuses()
        statuses_left = len(statuses)
        nodes, _ = await api.list("nodes")
        nodes_ready = {
            n.metadata.name
            for n in nodes
            if isinstance(n, objects_pb2.Node)
            and any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)
        }
        return not last and not statuses_left and nodes_ready >= cluster.nodes.keys()

    await poll(
        clean,
        time.monotonic(),
        RESET_DEADLINE,
        max(interval, 0.1),
        lambda: (
            f"reset: pods {summary(last)}; {statuses_left} status keys; "
            f"Ready nodes {sorted(nodes_ready)}"
        ),
    )


def print_table(args: argparse.Namespace, samples: dict[str, list[float]], killed: int) -> None:
    runs = len(samples["ready"])
    print(
        f"Pods on {len(NODES)} node agents (real processes): Deployment of {args.replicas} "
        f"replicas, {runs} run{'s' * (runs != 1)}; "
        f"lease TTL {args.lease_ttl} s, node grace {args.node_grace:g} s, "
        f"API polled every {args.poll * 1000:.0f} ms"
    )
    print(started_on(args.load))
    print(f"{'metric':<44} {'p50 s':>7} {'p99 s':>7}")
    for key, label in METRICS.items():
        values = samples[key]
        name = label.format(n=args.replicas)
        print(f"{name:<44} {percentile(values, 0.5):>7.2f} {percentile(values, 0.99):>7.2f}")
    print(
        f"p50/p99 nearest rank over {runs} run{'s' * (runs != 1)}"
        + (" (with fewer than 100 runs p99 is the slowest run)" if runs < 100 else "")
        + f"; the killed agent held {killed / runs:.1f} pods on average."
    )
    print(
        "Kubernetes defaults: a dead node is noticed after node-monitor-grace-period 40 s "
        "(50 s since 1.32) and its pods are evicted 300 s later (default tolerationSeconds "
        "for the unreachable taint), so replacements start ~340 s after the node dies."
    )


async def bench(args: argparse.Namespace, workdir: Path) -> None:
    etcd = EtcdServer(workdir / "etcd")
    apiserver = ApiServerProcess(etcd.endpoint, workdir)
    controller = ControllerProcess(
        etcd.endpoint, workdir, extra_args=("--node-grace", str(args.node_grace))
    )
    nodes = {
        agent.name: agent
        for agent in (
            NodeAgentProcess(
                etcd.endpoint,
                workdir,
                number,
                ip_base="127.10.91",
                pod_base="127.248",
                extra_args=("--lease-ttl", str(args.lease_ttl)),
            )
            for number in NODES
        )
    }
    cluster = Cluster(etcd, apiserver, controller, nodes)
    samples: dict[str, list[float]] = {key: [] for key in METRICS}
    killed = 0
    store: Store | None = None
    try:
        etcd.start()
        apiserver.start()
        controller.start()
        for agent in nodes.values():
            agent.start()
        store = Store(etcd.endpoint)
        async with Client(apiserver.address, timeout=10) as api:
            await reset(cluster, api, store, "", args.poll)
            for run in range(1, args.runs + 1):
                samples["ready"].append(await measure_apply(api, args.replicas, args.poll))
                victim, held, marks = await measure_failover(
                    cluster, api, store, args.replicas, args.poll
                )
                killed += held
                for key, value in marks.items():
                    samples[key].append(value)
                print(
                    f"run {run}/{args.runs}: ready {samples['ready'][-1]:.2f} s; killed {victim} "
                    f"({held} pods): statuses gone {marks['statuses']:.2f} s, evicted "
                    f"{marks['evicted']:.2f} s, replaced {marks['replaced']:.2f} s",
                    file=sys.stderr,
                    flush=True,
                )
                if run < args.runs:
                    await reset(cluster, api, store, victim, args.poll)
    finally:
        if store is not None:
            await store.close()
        for agent in nodes.values():
            agent.stop()
        controller.stop()
        apiserver.stop()
        etcd.stop()
    print_table(args, samples, killed)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--replicas", type=int, default=30)
    parser.add_argument("--lease-ttl", type=int, default=2, help="node agent lease, seconds")
    parser.add_argument(
        "--node-grace", type=float, default=5.0, help="controller: seconds before eviction"
    )
    parser.add_argument("--poll", type=float, default=0.02, help="API poll interval, seconds")
    args = parser.parse_args()
    args.load = load_average()  # before anything of ours runs
    if args.runs < 1 or args.replicas < 1:
        parser.error("--runs and --replicas must be at least 1")

    workdir = Path(tempfile.mkdtemp(prefix="kubelab-bench-pods-"))
    try:
        asyncio.run(bench(args, workdir))
    except (NotConverged, TimeoutError, RuntimeError) as err:
        print(f"error: the cluster did not converge: {err}", file=sys.stderr)
        print(f"process logs kept in {workdir}", file=sys.stderr)
        raise SystemExit(1) from None
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
