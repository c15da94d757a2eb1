"""The DNS server's wire side, on a real socket: an in-process server on a free 127.0.0.1 port.

Queries are built as bytes (or with dnspython) and the replies parsed with
dnspython: the pre-rendered fast path, the templates and the slow path must
give the same answers, with the asker's id, RD bit, case and EDNS.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import dns.asyncquery
import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st

from kubelab.core.keys import ObjectKey
from kubelab.v1 import objects_pb2
from services.dns import server as dns_server
from services.dns.logic.dns_builder import ZoneBuilder
from services.dns.logic.dns_records import (
    Rcode,
    RType,
    Zone,
    build_zone,
    group_slices,
    service_records,
)
from services.dns.messages import slow_reply
from services.dns.server import QueryCollector, Responder, listen
from services.dns.wire import MAX_ROTATIONS, VARIANTS, Table

HOST = "127.0.0.1"


def service(name: str, **spec: Any) -> objects_pb2.Service:
    body = {"metadata": {"name": name, "namespace": "default"}, "spec": spec}
    return json_format.ParseDict(body, objects_pb2.Service())


def endpoint_slice(service_name: str, addresses: list[str]) -> objects_pb2.EndpointSlice:
    body = {
        "metadata": {
            "name": f"{service_name}-x",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [a]} for a in addresses],
        "ports": [{"name": "http", "protocol": "TCP", "port": 8080}],
    }
    return json_format.ParseDict(body, objects_pb2.EndpointSlice())


SHOP = service("shop", clusterIP="127.96.0.20", ports=[{"name": "http", "port": 80}])
# 60 endpoints: ~1 KB of A records, over the 512 bytes of plain UDP.
BIG = [f"127.244.1.{n}" for n in range(2, 62)]
SERVICES = [
    SHOP,
    service("few", clusterIP="None"),
    service("big", clusterIP="None"),
    service("docs", type="ExternalName", externalName="docs.example.com"),
]
SLICES = [
    endpoint_slice("few", ["127.244.0.2", "127.244.0.3", "127.244.0.4"]),
    endpoint_slice("big", BIG),
]


def make_zone(services: list[objects_pb2.Service] = SERVICES) -> Zone:
    return build_zone(services, SLICES, domain="cluster.local", ttl=5)


@pytest.fixture
async def server() -> AsyncIterator[tuple[Responder, int]]:
    responder = Responder(Table.build(make_zone()))
    listeners = await listen(responder, HOST, 0)
    yield responder, listeners.port
    await listeners.close()


def query_bytes(
    name: str,
    rtype: str = "A",
    *,
    qid: int = 0x1234,
    rd: bool = True,
    edns: int | bool = False,
    payload: int = 1232,
    options: list[dns.edns.Option] | None = None,
) -> bytes:
    query = dns.message.make_query(
        name, rtype, use_edns=edns, payload=payload, options=options or None
    )
    query.id = qid
    if not rd:
        query.flags &= ~dns.flags.RD
    return query.to_wire()


async def udp(port: int, data: bytes, timeout: float = 2.0) -> bytes:
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.connect((HOST, port))
        await loop.sock_sendall(sock, data)
        return await asyncio.wait_for(loop.sock_recv(sock, 65535), timeout)


async def ask(port: int, data: bytes) -> dns.message.Message:
    return dns.message.from_wire(await udp(port, data))


def addresses(reply: dns.message.Message) -> list[str]:
    return [r.to_text() for rrset in reply.answer for r in rrset]


# ---------------------------------------------------------------- UDP fast path


@pytest.mark.parametrize("rd", [True, False], ids=["rd", "no-rd"])
async def test_fast_path_patches_the_id_and_copies_rd(
    server: tuple[Responder, int], rd: bool
) -> None:
    responder, port = server
    for qid in (0x0001, 0xBEEF):
        raw = await udp(port, query_bytes("shop.default.svc.cluster.local", qid=qid, rd=rd))
        reply = dns.message.from_wire(raw)
        assert reply.id == qid
        assert bool(reply.flags & dns.flags.RD) is rd
        assert reply.flags & dns.flags.QR and reply.flags & dns.flags.AA
        assert not reply.flags & dns.flags.RA  # not a recursor
        assert reply.rcode() == dns.rcode.NOERROR
        assert addresses(reply) == ["127.96.0.20"]
        assert reply.answer[0].ttl == 5
    assert responder.fast == 2  # both answered inline, from pre-rendered bytes


async def test_edns_query_gets_the_same_answer_and_an_opt(server: tuple[Responder, int]) -> None:
    responder, port = server
    cookie = dns.edns.CookieOption(b"\x01" * 8, b"")  # dig sends one by default
    reply = await ask(port, query_bytes("shop.default.svc.cluster.local", edns=0, options=[cookie]))
    assert reply.edns == 0 and reply.payload == 1232
    assert addresses(reply) == ["127.96.0.20"]
    assert responder.counts == {Rcode.NOERROR: 1}  # the template path, not dnspython


async def test_mixed_case_is_answered_in_the_askers_case(server: tuple[Responder, int]) -> None:
    _, port = server
    reply = await ask(port, query_bytes("ShOp.DeFault.svc.CLUSTER.local"))
    assert reply.question[0].name.to_text() == "ShOp.DeFault.svc.CLUSTER.local."
    assert reply.answer[0].name.to_text() == "ShOp.DeFault.svc.CLUSTER.local."
    assert addresses(reply) == ["127.96.0.20"]


async def test_srv_carries_targets_in_additional(server: tuple[Responder, int]) -> None:
    _, port = server
    reply = await ask(port, query_bytes("_http._tcp.shop.default.svc.cluster.local", "SRV"))
    assert addresses(reply) == ["0 100 80 shop.default.svc.cluster.local."]
    assert [r.to_text() for rrset in reply.additional for r in rrset] == ["127.96.0.20"]


async def test_headless_addresses_rotate(server: tuple[Responder, int]) -> None:
    _, port = server
    firsts = set()
    for _ in range(6):
        reply = await ask(port, query_bytes("few.default.svc.cluster.local"))
        assert sorted(addresses(reply)) == ["127.244.0.2", "127.244.0.3", "127.244.0.4"]
        firsts.add(addresses(reply)[0])
    assert len(firsts) == 3


# ---------------------------------------------------------------- negative answers


@pytest.mark.parametrize("edns", [False, 0], ids=["plain", "edns"])
@pytest.mark.parametrize(
    ("name", "rtype", "rcode", "soa"),
    [
        pytest.param("nope.default.svc.cluster.local", "A", dns.rcode.NXDOMAIN, True, id="nx"),
        pytest.param(
            "shop.default.svc.cluster.local", "AAAA", dns.rcode.NOERROR, True, id="nodata"
        ),
        pytest.param("default.svc.cluster.local", "A", dns.rcode.NOERROR, True, id="ent"),
        pytest.param("example.com", "A", dns.rcode.REFUSED, False, id="refused"),
    ],
)
async def test_negative_answers(
    server: tuple[Responder, int],
    name: str,
    rtype: str,
    rcode: dns.rcode.Rcode,
    soa: bool,
    edns: int | bool,
) -> None:
    _, port = server
    reply = await ask(port, query_bytes(name, rtype, edns=edns))
    assert reply.rcode() == rcode
    assert reply.id == 0x1234 and reply.answer == []
    assert [r.rdtype for r in reply.authority] == ([dns.rdatatype.SOA] if soa else [])
    if soa:
        assert reply.authority[0].name.to_text() == "cluster.local."
    assert reply.edns == (0 if edns is not False else -1)
    if rcode == dns.rcode.REFUSED and edns is not False:
        (ede,) = reply.options
        assert isinstance(ede, dns.edns.EDEOption)
        assert ede.code == dns.edns.EDECode.NOT_AUTHORITATIVE
        assert "does not forward" in (ede.text or "")


# ---------------------------------------------------------------- truncation and TCP


async def test_udp_without_edns_truncates_over_512_bytes(server: tuple[Responder, int]) -> None:
    _, port = server
    raw = await udp(port, query_bytes("big.default.svc.cluster.local"))
    reply = dns.message.from_wire(raw)
    assert len(raw) <= 512
    assert reply.flags & dns.flags.TC
    big = await ask(port, query_bytes("big.default.svc.cluster.local", edns=0, payload=4096))
    assert not big.flags & dns.flags.TC
    assert sorted(addresses(big)) == sorted(BIG)
    small = await ask(port, query_bytes("big.default.svc.cluster.local", edns=0, payload=512))
    assert small.flags & dns.flags.TC


async def test_tcp_is_length_prefixed_pipelined_and_untruncated(
    server: tuple[Responder, int],
) -> None:
    _, port = server
    queries = [
        query_bytes("big.default.svc.cluster.local", qid=1),
        query_bytes("shop.default.svc.cluster.local", qid=2, edns=0),
        query_bytes("nope.default.svc.cluster.local", qid=3),
    ]
    stream = b"".join(len(q).to_bytes(2, "big") + q for q in queries)
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        for i in range(0, len(stream), 7):  # in pieces, frames split anywhere
            writer.write(stream[i : i + 7])
            await writer.drain()
        replies = []
        for _ in queries:
            size = int.from_bytes(await reader.readexactly(2), "big")
            replies.append(dns.message.from_wire(await reader.readexactly(size)))
    finally:
        writer.close()
    assert [r.id for r in replies] == [1, 2, 3]
    assert not replies[0].flags & dns.flags.TC
    assert sorted(addresses(replies[0])) == sorted(BIG)
    assert addresses(replies[1]) == ["127.96.0.20"] and replies[1].edns == 0
    assert replies[2].rcode() == dns.rcode.NXDOMAIN


async def test_dnspython_clients_agree(server: tuple[Responder, int]) -> None:
    _, port = server
    query = dns.message.make_query("_http._tcp.shop.default.svc.cluster.local", "SRV")
    for reply in (
        await dns.asyncquery.udp(query, HOST, port=port, timeout=2),
        await dns.asyncquery.tcp(query, HOST, port=port, timeout=2),
    ):
        assert addresses(reply) == ["0 100 80 shop.default.svc.cluster.local."]


# ---------------------------------------------------------------- the slow path


def header(qid: int, flags: int, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar)


QUESTION = query_bytes("shop.default.svc.cluster.local")[12:]


@pytest.mark.parametrize(
    ("data", "rcode"),
    [
        pytest.param(header(7, 0x0100, qd=2) + QUESTION + QUESTION, Rcode.FORMERR, id="two-q"),
        pytest.param(header(7, 0x2100) + QUESTION, Rcode.NOTIMP, id="opcode-notify"),
        pytest.param(header(7, 0x0100) + QUESTION[:-3], Rcode.FORMERR, id="cut-short"),
        pytest.param(header(7, 0x0100) + QUESTION + b"junk", Rcode.FORMERR, id="trailing-junk"),
        pytest.param(
            query_bytes("shop.default.svc.cluster.local", qid=7, edns=1), Rcode.BADVERS, id="edns1"
        ),
        pytest.param(header(7, 0x0100) + QUESTION[:-2] + b"\x00\x03", Rcode.REFUSED, id="chaos"),
    ],
)
async def test_slow_path_errors(server: tuple[Responder, int], data: bytes, rcode: Rcode) -> None:
    _, port = server
    raw = await udp(port, data)
    assert raw[:2] == data[:2]
    reply_rcode = raw[3] & 0x0F
    if rcode == Rcode.BADVERS:
        reply = dns.message.from_wire(raw)
        assert reply.rcode() == dns.rcode.BADVERS
    else:
        assert reply_rcode == rcode
        assert raw[2] & 0x80  # QR


async def test_responses_and_scraps_are_dropped(server: tuple[Responder, int]) -> None:
    responder, port = server
    for data in (header(7, 0x8100) + QUESTION, b"\x00\x01\x02"):
        with pytest.raises(TimeoutError):
            await udp(port, data, timeout=0.3)
    assert responder.counts[-1] == 2


async def test_pod_records_and_any_go_the_slow_way(server: tuple[Responder, int]) -> None:
    _, port = server
    assert addresses(await ask(port, query_bytes("127-244-1-9.default.pod.cluster.local"))) == [
        "127.244.1.9"
    ]
    reply = await ask(port, query_bytes("docs.default.svc.cluster.local", "ANY"))
    assert addresses(reply) == ["docs.example.com."]


# ---------------------------------------------------------------- fast == slow


QUESTIONS = [
    ("shop.default.svc.cluster.local", "A"),
    ("SHOP.default.svc.cluster.local", "A"),
    ("_http._tcp.shop.default.svc.cluster.local", "SRV"),
    ("few.default.svc.cluster.local", "A"),
    ("big.default.svc.cluster.local", "A"),
    ("docs.default.svc.cluster.local", "A"),
    ("docs.default.svc.cluster.local", "CNAME"),
    ("docs.default.svc.cluster.local", "TXT"),
    ("nope.default.svc.cluster.local", "A"),
    ("default.svc.cluster.local", "SRV"),
    ("cluster.local", "SOA"),
    ("dns-version.cluster.local", "TXT"),
    ("20.0.96.127.in-addr.arpa", "PTR"),
    ("20.0.96.127.in-addr.arpa", "A"),
    ("example.com", "A"),
    ("1-2-3-4.default.pod.cluster.local", "A"),
]


def records(section: list[Any]) -> list[str]:
    """A section's records, one per line, in a stable order (rotations aside)."""
    return sorted(line for rrset in section for line in str(rrset).splitlines())


