"""PATCH, server-side apply, fieldValidation, /status and OpenAPI through the official
Python client and raw HTTP, against a real apiserver process.
"""

from __future__ import annotations

import http.client
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubelab.testing.processes import ApiServerProcess
from tests.integration.test_k8s_client import body, core, raw, status_of

pytestmark = pytest.mark.integration

__all__ = ["core"]  # the fixture, used by name

SVC = "/api/v1/namespaces/default/services"
APPLY = "application/apply-patch+yaml"


def send(
    apiserver: ApiServerProcess,
    method: str,
    path: str,
    payload: Any = None,
    content_type: str = "application/json",
) -> tuple[int, dict[str, str], dict[str, Any]]:
    data = json.dumps(payload).encode() if payload is not None else None
    code, headers, answer = raw(apiserver, method, path, data, {"Content-Type": content_type})
    return code, headers, json.loads(answer) if answer else {}


def warnings_of(apiserver: ApiServerProcess, path: str, payload: Any) -> list[str]:
    host, _, port = apiserver.http_address.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("POST", path, json.dumps(payload), {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        assert response.status == 201, response.status
        return response.headers.get_all("Warning") or []
    finally:
        conn.close()


def test_each_patch_type_through_the_client(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_service("default", body("py"))
    assert [e.manager for e in created.metadata.managed_fields] == ["OpenAPI-Generator"]
    two_ports = {"spec": {"ports": [{"port": 80, "name": "a"}, {"port": 81, "name": "b"}]}}
    core.patch_namespaced_service("py", "default", {"metadata": {"labels": {"a": "b"}}})
    core.patch_namespaced_service(
        "py", "default", two_ports, _content_type="application/merge-patch+json"
    )
    # Strategic merge (a dict body): ports merge by `port`.
    patched = core.patch_namespaced_service(
        "py", "default", {"spec": {"ports": [{"port": 81, "targetPort": 9091}]}}
    )
    assert [(p.port, p.target_port) for p in patched.spec.ports] == [(80, 80), (81, 9091)]
    # json-patch (a list body).
    patched = core.patch_namespaced_service(
        "py", "default", [{"op": "add", "path": "/metadata/labels/c", "value": "d"}]
    )
    assert patched.metadata.labels == {"app": "py", "a": "b", "c": "d"}
    # Server-side apply.
    applied = core.patch_namespaced_service(
        "py", "default",
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "py", "labels": {"g": "h"}}},
        field_manager="py", _content_type=APPLY,
    )  # fmt: skip
    assert applied.metadata.labels["g"] == "h"
    by_manager = {e.manager: e.operation for e in applied.metadata.managed_fields}
    assert by_manager == {"OpenAPI-Generator": "Update", "py": "Apply"}

    with pytest.raises(ApiException) as missing:
        core.patch_namespaced_service("nosuch", "default", {"metadata": {"labels": {"a": "b"}}})
    assert missing.value.status == 404
    assert status_of(missing.value)["reason"] == "NotFound"


def test_apply_creates_and_conflicts_as_kubernetes_answers(apiserver: ApiServerProcess) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "ssa"},
        "spec": {"ports": [{"port": 80, "targetPort": 8080}], "selector": {"app": "x"}},
    }
    path = f"{SVC}/ssa?fieldManager=one"
    code, _, created = send(apiserver, "PATCH", path, config, APPLY)
    assert code == 201, created
    code, _, again = send(apiserver, "PATCH", path, config, APPLY)
    assert code == 200
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]

    config["spec"]["ports"][0]["targetPort"] = 9090  # type: ignore[index]
    code, _, conflict = send(apiserver, "PATCH", f"{SVC}/ssa?fieldManager=two", config, APPLY)
    assert code == 409
    field = '.spec.ports[port=80,protocol="TCP"].targetPort'
    assert conflict == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f'Apply failed with 1 conflict: conflict with "one": {field}',
        "reason": "Conflict",
        "details": {
            "causes": [
                {"reason": "FieldManagerConflict", "message": 'conflict with "one"', "field": field}
            ]
        },
        "code": 409,
    }
    code, _, forced = send(
        apiserver, "PATCH", f"{SVC}/ssa?fieldManager=two&force=true", config, APPLY
    )
    assert code == 200 and forced["spec"]["ports"][0]["targetPort"] == 9090

    code, _, refused = send(apiserver, "PATCH", f"{SVC}/ssa", config, APPLY)
    assert code == 422
    assert "fieldManager: Required value" in refused["message"]
    code, _, refused = send(
        apiserver, "PATCH", f"{SVC}/ssa?force=true", {}, "application/merge-patch+json"
    )
    assert code == 422 and "force: Forbidden" in refused["message"]
    code, _, refused = send(apiserver, "PATCH", f"{SVC}/ssa", {}, "text/plain")
    assert code == 415 and refused["reason"] == "UnsupportedMediaType"


