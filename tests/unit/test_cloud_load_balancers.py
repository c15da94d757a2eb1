"""A cloud load balancer's pure rules: spec validation, source ranges, the listener diff,
which health check each node gets, and the round-robin choice with fail-open."""

from __future__ import annotations

from collections import Counter

import pytest
from google.protobuf import json_format
from hypothesis import given
from hypothesis import strategies as st

from kubelab.core.endpoint_choice import Target
from kubelab.v1 import cloud_pb2
from services.cloud_stub.logic.load_balancers import (
    CheckKey,
    CheckKind,
    ListenerKey,
    ListenerPlan,
    RoundRobin,
    check_keys,
    listener_keys,
    normalized,
    plan_listeners,
    validate_spec,
)
from services.cloud_stub.logic.source_ranges import parse_ranges, source_allowed


def spec(**fields: object) -> cloud_pb2.LoadBalancerSpec:
    body: dict[str, object] = {
        "namespace": "default",
        "name": "shop",
        "ports": [{"protocol": "TCP", "port": 80, "nodePort": 30080}],
        "nodes": [{"name": "node-1", "address": "127.10.0.1"}],
        **fields,
    }
    return json_format.ParseDict(body, cloud_pb2.LoadBalancerSpec())


@pytest.mark.parametrize(
    ("fields", "problems"),
    [
        pytest.param({}, [], id="valid"),
        pytest.param({"ports": []}, [], id="no-ports"),
        pytest.param({"name": ""}, ["metadata.name: Required value"], id="no-name"),
        pytest.param(
            {"ports": [{"port": 0, "nodePort": 30080}]},
            ["spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"],
            id="port-zero",
        ),
        pytest.param(
            {"ports": [{"port": 80}]},
            ["spec.ports[0].nodePort: Invalid value: 0: must be between 1 and 65535, inclusive"],
            id="no-node-port",
        ),
        pytest.param(
            {"ports": [{"protocol": "SCTP", "port": 80, "nodePort": 30080}]},
            ['spec.ports[0].protocol: Unsupported value: "SCTP": supported values: "TCP", "UDP"'],
            id="sctp",
        ),
        pytest.param(
            {
                "ports": [
                    {"port": 80, "nodePort": 30080},
                    {"protocol": "UDP", "port": 80, "nodePort": 30081},
                    {"protocol": "TCP", "port": 80, "nodePort": 30082},
                ]
            },
            ['spec.ports[2]: Duplicate value: "80/TCP"'],
            id="duplicate-port-and-protocol",
        ),
        pytest.param(
            {"nodes": [{"address": "127.10.0.1"}, {"address": "127.10.0.1"}]},
            ['nodes[1].address: Duplicate value: "127.10.0.1"'],
            id="duplicate-node",
        ),
        pytest.param(
            {"nodes": [{"address": "node-1"}]},
            ['nodes[0].address: Invalid value: "node-1": must be a valid IPv4 address'],
            id="node-not-an-ip",
        ),
        pytest.param(
            {"healthCheckNodePort": 70000},
            ["spec.healthCheckNodePort: Invalid value: 70000: must be between 1 and 65535"],
            id="health-check-port",
        ),
        pytest.param(
            {"sourceRanges": ["10.0.0.0/8", "everyone"]},
            ['spec.loadBalancerSourceRanges[1]: Invalid value: "everyone": must be an IPv4 CIDR'],
            id="source-range",
        ),
    ],
)
def test_validate_spec(fields: dict[str, object], problems: list[str]) -> None:
    found = [str(p) for p in validate_spec(spec(**fields))]
    assert len(found) == len(problems), found
    for got, want in zip(found, problems, strict=True):
        assert got.startswith(want)


def test_normalized_defaults_protocol_and_leaves_the_input_alone() -> None:
    given_spec = spec(ports=[{"port": 80, "nodePort": 30080}])
    assert normalized(given_spec).ports[0].protocol == "TCP"
    assert given_spec.ports[0].protocol == ""


@pytest.mark.parametrize(
    ("client", "ranges", "allowed"),
    [
        pytest.param("127.0.0.1", [], True, id="no-ranges-everyone"),
        pytest.param("127.55.0.9", ["127.55.0.0/16"], True, id="inside"),
        pytest.param("127.0.0.1", ["127.55.0.0/16"], False, id="outside"),
        pytest.param("127.0.0.1", ["127.55.0.0/16", "127.0.0.1/32"], True, id="second-range"),
        pytest.param("127.55.3.4", ["127.55.3.9/16"], True, id="host-bits-ignored"),
        pytest.param("", ["127.55.0.0/16"], False, id="unknown-client"),
    ],
)
def test_source_allowed(client: str, ranges: list[str], allowed: bool) -> None:
    assert source_allowed(client, parse_ranges(ranges)) is allowed