@pytest.mark.parametrize(("name", "rtype"), QUESTIONS)
@pytest.mark.parametrize("edns", [False, 0], ids=["plain", "edns"])
@pytest.mark.parametrize("udp_", [True, False], ids=["udp", "tcp"])
def test_prerendered_answers_equal_the_slow_path(
    name: str, rtype: str, edns: int | bool, udp_: bool
) -> None:
    table = Table.build(make_zone())
    data = query_bytes(name, rtype, edns=edns)
    fast, fast_rcode = table.answer(data, udp=udp_)
    slow, slow_rcode = slow_reply(data, table.zone, udp=udp_)
    assert fast is not None and slow is not None
    assert fast_rcode == slow_rcode
    a, b = dns.message.from_wire(fast), dns.message.from_wire(slow)
    assert (a.flags, a.rcode(), a.edns, a.payload) == (b.flags, b.rcode(), b.edns, b.payload)
    for section in ("question", "answer", "authority", "additional"):
        assert records(getattr(a, section)) == records(getattr(b, section))


def test_a_rebuild_renders_only_changed_answers() -> None:
    first = Table.build(make_zone())
    web = service("web", clusterIP="127.96.0.30", ports=[{"port": 80}])
    second = Table.build(make_zone([*SERVICES, web]), first)
    key = ("shop.default.svc.cluster.local.", RType.A)
    assert second.rendered[key] is first.rendered[key]
    assert len(first.positive[first.rendered[key].question]) == VARIANTS
    assert second.positive[b"\x03web\x07default\x03svc\x07cluster\x05local\x00\x00\x01\x00\x01"]
    few = ("few.default.svc.cluster.local.", RType.A)
    assert len(second.rendered[few].variants) == VARIANTS * min(3, MAX_ROTATIONS)


