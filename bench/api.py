"""Service creates through the apiserver vs raw etcd transactions of the same size.

    .venv/bin/python bench/api.py [--creates 2000] [--concurrency 32]

Starts a real etcd and a real apiserver process, then in this one process:

* baseline: raw etcd transactions shaped like a Service create — compare
  `version == 0` on three keys (the Service, its ClusterIP claim, its NodePort
  claim) and put all three, with values of the same sizes;
* kubelab: `Client.create` of NodePort Services (validation, defaulting,
  ClusterIP + NodePort allocation, one transaction, gRPC both ways).

Prints creates/s and p50/p99 latency for both and their ratio (goal: the
apiserver reaches at least half the raw etcd rate). The raw-etcd client is
the only code outside kubelab/store.py that touches etcd: it is the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aetcd
import aetcd.rpc as etcdrpc

from kubelab.client import Client
from kubelab.testing.processes import ApiServerProcess, EtcdServer
from kubelab.v1 import objects_pb2


def shop_service(index: int) -> objects_pb2.Service:
    svc = objects_pb2.Service(api_version="v1", kind="Service")
    svc.metadata.name = f"bench-{index}"
    svc.metadata.namespace = "default"
    svc.metadata.labels.update({"app": "shop", "env": "prod"})
    svc.spec.type = "NodePort"
    svc.spec.selector.update({"app": "shop", "env": "prod"})
    svc.spec.ports.add(name="http", port=80, target_port="8080", protocol="TCP")
    return svc


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


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bench_raw(endpoint: str, count: int, concurrency: int) -> tuple[float, list[float]]:
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
            f"/bench/services/default/bench-{index}".encode(),
            f"/bench/allocations/clusterips/{index}".encode(),
            f"/bench/allocations/nodeports/TCP/{index}".encode(),
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


async def bench_api(address: str, count: int, concurrency: int) -> tuple[float, list[float]]:
    async with Client(address, timeout=30) as api:

        async def one(index: int) -> None:
            await api.create(shop_service(index))

        return await timed(count, concurrency, one)


def row(name: str, elapsed: float, latencies: list[float]) -> tuple[str, float, float, float]:
    return (
        name,
        len(latencies) / elapsed,
        percentile(latencies, 0.50) * 1000,
        percentile(latencies, 0.99) * 1000,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--creates", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="kubelab-bench-") as tmp:
        etcd = EtcdServer(Path(tmp) / "etcd")
        etcd.start()
        apiserver = ApiServerProcess(etcd.endpoint, Path(tmp))
        apiserver.start()
        try:
            # Warm both paths (connections, caches) before measuring.
            await bench_raw(etcd.endpoint, 50, 4)
            async with Client(apiserver.address) as warm:
                for i in range(50):
                    await warm.create(shop_service(100000 + i))
            raw = row(
                "raw etcd txn", *await bench_raw(etcd.endpoint, args.creates, args.concurrency)
            )
            through_api = row(
                "apiserver", *await bench_api(apiserver.address, args.creates, args.concurrency)
            )
        finally:
            apiserver.stop()
            etcd.stop()

    print(f"Service creates: {args.creates} per path, concurrency {args.concurrency}")
    print(f"{'path':<14} {'creates/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    for name, rate, p50, p99 in (raw, through_api):
        print(f"{name:<14} {rate:>10.0f} {p50:>8.2f} {p99:>8.2f}")
    ratio = through_api[1] / raw[1]
    print(f"apiserver / raw etcd rate: {ratio:.2f}x (goal >= 0.50x)")


if __name__ == "__main__":
    asyncio.run(main())
