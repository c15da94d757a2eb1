"""Pure allocation logic: ranges, picks, what a Service claims, values kept on update."""

from __future__ import annotations

import ipaddress
import random

import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st

from kubelab.core.allocators import (
    Claim,
    ClusterIPAllocator,
    NodePortAllocator,
    PortRange,
    RangeFullError,
    assign_service,
    keep_allocated_values,
    service_claims,
)
from kubelab.v1 import objects_pb2


def svc(spec: dict[str, object]) -> objects_pb2.Service:
    return json_format.ParseDict({"metadata": {"name": "s"}, "spec": spec}, objects_pb2.Service())


IPS = ClusterIPAllocator("10.96.0.0/24", reserved=["10.96.0.10"])
PORTS = NodePortAllocator(PortRange(30000, 30009))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("30000-32767", PortRange(30000, 32767), id="default"),
        pytest.param("80-80", PortRange(80, 80), id="single"),
    ],
)
def test_port_range_parses(text: str, expected: PortRange) -> None:
    assert PortRange.parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("30000", id="no-dash"),
        pytest.param("b-a", id="not-numbers"),
        pytest.param("32767-30000", id="reversed"),
        pytest.param("0-10", id="zero"),
        pytest.param("1-70000", id="too-high"),
    ],
)
def test_port_range_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid port range"):
        PortRange.parse(text)


@pytest.mark.parametrize(
    ("ip", "message"),
    [
        pytest.param("10.96.0.5", None, id="in-range"),
        pytest.param(
            "10.97.0.5",
            'spec.clusterIP: Invalid value: "10.97.0.5": provided IP is not in the valid range. '
            "The range of valid IPs is 10.96.0.0/24",
            id="outside",
        ),
        pytest.param("10.96.0.0", "not in the valid range", id="network-address"),
        pytest.param("10.96.0.255", "not in the valid range", id="broadcast"),
        pytest.param("10.96.0.10", "reserved for cluster DNS", id="dns"),
        pytest.param("banana", "must be a valid IP address", id="not-an-ip"),
    ],
)
def test_cluster_ip_requests(ip: str, message: str | None) -> None:
    problem = IPS.check_requested("spec.clusterIP", ip)
    if message is None:
        assert problem is None
    else:
        assert problem is not None and message in str(problem)


def test_node_port_out_of_range_uses_kubernetes_words() -> None:
    allocator = NodePortAllocator(PortRange(30000, 32767))
    problem = allocator.check_requested("spec.ports[1].nodePort", 40000)
    assert str(problem) == (
        "spec.ports[1].nodePort: Invalid value: 40000: provided port is not in the valid "
        "range. The range of valid ports is 30000-32767"
    )


def test_pick_fills_the_whole_range_then_reports_full() -> None:
    taken: set[Claim] = set()
    rng = random.Random(1)
    for _ in range(10):
        port = PORTS.pick("TCP", taken.__contains__, rng)
        taken.add(Claim.node_port("TCP", port))
    assert {int(c.name.split("/")[1]) for c in taken} == set(range(30000, 30010))
    with pytest.raises(RangeFullError):
        PORTS.pick("TCP", taken.__contains__, rng)
    # The same numbers are free for UDP: NodePorts are per protocol.
    assert PORTS.pick("UDP", taken.__contains__, rng) in range(30000, 30010)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(), taken_count=st.integers(min_value=0, max_value=252))
