"""Cluster DNS end to end: real etcd, a real apiserver, `python -m services.dns` on a free port.

Services and EndpointSlices are written through the API (a selector-less
Service's slices are the user's to write, as in Kubernetes), and questions
asked with dnspython over UDP and TCP. Changes are waited for with a
deadline, polling the DNS server itself; nothing sleeps and hopes.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from google.protobuf import json_format

from kubelab.client import Client
from kubelab.testing import wait
from kubelab.testing.processes import (
    ApiServerProcess,
    DnsProcess,
    EtcdServer,
    free_port,
    health_serving,
)
from kubelab.v1 import objects_pb2

pytestmark = pytest.mark.integration

DEADLINE = 10.0


@pytest.fixture
def dns_server(
    etcd: EtcdServer, apiserver: ApiServerProcess, tmp_path: Path
) -> Iterator[DnsProcess]:
    process = DnsProcess(etcd.endpoint, tmp_path)
    process.start()
    yield process
    process.stop()


@pytest.fixture
async def client(apiserver: ApiServerProcess) -> AsyncIterator[Client]:
    async with Client(apiserver.address, timeout=10) as api:
        yield api


def service(name: str, **spec: Any) -> objects_pb2.Service:
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}
    return json_format.ParseDict(body, objects_pb2.Service())


def endpoint_slice(
    name: str, service_name: str, endpoints: list[dict[str, Any]]
) -> objects_pb2.EndpointSlice:
    body = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "pg", "protocol": "TCP", "port": 5432}],
    }
    return json_format.ParseDict(body, objects_pb2.EndpointSlice())


async def ask(
    server: DnsProcess, name: str, rtype: str = "A", *, tcp: bool = False
) -> dns.message.Message:
    query = dns.message.make_query(name, rtype)
    if tcp:
        return await dns.asyncquery.tcp(query, server.host, port=server.port, timeout=2)
    return await dns.asyncquery.udp(query, server.host, port=server.port, timeout=2)


def data(reply: dns.message.Message) -> list[str]:
    return sorted(r.to_text() for rrset in reply.answer for r in rrset)


async def until(
    server: DnsProcess, name: str, rtype: str, want: list[str] | int, *, tcp: bool = False
) -> dns.message.Message:
    """Ask until the answer is `want` (records' text, or an rcode); the last reply."""

    def got(reply: dns.message.Message) -> list[str] | int:
        return data(reply) if isinstance(want, list) else reply.rcode()

    return await wait.until(
        f"{name} {rtype} to answer {want!r}",
        lambda: ask(server, name, rtype, tcp=tcp),
        lambda reply: got(reply) == want,
        timeout=DEADLINE,
        describe=got,
    )


async def test_a_service_answers_when_created_and_nxdomain_when_deleted(
    dns_server: DnsProcess, client: Client
) -> None:
    name = "shop.default.svc.cluster.local"
    assert (await ask(dns_server, name)).rcode() == dns.rcode.NXDOMAIN
    created = await client.create(
        service("shop", selector={"app": "shop"}, ports=[{"name": "http", "port": 80}])
    )
    ip = created.spec.cluster_ip
    reply = await until(dns_server, name, "A", [ip])
    assert reply.answer[0].ttl == 5
    srv = await until(dns_server, f"_http._tcp.{name}", "SRV", [f"0 100 80 {name}."], tcp=True)
    assert srv.additional[0][0].to_text() == ip
    reverse = ".".join(reversed(ip.split("."))) + ".in-addr.arpa"
    assert data(await ask(dns_server, reverse, "PTR")) == [f"{name}."]

    await client.delete("svc", "shop")
    reply = await until(dns_server, name, "A", dns.rcode.NXDOMAIN)
    assert reply.authority[0].rdtype == dns.rdatatype.SOA


async def test_a_headless_service_lists_its_ready_endpoints(
    dns_server: DnsProcess, client: Client
) -> None:
    await client.create(service("db", clusterIP="None", ports=[{"name": "pg", "port": 5432}]))
    name = "db.default.svc.cluster.local"
    # Headless with no ready endpoint: the name does not exist (spec 2.4.1).
    assert (await ask(dns_server, name)).rcode() == dns.rcode.NXDOMAIN

    endpoints: list[dict[str, Any]] = [
        {"addresses": ["127.244.1.3"], "hostname": "db-0"},
        {"addresses": ["127.244.2.4"], "conditions": {"ready": True}},
        {"addresses": ["127.244.3.5"], "conditions": {"ready": False}, "hostname": "db-2"},
    ]
    eps = await client.create(endpoint_slice("db-manual", "db", endpoints))
    await until(dns_server, name, "A", ["127.244.1.3", "127.244.2.4"])
    assert data(await ask(dns_server, f"db-0.{name}")) == ["127.244.1.3"]
    assert (await ask(dns_server, f"db-2.{name}")).rcode() == dns.rcode.NXDOMAIN
    srv = await ask(dns_server, f"_pg._tcp.{name}", "SRV", tcp=True)
    assert data(srv) == [f"0 100 5432 127-244-2-4.{name}.", f"0 100 5432 db-0.{name}."]
    assert sorted(r.to_text() for rrset in srv.additional for r in rrset) == [
        "127.244.1.3",
        "127.244.2.4",
    ]

    eps.endpoints[0].conditions.ready = False
    await client.update(eps)
    await until(dns_server, name, "A", ["127.244.2.4"])

    await client.delete("endpointslices", "db-manual")
    await until(dns_server, name, "A", dns.rcode.NXDOMAIN)


async def test_external_name_is_a_cname(dns_server: DnsProcess, client: Client) -> None:
    await client.create(service("docs", type="ExternalName", externalName="docs.example.com"))
    await until(dns_server, "docs.default.svc.cluster.local", "A", ["docs.example.com."])


async def test_names_outside_the_cluster_are_refused(dns_server: DnsProcess) -> None:
    assert (await ask(dns_server, "example.com")).rcode() == dns.rcode.REFUSED


def test_nothing_is_served_before_the_first_full_sync(tmp_path: Path) -> None:
    """Started before etcd, DNS binds nothing and says not SERVING; once etcd is up and
    listed, the Services already there answer at the first query."""
    etcd = EtcdServer(tmp_path / "etcd")
    server = DnsProcess(etcd.endpoint, tmp_path)
    server.spawn()
    try:
        with pytest.raises(TimeoutError):
            wait.until_blocking(
                "an address file before any sync", server.address_file.exists, timeout=1.0
            )
        etcd.start()
        apiserver = ApiServerProcess(etcd.endpoint, tmp_path)
        apiserver.start()
        try:

            async def create() -> str:
                async with Client(apiserver.address) as api:
                    svc = await api.create(service("early", ports=[{"port": 80}]))
                    return svc.spec.cluster_ip

            # The Service may land before or after DNS lists: either way it must answer.
            ip = asyncio.run(create())
            server.wait_serving()

            async def first_answer() -> dns.message.Message:
                return await until(server, "early.default.svc.cluster.local", "A", [ip])

            asyncio.run(first_answer())
            assert health_serving(server.health)
        finally:
            apiserver.stop()
    finally:
        server.stop()
        etcd.stop()


def test_the_cli_resolves_through_the_cluster_dns(
    dns_server: DnsProcess, apiserver: ApiServerProcess, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "KUBELAB_HOME": str(tmp_path / "home"),
        "KUBELAB_SERVER": apiserver.address,
        "KUBELAB_DNS": dns_server.address,
    }

    def kubelab(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kubelab.cli.main", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )

    async def create() -> str:
        async with Client(apiserver.address) as api:
            svc = await api.create(service("cart", ports=[{"name": "http", "port": 80}]))
            await until(dns_server, "cart.default.svc.cluster.local", "A", [svc.spec.cluster_ip])
            return svc.spec.cluster_ip

    ip = asyncio.run(create())
    found = kubelab("dns", "cart")
    assert (found.returncode, found.stdout) == (0, f"{ip}\n"), found.stderr
    srv = kubelab("dns", "_http._tcp.cart", "SRV", "--tcp")
    assert srv.stdout == "0 100 80 cart.default.svc.cluster.local.\n", srv.stderr
    missing = kubelab("dns", "nope")
    assert missing.returncode == 1
    assert "nope.default.svc.cluster.local.: no such name (NXDOMAIN)" in missing.stderr
    elsewhere = kubelab("dns", "cart", "-n", "other")
    assert "cart.other.svc.cluster.local.: no such name (NXDOMAIN)" in elsewhere.stderr


def test_metrics_count_queries_by_rcode(etcd: EtcdServer, tmp_path: Path) -> None:
    port = free_port()
    server = DnsProcess(etcd.endpoint, tmp_path, extra_args=("--metrics", f"127.0.0.1:{port}"))
    server.start()
    try:

        async def queries() -> None:
            await ask(server, "nope.default.svc.cluster.local")
            await ask(server, "cluster.local", "SOA")
            await ask(server, "cluster.local", "SOA")

        asyncio.run(queries())
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    finally:
        server.stop()
    assert 'kubelab_dns_queries_total{rcode="NXDOMAIN"} 1.0' in text
    assert 'kubelab_dns_queries_total{rcode="NOERROR"} 2.0' in text
    assert "kubelab_dns_rebuild_seconds_count" in text


async def test_a_name_over_dns_limits_is_left_out_and_everything_else_served(
    dns_server: DnsProcess, client: Client, etcd: EtcdServer, tmp_path: Path
) -> None:
    """A 63-character port name is valid, but `_<name>` is a 64-octet label: that one
    SRV record cannot exist. The DNS leaves it out, keeps serving (the Service's A
    record too), and starts again over the same state (it used to exit, for good)."""
    long_port = "p" * 63
    created = await client.create(
        service("long", selector={"app": "x"}, ports=[{"name": long_port, "port": 80}])
    )
    await client.create(service("shop", selector={"app": "shop"}, ports=[{"port": 80}]))
    name = "long.default.svc.cluster.local"
    await until(dns_server, name, "A", [created.spec.cluster_ip])
    shop = await until(dns_server, "shop.default.svc.cluster.local", "A", 0)
    assert data(shop)
    assert dns_server.process is not None and dns_server.process.poll() is None
    assert "not served: name over DNS limits" in dns_server.log_path.read_text()

    again = DnsProcess(etcd.endpoint, tmp_path, name="dns-again")
    again.start()
    try:
        assert data(await ask(again, name)) == [created.spec.cluster_ip]
    finally:
        again.stop()


async def test_malformed_packets_never_stop_the_server(
    dns_server: DnsProcess, client: Client
) -> None:
    """Garbage over UDP and TCP: each gets no answer, FORMERR or SERVFAIL; the server
    keeps answering real questions between them."""
    created = await client.create(service("web", selector={"app": "web"}, ports=[{"port": 80}]))
    name = "web.default.svc.cluster.local"
    await until(dns_server, name, "A", [created.spec.cluster_ip])
    rng = random.Random(13)
    valid = dns.message.make_query(name, "A", use_edns=True).to_wire()
    packets = [bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 600))) for _ in range(150)]
    # Mutations of a real query: flipped bytes keep most of its shape, so they reach deeper.
    for _ in range(150):
        mutated = bytearray(valid)
        for _ in range(rng.randint(1, 6)):
            mutated[rng.randrange(len(mutated))] = rng.getrandbits(8)
        packets.append(bytes(mutated[: rng.randint(0, len(mutated))]))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for packet in packets:
            udp.sendto(packet, (dns_server.host, dns_server.port))
    for packet in packets[:40]:
        with socket.create_connection((dns_server.host, dns_server.port), timeout=2) as tcp:
            tcp.sendall(len(packet).to_bytes(2, "big") + packet)
            tcp.shutdown(socket.SHUT_WR)
            while tcp.recv(65536):
                pass
    assert data(await ask(dns_server, name)) == [created.spec.cluster_ip]
    assert data(await ask(dns_server, name, tcp=True)) == [created.spec.cluster_ip]
    assert dns_server.process is not None and dns_server.process.poll() is None
    assert "Traceback" not in dns_server.log_path.read_text()