def test_an_incremental_update_equals_a_full_build() -> None:
    builder = ZoneBuilder(domain="cluster.local", ttl=5)
    groups = group_slices(SLICES)

    def records(svc: objects_pb2.Service) -> dict[tuple[str, str], list[Any]]:
        key = (svc.metadata.namespace, svc.metadata.name)
        return {
            key: service_records(svc, groups.get(ObjectKey(key), []), domain="cluster.local", ttl=5)
        }

    everything: dict[tuple[str, str], list[Any]] = {}
    for svc in SERVICES:
        everything.update(records(svc))
    zone, _, _ = builder.update(everything, 1)
    table = Table.build(zone)
    web = service("web", clusterIP="127.96.0.30", ports=[{"name": "http", "port": 80}])
    other = service("api", clusterIP="127.96.0.31", ports=[{"name": "grpc", "port": 81}])
    steps = [
        (records(web), [*SERVICES, web]),
        (records(other), [*SERVICES, web, other]),
        ({("default", "web"): []}, [*SERVICES, other]),
        ({("default", "api"): []}, SERVICES),
    ]
    for serial, (changed, services) in enumerate(steps, start=2):
        zone, answers, removed = builder.update(changed, serial)
        table = Table.update(zone, table, answers, removed)
        full = Table.build(build_zone(services, SLICES, domain="cluster.local", serial=serial))
        assert table.positive == full.positive
        assert (table.names, table.special) == (full.names, full.special)
        assert table.nxdomain == full.nxdomain