def test_a_patch_goes_through_validation_allocation_and_preconditions(
    core: client.CoreV1Api, apiserver: ApiServerProcess
) -> None:
    core.create_namespaced_service("default", body("holder", node_port=30300))
    core.create_namespaced_service("default", body("shop"))
    merge = "application/merge-patch+json"
    taken = {"spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30300}]}}
    code, _, status = send(apiserver, "PATCH", f"{SVC}/shop", taken, merge)
    assert code == 422
    assert status["details"]["causes"][0]["field"] == "spec.ports[0].nodePort"
    code, _, status = send(apiserver, "PATCH", f"{SVC}/shop", {"spec": {"ports": None}}, merge)
    assert code == 422 and status["reason"] == "Invalid"

    current = core.read_namespaced_service("shop", "default").metadata.resource_version
    stale = {"metadata": {"resourceVersion": "1", "labels": {"x": "y"}}}
    code, _, status = send(apiserver, "PATCH", f"{SVC}/shop", stale, merge)
    assert code == 409 and status["reason"] == "Conflict"
    fresh = {"metadata": {"resourceVersion": current, "labels": {"x": "y"}}}
    code, _, patched = send(apiserver, "PATCH", f"{SVC}/shop", fresh, merge)
    assert code == 200 and patched["metadata"]["labels"]["x"] == "y"

    code, _, dry = send(
        apiserver, "PATCH", f"{SVC}/shop?dryRun=All", {"metadata": {"labels": {"x": "z"}}}, merge
    )
    assert code == 200 and dry["metadata"]["labels"]["x"] == "z"
    assert core.read_namespaced_service("shop", "default").metadata.labels["x"] == "y"


def test_concurrent_patches_are_all_applied(core: client.CoreV1Api) -> None:
    """Each patch is re-applied to what it finds after a lost compare-and-swap."""
    core.create_namespaced_service("default", body("busy"))

    def label(i: int) -> None:
        core.patch_namespaced_service(
            "busy", "default", {"metadata": {"labels": {f"l{i}": "x"}}},
            _content_type="application/merge-patch+json",
        )  # fmt: skip

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(label, range(64)))
    labels = core.read_namespaced_service("busy", "default").metadata.labels
    assert {f"l{i}" for i in range(64)} <= set(labels)


def test_field_validation_directives(apiserver: ApiServerProcess) -> None:
    bad = {"metadata": {"name": "fv"}, "spec": {"portz": 1, "ports": [{"port": 80}]}}
    code, _, status = send(apiserver, "POST", f"{SVC}?fieldValidation=Strict", bad)
    assert code == 400 and status["reason"] == "BadRequest"
    assert status["message"] == (
        'Service in version "v1" cannot be handled as a Service: strict decoding error: '
        'unknown field "spec.portz"'
    )
    code, _, status = send(apiserver, "POST", f"{SVC}?fieldValidation=Sloppy", bad)
    assert code == 422 and 'Unsupported value: "Sloppy"' in status["message"]

    assert warnings_of(apiserver, f"{SVC}?fieldValidation=Warn", bad) == [
        '299 - "unknown field \\"spec.portz\\""'
    ]
    bad["metadata"]["name"] = "fv2"  # type: ignore[index]
    assert warnings_of(apiserver, f"{SVC}?fieldValidation=Ignore", bad) == []
    bad["metadata"]["name"] = "fv3"  # type: ignore[index]
    assert warnings_of(apiserver, SVC, bad) == ['299 - "unknown field \\"spec.portz\\""']

    duplicated = b'{"metadata": {"name": "d1", "name": "d2"}, "spec": {"ports": [{"port": 80}]}}'
    headers = {"Content-Type": "application/json"}
    code, _, answer = raw(apiserver, "POST", f"{SVC}?fieldValidation=Strict", duplicated, headers)
    assert code == 400
    assert json.loads(answer)["message"].endswith(
        'strict decoding error: duplicate field "metadata.name"'
    )

    merge = "application/merge-patch+json"
    code, _, status = send(
        apiserver, "PATCH", f"{SVC}/fv?fieldValidation=Strict", {"spec": {"portz": 2}}, merge
    )
    assert code == 400 and 'unknown field "spec.portz"' in status["message"]


