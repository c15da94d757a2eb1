"""Allocation repair plans: orphans released, missing claims restored, contested reported."""

from __future__ import annotations

from google.protobuf import json_format

from kubelab.core.allocators import Claim
from kubelab.v1 import objects_pb2
from services.controller.logic.repair import plan_repair


def svc(name: str, uid: str, ip: str, node_port: int = 0) -> objects_pb2.Service:
    spec: dict[str, object] = {"clusterIP": ip, "ports": [{"port": 80, "protocol": "TCP"}]}
    if node_port:
        spec["type"] = "NodePort"
        spec["ports"] = [{"port": 80, "protocol": "TCP", "nodePort": node_port}]
    body = {"metadata": {"name": name, "uid": uid}, "spec": spec}
    return json_format.ParseDict(body, objects_pb2.Service())


def test_a_consistent_world_needs_no_repair() -> None:
    services = [svc("a", "ua", "10.0.0.1", 30001), svc("b", "ub", "10.0.0.2")]
    claims = {
        Claim.cluster_ip("10.0.0.1"): "ua",
        Claim.node_port("TCP", 30001): "ua",
        Claim.cluster_ip("10.0.0.2"): "ub",
    }
    assert plan_repair(services, claims).empty


def test_orphans_missing_and_contested_are_told_apart() -> None:
    services = [svc("a", "ua", "10.0.0.1", 30001), svc("b", "ub", "10.0.0.2")]
    claims = {
        Claim.cluster_ip("10.0.0.1"): "ua",
        Claim.cluster_ip("10.0.0.2"): "ua",  # b's IP held under a's uid
        Claim.cluster_ip("10.0.0.9"): "gone",
    }
    plan = plan_repair(services, claims)
    assert plan.orphaned == {Claim.cluster_ip("10.0.0.9"): "gone"}
    assert [(s.metadata.name, c) for s, c in plan.missing] == [("a", Claim.node_port("TCP", 30001))]
    assert [(s.metadata.name, c, h) for s, c, h in plan.contested] == [
        ("b", Claim.cluster_ip("10.0.0.2"), "ua")
    ]


def test_load_balancer_address_claims_are_the_cloud_stubs_and_never_released() -> None:
    # A Service deleted while its load balancer still answers (the controller has not
    # called DeleteLoadBalancer yet): its address claim names a uid no Service has,
    # but releasing it would let the cloud-stub hand the address out twice.
    services = [svc("a", "ua", "10.0.0.1")]
    claims = {
        Claim.cluster_ip("10.0.0.1"): "ua",
        Claim.lb_ip("127.200.0.1"): "gone",
        Claim.lb_ip("127.200.0.2"): "ua",
        Claim.cluster_ip("10.0.0.9"): "gone",
    }
    plan = plan_repair(services, claims)
    assert plan.orphaned == {Claim.cluster_ip("10.0.0.9"): "gone"}
    assert not plan.missing and not plan.contested