def test_listener_plan_keeps_what_is_still_wanted() -> None:
    before = listener_keys("127.200.0.1", normalized(spec()))
    after = listener_keys(
        "127.200.0.1",
        normalized(
            spec(
                ports=[
                    {"port": 80, "nodePort": 31111},  # nodePort changed: no rebind
                    {"protocol": "UDP", "port": 53, "nodePort": 30053},
                ]
            )
        ),
    )
    plan = plan_listeners(before, after)
    assert plan == ListenerPlan(close=(), open=(ListenerKey("127.200.0.1", "UDP", 53),))
    assert plan_listeners(after, after).empty


def test_listener_plan_moves_every_listener_with_the_address() -> None:
    old = listener_keys("127.200.0.1", normalized(spec()))
    new = listener_keys("127.200.0.2", normalized(spec()))
    assert plan_listeners(old, new) == ListenerPlan(close=tuple(old), open=tuple(new))


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param({}, CheckKey("127.10.0.1", CheckKind.TCP, 30080), id="tcp-first-port"),
        pytest.param(
            {"healthCheckNodePort": 32000},
            CheckKey("127.10.0.1", CheckKind.HTTP, 32000),
            id="http-health-check-port",
        ),
        pytest.param(
            {
                "ports": [
                    {"protocol": "UDP", "port": 53, "nodePort": 30053},
                    {"protocol": "TCP", "port": 53, "nodePort": 30054},
                ]
            },
            CheckKey("127.10.0.1", CheckKind.TCP, 30054),
            id="first-tcp-port",
        ),
        pytest.param(
            {"ports": [{"protocol": "UDP", "port": 53, "nodePort": 30053}]},
            None,
            id="udp-only-no-check",
        ),
        pytest.param(
            {"nodeHealthPort": 10256},
            CheckKey("127.10.0.1", CheckKind.HTTP, 10256),
            id="node-proxy-healthz",
        ),
        pytest.param(
            {"nodeHealthPort": 10256, "ports": [{"protocol": "UDP", "port": 53, "nodePort": 1}]},
            CheckKey("127.10.0.1", CheckKind.HTTP, 10256),
            id="node-proxy-healthz-covers-udp-only",
        ),
        pytest.param(
            {"nodeHealthPort": 10256, "healthCheckNodePort": 32000},
            CheckKey("127.10.0.1", CheckKind.HTTP, 32000),
            id="local-policy-port-first",
        ),
    ],
)
def test_check_keys(fields: dict[str, object], expected: CheckKey | None) -> None:
    checks = check_keys(normalized(spec(**fields)))
    assert checks.get("127.10.0.1") == expected


def test_check_key_names_what_it_checks() -> None:
    assert str(CheckKey("127.10.0.1", CheckKind.HTTP, 32000)) == "http://127.10.0.1:32000/healthz"


A, B, C = Target("127.10.0.1", 30080), Target("127.10.0.2", 30080), Target("127.10.0.3", 30080)


@pytest.mark.parametrize(
    ("healthy", "tried", "allowed"),
    [
        pytest.param({A, B, C}, set(), {A, B, C}, id="all-healthy"),
        pytest.param({A, C}, set(), {A, C}, id="skips-unhealthy"),
        pytest.param({A, C}, {A}, {C}, id="skips-tried"),
        pytest.param(set(), set(), {A, B, C}, id="fails-open"),
        pytest.param(set(), {A, B}, {C}, id="fails-open-untried"),
        pytest.param({A}, {A}, set(), id="only-healthy-tried"),
        pytest.param(set(), {A, B, C}, set(), id="all-tried"),
    ],
)
def test_round_robin_choice(healthy: set[Target], tried: set[Target], allowed: set[Target]) -> None:
    rotation = RoundRobin()
    picks = {rotation.pick((A, B, C), healthy.__contains__, tried) for _ in range(6)}
    expected: set[Target | None] = set(allowed) if allowed else {None}
    assert picks == expected


def test_round_robin_is_fair() -> None:
    rotation = RoundRobin()
    picks = Counter(rotation.pick((A, B, C), lambda t: True) for _ in range(300))
    assert picks == Counter({A: 100, B: 100, C: 100})


@given(
    healthy=st.sets(st.sampled_from([A, B, C])),
    tried=st.sets(st.sampled_from([A, B, C])),
    turns=st.integers(min_value=0, max_value=10),
)
def test_round_robin_invariants(healthy: set[Target], tried: set[Target], turns: int) -> None:
    rotation = RoundRobin()
    for _ in range(turns):
        rotation.pick((A, B, C), healthy.__contains__)
    target = rotation.pick((A, B, C), healthy.__contains__, tried)
    if target is None:
        # Nothing left: every healthy node was tried, or (none healthy) every node.
        assert (healthy or {A, B, C}) <= tried
        return
    assert target not in tried
    assert target in healthy or not healthy
