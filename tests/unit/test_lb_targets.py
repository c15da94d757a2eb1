"""Where a load balancer may forward: the cluster's Ready nodes at their InternalIPs, and
only NodePorts the cluster allocated."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubelab.core.allocators import Claim
from kubelab.core.lb_requests import EXCLUDE_LABEL, lb_nodes
from kubelab.v1 import cloud_pb2, objects_pb2
from services.cloud_stub.logic.lb_targets import (
    ClusterNodes,
    cluster_nodes,
    forwardable,
    port_problems,
)


def node(name: str, address: str, *labels: str) -> objects_pb2.Node:
    obj = objects_pb2.Node()
    obj.metadata.name = name
    obj.metadata.labels.update(dict.fromkeys(labels, ""))
    if address:
        obj.status.addresses.add(type="InternalIP", address=address)
    return obj


def wanted(name: str, address: str) -> cloud_pb2.LoadBalancerNode:
    return cloud_pb2.LoadBalancerNode(name=name, address=address)


CLUSTER = cluster_nodes(
    [
        node("a", "10.0.0.1"),
        node("b", "10.0.0.2"),
        node("out", "10.0.0.3", EXCLUDE_LABEL),
        node("noip", ""),
    ],
    {"a", "out", "noip"},
)


@pytest.mark.parametrize(
    ("request_", "kept", "why"),
    [
        pytest.param(wanted("a", "10.0.0.1"), True, "", id="ready-node"),
        pytest.param(wanted("b", "10.0.0.2"), False, "node b is not Ready", id="not-ready"),
        pytest.param(
            wanted("out", "10.0.0.3"), False, "excluded from external load", id="excluded"
        ),
        pytest.param(
            wanted("a", "192.0.2.7"),
            False,
            "192.0.2.7 is not the address of node a (its InternalIP is 10.0.0.1)",
            id="spoofed-address",
        ),
        pytest.param(
            wanted("evil", "192.0.2.7"), False, "the cluster has no node evil", id="unknown"
        ),
        pytest.param(wanted("noip", "10.0.0.9"), False, "has no node noip", id="no-address"),
    ],
)
def test_forwardable(request_: cloud_pb2.LoadBalancerNode, kept: bool, why: str) -> None:
    nodes, ignored = forwardable([request_], CLUSTER)
    assert (list(nodes) == [request_]) is kept
    if kept:
        assert ignored == {}
    else:
        assert why in ignored[request_.name]


addresses = st.sampled_from([f"10.0.0.{i}" for i in range(1, 5)] + [""])
names = st.sampled_from(["a", "b", "c", "d"])


@given(
    st.dictionaries(names, addresses),
    st.sets(names),
    st.sets(names),
)
def test_the_controllers_request_passes_unchanged(
    known: dict[str, str], live: set[str], excluded: set[str]
) -> None:
    """What the controller asks for (`lb_nodes`) is exactly what the cloud-stub forwards to,
    when both read the same cluster."""
    objects = [node(n, a, *([EXCLUDE_LABEL] if n in excluded else [])) for n, a in known.items()]
    request = lb_nodes(objects, live)
    nodes, ignored = forwardable(request, cluster_nodes(objects, live))
    assert nodes == request and ignored == {}


@given(st.lists(st.tuples(names, addresses)))
def test_nothing_outside_the_cluster_is_kept(pairs: list[tuple[str, str]]) -> None:
    usable = CLUSTER.usable()
    nodes, ignored = forwardable([wanted(n, a) for n, a in pairs], CLUSTER)
    assert all(usable.get(n.name) == n.address for n in nodes)
    assert {n.name for n in nodes} | ignored.keys() == {n for n, _ in pairs}


def test_no_cluster_forwards_nowhere() -> None:
    assert forwardable([wanted("a", "10.0.0.1")], ClusterNodes())[0] == ()


def spec(*ports: tuple[str, int], check: int = 0) -> cloud_pb2.LoadBalancerSpec:
    return cloud_pb2.LoadBalancerSpec(
        ports=[
            cloud_pb2.LoadBalancerPort(protocol=p, port=80 + i, node_port=n)
            for i, (p, n) in enumerate(ports)
        ],
        health_check_node_port=check,
    )


ALLOCATED = {Claim.node_port("TCP", 30080), Claim.node_port("UDP", 30053)}


@pytest.mark.parametrize(
    ("lb", "fields"),
    [
        pytest.param(spec(("TCP", 30080), ("UDP", 30053)), [], id="allocated"),
        pytest.param(spec(("TCP", 10250)), ["spec.ports[0].nodePort"], id="agent-port"),
        pytest.param(spec(("UDP", 30080)), ["spec.ports[0].nodePort"], id="other-protocol"),
        pytest.param(
            spec(("TCP", 30080), check=22), ["spec.healthCheckNodePort"], id="health-port"
        ),
    ],
)
def test_port_problems(lb: cloud_pb2.LoadBalancerSpec, fields: list[str]) -> None:
    assert [p.field for p in port_problems(lb, ALLOCATED)] == fields
