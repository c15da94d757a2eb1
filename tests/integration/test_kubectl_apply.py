"""The real kubectl's write verbs against kubelab: apply (client- and server-side), diff,
patch, label, annotate, explain, and fieldValidation.

Each test runs `.venv/bin/kubectl` against a real apiserver process and checks what it
prints and what is stored (read back through kubectl or kubelab's gRPC client).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubelab.testing.processes import ApiServerProcess
from kubelab.v1 import objects_pb2
from tests.integration.test_kubectl import SHOP, SHOP_SERVICE, Kubectl, grpc_apply, grpc_get

pytestmark = pytest.mark.integration


@pytest.fixture
def kubectl(apiserver: ApiServerProcess, tmp_path: Path) -> Kubectl:
    return Kubectl(apiserver.http_url, tmp_path / "kubectl-home")


def svc_json(kubectl: Kubectl, name: str = "shop") -> dict[str, Any]:
    shown: dict[str, Any] = json.loads(
        kubectl.ok("get", "svc", name, "-o", "json", "--show-managed-fields")
    )
    return shown


def managers(obj: dict[str, Any]) -> dict[str, str]:
    return {e["manager"]: e["operation"] for e in obj["metadata"].get("managedFields", [])}


def two_port_service(name: str = "shop") -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {
                "selector": {"app": name},
                "ports": [
                    {"name": "http", "port": 80, "targetPort": 8080},
                    {"name": "admin", "port": 9000, "targetPort": 9000},
                ],
            },
        }
    )


def test_apply_creates_then_is_unchanged_then_configures(kubectl: Kubectl, tmp_path: Path) -> None:
    created = kubectl.ok("apply", "-f", str(SHOP)).splitlines()
    assert created == [
        "deployment.apps/shop created",
        "pod/shop-dev created",
        "pod/shop-usd created",
        "service/shop created",
    ]
    again = kubectl.ok("apply", "-f", str(SHOP)).splitlines()
    assert again == [
        "deployment.apps/shop unchanged",
        "pod/shop-dev unchanged",
        "pod/shop-usd unchanged",
        "service/shop unchanged",
    ]
    shown = svc_json(kubectl)
    assert "kubectl.kubernetes.io/last-applied-configuration" in shown["metadata"]["annotations"]
    assert managers(shown) == {"kubectl-client-side-apply": "Update"}
    rv = shown["metadata"]["resourceVersion"]

    changed = tmp_path / "shop.yaml"
    changed.write_text(
        SHOP.read_text().replace(
            "kind: Service\nmetadata:\n  name: shop\n",
            "kind: Service\nmetadata:\n  name: shop\n  labels:\n    tier: web\n",
        )
    )
    third = kubectl.ok("apply", "-f", str(changed)).splitlines()
    assert third == [
        "deployment.apps/shop unchanged",
        "pod/shop-dev unchanged",
        "pod/shop-usd unchanged",
        "service/shop configured",
    ]
    after = svc_json(kubectl)
    assert after["metadata"]["labels"] == {"tier": "web"}
    assert after["metadata"]["resourceVersion"] != rv
    # The NodePort and ClusterIP stayed what they were.
    assert after["spec"]["clusterIP"] == shown["spec"]["clusterIP"]
    assert after["spec"]["ports"][0]["nodePort"] == 30080


def test_labels_added_by_kubectl_survive_a_reapply(kubectl: Kubectl) -> None:
    kubectl.ok("apply", "-f", str(SHOP))
    assert kubectl.ok("label", "svc", "shop", "team=a").strip() == "service/shop labeled"
    assert kubectl.ok("annotate", "svc", "shop", "note=hello").strip() == "service/shop annotated"
    assert kubectl.ok("apply", "-f", str(SHOP)).splitlines()[-1] == "service/shop unchanged"
    shown = svc_json(kubectl)
    assert shown["metadata"]["labels"] == {"team": "a"}
    assert shown["metadata"]["annotations"]["note"] == "hello"
    assert set(managers(shown)) == {
        "kubectl-client-side-apply",
        "kubectl-label",
        "kubectl-annotate",
    }

    labelled = kubectl.ok("label", "pod", "shop-usd", "env=dev", "--overwrite")
    assert labelled.strip() == "pod/shop-usd labeled"
    pod = json.loads(kubectl.ok("get", "pod", "shop-usd", "-o", "json"))
    assert pod["metadata"]["labels"] == {"env": "dev", "app": "shop", "cur": "usd"}
    refused = kubectl.fails("label", "pod", "shop-usd", "env=prod")
    assert "'env' already has a value (dev), and --overwrite is false" in refused


def test_server_side_apply_owns_fields_and_conflicts(kubectl: Kubectl, tmp_path: Path) -> None:
    first = two_port_service("ssa")
    out = kubectl.run("apply", "--server-side", "-f", "-", stdin=first)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "service/ssa serverside-applied"
    shown = svc_json(kubectl, "ssa")
    assert managers(shown) == {"kubectl": "Apply"}

    changed = first.replace("targetPort: 8080", "targetPort: 8081")
    out = kubectl.run("apply", "--server-side", "-f", "-", stdin=changed)
    assert out.returncode == 0, out.stderr
    assert svc_json(kubectl, "ssa")["spec"]["ports"][0]["targetPort"] == 8081

    theirs = changed.replace("targetPort: 8081", "targetPort: 7070")
    conflict = kubectl.run(
        "apply", "--server-side", "--field-manager=other", "-f", "-", stdin=theirs
    )
    assert conflict.returncode == 1
    assert conflict.stderr.startswith(
        'error: Apply failed with 1 conflict: conflict with "kubectl": '
        '.spec.ports[port=80,protocol="TCP"].targetPort'
    ), conflict.stderr
    assert "--force-conflicts" in conflict.stderr
    assert svc_json(kubectl, "ssa")["spec"]["ports"][0]["targetPort"] == 8081

    forced = kubectl.run(
        "apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", "-",
        stdin=theirs,
    )  # fmt: skip
    assert forced.returncode == 0, forced.stderr
    after = svc_json(kubectl, "ssa")
    assert after["spec"]["ports"][0]["targetPort"] == 7070
    entries = {e["manager"]: e for e in after["metadata"]["managedFields"]}
    assert set(entries) == {"kubectl", "other"}
    port_key = 'k:{"port":80,"protocol":"TCP"}'
    theirs_fields = entries["other"]["fieldsV1"]["f:spec"]["f:ports"][port_key]
    assert "f:targetPort" in theirs_fields
    assert "f:targetPort" not in entries["kubectl"]["fieldsV1"]["f:spec"]["f:ports"][port_key]


def test_diff_shows_a_change_and_nothing_when_equal(kubectl: Kubectl, tmp_path: Path) -> None:
    kubectl.ok("apply", "-f", str(SHOP_SERVICE))
    same = kubectl.run("diff", "-f", str(SHOP_SERVICE))
    assert same.returncode == 0, same.stderr
    assert same.stdout == ""

    changed = tmp_path / "svc.yaml"
    changed.write_text(SHOP_SERVICE.read_text().replace("targetPort: 8080", "targetPort: 9090"))
    diff = kubectl.run("diff", "-f", str(changed))
    assert diff.returncode == 1, diff.stderr
    lines = diff.stdout.splitlines()
    assert "-    targetPort: 8080" in lines
    assert "+    targetPort: 9090" in lines
    # A dry run: nothing changed.
    assert svc_json(kubectl)["spec"]["ports"][0]["targetPort"] == 8080


def test_explain_reads_the_openapi_schema(kubectl: Kubectl) -> None:
    out = kubectl.ok("explain", "service.spec.ports")
    assert "KIND:       Service" in out
    assert "FIELD: ports <[]ServicePort>" in out
    assert "targetPort\t<string>\n" in out  # IntOrString resolves to its type, string
    # Kubernetes' schema requires a port's number, and a container's name but not its image.
    assert "  port\t<integer> -required-\n" in out
    containers = kubectl.ok("explain", "pod.spec.containers")
    assert "  name\t<string> -required-\n" in containers
    assert "  image\t<string>\n" in containers


def test_patch_types_on_service_ports(kubectl: Kubectl, apiserver: ApiServerProcess) -> None:
    out = kubectl.run("apply", "-f", "-", stdin=two_port_service())
    assert out.returncode == 0, out.stderr

    # Strategic merge: ports merge by `port`, the other port stays.
    patched = kubectl.ok(
        "patch", "svc", "shop", "-p", '{"spec":{"ports":[{"port":80,"targetPort":9090}]}}'
    )
    assert patched.strip() == "service/shop patched"
    ports = svc_json(kubectl)["spec"]["ports"]
    assert [(p["port"], p["targetPort"]) for p in ports] == [(80, 9090), (9000, 9000)]
    assert "kubectl-patch" in managers(svc_json(kubectl))

    kubectl.ok(
        "patch", "svc", "shop", "--type=json",
        "-p", '[{"op":"replace","path":"/spec/ports/1/targetPort","value":9001}]',
    )  # fmt: skip
    assert svc_json(kubectl)["spec"]["ports"][1]["targetPort"] == 9001

    # A merge patch replaces the list whole.
    kubectl.ok("patch", "svc", "shop", "--type=merge", "-p", '{"spec":{"ports":[{"port":81}]}}')
    assert [p["port"] for p in svc_json(kubectl)["spec"]["ports"]] == [81]

    unchanged = kubectl.ok("patch", "svc", "shop", "--type=merge", "-p", '{"spec":{}}')
    assert unchanged.strip() == "service/shop patched (no change)"

    # Through the same registry: a NodePort someone holds is a 422 naming the field.
    holder = objects_pb2.Service()
    holder.metadata.name, holder.metadata.namespace = "holder", "default"
    holder.spec.type = "NodePort"
    holder.spec.ports.add(port=80, target_port="80", node_port=30123)
    grpc_apply(apiserver, holder)
    taken = kubectl.fails(
        "patch", "svc", "shop", "--type=merge",
        "-p", '{"spec":{"type":"NodePort","ports":[{"port":81,"nodePort":30123}]}}',
    )  # fmt: skip
    assert (
        'The Service "shop" is invalid: spec.ports[0].nodePort: Invalid value: 30123: '
        "provided port is already allocated"
    ) in taken
    stored = grpc_get(apiserver, "services", "shop")
    assert isinstance(stored, objects_pb2.Service) and stored.spec.type == "ClusterIP"


def test_unknown_fields_fail_apply_and_create(kubectl: Kubectl) -> None:
    text = SHOP_SERVICE.read_text().replace("  ports:\n", "  portz: 1\n  ports:\n", 1)
    refused = kubectl.run("apply", "-f", "-", stdin=text)
    assert refused.returncode == 1
    assert (
        'Error from server (BadRequest): error when creating "STDIN": Service in version "v1" '
        'cannot be handled as a Service: strict decoding error: unknown field "spec.portz"'
    ) in refused.stderr
    assert "No resources found" in kubectl.run("get", "svc").stderr

    # Fields Kubernetes has and kubelab does not implement are a warning, not a failure.
    pod = yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {
                "containers": [
                    {"name": "c", "image": "kubelab/echo", "resources": {"limits": {"cpu": "1"}}}
                ]
            },
        }
    )
    created = kubectl.run("apply", "-f", "-", stdin=pod)
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "pod/p created"
    assert (
        "Warning: spec.containers[0].resources: kubelab does not implement this field; "
        "it is ignored"
    ) in created.stderr


def test_server_side_apply_takes_over_a_client_side_applied_object(kubectl: Kubectl) -> None:
    """kubectl moves the client-side apply's fields to its server-side manager first."""
    kubectl.ok("apply", "-f", str(SHOP_SERVICE))
    changed = SHOP_SERVICE.read_text().replace("targetPort: 8080", "targetPort: 9090")
    out = kubectl.run("apply", "--server-side", "-f", "-", stdin=changed)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "service/shop serverside-applied"
    shown = svc_json(kubectl)
    assert shown["spec"]["ports"][0]["targetPort"] == 9090
    assert managers(shown)["kubectl"] == "Apply"
    assert "kubectl-client-side-apply" not in managers(shown)