def test_status_subresource_writes_only_status(
    core: client.CoreV1Api, apiserver: ApiServerProcess
) -> None:
    core.create_namespaced_service("default", body("st"))
    ingress = {"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}}
    # The main resource ignores status.
    code, _, main = send(
        apiserver, "PATCH", f"{SVC}/st", {"status": ingress}, "application/merge-patch+json"
    )
    assert code == 200 and not main.get("status", {}).get("loadBalancer", {}).get("ingress")
    # /status changes only status.
    change = {
        "status": ingress,
        "spec": {"ports": [{"port": 99}]},
        "metadata": {"labels": {"z": "1"}},
    }
    code, _, written = send(
        apiserver, "PATCH", f"{SVC}/st/status", change, "application/merge-patch+json"
    )
    assert code == 200, written
    assert written["status"]["loadBalancer"]["ingress"] == [{"ip": "192.0.2.7"}]
    assert written["spec"]["ports"][0]["port"] == 80
    assert "z" not in written["metadata"]["labels"]
    entry = next(e for e in written["metadata"]["managedFields"] if e.get("subresource"))
    assert entry["subresource"] == "status"
    assert "f:status" in entry["fieldsV1"]

    code, _, got = send(apiserver, "GET", f"{SVC}/st/status")
    assert code == 200 and got["status"] == written["status"]
    got["status"] = {}
    code, _, put = send(apiserver, "PUT", f"{SVC}/st/status", got)
    assert code == 200 and not put.get("status", {}).get("loadBalancer")

    read = core.read_namespaced_service_status("st", "default")
    assert read.metadata.name == "st"
    code, _, _ = send(apiserver, "GET", "/api/v1/nodes/n/status")
    assert code == 404
    code, _, _ = send(apiserver, "DELETE", f"{SVC}/st/status")
    assert code == 405


def test_openapi_is_served_with_kubernetes_caching(apiserver: ApiServerProcess) -> None:
    code, headers, index = send(apiserver, "GET", "/openapi/v3")
    assert code == 200 and headers["Etag"].startswith('"')
    url = index["paths"]["api/v1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/api/v1?hash=")
    code, headers, document = send(apiserver, "GET", url)
    assert code == 200
    assert headers["Cache-Control"] == "public, immutable"
    assert headers["Etag"] == f'"{url.rpartition("=")[2]}"'
    assert "io.k8s.api.core.v1.Service" in document["components"]["schemas"]

    status, again, _ = raw(apiserver, "GET", url, headers={"If-None-Match": headers["Etag"]})
    assert status == 304 and again["Etag"] == headers["Etag"]
    status, moved, _ = raw(apiserver, "GET", "/openapi/v3/api/v1?hash=OLD")
    assert status == 301 and moved["Location"] == url
    status, plain, _ = raw(apiserver, "GET", "/openapi/v3/apis/apps/v1")
    assert status == 200 and "Cache-Control" not in plain
    assert raw(apiserver, "GET", "/openapi/v3/apis/nosuch/v1")[0] == 404


def test_deployment_and_pod_status_subresources(apiserver: ApiServerProcess) -> None:
    deployments = "/apis/apps/v1/namespaces/default/deployments"
    template = {
        "metadata": {"labels": {"app": "d"}},
        "spec": {"containers": [{"name": "c", "image": "kubelab/echo"}]},
    }
    deployment = {
        "metadata": {"name": "d"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "d"}}, "template": template},
    }
    code, _, created = send(apiserver, "POST", deployments, deployment)
    assert code == 201, created
    merge = "application/merge-patch+json"
    change = {"spec": {"replicas": 7}, "status": {"replicas": 2, "readyReplicas": 1}}
    code, _, written = send(apiserver, "PATCH", f"{deployments}/d/status", change, merge)
    assert code == 200, written
    assert written["status"]["readyReplicas"] == 1 and written["spec"]["replicas"] == 2
    # The main resource keeps status, whatever its body says.
    code, _, main = send(apiserver, "PATCH", f"{deployments}/d", change, merge)
    assert code == 200
    assert main["spec"]["replicas"] == 7 and main["status"]["readyReplicas"] == 1

    pods = "/api/v1/namespaces/default/pods"
    code, _, _ = send(
        apiserver, "POST", pods, {"metadata": {"name": "p"}, "spec": template["spec"]}
    )
    assert code == 201
    code, _, pod = send(apiserver, "GET", f"{pods}/p/status")
    assert code == 200 and pod["metadata"]["name"] == "p" and pod["status"]["phase"] == "Pending"