async def test_swap_changes_answers_at_once(server: tuple[Responder, int]) -> None:
    responder, port = server
    assert (await ask(port, query_bytes("web.default.svc.cluster.local"))).rcode() == 3
    web = service("web", clusterIP="127.96.0.30", ports=[{"port": 80}])
    responder.swap(Table.build(make_zone([*SERVICES, web]), responder.table))
    assert addresses(await ask(port, query_bytes("web.default.svc.cluster.local"))) == [
        "127.96.0.30"
    ]


def test_metrics_count_queries_by_rcode() -> None:
    responder = Responder(Table.build(make_zone()))
    responder.fast = 3
    responder.answer(query_bytes("nope.default.svc.cluster.local"), udp=True)
    responder.answer(query_bytes("example.com"), udp=True)
    (family,) = QueryCollector(responder).collect()
    counts = {s.labels["rcode"]: s.value for s in family.samples if s.name.endswith("_total")}
    assert counts == {"NOERROR": 3, "NXDOMAIN": 1, "REFUSED": 1}


# ---------------------------------------------------------------- binding


async def test_port_zero_binds_udp_and_tcp_on_one_port() -> None:
    responder = Responder(Table.build(make_zone()))
    listeners = await listen(responder, HOST, 0)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            with pytest.raises(OSError):
                sock.bind((HOST, listeners.port))
        with socket.create_connection((HOST, listeners.port), timeout=1):
            pass
    finally:
        await listeners.close()


