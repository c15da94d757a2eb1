"""Cluster DNS queries/s against dnsmasq serving the same names, on the same machine.

Starts a real etcd and apiserver, creates SERVICES ClusterIP Services (one
named port each) through `ApplyStream`, starts `python -m services.dns`, and
a dnsmasq answering the same names from a hosts file (`--local` makes it
answer NXDOMAIN itself for other cluster names instead of forwarding). Then
dnsperf, in interleaved rounds, against each, for several query mixes:

- `A`: A questions for existing Services, lowercase, no EDNS (the inline path);
- `A+EDNS`: the same with an OPT record (dnsperf -e; dig sends one too);
- `NXDOMAIN`: names a pod's search list produces and that do not exist.

Then DNS programming latency: LATENCY_CREATES more Services, one at a time,
each timed from `Client.create` returning (the apiserver acknowledged it)
until a UDP A query for its name, repeated in a tight loop, is answered
NOERROR with its ClusterIP; p50/p99/max against the goal (p99 <= 25 ms).
The server rebuilds at once after an idle period, and only the changed
Service's records and answers (`services/dns/sync.py`), so this is the watch
delivery plus one incremental rebuild.

Then a big headless Service (`--endpoints`, 5,000 by default, in slices of
100): while a task asks an unrelated name over and over, one endpoint at a
time turns not ready and back (`--flips` changes), each timed from the slice
update being acknowledged until the endpoint's own name answers as it should
(NXDOMAIN when not ready, its address when ready); goal p99 <= 100 ms, with
the unrelated name answered p99 <= 5 ms throughout. And a cold start: a new
DNS process over `--cold-endpoints` (10,000) endpoints, from spawn to serving,
beside the same process over an empty cluster; goal <= 2 s.

Needs `dnsperf` and `dnsmasq` on PATH (Debian: apt-get install dnsperf
dnsmasq-base) unless --skip-qps (latency phase only). `.venv/bin/python
bench/dns.py [--services 1000] [--seconds 10] [--rounds 3] [--skip-qps]`.
dnsperf, the server and etcd share the machine's cores, so the figures are
this machine's, and the ratio is the number to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _conditions import load_average, started_on, verdict
from _headless import big_slice as headless_slice
from _stats import percentile
from google.protobuf import json_format

from kubelab.client import Client
from kubelab.testing.processes import ApiServerProcess, DnsProcess, EtcdServer, free_port
from kubelab.v1 import objects_pb2

MIXES = {"A": [], "A+EDNS": ["-e"], "NXDOMAIN": []}
LATENCY_CREATES = 200
LATENCY_GOAL_MS = 25.0


async def create_services(api: str, count: int) -> dict[str, str]:
    items = [
        json_format.ParseDict(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": f"svc-{n}"},
                "spec": {"selector": {"app": f"a{n}"}, "ports": [{"name": "http", "port": 80}]},
            },
            objects_pb2.Service(),
        )
        for n in range(count)
    ]
    ips: dict[str, str] = {}
    async with Client(api, timeout=60) as client:
        async for stored, _ in client.apply_many(items):
            assert isinstance(stored, objects_pb2.Service), stored
            ips[f"{stored.metadata.name}.default.svc.cluster.local"] = stored.spec.cluster_ip
    return ips


async def answered(host: str, port: int, name: str, ip: str) -> None:
    """Return once the server answers `name` A with `ip` (tight loop, 0.2 s per try)."""
    # Here, not at the top: run as a script, this file's directory comes first on
    # sys.path and its name shadows dnspython's `dns` (`main` takes it off first).
    import dns.asyncquery
    import dns.exception
    import dns.message
    import dns.rcode
    import dns.rdatatype

    query = dns.message.make_query(name, dns.rdatatype.A)
    while True:
        try:
            reply = await dns.asyncquery.udp(query, host, port=port, timeout=0.2)
        except dns.exception.Timeout:
            continue
        if reply.rcode() == dns.rcode.NOERROR and any(
            rdata.to_text() == ip for rrset in reply.answer for rdata in rrset
        ):
            return


async def programming_latency(api: str, host: str, port: int, count: int) -> list[float]:
    """Milliseconds from each Service create being acknowledged to its name resolving."""
    took: list[float] = []
    async with Client(api, timeout=60) as client:
        for n in range(count):
            service = json_format.ParseDict(
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": f"lat-{n}"},
                    "spec": {"selector": {"app": f"l{n}"}, "ports": [{"name": "http", "port": 80}]},
                },
                objects_pb2.Service(),
            )
            stored = await client.create(service)
            began = time.perf_counter()
            name = f"lat-{n}.default.svc.cluster.local"
            await asyncio.wait_for(answered(host, port, name, stored.spec.cluster_ip), 10)
            took.append((time.perf_counter() - began) * 1000)
    return took


HEADLESS_CHANGE_GOAL_MS = 100.0
UNRELATED_GOAL_MS = 5.0
COLD_START_GOAL_S = 2.0


def big_slice(index: int, not_ready: int | None = None) -> objects_pb2.EndpointSlice:
    return headless_slice("big", index, not_ready)


async def create_headless(api: str, endpoints: int) -> None:
    headless: objects_pb2.Service = json_format.ParseDict(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "big"},
            "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]},
        },
        objects_pb2.Service(),
    )
    async with Client(api, timeout=60) as client:
        items: list[objects_pb2.Service | objects_pb2.EndpointSlice] = [
            headless,
            *(big_slice(i) for i in range((endpoints + 99) // 100)),
        ]
        async for stored, _ in client.apply_many(items):
            assert stored is not None


async def headless_churn(
    api: str, host: str, port: int, endpoints: int, flips: int, unrelated: str
) -> tuple[list[float], list[float]]:
    """(ms per change to reach the endpoint's name, ms per unrelated question meanwhile)."""
    import dns.asyncquery
    import dns.message
    import dns.rcode

    slices = (endpoints + 99) // 100
    stop = asyncio.Event()
    unrelated_ms: list[float] = []

    async def ask_unrelated() -> None:
        query = dns.message.make_query(unrelated, "A")
        while not stop.is_set():
            began = time.perf_counter()
            await dns.asyncquery.udp(query, host, port=port, timeout=2)
            unrelated_ms.append((time.perf_counter() - began) * 1000)

    async def until_rcode(name: str, rcode: int) -> None:
        query = dns.message.make_query(name, "A")
        while True:
            if (await dns.asyncquery.udp(query, host, port=port, timeout=2)).rcode() == rcode:
                return

    took: list[float] = []
    asking = asyncio.create_task(ask_unrelated())
    try:
        async with Client(api, timeout=60) as client:
            for flip in range(flips):
                index, n = flip % slices, flip % 100
                name = f"10-{index // 256}-{index % 256}-{n}.big.default.svc.cluster.local"
                for gone, rcode in ((n, dns.rcode.NXDOMAIN), (None, dns.rcode.NOERROR)):
                    await client.apply(big_slice(index, gone))
                    began = time.perf_counter()
                    await asyncio.wait_for(until_rcode(name, rcode), 30)
                    took.append((time.perf_counter() - began) * 1000)
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asking
    return took, unrelated_ms


def cold_start(etcd: EtcdServer, work: Path, name: str) -> tuple[float, float]:
    """(seconds from spawning a DNS process to it serving (address file, health
    SERVING), CPU seconds of its first zone and table)."""
    server = DnsProcess(etcd.endpoint, work, name=name)
    began = time.perf_counter()
    server.start()
    took = time.perf_counter() - began
    server.stop()
    first = rebuild_cpu(server.log_path)[:1]
    return took, sum(first) / 1000


_REBUILD_CPU = re.compile(r'zone updated.*?cpu_ms"?[:=] ?([\d.]+)')


def rebuild_cpu(log: Path) -> list[float]:
    """CPU milliseconds of each zone rebuild the DNS process logged (`cpu_ms`, its
    rebuilding thread's own time; log lines as text or JSON): what a change costs,
    however busy the machine is."""
    return [float(m.group(1)) for m in _REBUILD_CPU.finditer(log.read_text())]


def headless_phase(args: argparse.Namespace, work: Path, load: float) -> None:
    etcd = EtcdServer(work / "etcd-headless")
    etcd.start()
    apiserver = ApiServerProcess(etcd.endpoint, work)
    apiserver.start()
    try:
        empty, _ = cold_start(etcd, work, "dns-empty")
        asyncio.run(create_headless(apiserver.address, args.cold_endpoints))
        cold, first_cpu = cold_start(etcd, work, "dns-cold")
        print(f"\nDNS cold start, spawn to serving (worst of 1); {started_on(load)}")
        print("| endpoints | seconds | empty cluster | first table, CPU | goal |")
        print("|---|---|---|---|---|")
        print(
            f"| {args.cold_endpoints:,} | {cold:.2f} s | {empty:.2f} s | {first_cpu:.2f} s "
            f"| <= {COLD_START_GOAL_S:.0f} s: {verdict(cold <= COLD_START_GOAL_S, load)} |"
        )
    finally:
        apiserver.stop()
        etcd.stop()
    etcd = EtcdServer(work / "etcd-churn")
    etcd.start()
    apiserver = ApiServerProcess(etcd.endpoint, work)
    apiserver.start()
    server = DnsProcess(etcd.endpoint, work, name="dns-churn")
    try:
        ips = asyncio.run(create_services(apiserver.address, 1))
        asyncio.run(create_headless(apiserver.address, args.endpoints))
        server.start()
        took, unrelated = asyncio.run(
            headless_churn(
                apiserver.address, server.host, server.port, args.endpoints, args.flips, *ips
            )
        )
    finally:
        server.stop()
        apiserver.stop()
        etcd.stop()
    cpu = rebuild_cpu(server.log_path)[1:]  # the changes' rebuilds, not the first table
    change, other = percentile(took, 0.99), percentile(unrelated, 0.99)
    print(f"\nA {args.endpoints:,}-endpoint headless Service, {len(took)} endpoint changes")
    print("| | p50 | p99 | max | goal |\n|---|---|---|---|---|")
    print(
        f"| slice update -> the endpoint's name answers | {percentile(took, 0.5):.1f} ms "
        f"| {change:.1f} ms | {max(took):.1f} ms | p99 <= {HEADLESS_CHANGE_GOAL_MS:.0f} ms: "
        f"{verdict(change <= HEADLESS_CHANGE_GOAL_MS, load)} |"
    )
    print(
        f"| an unrelated name, meanwhile ({len(unrelated):,} questions) "
        f"| {percentile(unrelated, 0.5):.2f} ms | {other:.2f} ms | {max(unrelated):.2f} ms "
        f"| p99 <= {UNRELATED_GOAL_MS:.0f} ms: {verdict(other <= UNRELATED_GOAL_MS, load)} |"
    )
    if len(cpu) >= 2:
        print(
            f"| CPU of each rebuild in the DNS process ({len(cpu)} rebuilds) "
            f"| {percentile(cpu, 0.5):.2f} ms | {percentile(cpu, 0.99):.2f} ms "
            f"| {max(cpu):.2f} ms | |"
        )


def dnsperf(port: int, queries: Path, seconds: int, extra: list[str]) -> float:
    out = subprocess.run(
        [
            *("dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(queries)),
            *("-l", str(seconds), "-c", "4", "-q", "200", *extra),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = re.search(r"Queries per second:\s+([\d.]+)", out)
    lost = re.search(r"Queries lost:\s+(\d+)", out)
    assert found and lost, out
    return float(found.group(1))


def start_dnsmasq(work: Path, ips: dict[str, str], masq_port: int) -> subprocess.Popen[bytes]:
    hosts = work / "hosts"
    hosts.write_text("".join(f"{ip} {name}\n" for name, ip in ips.items()))
    (work / "A").write_text("".join(f"{name} A\n" for name in ips))
    (work / "A+EDNS").write_text((work / "A").read_text())
    (work / "NXDOMAIN").write_text("".join(f"{name}.default.svc.cluster.local A\n" for name in ips))
    return subprocess.Popen(
        ["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts"]
        + [f"--addn-hosts={hosts}", "--listen-address=127.0.0.1", "--bind-interfaces"]
        + [f"--port={masq_port}", "--local=/cluster.local/", "--cache-size=10000"]
        # As root dnsmasq would drop to nobody, who cannot read our 0700 work dir.
        + (["--user=root"] if os.geteuid() == 0 else [])
        + ["--pid-file="],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )


def compare_qps(args: argparse.Namespace, work: Path, port: int, masq_port: int) -> None:
    """dnsperf rounds against our server and dnsmasq, interleaved; prints the table."""
    results: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for mix, extra in MIXES.items():
            for who, target in (("kubelab", port), ("dnsmasq", masq_port)):
                qps = dnsperf(target, work / mix, args.seconds, extra)
                results.setdefault((mix, who), []).append(qps)
    print(f"{args.services} Services, {args.rounds} rounds of {args.seconds}s (median qps)")
    print("| mix | kubelab dns | dnsmasq | ratio |\n|---|---|---|---|")
    for mix in MIXES:
        ours = statistics.median(results[(mix, "kubelab")])
        theirs = statistics.median(results[(mix, "dnsmasq")])
        print(f"| {mix} | {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-qps", action="store_true", help="no dnsperf phase")
    parser.add_argument("--skip-headless", action="store_true", help="no headless phase")
    parser.add_argument("--endpoints", type=int, default=5000, help="headless churn")
    parser.add_argument("--flips", type=int, default=50, help="endpoints flipped and back")
    parser.add_argument("--cold-endpoints", type=int, default=10000)
    args = parser.parse_args()
    load = load_average()
    print(started_on(load))
    here = Path(__file__).resolve().parent
    sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != here]
    for tool in () if args.skip_qps else ("dnsperf", "dnsmasq"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (Debian: apt-get install dnsperf dnsmasq-base)")

    work = Path(tempfile.mkdtemp(prefix="kubelab-bench-dns-"))
    etcd = EtcdServer(work / "etcd")
    etcd.start()
    apiserver = ApiServerProcess(etcd.endpoint, work)
    apiserver.start()
    server = DnsProcess(etcd.endpoint, work)
    dnsmasq: subprocess.Popen[bytes] | None = None
    try:
        ips = asyncio.run(create_services(apiserver.address, args.services))
        server.start()
        if not args.skip_qps:
            masq_port = free_port()
            dnsmasq = start_dnsmasq(work, ips, masq_port)
            compare_qps(args, work, server.port, masq_port)
        latency = asyncio.run(
            programming_latency(apiserver.address, server.host, server.port, LATENCY_CREATES)
        )
        latency_p99 = percentile(latency, 0.99)
        judged = verdict(latency_p99 <= LATENCY_GOAL_MS, load)
        print(f"DNS programming latency, {len(latency)} sequential creates on {args.services}")
        print("| p50 | p99 | max | goal |\n|---|---|---|---|")
        print(
            f"| {percentile(latency, 0.5):.1f} ms | {latency_p99:.1f} ms | {max(latency):.1f} ms "
            f"| p99 <= {LATENCY_GOAL_MS:.0f} ms: {judged} |"
        )
    finally:
        if dnsmasq is not None:
            dnsmasq.send_signal(signal.SIGTERM)
            dnsmasq.wait(10)
        server.stop()
        apiserver.stop()
        etcd.stop()
    try:
        if not args.skip_headless:
            headless_phase(args, work, load)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
