"""The real kubectl on the verbs it uses beyond get/apply: `create namespace|deployment|
service` (protobuf bodies), `delete -l`, `api-resources -o wide` (deletecollection), and
the NotFound/AlreadyExists wording of non-core kinds. Against a real apiserver process.
"""

from __future__ import annotations

import json

import pytest

from kubelab.core import kinds
from kubelab.testing.processes import ApiServerProcess
from kubelab.v1 import objects_pb2
from tests.integration.test_kubectl import Kubectl, grpc_apply, grpc_get, rows, service
from tests.integration.test_kubectl import kubectl as kubectl  # the fixture

pytestmark = pytest.mark.integration

PROTOBUF = "application/vnd.kubernetes.protobuf"


def test_create_namespace_deployment_and_service_send_protobuf_and_work(
    kubectl: Kubectl, apiserver: ApiServerProcess, service_cidr: str
) -> None:
    # What kubectl sends, seen at -v=8: a protobuf body, before any discovery.
    traced = kubectl.run("create", "namespace", "team-a", "-v=8")
    assert traced.returncode == 0, traced.stderr
    assert traced.stdout == "namespace/team-a created\n"
    assert f"Content-Type: {PROTOBUF}" in traced.stderr
    assert rows(kubectl.ok("get", "ns", "team-a"))[1][:2] == ["team-a", "Active"]

    assert kubectl.ok(
        "create", "deployment", "web", "--image=nginx", "--port=80", "--replicas=2"
    ) == ("deployment.apps/web created\n")
    web = json.loads(kubectl.ok("get", "deploy", "web", "-o", "json", "--show-managed-fields"))
    assert web["spec"]["replicas"] == 2
    assert web["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    container = web["spec"]["template"]["spec"]["containers"][0]
    assert (container["name"], container["image"]) == ("nginx", "nginx")
    assert container["ports"][0]["containerPort"] == 80
    # The body took the JSON path: kubectl's field manager recorded, as for JSON.
    assert [m["manager"] for m in web["metadata"]["managedFields"]] == ["kubectl-create"]

    assert kubectl.ok("create", "service", "clusterip", "shop", "--tcp=80:8080") == (
        "service/shop created\n"
    )
    shop = grpc_get(apiserver, "services", "shop")
    assert isinstance(shop, objects_pb2.Service)
    assert shop.spec.ports[0].port == 80 and shop.spec.ports[0].target_port == "8080"
    prefix = service_cidr.split("/")[0].rsplit(".", 2)[0]
    assert shop.spec.cluster_ip.startswith(prefix + "."), "allocated as any create is"
    kubectl.ok("create", "service", "nodeport", "np", "--tcp=80:8080", "-n", "team-a")
    node_port = json.loads(kubectl.ok("get", "svc", "np", "-n", "team-a", "-o", "json"))
    assert node_port["spec"]["type"] == "NodePort"
    assert 30000 <= node_port["spec"]["ports"][0]["nodePort"] <= 32767

    again = kubectl.fails("create", "namespace", "team-a")
    assert again.strip() == 'Error from server (AlreadyExists): namespaces "team-a" already exists'
    again = kubectl.fails("create", "deployment", "web", "--image=nginx")
    assert 'deployments.apps "web" already exists' in again
    invalid = kubectl.fails("create", "deployment", "Bad_Name", "--image=nginx")
    assert "Invalid" in invalid and "metadata.name" in invalid


def test_not_found_names_the_qualified_resource(kubectl: Kubectl) -> None:
    missing = kubectl.run("get", "deploy", "missing")
    assert missing.returncode == 1
    assert missing.stderr == 'Error from server (NotFound): deployments.apps "missing" not found\n'
    slice_ = kubectl.fails("get", "endpointslices", "y")
    assert slice_ == (
        'Error from server (NotFound): endpointslices.discovery.k8s.io "y" not found\n'
    )
    assert (
        kubectl.fails("get", "svc", "x") == 'Error from server (NotFound): services "x" not found\n'
    )
    deleted = kubectl.fails("delete", "deploy", "missing")
    assert 'deployments.apps "missing" not found' in deleted


def test_api_resources_wide_lists_deletecollection_and_delete_by_label(
    kubectl: Kubectl, apiserver: ApiServerProcess
) -> None:
    table = rows(kubectl.ok("api-resources", "-o", "wide"))
    verbs = {row[0]: row[5] for row in table[1:] if len(row) > 5}
    assert table[0][5] == "VERBS"
    for served in ("services", "pods", "deployments", "nodes"):
        assert "deletecollection" in verbs[served], served
    assert "deletecollection" not in verbs["namespaces"]
    listed = rows(kubectl.ok("api-resources", "--verbs=deletecollection", "-o", "name"))
    assert ["services"] in listed and ["namespaces"] not in listed

    grpc_apply(
        apiserver,
        service("a", {"app": "x"}),
        service("b", {"app": "x"}),
        service("c", {"app": "y"}),
    )
    deleted = kubectl.ok("delete", "svc", "-l", "app=x")
    assert sorted(deleted.splitlines()) == [
        'service "a" deleted from default namespace',
        'service "b" deleted from default namespace',
    ]
    left = {row[0] for row in rows(kubectl.ok("get", "svc"))[1:]}
    assert "c" in left and not left & {"a", "b"}
    refused = kubectl.fails("delete", "svc", "-l", "app in (x")
    assert refused.startswith("Error from server (BadRequest)")
    assert "invalid selector 'app in (x'" in refused
    assert grpc_get(apiserver, kinds.SERVICES.resource, "c").metadata.name == "c"
