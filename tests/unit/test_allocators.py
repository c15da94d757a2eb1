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


# ------------------------------------------------------------------ healthCheckNodePort


def lb(
    policy: str = "Local", health: int = 0, node_ports: tuple[int, ...] = (0,)
) -> dict[str, object]:
    """A LoadBalancer spec, one TCP port per entry of `node_ports` (0: pick one)."""
    spec: dict[str, object] = {
        "type": "LoadBalancer",
        "clusterIP": "10.96.0.5",
        "externalTrafficPolicy": policy,
        "ports": [
            {"name": f"p{i}", "port": 80 + i, "protocol": "TCP", "nodePort": port}
            for i, port in enumerate(node_ports)
        ],
    }
    if health:
        spec["healthCheckNodePort"] = health
    return spec


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            lb(health=30009, node_ports=(30001,)),
            {
                Claim.cluster_ip("10.96.0.5"),
                Claim.node_port("TCP", 30001),
                Claim.node_port("TCP", 30009),
            },
            id="local-holds-its-health-port",
        ),
        pytest.param(
            lb(policy="Cluster", health=30009, node_ports=(30001,)),
            {Claim.cluster_ip("10.96.0.5"), Claim.node_port("TCP", 30001)},
            id="cluster-policy-holds-none",
        ),
    ],
)
def test_service_claims_health_check_port(spec: dict[str, object], expected: set[Claim]) -> None:
    assert service_claims(svc(spec)) == expected


@pytest.mark.parametrize(
    ("spec", "taken", "expected_health", "expected_ports"),
    [
        pytest.param(lb(), set(), None, None, id="picked"),
        pytest.param(lb(health=30007), set(), 30007, None, id="requested-kept"),
        pytest.param(
            # Only 30000 and 30001 free: the port and the health check get one each.
            lb(),
            {Claim.node_port("TCP", p) for p in range(30002, 30010)},
            None,
            None,
            id="never-the-own-node-port",
        ),
        pytest.param(
            # A UDP nodePort on 30000 does not stop a TCP health check there.
            lb() | {"ports": [{"port": 53, "protocol": "UDP", "nodePort": 30000}]},
            {Claim.node_port("TCP", p) for p in range(30001, 30010)},
            30000,
            (30000,),
            id="per-protocol",
        ),
        pytest.param(
            # The requested health port is the only free one besides 30001: the automatic
            # nodePort must go around it.
            lb(health=30000),
            {Claim.node_port("TCP", p) for p in range(30002, 30010)},
            30000,
            (30001,),
            id="node-port-pick-avoids-requested-health-port",
        ),
        pytest.param(lb(policy="Cluster"), set(), 0, None, id="cluster-policy-none"),
    ],
)
def test_assign_health_check_port(
    spec: dict[str, object],
    taken: set[Claim],
    expected_health: int | None,
    expected_ports: tuple[int, ...] | None,
) -> None:
    service = svc(spec)
    result = assign_service(
        service, ips=IPS, ports=PORTS, is_taken=taken.__contains__, rng=random.Random(0)
    )
    assert result.errors == ()
    health = service.spec.health_check_node_port
    if expected_health is None:
        assert health in range(30000, 30010)
    else:
        assert health == expected_health
    node_ports = tuple(p.node_port for p in service.spec.ports)
    if expected_ports is not None:
        assert node_ports == expected_ports
    assert result.claims == service_claims(service)
    tcp = [p.node_port for p in service.spec.ports if p.protocol == "TCP"]
    assert health not in tcp, "the health check port is not one of the Service's own"
    assert not result.claims & taken


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param(
            lb(health=40000),
            "spec.healthCheckNodePort: Invalid value: 40000: provided port is not in the valid "
            "range. The range of valid ports is 30000-30009",
            id="out-of-range",
        ),
        pytest.param(
            lb(health=30003, node_ports=(30003,)),
            "spec.healthCheckNodePort: Invalid value: 30003: provided port is already allocated",
            id="own-node-port",
        ),
    ],
)
def test_assign_refuses_health_check_port(spec: dict[str, object], message: str) -> None:
    result = assign_service(
        svc(spec), ips=IPS, ports=PORTS, is_taken=lambda c: False, rng=random.Random(0)
    )
    assert [str(e) for e in result.errors] == [message]


def test_health_check_pick_skips_a_held_node_port_the_service_keeps() -> None:
    # On update the Service's own claims count as free for it, but not twice.
    held = frozenset({Claim.node_port("TCP", 30004)})
    others = {Claim.node_port("TCP", p) for p in range(30000, 30010) if p not in (30004, 30005)}
    for seed in range(20):
        service = svc(lb(node_ports=(30004,)))
        assign_service(
            service,
            ips=IPS,
            ports=PORTS,
            is_taken=others.__contains__,
            held=held,
            rng=random.Random(seed),
        )
        assert service.spec.health_check_node_port == 30005


def test_health_check_pick_reports_a_full_range() -> None:
    everything_taken = {Claim.node_port("TCP", p) for p in range(30000, 30010)}
    service = svc(lb(node_ports=(30000,)))
    with pytest.raises(RangeFullError):
        assign_service(
            service,
            ips=IPS,
            ports=PORTS,
            is_taken=everything_taken.__contains__,
            held=frozenset({Claim.node_port("TCP", 30000)}),
            rng=random.Random(0),
        )


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(), taken_ports=st.sets(st.integers(30000, 30009), max_size=7))
def test_health_check_port_never_collides(seed: int, taken_ports: set[int]) -> None:
    taken = {Claim.node_port("TCP", p) for p in taken_ports}
    service = svc(lb(node_ports=(0, 0)))
    result = assign_service(
        service, ips=IPS, ports=PORTS, is_taken=taken.__contains__, rng=random.Random(seed)
    )
    ports = [p.node_port for p in service.spec.ports] + [service.spec.health_check_node_port]
    assert len(set(ports)) == 3
    assert not result.claims & taken
    assert result.claims == service_claims(service)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(lb(health=30007), lb(), 30007, id="reapply-without-it-keeps-it"),
        pytest.param(lb(health=30007), lb(health=30008), 30008, id="changed-left-to-validation"),
        pytest.param(lb(health=30007), lb(policy="Cluster"), 0, id="to-cluster-policy"),
        pytest.param(
            lb(health=30007), lb(policy="Cluster", health=30007), 0, id="to-cluster-get-output"
        ),
        pytest.param(
            lb(health=30007),
            lb(policy="Cluster", health=30008),
            30008,
            id="to-cluster-changed-left-to-validation",
        ),
        pytest.param(
            lb(health=30007),
            {"type": "NodePort", "ports": [{"port": 80}], "healthCheckNodePort": 30007},
            0,
            id="to-node-port-get-output",
        ),
        pytest.param(lb(policy="Cluster"), lb(), 0, id="to-local-picks-later"),
    ],
)
def test_keep_allocated_health_check_port(
    old: dict[str, object], new: dict[str, object], expected: int
) -> None:
    updated = svc(new)
    keep_allocated_values(svc(old), updated)
    assert updated.spec.health_check_node_port == expected
