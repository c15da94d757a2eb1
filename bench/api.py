"""Service creates through the apiserver vs raw etcd transactions of the same size.

    .venv/bin/python bench/api.py [--creates 1000] [--rounds 3] [--concurrency 32]

Starts a real etcd and a real apiserver process, then from this one process,
in interleaved rounds (so drift on the machine hits every path alike):

* raw etcd txn — the baseline: transactions shaped like a Service create
  (compare `version == 0` on the Service key, its ClusterIP claim and its
  NodePort claim; put all three, values of the same sizes), at 32 and at 256
  in flight; the better of the two is the reference;
* no-op gRPC server — `bench/noop_api.py`, the same gRPC stack answering
  Create without doing anything: the ceiling for any unary-call path;
* apiserver Create — one unary `Create` call per NodePort Service (validation,
  defaults, ClusterIP + NodePort allocation, one transaction), 32 in flight;
* apiserver ApplyStream — the same creates over one `ApplyStream` (what
  `kubelab apply -f` uses), in chunks of 64, 8 chunks in flight;
* apiserver HTTP POST — the same creates through the Kubernetes HTTP API (what kubectl
  and client libraries use: JSON in and out), 32 in flight on keep-alive connections;
  its ratio to the gRPC Create is printed too (the issue's goal: at least 0.8x), and the
  apiserver's own CPU per create on each front (from /proc: the client's work in this
  process does not count, so it holds on a busy machine where the rates do not).

Then, on the same apiserver (`bench/_rest_reads.py`): a list of 1,000 Services over
HTTP as JSON and as a Table, and over gRPC; `kubectl get svc` wall time (median of
--runs, beside `kubectl version --client`: kubectl's own start-up; goal <= 150 ms);
and 100 HTTP watchers seeing a change (p99; goal <= 25 ms). Then the steady-state
fan-out (`bench/_watch_fanout.py`): 100 watchers already open, a change's latency to
each and the apiserver's CPU per event delivered.

Then the security rows (`bench/_tls_rows.py`): on a fresh etcd, an apiserver plain and
one as `kubelab up` starts it (TLS, client certificates, RBAC), interleaved: gRPC and
HTTP creates, the watch fan-out, and `kubectl get svc` (a TLS handshake per call); each
secured figure as a ratio of the plain one (the security issue's goal: at least 0.8x).

Prints the median rate of each path, p50/p99 latency for the per-call paths,
and each rate as a ratio to raw etcd (goal: the apiserver reaches 0.5x). The
raw-etcd client is the only code outside kubelab/store.py that touches etcd:
it is the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aetcd
import aetcd.rpc as etcdrpc
import aiohttp
from _api_report import print_fanout, print_reads, print_security
from _conditions import load_average, started_on, verdict
from _rest_reads import measure
from _stats import percentile
from _tls_rows import tls_figures
from _watch_fanout import fanout_figures

from kubelab.client import Client
from kubelab.core import manifests
from kubelab.credentials import Credentials
from kubelab.testing.processes import (
    ApiServerProcess,
    EtcdServer,
    free_port,
    health_serving,
)
from kubelab.testing.wait import until_blocking
from kubelab.v1 import objects_pb2

GOAL_RATIO = 0.5  # of the raw etcd rate (the issue)
HTTP_GOAL_RATIO = 0.8  # the Kubernetes HTTP API's creates, of gRPC Create's rate


def shop_service(index: int) -> objects_pb2.Service:
    svc = objects_pb2.Service(api_version="v1", kind="Service")
    svc.metadata.name = f"bench-{index}"
    svc.metadata.namespace = "default"
    svc.metadata.labels.update({"app": "shop", "env": "prod"})
    svc.spec.type = "NodePort"
    svc.spec.selector.update({"app": "shop", "env": "prod"})
    svc.spec.ports.add(name="http", port=80, target_port="8080", protocol="TCP")
    return svc


def shop_service_json(index: int) -> dict[str, object]:
    """`shop_service` as an HTTP client sends it: JSON it holds, not a protobuf object
    converted per request (the gRPC rows build their protobuf objects the same way)."""
    labels = {"app": "shop", "env": "prod"}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"bench-{index}", "namespace": "default", "labels": labels},
        "spec": {
            "type": "NodePort",
            "selector": dict(labels),
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
        },
    }


async def timed(
    count: int, concurrency: int, one: Callable[[int], Awaitable[None]]
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < count:
            index = next_index
            next_index += 1
            started = time.perf_counter()
            await one(index)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


async def bench_raw(
    endpoint: str, count: int, concurrency: int, run: str
) -> tuple[float, list[float]]:
    host, _, port = endpoint.rpartition(":")
    client = aetcd.Client(host=host, port=int(port))
    await client.connect()
    stored = shop_service(0)
    stored.metadata.uid = "00000000-0000-0000-0000-000000000000"
    stored.spec.cluster_ip = "127.96.123.123"
    stored.spec.ports[0].node_port = 31234
    value = stored.SerializeToString()
    owner = b'{"uid": "00000000-0000-0000-0000-000000000000", "owner": "services/default/x"}'

    async def one(index: int) -> None:
        keys = [
            f"/bench/{run}/services/default/bench-{index}".encode(),
            f"/bench/{run}/allocations/clusterips/{index}".encode(),
            f"/bench/{run}/allocations/nodeports/TCP/{index}".encode(),
        ]
        compare = [
            etcdrpc.Compare(
                key=k, result=etcdrpc.Compare.EQUAL, target=etcdrpc.Compare.VERSION, version=0
            )
            for k in keys
        ]
        puts = [
            etcdrpc.RequestOp(request_put=etcdrpc.PutRequest(key=k, value=v))
            for k, v in zip(keys, (value, owner, owner), strict=True)
        ]
        reads = [etcdrpc.RequestOp(request_range=etcdrpc.RangeRequest(key=k)) for k in keys]
        request = etcdrpc.TxnRequest(compare=compare, success=puts, failure=reads)
        response = await client.kvstub.Txn(request, timeout=10)
        assert response.succeeded

    try:
        return await timed(count, concurrency, one)
    finally:
        await client.close()


async def bench_api(
    address: str,
    count: int,
    concurrency: int,
    base: int = 0,
    credentials: Credentials | None = None,
) -> tuple[float, list[float]]:
    async with Client(address, timeout=30, credentials=credentials) as api:

        async def one(index: int) -> None:
            await api.create(shop_service(base + index))

        return await timed(count, concurrency, one)


async def bench_stream(address: str, count: int, base: int = 0) -> tuple[float, list[float]]:
    """All creates over one ApplyStream (chunks of 64); only the rate is meaningful."""
    async with Client(address, timeout=60) as api:
        services = [shop_service(500000 + base + i) for i in range(count)]
        started = time.perf_counter()
        latencies: list[float] = []
        async for answer, result in api.apply_many(services):
            if isinstance(answer, Exception) or result != "created":
                raise RuntimeError(f"stream create failed: {answer}")
            latencies.append(time.perf_counter() - started)
        elapsed = time.perf_counter() - started
    return elapsed, latencies


def cpu_seconds(pid: int) -> float:
    """A process's user + system CPU time so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def bench_http(
    url: str, count: int, concurrency: int, base: int = 0, tls: ssl.SSLContext | None = None
) -> tuple[float, list[float]]:
    path = f"{url}/api/v1/namespaces/default/services"
    connector = aiohttp.TCPConnector(limit=concurrency, ssl=tls if tls is not None else True)
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:

        async def one(index: int) -> None:
            body = shop_service_json(700000 + base + index)
            async with session.post(path, json=body) as response:
                if response.status != 201:
                    raise RuntimeError(f"HTTP create failed: {await response.text()}")
                await response.read()

        return await timed(count, concurrency, one)


