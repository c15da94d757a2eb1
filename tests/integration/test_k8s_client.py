"""The official `kubernetes` Python client, unchanged, against kubelab's HTTP API.

CRUD and watch for Services through the client's own models (which check the fields
Kubernetes requires), the error mappings it sees (404, 409, 422 with the field, 400,
413, 410 after compaction), and the raw wire where the client hides it: the
watch-list's closing bookmark and the discovery Content-Type kubectl depends on.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from kubelab.client import Client
from kubelab.lab import write_kubeconfig
from kubelab.testing.processes import ApiServerProcess, EtcdServer
from kubelab.v1 import objects_pb2

pytestmark = pytest.mark.integration

ETCDCTL = Path(sys.executable).parent / "etcdctl"


@pytest.fixture
def core(apiserver: ApiServerProcess, tmp_path: Path) -> Iterator[client.CoreV1Api]:
    path = write_kubeconfig(tmp_path, apiserver.http_url)
    api_client = config.new_client_from_config(config_file=str(path))
    with api_client:
        yield client.CoreV1Api(api_client)


def body(name: str, port: int = 80, node_port: int = 0) -> dict[str, Any]:
    spec: dict[str, Any] = {"ports": [{"port": port}], "selector": {"app": name}}
    if node_port:
        spec["type"] = "NodePort"
        spec["ports"][0]["nodePort"] = node_port
    return {"metadata": {"name": name, "labels": {"app": name}}, "spec": spec}


def status_of(err: ApiException) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(err.body)
    return decoded


def raw(
    apiserver: ApiServerProcess,
    method: str,
    path: str,
    payload: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    host, _, port = apiserver.http_address.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body=payload, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_crud(core: client.CoreV1Api, apiserver: ApiServerProcess) -> None:
    created = core.create_namespaced_service("default", body("shop"))
    assert created.metadata.name == "shop"
    assert created.spec.cluster_ip and created.spec.ports[0].protocol == "TCP"
    assert created.spec.ports[0].target_port == 80  # Kubernetes' default: the port

    core.create_namespaced_service("default", body("cart", port=81))
    names = [s.metadata.name for s in core.list_namespaced_service("default").items]
    assert sorted(names) == ["cart", "shop"]
    selected = core.list_namespaced_service("default", label_selector="app=cart").items
    assert [s.metadata.name for s in selected] == ["cart"]
    by_name = core.list_service_for_all_namespaces(field_selector="metadata.name=shop").items
    assert [s.metadata.name for s in by_name] == ["shop"]

    read = core.read_namespaced_service("shop", "default")
    read.metadata.labels["tier"] = "web"
    replaced = core.replace_namespaced_service("shop", "default", read)
    assert replaced.metadata.labels == {"app": "shop", "tier": "web"}
    assert int(replaced.metadata.resource_version) > int(read.metadata.resource_version)

    # The replace is visible through gRPC at once: one registry behind both fronts.
    async def through_grpc() -> objects_pb2.Service:
        async with Client(apiserver.address, timeout=10) as api:
            found = await api.get("services", "shop")
            assert isinstance(found, objects_pb2.Service)
            return found

    assert dict(asyncio.run(through_grpc()).metadata.labels) == {"app": "shop", "tier": "web"}

    deleted = core.delete_namespaced_service("shop", "default")
    assert deleted.metadata.name == "shop"
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_service("shop", "default")
    assert missing.value.status == 404
    assert status_of(missing.value)["reason"] == "NotFound"
    assert status_of(missing.value)["details"] == {"name": "shop", "kind": "services"}


def test_write_errors(core: client.CoreV1Api) -> None:
    first = core.create_namespaced_service("default", body("shop", node_port=30080))

    with pytest.raises(ApiException) as exists:
        core.create_namespaced_service("default", body("shop"))
    assert exists.value.status == 409
    assert status_of(exists.value)["reason"] == "AlreadyExists"

    with pytest.raises(ApiException) as taken:
        core.create_namespaced_service("default", body("other", node_port=30080))
    assert taken.value.status == 422
    status = status_of(taken.value)
    assert status["reason"] == "Invalid"
    assert status["details"]["kind"] == "Service"
    assert status["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": "Invalid value: 30080: provided port is already allocated",
            "field": "spec.ports[0].nodePort",
        }
    ]
    assert core.list_namespaced_service("default").items[0].metadata.name == "shop"

    first.metadata.labels["tier"] = "web"
    core.replace_namespaced_service("shop", "default", first)  # its own version: fine
    first.metadata.labels["tier"] = "db"
    with pytest.raises(ApiException) as stale:
        core.replace_namespaced_service("shop", "default", first)  # that version again
    assert stale.value.status == 409
    assert status_of(stale.value)["reason"] == "Conflict"
    assert "the object has been modified" in status_of(stale.value)["message"]


def test_bad_bodies(apiserver: ApiServerProcess) -> None:
    path = "/api/v1/namespaces/default/services"
    json_headers = {"Content-Type": "application/json"}
    code, _, answer = raw(apiserver, "POST", path, b"{not json", json_headers)
    assert code == 400
    assert json.loads(answer)["reason"] == "BadRequest"

    wrong_type = json.dumps({"metadata": {"name": "x"}, "spec": {"ports": [{"port": "http"}]}})
    code, _, answer = raw(apiserver, "POST", path, wrong_type.encode(), json_headers)
    assert code == 400
    assert "spec.ports[0].port" in json.loads(answer)["message"]

    huge = json.dumps(
        {"metadata": {"name": "big", "annotations": {"a": "x" * (4 * 1024 * 1024)}}}
    ).encode()
    code, _, answer = raw(apiserver, "POST", path, huge, json_headers)
    assert code == 413
    assert json.loads(answer)["reason"] == "RequestEntityTooLarge"

    code, _, answer = raw(apiserver, "PATCH", f"{path}/x", b"{}", json_headers)
    assert code == 415

    code, _, answer = raw(apiserver, "POST", path, b"name: x", {"Content-Type": "text/plain"})
    assert code == 415
    assert json.loads(answer)["message"].endswith(
        "accepted media types include: application/json, application/vnd.kubernetes.protobuf"
    )

    # None of it was written.
    code, _, answer = raw(apiserver, "GET", path)
    assert code == 200 and json.loads(answer)["items"] == []


def test_watch_from_a_revision(core: client.CoreV1Api) -> None:
    before = core.list_namespaced_service("default").metadata.resource_version
    core.create_namespaced_service("default", body("shop"))
    shop = core.read_namespaced_service("shop", "default")
    shop.metadata.labels["tier"] = "web"
    core.replace_namespaced_service("shop", "default", shop)
    core.delete_namespaced_service("shop", "default")

    seen = [
        (event["type"], event["object"].metadata.name, event["object"].metadata.labels)
        for event in watch.Watch().stream(
            core.list_namespaced_service,
            "default",
            resource_version=before,
            timeout_seconds=1,
        )
    ]
    assert seen == [
        ("ADDED", "shop", {"app": "shop"}),
        ("MODIFIED", "shop", {"app": "shop", "tier": "web"}),
        ("DELETED", "shop", {"app": "shop", "tier": "web"}),
    ]


def test_watch_with_a_selector_sees_objects_enter_and_leave(core: client.CoreV1Api) -> None:
    before = core.list_namespaced_service("default").metadata.resource_version
    core.create_namespaced_service("default", body("shop"))
    shop = core.read_namespaced_service("shop", "default")
    shop.metadata.labels["tier"] = "web"
    core.replace_namespaced_service("shop", "default", shop)
    del shop.metadata.labels["tier"]
    shop.metadata.resource_version = None
    core.replace_namespaced_service("shop", "default", shop)

    seen = [
        event["type"]
        for event in watch.Watch().stream(
            core.list_namespaced_service,
            "default",
            label_selector="tier=web",
            resource_version=before,
            timeout_seconds=1,
        )
    ]
    assert seen == ["ADDED", "DELETED"]


def test_watch_list_ends_its_initial_events_with_a_bookmark(
    core: client.CoreV1Api, apiserver: ApiServerProcess
) -> None:
    for name in ("a", "b"):
        core.create_namespaced_service("default", body(name))
    query = (
        "watch=true&sendInitialEvents=true&allowWatchBookmarks=true"
        "&resourceVersionMatch=NotOlderThan&timeoutSeconds=1&fieldSelector=metadata.name%3Da"
    )
    code, _, answer = raw(apiserver, "GET", f"/api/v1/namespaces/default/services?{query}")
    assert code == 200
    events = [json.loads(line) for line in answer.splitlines()]
    assert [(e["type"], e["object"]["metadata"].get("name")) for e in events] == [
        ("ADDED", "a"),
        ("BOOKMARK", None),
    ]
    mark = events[1]["object"]["metadata"]
    assert mark["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert int(mark["resourceVersion"]) >= int(events[0]["object"]["metadata"]["resourceVersion"])


def test_watch_from_a_compacted_revision_is_gone(core: client.CoreV1Api, etcd: EtcdServer) -> None:
    before = core.list_namespaced_service("default").metadata.resource_version
    for name in ("a", "b", "c"):
        core.create_namespaced_service("default", body(name))
    now = core.list_namespaced_service("default").metadata.resource_version
    subprocess.run(
        [str(ETCDCTL), "--endpoints", etcd.endpoint, "compact", now],
        check=True,
        capture_output=True,
        timeout=30,
    )
    with pytest.raises(ApiException) as gone:
        list(
            watch.Watch().stream(
                core.list_namespaced_service,
                "default",
                resource_version=before,
                timeout_seconds=5,
            )
        )
    assert gone.value.status == 410
    assert "Expired" in str(gone.value.reason)


def test_discovery_answers_in_the_form_asked(apiserver: ApiServerProcess) -> None:
    aggregated = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    code, headers, answer = raw(
        apiserver, "GET", "/apis", headers={"Accept": f"{aggregated},application/json"}
    )
    assert code == 200
    assert headers["Content-Type"] == aggregated
    groups = {item["metadata"]["name"] for item in json.loads(answer)["items"]}
    assert groups == {"apps", "discovery.k8s.io", "rbac.authorization.k8s.io"}

    code, headers, answer = raw(apiserver, "GET", "/apis", headers={"Accept": "application/json"})
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(answer)["kind"] == "APIGroupList"

    code, _, answer = raw(apiserver, "GET", "/apis/apps/v1")
    resources = json.loads(answer)["resources"]
    assert [(r["name"], r["kind"], r["namespaced"]) for r in resources] == [
        ("deployments", "Deployment", True),
        ("deployments/scale", "Scale", True),
        ("deployments/status", "Deployment", True),
    ]
    code, _, answer = raw(apiserver, "GET", "/apis/batch/v1")
    assert code == 404 and json.loads(answer)["kind"] == "Status"


def test_other_kinds_read_through_the_client(core: client.CoreV1Api, tmp_path: Path) -> None:
    """Every kind's list parses in the client's models (empty here; with objects in
    test_kubectl's cluster test)."""
    api_client = core.api_client
    assert core.list_node().items == []
    assert core.list_pod_for_all_namespaces().items == []
    assert client.AppsV1Api(api_client).list_deployment_for_all_namespaces().items == []
    slices = client.DiscoveryV1Api(api_client).list_endpoint_slice_for_all_namespaces()
    assert slices.items == []


def test_list_in_pages(core: client.CoreV1Api) -> None:
    for name in ("a", "b", "c"):
        core.create_namespaced_service("default", body(name))
    first = core.list_namespaced_service("default", limit=2)
    assert [s.metadata.name for s in first.items] == ["a", "b"]
    assert first.metadata._continue
    rest = core.list_namespaced_service("default", limit=2, _continue=first.metadata._continue)
    assert [s.metadata.name for s in rest.items] == ["c"]
    assert not rest.metadata._continue
    assert rest.metadata.resource_version == first.metadata.resource_version  # one snapshot

    with pytest.raises(ApiException) as bad:
        core.list_namespaced_service("default", _continue="not-a-token")
    assert bad.value.status == 400


def test_a_grpc_write_reaches_an_http_watch(
    core: client.CoreV1Api, apiserver: ApiServerProcess
) -> None:
    before = core.list_namespaced_service("default").metadata.resource_version

    async def create() -> None:
        async with Client(apiserver.address, timeout=10) as api:
            svc = objects_pb2.Service()
            svc.metadata.name, svc.metadata.namespace = "from-grpc", "default"
            svc.spec.ports.add(port=80)
            await api.create(svc)

    asyncio.run(create())
    seen = [
        (event["type"], event["object"].metadata.name)
        for event in watch.Watch().stream(
            core.list_namespaced_service, "default", resource_version=before, timeout_seconds=1
        )
    ]
    assert seen == [("ADDED", "from-grpc")]


BAD_REQUESTS = [
    # (method, path, body, code, reason)
    ("GET", "/api/v1/namespaces/default/services/" + "x" * 10000, None, 400, "BadRequest"),
    ("GET", "/api/v1/namespaces/" + "n" * 300 + "/services", None, 400, "BadRequest"),
    ("GET", "/api/v1/services?labelSelector=a%20in%20(", None, 400, "BadRequest"),
    ("GET", "/api/v1/services?resourceVersion=abc", None, 400, "BadRequest"),
    ("GET", "/api/v1/services?watch=1&resourceVersion=99999999999999999999999", None, 400, ""),
    ("GET", "/api/v1/services?continue=garbage", None, 400, "BadRequest"),
    ("GET", "/api/v1/pods?fieldSelector=spec.nope%3Dx", None, 400, "BadRequest"),
    ("GET", "/api/v1/namespaces/default/pods/x/log", None, 404, "NotFound"),
    ("GET", "/apis/batch/v1/jobs", None, 404, "NotFound"),
    ("OPTIONS", "/api/v1/services", None, 405, "MethodNotAllowed"),
    ("POST", "/api/v1/services", b"{}", 405, "MethodNotAllowed"),
    ("DELETE", "/api/v1/namespaces/default/services/x", b"[1]", 400, "BadRequest"),
    ("PUT", "/api/v1/namespaces/default/services/x", b'{"spec":{"ports":[{"port":80}]}}', 404, ""),
    ("POST", "/api/v1/nodes", b'{"metadata":{"name":"Bad_Name"}}', 422, "Invalid"),
    (
        "POST",
        "/api/v1/namespaces/default/services",
        b'{"metadata":{"name":"x","resourceVersion":"abc"},"spec":{"ports":[{"port":80}]}}',
        400,
        "BadRequest",
    ),
    (
        "POST",
        "/api/v1/namespaces/default/services",
        b'{"metadata":{"name":"z"},"spec":{"ports":[{"port":1e999}]}}',
        400,
        "BadRequest",
    ),
]


def test_bad_requests_answer_a_status_and_change_nothing(apiserver: ApiServerProcess) -> None:
    for method, path, payload, code, reason in BAD_REQUESTS:
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        got, _, answer = raw(apiserver, method, path, payload, headers)
        status = json.loads(answer)
        assert (got, status["kind"], status["code"]) == (code, "Status", code), (method, path)
        assert not reason or status["reason"] == reason, (method, path, status)
    for listed in ("/api/v1/services", "/api/v1/nodes"):
        assert json.loads(raw(apiserver, "GET", listed)[2])["items"] == []
    assert "Traceback" not in apiserver.log_path.read_text()
