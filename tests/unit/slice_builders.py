"""EndpointSlices as the controller writes them, for the Endpoints mirror's tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf import json_format

from kubelab.core.endpointslices import MANAGED_BY, MANAGED_BY_LABEL, SERVICE_NAME_LABEL
from kubelab.core.keys import ObjectKey
from kubelab.v1 import objects_pb2

SHOP = ObjectKey(("default", "shop"))
HTTP = {"name": "http", "protocol": "TCP", "port": 8080}
METRICS = {"name": "metrics", "protocol": "TCP", "port": 9090}


def pod(
    ip: str,
    name: str = "",
    *,
    ready: bool | None = True,
    terminating: bool | None = None,
    node: str = "node-1",
    uid: str = "",
) -> dict[str, Any]:
    conditions: dict[str, Any] = {}
    if ready is not None:
        conditions["ready"] = ready
    if terminating is not None:
        conditions["terminating"] = terminating
    name = name or "p-" + ip.rsplit(".", 1)[1]
    return {
        "addresses": [ip],
        "conditions": conditions,
        "nodeName": node,
        "targetRef": {"kind": "Pod", "namespace": "default", "name": name, "uid": uid or name},
    }


def eps(
    name: str,
    endpoints: Sequence[dict[str, Any]] = (),
    ports: Sequence[dict[str, Any]] = (HTTP,),
    *,
    service: str = "shop",
    namespace: str = "default",
    managed_by: str = MANAGED_BY,
    labels: dict[str, str] | None = None,
    revision: int = 10,
    created: str = "2026-12-07T11:00:00Z",
    address_type: str = "IPv4",
    owner_uid: str = "svc-uid",
) -> objects_pb2.EndpointSlice:
    body = {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "resourceVersion": str(revision),
            "creationTimestamp": created,
            "labels": {
                **(labels or {}),
                SERVICE_NAME_LABEL: service,
                MANAGED_BY_LABEL: managed_by,
            },
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Service", "name": service, "uid": owner_uid}
            ],
        },
        "addressType": address_type,
        "endpoints": list(endpoints),
        "ports": list(ports),
    }
    return json_format.ParseDict(body, objects_pb2.EndpointSlice())


def address(ip: str, name: str = "", node: str = "node-1") -> dict[str, Any]:
    name = name or "p-" + ip.rsplit(".", 1)[1]
    return {
        "ip": ip,
        "nodeName": node,
        "targetRef": {"kind": "Pod", "namespace": "default", "name": name, "uid": name},
    }