def row(name: str, elapsed: float, latencies: list[float]) -> tuple[str, float, float, float]:
    return (
        name,
        len(latencies) / elapsed,
        percentile(latencies, 0.50) * 1000,
        percentile(latencies, 0.99) * 1000,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--creates", type=int, default=1000, help="per path per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--runs", type=int, default=15, help="lists and kubectl runs")
    parser.add_argument("--watchers", type=int, default=100)
    parser.add_argument("--changes", type=int, default=20, help="changes the watchers see")
    args = parser.parse_args()
    load = load_average()  # before anything of ours runs
    # Both fronts create the same Service.
    assert shop_service_json(0) == manifests.to_kubernetes_dict(shop_service(0))

    paths = {
        "no-op gRPC server": str(args.concurrency),
        "raw etcd txn": str(args.concurrency),
        "raw etcd txn (deep)": "256",
        "apiserver Create": str(args.concurrency),
        "apiserver ApplyStream": "8x64",
        "apiserver HTTP POST": str(args.concurrency),
    }
    rates: dict[str, list[float]] = {name: [] for name in paths}
    # The apiserver's own CPU per create (user + system): what each front costs the
    # server, whatever the client in this process costs beside it.
    server_ms: dict[str, list[float]] = {name: [] for name in paths if name.startswith("apis")}
    latencies: dict[str, list[float]] = {name: [] for name in paths}
    with tempfile.TemporaryDirectory(prefix="kubelab-bench-") as tmp:
        etcd = EtcdServer(Path(tmp) / "etcd")
        etcd.start()
        # A wide NodePort range so every round's Services fit; allocation work is the same.
        apiserver = ApiServerProcess(
            etcd.endpoint, Path(tmp), extra_args=("--node-port-range", "20000-39999")
        )
        apiserver.start()
        noop_port = free_port()
        noop = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__).with_name("noop_api.py")), str(noop_port)
        )
        until_blocking("no-op server", lambda: health_serving(f"127.0.0.1:{noop_port}"), timeout=30)
        try:
            await bench_raw(etcd.endpoint, 50, 4, run="warm")
            async with Client(apiserver.address) as warm:
                for i in range(50):
                    await warm.create(shop_service(900000 + i))
            # Interleaved rounds: drift on the machine hits every path alike.
            n, depth = args.creates, args.concurrency
            for round_ in range(args.rounds):
                base = round_ * args.creates
                measured = {
                    "no-op gRPC server": await bench_api(
                        f"127.0.0.1:{noop_port}", args.creates, args.concurrency, base
                    ),
                    "raw etcd txn": await bench_raw(
                        etcd.endpoint, args.creates, args.concurrency, run=f"c-{round_}"
                    ),
                    "raw etcd txn (deep)": await bench_raw(
                        etcd.endpoint, args.creates, 256, run=f"d-{round_}"
                    ),
                }
                assert apiserver.process is not None
                pid = apiserver.process.pid
                for name, run in (
                    ("apiserver Create", bench_api(apiserver.address, n, depth, base)),
                    ("apiserver ApplyStream", bench_stream(apiserver.address, n, base)),
                    ("apiserver HTTP POST", bench_http(apiserver.http_url, n, depth, base)),
                ):
                    before = cpu_seconds(pid)
                    measured[name] = await run
                    server_ms[name].append((cpu_seconds(pid) - before) * 1000 / n)
                for name, (elapsed, lat) in measured.items():
                    rates[name].append(len(lat) / elapsed)
                    latencies[name].extend(lat)
            reads = await measure(
                apiserver.http_url,
                apiserver.address,
                Path(tmp) / "kubectl-home",
                runs=args.runs,
                watchers=args.watchers,
                changes=args.changes,
                server_cpu=lambda: cpu_seconds(pid),
            )
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
                fanout = await fanout_figures(
                    session,
                    apiserver.http_url,
                    "bench-fanout",
                    watchers=args.watchers,
                    changes=args.changes,
                    server_cpu=lambda: cpu_seconds(pid),
                )
        finally:
            noop.kill()
            await noop.wait()
            apiserver.stop()
            etcd.stop()
        secured = await tls_figures(
            Path(tmp) / "security",
            bench_api=bench_api,
            bench_http=bench_http,
            cpu_seconds=cpu_seconds,
            creates=args.creates,
            concurrency=args.concurrency,
            rounds=args.rounds,
            watchers=args.watchers,
            changes=args.changes,
            runs=args.runs,
        )

    median = {name: statistics.median(values) for name, values in rates.items()}
    best_raw = max(median["raw etcd txn"], median["raw etcd txn (deep)"])
    print(
        f"Service creates (NodePort: ClusterIP + NodePort allocated): {args.creates} per path, "
        f"{args.rounds} interleaved rounds, median rate"
    )
    print(
        f"{'path':<24} {'in flight':>9} {'creates/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>6}"
    )
    for name, depth in paths.items():
        if name == "apiserver ApplyStream":
            p50 = p99 = f"{'-':>8}"
        else:
            p50 = f"{percentile(latencies[name], 0.50) * 1000:8.2f}"
            p99 = f"{percentile(latencies[name], 0.99) * 1000:8.2f}"
        ratio = median[name] / best_raw
        print(f"{name:<24} {depth:>9} {median[name]:>10.0f} {p50} {p99} {ratio:>5.2f}x")
    best_api = max(median["apiserver Create"], median["apiserver ApplyStream"]) / best_raw
    print(
        f"ratio = rate / best raw etcd rate; goal: apiserver >= {GOAL_RATIO:.2f}x. "
        f"Create {median['apiserver Create'] / best_raw:.2f}x, "
        f"ApplyStream {median['apiserver ApplyStream'] / best_raw:.2f}x "
        f"({verdict(best_api >= GOAL_RATIO, load)}); "
        f"a no-op gRPC server (the ceiling for unary calls) "
        f"{median['no-op gRPC server'] / best_raw:.2f}x"
    )
    http_ratio = median["apiserver HTTP POST"] / median["apiserver Create"]
    cpu = {name: statistics.median(values) for name, values in server_ms.items()}
    print(
        f"HTTP POST / gRPC Create: {http_ratio:.2f}x (goal >= {HTTP_GOAL_RATIO:.1f}x: "
        f"{verdict(http_ratio >= HTTP_GOAL_RATIO, load)}); apiserver CPU per create: "
        + ", ".join(f"{name.removeprefix('apiserver ')} {ms:.2f} ms" for name, ms in cpu.items())
    )
    print_reads(reads, load)
    print_fanout(fanout, args.watchers, load)
    print_security(secured, args.watchers, load)
    print(started_on(load))


if __name__ == "__main__":
    asyncio.run(main())