def test_every_kind_is_applied_labelled_and_patched(kubectl: Kubectl) -> None:
    kubectl.ok("apply", "-f", str(SHOP))
    slice_ = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "manual-1", "labels": {"kubernetes.io/service-name": "manual"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.1"]}],
        "ports": [{"name": "http", "port": 80}],
    }
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n-api"}}
    stdin = yaml.safe_dump_all([slice_, node])
    out = kubectl.run("apply", "-f", "-", stdin=stdin)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "endpointslice.discovery.k8s.io/manual-1 created",
        "node/n-api created",
    ]
    for kind, name in [
        ("deployment", "shop"),
        ("pod", "shop-dev"),
        ("service", "shop"),
        ("endpointslice", "manual-1"),
        ("node", "n-api"),
    ]:
        labelled = kubectl.ok("label", kind, name, "patched=yes")
        assert labelled.strip().endswith(f"/{name} labeled"), labelled
        shown = json.loads(kubectl.ok("get", kind, name, "-o", "json"))
        assert shown["metadata"]["labels"]["patched"] == "yes"
    kubectl.ok(
        "patch", "endpointslice", "manual-1", "--type=json",
        "-p", '[{"op":"add","path":"/endpoints/-","value":{"addresses":["10.0.0.2"]}}]',
    )  # fmt: skip
    shown = json.loads(kubectl.ok("get", "endpointslice", "manual-1", "-o", "json"))
    assert [e["addresses"] for e in shown["endpoints"]] == [["10.0.0.1"], ["10.0.0.2"]]


