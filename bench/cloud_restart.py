"""A cloud-stub restart as LoadBalancer traffic sees it: from the new process's start to
its first answer through the external IP, with and without the forwarding snapshot.

    .venv/bin/python bench/cloud_restart.py [--rounds 10]

A real etcd, stand-in nodes (`kubelab.testing.cloud.FakeNodes`: each node's nodePort
answers HTTP naming the node) and the real cloud-stub process with one load balancer
(TCP 8080). Each round kills the cloud-stub (SIGKILL, as a crash or `docker kill`
would), starts it again and sends GETs through <ip>:8080, each on a new connection
bounded by 0.2 s, 5 ms apart, until one answers: the time from the process's spawn to
that answer. Rounds alternate: `--snapshot-file` given (the load balancer's listeners
are bound from the snapshot before gRPC, protobuf and the etcd client are imported)
and not given (the baseline: listeners come back only when the load balancers are
resumed from etcd, as before the snapshot existed). Goal: answering within 1 s of the
process's start. Percentiles are nearest rank.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import tempfile
import time
from pathlib import Path

from _conditions import load_average, started_on, verdict
from _stats import percentile

from kubelab.store import Store
from kubelab.testing.cloud import (
    CloudStubProcess,
    FakeNodes,
    cloud_client,
    lb_spec,
    random_pool,
)
from kubelab.testing.processes import EtcdServer
from kubelab.testing.traffic import RequestFailed, http_get

GOAL_S = 1.0


async def first_answer(ip: str, port: int, deadline: float) -> float:
    while time.monotonic() < deadline:
        try:
            await http_get(ip, port, timeout=0.2)
        except RequestFailed:
            await asyncio.sleep(0.005)
            continue
        return time.monotonic()
    raise TimeoutError(f"{ip}:{port} did not answer")


async def measure(args: argparse.Namespace, workdir: Path) -> dict[bool, list[float]]:
    etcd = EtcdServer(workdir / "etcd")
    etcd.start()
    store = Store(etcd.endpoint)
    nodes = await FakeNodes(f"127.10.{random.randint(100, 254)}").start()
    cloud = CloudStubProcess(etcd.endpoint, workdir, random_pool(), snapshot=True)
    results: dict[bool, list[float]] = {True: [], False: []}
    try:
        await nodes.register(store)
        cloud.start()
        async with cloud_client(cloud.address) as api:
            lb = await api.EnsureLoadBalancer(lb_spec("shop", nodes))
        for round_ in range(2 * args.rounds):
            snapshot = round_ % 2 == 0
            cloud.kill()
            cloud.snapshot = snapshot
            spawned = time.monotonic()
            cloud.spawn()
            answered = await first_answer(lb.ip, 8080, spawned + 30)
            results[snapshot].append(answered - spawned)
            cloud.wait_serving()
            cloud.snapshot = True  # the snapshot is written by the serving process only
            async with cloud_client(cloud.address) as api:
                await api.EnsureLoadBalancer(lb_spec("shop", nodes))
    finally:
        cloud.stop()
        await nodes.close()
        await store.close()
        etcd.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="restarts each way")
    args = parser.parse_args()
    load = load_average()
    workdir = Path(tempfile.mkdtemp(prefix="kubelab-bench-cloud-"))
    try:
        results = asyncio.run(measure(args, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(started_on(load))
    print("cloud-stub restart: process start -> first answer through the LoadBalancer")
    print(f"{'':32} {'p50':>8} {'p99':>8} {'max':>8}  goal           met")
    for snapshot, label in (
        (False, "resumed from etcd (baseline)"),
        (True, "with --snapshot-file"),
    ):
        values = results[snapshot]
        p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
        goal = f"p99 <= {GOAL_S:.0f} s" if snapshot else ""
        met = verdict(p99 <= GOAL_S, load) if snapshot else ""
        print(f"{label:32} {p50:7.2f}s {p99:7.2f}s {max(values):7.2f}s  {goal:14} {met}")
    base, snap = percentile(results[False], 0.5), percentile(results[True], 0.5)
    print(f"snapshot / baseline, p50: {snap / base:.2f}x")


if __name__ == "__main__":
    main()
