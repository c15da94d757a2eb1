"""bench/api.py's security rows: the same work with TLS, client certificates and RBAC on,
beside the same work with them off, in one run.

A fresh etcd and two apiserver processes on it: one plain (no flags), one started as
`kubelab up` starts it (kube-apiserver's TLS flags, a cluster PKI from `kubelab.pki`:
every request authenticated by the admin's certificate and authorized). Interleaved
rounds on both: Service creates through gRPC `Create` and through HTTP POST, 32 in
flight on kept-alive connections (what a client does; one handshake per connection),
with the apiserver's CPU per create; then the steady-state watch fan-out
(`_watch_fanout`: 100 watchers already open, a change's latency to each and the CPU per
event delivered, the data-plane-relevant path: node agents and proxies are watchers);
then `kubectl get svc` (a new process per call, so a new TLS handshake and certificate
check each time) on both: the handshake's cost per kubectl call is the difference.

Only measurements: bench/api.py prints them and judges the goal (>= 0.8x on creates and
on the fan-out).
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
import statistics
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import aiohttp
from _rest_reads import kubectl_figures, seed
from _watch_fanout import FanoutFigures, fanout_figures

from kubelab.credentials import Credentials
from kubelab.pki import Pki, ensure_pki, kubeconfig_auth
from kubelab.testing.processes import ApiServerProcess, EtcdServer

Creates = Callable[..., Awaitable[tuple[float, list[float]]]]
MODES = ("plain", "TLS + RBAC")


@dataclass(slots=True)
class TlsFigures:
    rates: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # (front, mode)
    cpu_ms: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    fanout: dict[str, FanoutFigures] = field(default_factory=dict)  # by mode
    kubectl_ms: dict[str, float] = field(default_factory=dict)  # by mode

    def median_rate(self, front: str, mode: str) -> float:
        return statistics.median(self.rates[(front, mode)])

    def median_cpu(self, front: str, mode: str) -> float:
        return statistics.median(self.cpu_ms[(front, mode)])


def _http_context(pki: Pki) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca.cert))
    context.load_cert_chain(pki.admin.cert, pki.admin.key)
    return context


async def tls_figures(
    workdir: Path,
    *,
    bench_api: Creates,
    bench_http: Creates,
    cpu_seconds: Callable[[int], float],
    creates: int,
    concurrency: int,
    rounds: int,
    watchers: int,
    changes: int,
    runs: int,
) -> TlsFigures:
    now = datetime.datetime.now(datetime.UTC)
    pki = ensure_pki(workdir / "pki", nodes=[], api_sans=["127.0.0.1"], now=now)
    etcd = EtcdServer(workdir / "etcd")
    etcd.start()
    ports = ("--node-port-range", "20000-39999")
    servers = {
        "plain": ApiServerProcess(etcd.endpoint, workdir / "plain", extra_args=ports),
        "TLS + RBAC": ApiServerProcess(etcd.endpoint, workdir / "tls", extra_args=ports, pki=pki),
    }
    tls = _http_context(pki)
    figures = TlsFigures()
    try:
        for server in servers.values():
            server.workdir.mkdir(parents=True, exist_ok=True)
            server.start()
        for round_ in range(rounds):
            for number, (mode, server) in enumerate(servers.items()):
                assert server.process is not None
                pid = server.process.pid
                credentials: Credentials | None = server.credentials()
                context = tls if server.pki is not None else None
                base = 100000 * (1 + number) + round_ * creates
                grpc_run = bench_api(server.address, creates, concurrency, base, credentials)
                http_run = bench_http(server.http_url, creates, concurrency, base, context)
                for front, run in (("gRPC Create", grpc_run), ("HTTP POST", http_run)):
                    before = cpu_seconds(pid)
                    elapsed, latencies = await run
                    figures.cpu_ms.setdefault((front, mode), []).append(
                        (cpu_seconds(pid) - before) * 1000 / creates
                    )
                    figures.rates.setdefault((front, mode), []).append(len(latencies) / elapsed)
        for number, (mode, server) in enumerate(servers.items()):
            assert server.process is not None
            pid = server.process.pid
            context = tls if server.pki is not None else None
            connector = aiohttp.TCPConnector(limit=0, ssl=context if context else True)
            async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
                figures.fanout[mode] = await fanout_figures(
                    session,
                    server.http_url,
                    f"bench-fanout-{number}",
                    watchers=watchers,
                    changes=changes,
                    server_cpu=partial(cpu_seconds, pid),
                )
                namespace = f"bench-kubectl-{number}"
                await seed(session, server.http_url, namespace, 5)
            auth = kubeconfig_auth(pki.ca.cert, pki.admin) if server.pki is not None else None
            get, _, _ = await asyncio.to_thread(
                kubectl_figures,
                server.http_url,
                namespace,
                workdir / f"kubectl-{number}",
                runs,
                auth,
            )
            figures.kubectl_ms[mode] = get
    finally:
        for server in servers.values():
            server.stop()
        etcd.stop()
    return figures
