"""The hand-written DNS wire writer (services/dns/render.py) against dnspython's model.

Every reply `render` writes must parse with dnspython and carry exactly the
records of the `Answer` (dnspython builds the same message from the same
answer as the reference); cut replies keep whole records, as many as fit, and
say TC when the answer section lost any.
"""

from __future__ import annotations

from typing import Any

import dns.flags
import dns.message
import dns.rdatatype
import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st

from kubelab.v1 import objects_pb2
from services.dns.logic.dns_records import RType, build_zone
from services.dns.messages import OUR_PAYLOAD, TCP_LIMIT, UDP_LIMIT, opt_rr, reply_message
from services.dns.render import render

ZONE = "cluster.local."


def service(name: str, **spec: Any) -> objects_pb2.Service:
    body = {"metadata": {"name": name, "namespace": "default"}, "spec": spec}
    return json_format.ParseDict(body, objects_pb2.Service())


def endpoint_slice(
    service_name: str, count: int, *, hostnames: bool = False
) -> objects_pb2.EndpointSlice:
    endpoints = [
        {"addresses": [f"10.{n // 65536}.{n // 256 % 256}.{n % 256}"]}
        | ({"hostname": f"h{n}"} if hostnames else {})
        for n in range(count)
    ]
    body = {
        "metadata": {
            "name": f"{service_name}-x",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "protocol": "TCP", "port": 8080}],
    }
    return json_format.ParseDict(body, objects_pb2.EndpointSlice())


def lines(section: list[Any]) -> list[str]:
    return sorted(line.lower() for rrset in section for line in str(rrset).splitlines())


def check_whole(owner: str, rtype: RType, zone: Any) -> None:
    """render's full reply parses and holds exactly what dnspython's model holds."""
    answer = zone.lookup(owner, rtype)
    rendered = render(owner, rtype, answer)
    assert rendered is not None
    ours = dns.message.from_wire(b"\x00\x00" + rendered.cut(TCP_LIMIT))
    query = dns.message.make_query(owner, dns.rdatatype.RdataType(rtype), use_edns=False)
    query.flags = 0
    model = reply_message(query, answer, zone.domain)
    assert ours.flags == model.flags
    assert ours.rcode() == model.rcode()
    for section in ("question", "answer", "authority", "additional"):
        assert lines(getattr(ours, section)) == lines(getattr(model, section)), section


SMALL = build_zone(
    [
        service("shop", clusterIP="127.96.0.20", ports=[{"name": "http", "port": 80}]),
        service("db", clusterIP="None", ports=[{"name": "http", "port": 8080}]),
        service("docs", type="ExternalName", externalName="docs.example.com"),
    ],
    [endpoint_slice("db", 5, hostnames=True)],
    domain=ZONE,
)


@pytest.mark.parametrize("question", sorted(SMALL.answers()), ids=lambda q: f"{q[0]}-{q[1].name}")
def test_every_positive_answer_of_a_zone_is_what_dnspython_would_send(
    question: tuple[str, RType],
) -> None:
    check_whole(*question, SMALL)


@pytest.mark.parametrize(
    ("owner", "rtype"),
    [
        pytest.param("nope.default.svc.cluster.local.", RType.A, id="nxdomain-with-soa"),
        pytest.param("default.svc.cluster.local.", RType.SRV, id="nodata-with-soa"),
        pytest.param("docs.default.svc.cluster.local.", RType.A, id="cname-followed"),
    ],
)
def test_negative_and_cname_answers_are_what_dnspython_would_send(owner: str, rtype: RType) -> None:
    check_whole(owner, rtype, SMALL)


def test_a_mixed_case_question_is_echoed_and_names_point_into_it() -> None:
    owner = "SHOP.Default.svc.cluster.local."
    rendered = render(owner, RType.A, SMALL.lookup(owner.lower(), RType.A))
    assert rendered is not None
    reply = dns.message.from_wire(b"\x00\x00" + rendered.cut(TCP_LIMIT))
    assert str(reply.question[0].name) == owner
    assert reply.answer[0].name == reply.question[0].name


BIG = build_zone(
    [service("big", clusterIP="None", ports=[{"name": "http", "port": 8080}])],
    [endpoint_slice("big", 5000)],
    domain=ZONE,
)
BIG_NAME = "big.default.svc.cluster.local."


@pytest.mark.parametrize(
    ("limit", "opt"),
    [
        pytest.param(UDP_LIMIT, b"", id="udp-512"),
        pytest.param(OUR_PAYLOAD, opt_rr(), id="edns-1232"),
        pytest.param(TCP_LIMIT, b"", id="tcp-65535"),
    ],
)
def test_a_5000_address_answer_carries_what_fits_with_tc(limit: int, opt: bytes) -> None:
    """As CoreDNS: whole records up to the limit, TC set (dnspython would send none).
    Header 12 bytes, question 31 + 4, each A record 16 (its owner a pointer)."""
    most = (limit - len(opt) - 12 - 35) // 16
    rendered = render(BIG_NAME, RType.A, BIG.lookup(BIG_NAME, RType.A))
    assert rendered is not None
    wire = rendered.cut(limit, opt)
    assert len(wire) + 2 <= limit
    reply = dns.message.from_wire(b"\x00\x00" + wire)
    assert reply.flags & dns.flags.TC
    assert len(reply.answer[0]) == most
    assert bool(opt) == (reply.edns == 0)


def test_a_5000_srv_answer_keeps_whole_records_and_drops_glue_silently() -> None:
    owner = "_http._tcp.big.default.svc.cluster.local."
    rendered = render(owner, RType.SRV, BIG.lookup(owner, RType.SRV))
    assert rendered is not None
    reply = dns.message.from_wire(b"\x00\x00" + rendered.cut(TCP_LIMIT))
    assert reply.flags & dns.flags.TC
    targets = {r.target for r in reply.answer[0]}
    assert len(targets) == len(reply.answer[0]) > 500
    assert all(rrset.name in targets for rrset in reply.additional)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    counts=st.lists(st.integers(0, 40), min_size=1, max_size=4),
    hostnames=st.booleans(),
    names=st.lists(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=20),
        min_size=4,
        max_size=4,
        unique=True,
    ),
)
def test_random_zones_render_as_dnspython_would(
    counts: list[int], hostnames: bool, names: list[str]
) -> None:
    services = []
    slices = []
    for index, count in enumerate(counts):
        name = "s" + names[index]
        services.append(
            service(name, clusterIP="None", ports=[{"name": "http", "port": 8080}])
            if index % 2
            else service(name, clusterIP=f"127.96.0.{index + 1}", ports=[{"name": "p", "port": 80}])
        )
        slices.append(endpoint_slice(name, count, hostnames=hostnames))
    zone = build_zone(services, slices, domain=ZONE)
    for owner, rtype in zone.answers():
        if len(zone.lookup(owner, rtype).answer) <= 40:  # what fits whole in TCP
            check_whole(owner, rtype, zone)
