"""What the controller asks the cloud for a LoadBalancer Service, and the status it writes back:
the request (ports, Ready nodes, requested address and source ranges from the spec or the
annotations), how each cloud answer reads, and a status that only changes when it must."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import given
from hypothesis import strategies as st

from kubelab.core import lb_requests
from kubelab.core.lb_requests import (
    CONDITION_TYPE,
    EXCLUDE_LABEL,
    IP_ANNOTATION,
    SOURCE_RANGES_ANNOTATION,
    InvalidRequestError,
    Outcome,
    Reason,
    Retry,
    cloud_failure,
    desired_status,
    lb_nodes,
    load_balancer_spec,
)
from kubelab.v1 import cloud_pb2, objects_pb2

NOW = 1_700_000_000.0


def service(
    *,
    type_: str = "LoadBalancer",
    annotations: dict[str, str] | None = None,
    status: dict[str, Any] | None = None,
    generation: int = 1,
    **spec: Any,
) -> objects_pb2.Service:
    body: dict[str, Any] = {
        "metadata": {
            "name": "shop",
            "namespace": "default",
            "uid": "u-1",
            "generation": generation,
            "annotations": annotations or {},
        },
        "spec": {
            "type": type_,
            "ports": [
                {"name": "http", "protocol": "TCP", "port": 80, "nodePort": 30080},
                {"name": "dns", "protocol": "UDP", "port": 53, "nodePort": 30053},
            ],
            **spec,
        },
        "status": status or {},
    }
    return json_format.ParseDict(body, objects_pb2.Service())


def node(name: str, ip: str = "", *, labels: dict[str, str] | None = None) -> objects_pb2.Node:
    addresses = [{"type": "Hostname", "address": name}]
    if ip:
        addresses.append({"type": "InternalIP", "address": ip})
    body = {"metadata": {"name": name, "labels": labels or {}}, "status": {"addresses": addresses}}
    return json_format.ParseDict(body, objects_pb2.Node())


def nodes(*pairs: tuple[str, str]) -> tuple[cloud_pb2.LoadBalancerNode, ...]:
    return tuple(cloud_pb2.LoadBalancerNode(name=n, address=a) for n, a in pairs)


# ---------------------------------------------------------------------------- the request


def test_the_request_carries_ports_nodes_and_identity() -> None:
    svc = service(healthCheckNodePort=31999, externalTrafficPolicy="Local")
    spec = load_balancer_spec(svc, nodes(("node-1", "127.10.0.1"), ("node-2", "127.10.0.2")))
    assert json_format.MessageToDict(spec, preserving_proto_field_name=True) == {
        "namespace": "default",
        "name": "shop",
        "uid": "u-1",
        "ports": [
            {"name": "http", "protocol": "TCP", "port": 80, "node_port": 30080},
            {"name": "dns", "protocol": "UDP", "port": 53, "node_port": 30053},
        ],
        "nodes": [
            {"name": "node-1", "address": "127.10.0.1"},
            {"name": "node-2", "address": "127.10.0.2"},
        ],
        "health_check_node_port": 31999,
        "node_health_port": 10256,  # kube-proxy's healthz: checked when there is no 31999
    }
    plain = load_balancer_spec(svc, (), node_health_port=0)
    assert plain.node_health_port == 0


def test_a_port_without_a_node_port_is_left_out_and_protocol_defaults_to_tcp() -> None:
    svc = service(ports=[{"port": 8080, "nodePort": 30001}, {"port": 9090}])
    spec = load_balancer_spec(svc, ())
    assert [(p.protocol, p.port, p.node_port) for p in spec.ports] == [("TCP", 8080, 30001)]


def test_ready_nodes_at_their_internal_ip_sorted_minus_excluded() -> None:
    cluster = [
        node("node-3", "127.10.0.3"),
        node("node-1", "127.10.0.1"),
        node("node-2", "127.10.0.2"),  # its lease expired
        node("node-4", "127.10.0.4", labels={EXCLUDE_LABEL: ""}),
        node("node-5"),  # no InternalIP to forward to
    ]
    live = {"node-1", "node-3", "node-4", "node-5"}
    assert lb_nodes(cluster, live) == nodes(("node-1", "127.10.0.1"), ("node-3", "127.10.0.3"))


@pytest.mark.parametrize(
    ("spec", "annotations", "want"),
    [
        pytest.param({}, {}, "", id="any-address"),
        pytest.param({"loadBalancerIP": "127.200.0.7"}, {}, "127.200.0.7", id="spec"),
        pytest.param({}, {IP_ANNOTATION: "127.200.0.8"}, "127.200.0.8", id="annotation"),
        pytest.param(
            {}, {IP_ANNOTATION: " 127.200.0.8 , fd00::8"}, "127.200.0.8", id="annotation-first"
        ),
        pytest.param(
            {"loadBalancerIP": "127.200.0.8"},
            {IP_ANNOTATION: "127.200.0.8"},
            "127.200.0.8",
            id="both-agree",
        ),
        pytest.param({}, {IP_ANNOTATION: "  "}, "", id="blank-annotation-is-none"),
    ],
)
def test_requested_ip(spec: dict[str, Any], annotations: dict[str, str], want: str) -> None:
    svc = service(annotations=annotations, **spec)
    assert load_balancer_spec(svc, ()).requested_ip == want


@pytest.mark.parametrize(
    ("spec", "annotations", "words"),
    [
        pytest.param(
            {},
            {IP_ANNOTATION: "fd00::8,127.200.0.8"},
            f"metadata.annotations[{IP_ANNOTATION}]: Invalid value: "
            '"fd00::8,127.200.0.8": must start with an IPv4 address',
            id="annotation-not-ipv4",
        ),
        pytest.param(
            {"loadBalancerIP": "127.200.0.7"},
            {IP_ANNOTATION: "127.200.0.8"},
            'conflicts with spec.loadBalancerIP "127.200.0.7": set only one of them',
            id="annotation-contradicts-spec",
        ),
        pytest.param(
            {},
            {SOURCE_RANGES_ANNOTATION: "10.0.0.0/8, nope"},
            f'metadata.annotations[{SOURCE_RANGES_ANNOTATION}]: Invalid value: "10.0.0.0/8, '
            'nope": "nope" is not an IPv4 CIDR',
            id="bad-source-range-annotation",
        ),
    ],
)
def test_bad_annotations_are_refused_naming_them(
    spec: dict[str, Any], annotations: dict[str, str], words: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        load_balancer_spec(service(annotations=annotations, **spec), ())
    assert words in str(caught.value)
    outcome = lb_requests.invalid_request(caught.value)
    assert (outcome.reason, outcome.retry, outcome.ip) == (Reason.INVALID_SPEC, Retry.NEVER, None)


@pytest.mark.parametrize(
    ("spec", "annotations", "want"),
    [
        pytest.param({}, {}, (), id="everyone"),
        pytest.param(
            {"loadBalancerSourceRanges": ["127.0.0.2/32", " 10.0.0.0/8"]},
            {},
            ("127.0.0.2/32", "10.0.0.0/8"),
            id="spec",
        ),
        pytest.param(
            {},
            {SOURCE_RANGES_ANNOTATION: "127.0.0.2/32, 10.0.0.0/8,"},
            ("127.0.0.2/32", "10.0.0.0/8"),
            id="annotation",
        ),
        pytest.param(
            {"loadBalancerSourceRanges": ["127.0.0.3/32"]},
            {SOURCE_RANGES_ANNOTATION: "127.0.0.2/32"},
            ("127.0.0.3/32",),
            id="spec-wins-over-annotation",
        ),
    ],
)
def test_source_ranges(
    spec: dict[str, Any], annotations: dict[str, str], want: tuple[str, ...]
) -> None:
    svc = service(annotations=annotations, **spec)
    assert tuple(load_balancer_spec(svc, ()).source_ranges) == want


# ---------------------------------------------------------------------------- outcomes


@pytest.mark.parametrize(
    ("code", "message", "reason", "retry", "ip", "words"),
    [
        pytest.param(
            "RESOURCE_EXHAUSTED",
            "no free address in pool 127.200.0.0/30",
            Reason.POOL_EXHAUSTED,
            Retry.PENDING,
            "",
            "no free address in pool 127.200.0.0/30",
            id="pool-exhausted-has-no-address",
        ),
        pytest.param(
            "ALREADY_EXISTS",
            'spec.loadBalancerIP: Invalid value: "127.200.0.1": already allocated to '
            "Service default/web",
            Reason.ADDRESS_UNAVAILABLE,
            Retry.PENDING,
            None,
            "already allocated to Service default/web",
            id="address-taken-keeps-what-is-shown",
        ),
        pytest.param(
            "INVALID_ARGUMENT",
            'spec.loadBalancerIP: Invalid value: "10.0.0.1": provided IP is not in the load '
            "balancer pool 127.200.0.0/24",
            Reason.INVALID_SPEC,
            Retry.NEVER,
            None,
            "not in the load balancer pool 127.200.0.0/24",
            id="outside-the-pool",
        ),
        pytest.param(
            "UNAVAILABLE",
            "cannot listen on 127.200.0.1:80/TCP (Permission denied)",
            Reason.PRIVILEGED_PORT,
            Retry.PENDING,
            None,
            "net.ipv4.ip_unprivileged_port_start=53` (or give the cloud-stub "
            "CAP_NET_BIND_SERVICE), or use a port >= 1024",
            id="privileged-port-says-how-to-allow-it",
        ),
        pytest.param(
            "UNAVAILABLE",
            "cannot listen on 127.200.0.1:8080/TCP (Address already in use)",
            Reason.LISTENER_UNAVAILABLE,
            Retry.PENDING,
            None,
            "Address already in use",
            id="port-in-use",
        ),
        pytest.param(
            "UNAVAILABLE",
            "failed to connect to all addresses; last error: connection refused",
            Reason.CLOUD_UNAVAILABLE,
            Retry.BACKOFF,
            None,
            "the cloud provider does not answer: failed to connect",
            id="cloud-down",
        ),
        pytest.param(
            "DEADLINE_EXCEEDED",
            "Deadline Exceeded",
            Reason.CLOUD_UNAVAILABLE,
            Retry.BACKOFF,
            None,
            "does not answer",
            id="cloud-slow",
        ),
        pytest.param(
            "ABORTED",
            "load balancer default/shop kept changing; try again",
            Reason.SYNC_FAILED,
            Retry.BACKOFF,
            None,
            "ABORTED: load balancer default/shop kept changing",
            id="anything-else",
        ),
    ],
)
def test_cloud_answers_read_as_reasons(
    code: str, message: str, reason: Reason, retry: Retry, ip: str | None, words: str
) -> None:
    outcome = cloud_failure(code, message, service())
    assert (outcome.reason, outcome.retry, outcome.ip) == (reason, retry, ip)
    assert words in outcome.message
    assert not outcome.provisioned


def test_a_refusal_of_an_annotation_address_names_the_annotation() -> None:
    svc = service(annotations={IP_ANNOTATION: "10.0.0.1"})
    message = 'spec.loadBalancerIP: Invalid value: "10.0.0.1": provided IP is not in the pool'
    outcome = cloud_failure("INVALID_ARGUMENT", message, svc)
    assert outcome.message.startswith(f"metadata.annotations[{IP_ANNOTATION}]: Invalid value")


def test_a_bind_failure_shows_the_address_when_known() -> None:
    message = "cannot listen on 127.200.0.4:8080/TCP (Address already in use)"
    assert cloud_failure("UNAVAILABLE", message, service(), ip="127.200.0.4").ip == "127.200.0.4"
    assert lb_requests.is_bind_failure("UNAVAILABLE", message)
    assert not lb_requests.is_bind_failure("UNAVAILABLE", "connection refused")


def test_provisioned_and_no_cloud() -> None:
    spec = load_balancer_spec(service(), nodes(("node-1", "127.10.0.1")))
    outcome = lb_requests.provisioned("127.200.0.1", spec)
    assert (outcome.reason, outcome.ip, outcome.retry) == (
        Reason.PROVISIONED,
        "127.200.0.1",
        Retry.NEVER,
    )
    assert outcome.message == "load balancer on 127.200.0.1, forwarding to the NodePorts of 1 node"
    lonely = lb_requests.provisioned("127.200.0.1", load_balancer_spec(service(), ()))
    assert "no Ready node" in lonely.message
    none = lb_requests.no_cloud()
    assert (none.reason, none.ip, none.retry) == (Reason.NO_CLOUD, "", Retry.NEVER)
    assert "--cloud" in none.message


# ---------------------------------------------------------------------------- status


def condition(svc: objects_pb2.Service | objects_pb2.ServiceStatus) -> dict[str, Any]:
    status = svc.status if isinstance(svc, objects_pb2.Service) else svc
    (cond,) = [c for c in status.conditions if c.type == CONDITION_TYPE]
    return json_format.MessageToDict(cond)


def test_provisioning_writes_ingress_and_a_true_condition() -> None:
    svc = service(generation=3)
    status = desired_status(svc, Outcome(Reason.PROVISIONED, "ok", "127.200.0.1"), now=NOW)
    assert [i.ip for i in status.load_balancer.ingress] == ["127.200.0.1"]
    assert condition(status) == {
        "type": CONDITION_TYPE,
        "status": "True",
        "reason": "Provisioned",
        "message": "ok",
        "observedGeneration": "3",
        "lastTransitionTime": "2023-11-14T22:13:20Z",
    }


def test_the_same_outcome_again_changes_nothing() -> None:
    outcome = Outcome(Reason.PROVISIONED, "ok", "127.200.0.1")
    svc = service()
    svc.status.CopyFrom(desired_status(svc, outcome, now=NOW))
    assert desired_status(svc, outcome, now=NOW + 60) == svc.status


def test_transition_time_moves_only_when_the_status_flips() -> None:
    svc = service()
    svc.status.CopyFrom(desired_status(svc, Outcome(Reason.POOL_EXHAUSTED, "full", ""), now=NOW))
    other = desired_status(svc, Outcome(Reason.CLOUD_UNAVAILABLE, "down"), now=NOW + 5)
    assert condition(other)["lastTransitionTime"] == condition(svc)["lastTransitionTime"]
    assert condition(other)["reason"] == "CloudProviderUnavailable"
    flipped = desired_status(svc, Outcome(Reason.PROVISIONED, "ok", "127.200.0.1"), now=NOW + 9)
    assert condition(flipped)["lastTransitionTime"] == "2023-11-14T22:13:29Z"


def test_an_unknown_address_keeps_the_one_shown_and_other_conditions_stay() -> None:
    svc = service(
        status={
            "loadBalancer": {"ingress": [{"ip": "127.200.0.1"}]},
            "conditions": [
                {"type": "Other", "status": "True"},
                {"type": CONDITION_TYPE, "status": "True", "reason": "Provisioned"},
            ],
        }
    )
    status = desired_status(svc, Outcome(Reason.ADDRESS_UNAVAILABLE, "taken"), now=NOW)
    assert [i.ip for i in status.load_balancer.ingress] == ["127.200.0.1"]
    assert [c.type for c in status.conditions] == ["Other", CONDITION_TYPE]
    assert condition(status)["status"] == "False"


def test_no_longer_a_load_balancer_clears_ingress_and_our_condition_only() -> None:
    svc = service(
        type_="ClusterIP",
        status={
            "loadBalancer": {"ingress": [{"ip": "127.200.0.1"}]},
            "conditions": [
                {"type": CONDITION_TYPE, "status": "True"},
                {"type": "Other", "status": "True"},
            ],
        },
    )
    assert lb_requests.shows_load_balancer(svc)
    status = desired_status(svc, None, now=NOW)
    assert not status.HasField("load_balancer")
    assert [c.type for c in status.conditions] == ["Other"]
    plain = service(type_="ClusterIP")
    assert not lb_requests.shows_load_balancer(plain)
    assert desired_status(plain, None, now=NOW) == plain.status


outcomes = st.builds(
    Outcome,
    reason=st.sampled_from(Reason),
    message=st.text(max_size=20),
    ip=st.sampled_from([None, "", "127.200.0.1", "127.200.0.2"]),
)


@given(history=st.lists(st.one_of(st.none(), outcomes), min_size=1, max_size=6))
def test_desired_status_is_idempotent_and_only_touches_its_own(
    history: list[Outcome | None],
) -> None:
    svc = service(status={"conditions": [{"type": "Other", "status": "Unknown"}]})
    for step, outcome in enumerate(history):
        status = desired_status(svc, outcome, now=NOW + step)
        # Applying the same outcome to its own result changes nothing (no write).
        again = service()
        again.status.CopyFrom(status)
        assert desired_status(again, outcome, now=NOW + step + 100) == status
        assert [c.type for c in status.conditions].count(CONDITION_TYPE) == (outcome is not None)
        assert any(c.type == "Other" for c in status.conditions)
        assert len(status.load_balancer.ingress) <= 1
        if outcome is not None and outcome.ip is not None:
            assert [i.ip for i in status.load_balancer.ingress] == (
                [outcome.ip] if outcome.ip else []
            )
        svc.status.CopyFrom(status)
    json.dumps(json_format.MessageToDict(svc))  # always a printable object