def test_cluster_ip_pick_is_free_usable_and_not_reserved(seed: int, taken_count: int) -> None:
    rng = random.Random(seed)
    taken: set[Claim] = set()
    for _ in range(taken_count):
        taken.add(Claim.cluster_ip(IPS.pick(taken.__contains__, rng)))
    assert len(taken) == taken_count
    try:
        ip = IPS.pick(taken.__contains__, rng)
    except RangeFullError:
        assert taken_count == 253
        return
    assert Claim.cluster_ip(ip) not in taken
    assert ip != "10.96.0.10"
    assert ipaddress.IPv4Address(ip) in ipaddress.IPv4Network("10.96.0.0/24")
    assert IPS.check_requested("spec.clusterIP", ip) is None


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            {"type": "ClusterIP", "clusterIP": "10.0.0.1", "ports": [{"port": 80}]},
            {Claim.cluster_ip("10.0.0.1")},
            id="cluster-ip",
        ),
        pytest.param(
            {
                "type": "NodePort",
                "clusterIP": "10.0.0.1",
                "ports": [
                    {"port": 53, "protocol": "UDP", "nodePort": 30053},
                    {"port": 53, "protocol": "TCP", "nodePort": 30053},
                ],
            },
            {
                Claim.cluster_ip("10.0.0.1"),
                Claim.node_port("UDP", 30053),
                Claim.node_port("TCP", 30053),
            },
            id="node-port-per-protocol",
        ),
        pytest.param({"clusterIP": "None", "ports": [{"port": 80}]}, set(), id="headless"),
        pytest.param({"type": "ExternalName", "externalName": "x.example"}, set(), id="external"),
    ],
)
def test_service_claims(spec: dict[str, object], expected: set[Claim]) -> None:
    assert service_claims(svc(spec)) == expected


def test_assign_fills_missing_values_and_keeps_requested() -> None:
    service = svc(
        {
            "type": "NodePort",
            "ports": [
                {"port": 80, "protocol": "TCP", "nodePort": 30001},
                {"port": 81, "protocol": "TCP"},
            ],
        }
    )
    result = assign_service(
        service, ips=IPS, ports=PORTS, is_taken=lambda c: False, rng=random.Random(0)
    )
    assert result.errors == ()
    assert service.spec.ports[0].node_port == 30001
    assert service.spec.ports[1].node_port not in (0, 30001)
    assert list(service.spec.cluster_ips) == [service.spec.cluster_ip]
    assert result.claims == service_claims(service)


def test_assign_reports_out_of_range_requests() -> None:
    service = svc(
        {"type": "NodePort", "clusterIP": "1.2.3.4", "ports": [{"port": 80, "nodePort": 40000}]}
    )
    result = assign_service(
        service, ips=IPS, ports=PORTS, is_taken=lambda c: False, rng=random.Random(0)
    )
    assert [e.field for e in result.errors] == ["spec.clusterIP", "spec.ports[0].nodePort"]


def test_assign_clears_node_ports_when_type_no_longer_needs_them() -> None:
    service = svc({"type": "ClusterIP", "ports": [{"port": 80, "nodePort": 30001}]})
    result = assign_service(
        service, ips=IPS, ports=PORTS, is_taken=lambda c: False, rng=random.Random(0)
    )
    assert service.spec.ports[0].node_port == 0
    assert all(c.kind.value == "clusterips" for c in result.claims)


def test_held_claims_count_as_free_for_their_owner() -> None:
    everything_taken = {Claim.node_port("TCP", p) for p in range(30000, 30010)}
    service = svc({"type": "NodePort", "clusterIP": "10.96.0.5", "ports": [{"port": 80}]})
    held = frozenset({Claim.node_port("TCP", 30004)})
    result = assign_service(
        service,
        ips=IPS,
        ports=PORTS,
        is_taken=everything_taken.__contains__,
        held=held,
        rng=random.Random(0),
    )
    assert service.spec.ports[0].node_port == 30004
    assert held <= result.claims


def test_keep_allocated_values_on_reapply() -> None:
    old = svc(
        {
            "type": "NodePort",
            "clusterIP": "10.96.0.5",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30007}],
        }
    )
    new = svc({"type": "NodePort", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]})
    keep_allocated_values(old, new)
    assert new.spec.cluster_ip == "10.96.0.5"
    assert new.spec.ports[0].node_port == 30007

    to_cluster_ip = svc({"type": "ClusterIP", "ports": [{"port": 80, "protocol": "TCP"}]})
    keep_allocated_values(old, to_cluster_ip)
    assert to_cluster_ip.spec.ports[0].node_port == 0