def test_grpc_writes_keep_managed_fields_and_applies_go_on(
    kubectl: Kubectl, apiserver: ApiServerProcess
) -> None:
    """kubelab's own front records no manager: it keeps the managedFields it finds, and
    kubectl's applies before and after it behave as if it were any other writer."""
    config = two_port_service("mixed")
    assert kubectl.run("apply", "--server-side", "-f", "-", stdin=config).returncode == 0
    before = svc_json(kubectl, "mixed")["metadata"]["managedFields"]

    # Through gRPC: the labels go, a port changes.
    stored = grpc_get(apiserver, "services", "mixed")
    assert isinstance(stored, objects_pb2.Service)
    stored.metadata.labels.clear()
    stored.spec.ports[1].target_port = "9999"
    stored.metadata.resource_version = ""
    grpc_apply(apiserver, stored)
    after = svc_json(kubectl, "mixed")
    assert after["metadata"]["managedFields"] == before
    assert "labels" not in after["metadata"]

    # The same apply again puts back what its manager owns, with no conflict.
    out = kubectl.run("apply", "--server-side", "-f", "-", stdin=config)
    assert out.returncode == 0, out.stderr
    again = svc_json(kubectl, "mixed")
    assert again["metadata"]["labels"] == {"app": "mixed"}
    assert again["spec"]["ports"][1]["targetPort"] == 9000
