"""Server-side Tables: Kubernetes' columns per kind, rows as kubectl prints them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import given
from hypothesis import strategies as st

from kubelab.core import kinds
from kubelab.core.kinds import ApiObject
from kubelab.v1 import objects_pb2
from services.apiserver.rest import tables
from services.apiserver.rest.errors import ApiError

NOW = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)
CREATED = "2026-12-07T11:55:00Z"  # five minutes before NOW


def obj(info: kinds.KindInfo, body: dict[str, Any]) -> ApiObject:
    meta = {"name": "x", "namespace": "default", "creationTimestamp": CREATED}
    meta.update(body.pop("metadata", {}))
    message = info.message()
    json_format.ParseDict({"metadata": meta, **body}, message)
    return message


def cells(info: kinds.KindInfo, body: dict[str, Any]) -> list[Any]:
    row = tables.row(info, obj(info, body), NOW)
    return list(row["cells"])


@pytest.mark.parametrize(
    ("spec", "status", "expected"),
    [
        pytest.param(
            {"type": "ClusterIP", "clusterIP": "10.0.0.5", "ports": [{"port": 80}]},
            {},
            ["x", "ClusterIP", "10.0.0.5", "<none>", "80/TCP", "5m", "<none>"],
            id="cluster-ip",
        ),
        pytest.param(
            {
                "type": "NodePort",
                "clusterIP": "10.0.0.6",
                "selector": {"app": "shop", "env": "prod"},
                "ports": [{"port": 80, "nodePort": 30080}, {"port": 53, "protocol": "UDP"}],
            },
            {},
            [
                "x",
                "NodePort",
                "10.0.0.6",
                "<none>",
                "80:30080/TCP,53/UDP",
                "5m",
                "app=shop,env=prod",
            ],
            id="node-port-two-ports",
        ),
        pytest.param(
            {"type": "LoadBalancer", "clusterIP": "10.0.0.7", "ports": [{"port": 443}]},
            {},
            ["x", "LoadBalancer", "10.0.0.7", "<pending>", "443/TCP", "5m", "<none>"],
            id="load-balancer-pending",
        ),
        pytest.param(
            {"type": "LoadBalancer", "clusterIP": "10.0.0.7", "ports": [{"port": 443}]},
            {"loadBalancer": {"ingress": [{"ip": "127.200.0.1"}]}},
            ["x", "LoadBalancer", "10.0.0.7", "127.200.0.1", "443/TCP", "5m", "<none>"],
            id="load-balancer-ingress",
        ),
        pytest.param(
            {"clusterIP": "None", "ports": [{"port": 80}]},
            {},
            ["x", "ClusterIP", "None", "<none>", "80/TCP", "5m", "<none>"],
            id="headless",
        ),
        pytest.param(
            {"type": "ExternalName", "externalName": "db.example.com"},
            {},
            ["x", "ExternalName", "<none>", "db.example.com", "<none>", "5m", "<none>"],
            id="external-name",
        ),
    ],
)
def test_service_rows(spec: dict[str, Any], status: dict[str, Any], expected: list[Any]) -> None:
    assert cells(kinds.SERVICES, {"spec": spec, "status": status}) == expected


RUNNING = {
    "phase": "Running",
    "podIP": "127.244.1.2",
    "containerStatuses": [{"name": "c", "ready": True, "state": {"running": {}}}],
}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            {"spec": {"containers": [{"name": "c"}], "nodeName": "node-1"}, "status": RUNNING},
            ["x", "1/1", "Running", "0", "5m", "127.244.1.2", "node-1", "<none>", "<none>"],
            id="running",
        ),
        pytest.param(
            {"spec": {"containers": [{"name": "c"}, {"name": "d"}]}},
            ["x", "0/2", "Pending", "0", "5m", "<none>", "<none>", "<none>", "<none>"],
            id="pending-unscheduled",
        ),
        pytest.param(
            {
                "metadata": {"deletionTimestamp": CREATED},
                "spec": {"containers": [{"name": "c"}], "nodeName": "node-1"},
                "status": RUNNING,
            },
            ["x", "1/1", "Terminating", "0", "5m", "127.244.1.2", "node-1", "<none>", "<none>"],
            id="terminating",
        ),
        pytest.param(
            {
                "spec": {"containers": [{"name": "c"}], "nodeName": "node-1"},
                "status": {
                    "phase": "Running",
                    "containerStatuses": [
                        {
                            "name": "c",
                            "restartCount": 3,
                            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                        }
                    ],
                },
            },
            ["x", "0/1", "CrashLoopBackOff", "3", "5m", "<none>", "node-1", "<none>", "<none>"],
            id="crash-loop",
        ),
    ],
)
def test_pod_rows(body: dict[str, Any], expected: list[Any]) -> None:
    assert cells(kinds.PODS, body) == expected


def test_deployment_row_has_integer_counts() -> None:
    body = {
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": {"app": "shop"}},
            "template": {"spec": {"containers": [{"name": "shop", "image": "kubelab/echo"}]}},
        },
        "status": {"readyReplicas": 3, "updatedReplicas": 4, "availableReplicas": 3},
    }
    assert cells(kinds.DEPLOYMENTS, body) == [
        *("x", "3/4", 4, 3, "5m", "shop", "kubelab/echo", "app=shop"),
    ]


@pytest.mark.parametrize(
    ("labels", "roles"),
    [
        pytest.param({}, "<none>", id="none"),
        pytest.param({"node-role.kubernetes.io/control-plane": ""}, "control-plane", id="one"),
        pytest.param(
            {"node-role.kubernetes.io/worker": "", "kubernetes.io/role": "edge"},
            "edge,worker",
            id="both-label-forms",
        ),
    ],
)
def test_node_roles(labels: dict[str, str], roles: str) -> None:
    node = obj(kinds.NODES, {"metadata": {"labels": labels, "namespace": ""}})
    assert isinstance(node, objects_pb2.Node)
    assert tables.node_roles(node) == roles


def test_endpoint_slice_row() -> None:
    body = {
        "addressType": "IPv4",
        "ports": [{"port": 8080}],
        "endpoints": [{"addresses": [f"127.244.1.{n}"]} for n in range(1, 6)],
    }
    assert cells(kinds.ENDPOINTSLICES, body) == [
        *("x", "IPv4", "8080", "127.244.1.1,127.244.1.2,127.244.1.3 + 2 more...", "5m"),
    ]


@pytest.mark.parametrize("info", kinds.ALL_KINDS, ids=lambda i: i.resource)
def test_every_kind_has_one_cell_per_column(info: kinds.KindInfo) -> None:
    table = tables.table(info, [obj(info, {})], NOW, resource_version="7")
    columns = table["columnDefinitions"]
    if not tables.TABLES[info.resource].named:
        # Events: Kubernetes' columns lead with Last Seen, Message stays after the wide
        # Subobject and Source, and Name is a wide column.
        name = next(c for c in columns if c["name"] == "Name")
        assert (name["format"], name["priority"]) == ("name", 1)
        assert len(table["rows"][0]["cells"]) == len(columns)
        return
    assert columns[0] == {
        "name": "Name",
        "type": "string",
        "format": "name",
        "description": columns[0]["description"],
        "priority": 0,
    }
    assert len(table["rows"][0]["cells"]) == len(columns)
    # Age (Created At in Kubernetes' default table, which roles get) is always shown; a
    # wide column never comes before a narrow one.
    priorities = [c["priority"] for c in columns]
    assert priorities == sorted(priorities)
    assert {"Age", "Created At"} & {c["name"] for c in columns if c["priority"] == 0}


def test_rows_carry_partial_object_metadata_by_default() -> None:
    svc = obj(kinds.SERVICES, {"metadata": {"labels": {"app": "shop"}}})
    table = tables.table(kinds.SERVICES, [svc], NOW, resource_version="9", continue_token="t")
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "9", "continue": "t"}
    shown = table["rows"][0]["object"]
    assert shown["kind"] == "PartialObjectMetadata"
    assert shown["metadata"]["labels"] == {"app": "shop"}
    assert shown["metadata"]["namespace"] == "default"
    assert "spec" not in shown


@pytest.mark.parametrize(
    ("include", "keys"),
    [
        pytest.param("", {"kind", "apiVersion", "metadata"}, id="default-metadata"),
        pytest.param("Object", {"kind", "apiVersion", "metadata", "spec"}, id="object"),
        pytest.param("None", None, id="none"),
    ],
)
def test_include_object(include: str, keys: set[str] | None) -> None:
    svc = obj(kinds.SERVICES, {"spec": {"ports": [{"port": 80}]}})
    row = tables.row(kinds.SERVICES, svc, NOW, tables.check_include_object(include))
    assert (set(row["object"]) if "object" in row else None) == keys


def test_unknown_include_object_is_refused() -> None:
    with pytest.raises(ApiError) as refused:
        tables.check_include_object("Everything")
    assert refused.value.code == 400


@given(
    st.integers(min_value=1, max_value=65535),
    st.sampled_from(["TCP", "UDP"]),
    st.one_of(st.just(0), st.integers(min_value=30000, max_value=32767)),
)
def test_service_port_cell(port: int, protocol: str, node_port: int) -> None:
    spec: dict[str, Any] = {"ports": [{"port": port, "protocol": protocol}]}
    if node_port:
        spec["ports"][0]["nodePort"] = node_port
    expected = f"{port}:{node_port}/{protocol}" if node_port else f"{port}/{protocol}"
    assert cells(kinds.SERVICES, {"spec": spec})[4] == expected