def big_slice(service_name: str, index: int, ready: set[int]) -> objects_pb2.EndpointSlice:
    """Slice `index` of a big headless Service: 100 endpoints 10.0.<index>.<n>."""
    endpoints = [
        {"addresses": [f"10.0.{index}.{n}"], "conditions": {"ready": n in ready}}
        for n in range(100)
    ]
    return endpoint_slice(f"{service_name}-{index}", service_name, endpoints)


async def test_a_churning_big_headless_service_never_holds_up_other_names(
    dns_server: DnsProcess, client: Client
) -> None:
    """2,000 endpoints whose readiness flips while an unrelated name is asked: every
    question is answered (the rebuilds run off the query path), each flip reaches its
    endpoint's name, and the big name's answers carry what fits (all of it over TCP)."""
    created = await client.create(service("web", selector={"app": "web"}, ports=[{"port": 80}]))
    web = "web.default.svc.cluster.local"
    await client.create(service("big", clusterIP="None", ports=[{"name": "pg", "port": 5432}]))
    everyone = set(range(100))
    for index in range(20):
        await client.create(big_slice("big", index, everyone))
    big = "big.default.svc.cluster.local"
    await until(dns_server, "10-0-19-99.big.default.svc.cluster.local", "A", ["10.0.19.99"])

    stop = asyncio.Event()
    asked: list[list[str]] = []

    async def ask_web() -> None:
        while not stop.is_set():
            asked.append(data(await ask(dns_server, web)))

    asking = asyncio.create_task(ask_web())
    try:
        for flip in range(10):
            ready = everyone - {flip}
            await client.apply(big_slice("big", 0, ready))
            await until(dns_server, f"10-0-0-{flip}.{big}", "A", dns.rcode.NXDOMAIN)
    finally:
        stop.set()
        await asking
    assert len(asked) > 10
    assert all(answer == [created.spec.cluster_ip] for answer in asked)
    whole = await ask(dns_server, big, tcp=True)  # 1,999 addresses: 32 KB, they all fit
    assert not whole.flags & dns.flags.TC
    assert len(whole.answer[0]) == 1999
    some = await ask(dns_server, big)  # 512 bytes: the first 29, and TC
    assert some.flags & dns.flags.TC and len(some.answer[0]) == 29