async def test_a_privileged_port_falls_back_when_refused(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = dns_server._sockets

    def unprivileged(host: str, port: int) -> tuple[socket.socket, socket.socket]:
        if 0 < port < 1024:
            raise PermissionError(13, "Permission denied")
        return real(host, port)

    monkeypatch.setattr(dns_server, "_sockets", unprivileged)
    responder = Responder(Table.build(make_zone()))
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        fallback = probe.getsockname()[1]
    listeners = await listen(responder, HOST, 53, fallback)
    try:
        assert listeners.port == fallback
        assert f"serving DNS on 127.0.0.1:{fallback} instead" in caplog.text
    finally:
        await listeners.close()
    with pytest.raises(OSError, match="need root or CAP_NET_BIND_SERVICE"):
        await listen(responder, HOST, 53, 0)


_TABLE = Table.build(make_zone())
_QUERY = dns.message.make_query("shop.default.svc.cluster.local", "A", use_edns=True).to_wire()


@settings(max_examples=1500, deadline=None, derandomize=True)
@given(
    packet=st.one_of(
        st.binary(max_size=600),
        st.lists(st.tuples(st.integers(0, len(_QUERY) - 1), st.integers(0, 255)), max_size=8).map(
            lambda flips: bytes(
                b if i not in dict(flips) else dict(flips)[i] for i, b in enumerate(_QUERY)
            )
        ),
        st.integers(0, len(_QUERY)).map(lambda cut: _QUERY[:cut]),
    ),
    udp=st.booleans(),
)
def test_malformed_queries_get_no_answer_formerr_or_an_answer_never_an_error(
    packet: bytes, udp: bool
) -> None:
    """Random and mutated packets through the table, as the server hands them over:
    each is dropped or answered with a message carrying the query's id."""
    reply, _ = _TABLE.answer(packet, udp=udp)
    if reply is not None:
        assert reply[:2] == packet[:2]
        assert reply[2] & 0x80  # QR: a response


async def test_a_trickling_tcp_client_is_closed_after_the_idle_time(
    server: tuple[Responder, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A byte every 0.1 s never completes a query: the idle timer is not reset by it."""
    monkeypatch.setattr(dns_server, "TCP_IDLE_SECONDS", 0.5)
    _, port = server
    reader, writer = await asyncio.open_connection(HOST, port)
    query = dns.message.make_query("shop.default.svc.cluster.local", "A").to_wire()
    framed = len(query).to_bytes(2, "big") + query
    loop = asyncio.get_running_loop()
    began = loop.time()
    closed = asyncio.create_task(reader.read())
    for byte in framed:
        if closed.done():
            break
        writer.write(bytes([byte]))
        await asyncio.sleep(0.1)
    assert closed.done(), "the server kept a trickling connection open"
    assert await closed == b""
    assert loop.time() - began < len(framed) * 0.1
    writer.close()
