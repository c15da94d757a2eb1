"""The subresources discovery announces, as Kubernetes lists them.

kubectl finds a subresource through discovery before it uses it: `kubectl scale`
resolves the kind of `deployments/scale` there (client-go's discovery scale-kind
resolver: without the entry it stops with "could not find scale subresource").
Aggregated discovery lists them under their resource (`subresources`), the legacy
APIResourceList as resources of their own named `<resource>/<subresource>`.

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Subresource:
    resource: str
    name: str
    group: str  # of the kind it answers with
    version: str
    kind: str
    verbs: tuple[str, ...]


SUBRESOURCES = (
    Subresource("pods", "log", "", "v1", "Pod", ("get",)),
    Subresource("deployments", "scale", "autoscaling", "v1", "Scale", ("get", "patch", "update")),
    Subresource(
        "serviceaccounts", "token", "authentication.k8s.io", "v1", "TokenRequest", ("create",)
    ),
    # `subresources_status`: the kind itself, only its status written.
    Subresource("services", "status", "", "v1", "Service", ("get", "patch", "update")),
    Subresource("pods", "status", "", "v1", "Pod", ("get", "patch", "update")),
    Subresource("deployments", "status", "apps", "v1", "Deployment", ("get", "patch", "update")),
)


def aggregated(resource: str) -> list[dict[str, Any]]:
    """`subresources` of an aggregated discovery resource entry."""
    return [
        {
            "subresource": s.name,
            "responseKind": {"group": s.group, "version": s.version, "kind": s.kind},
            "verbs": list(s.verbs),
        }
        for s in SUBRESOURCES
        if s.resource == resource
    ]


def legacy(resource: str, namespaced: bool) -> list[dict[str, Any]]:
    """APIResourceList entries for a resource's subresources."""
    out = []
    for s in SUBRESOURCES:
        if s.resource != resource:
            continue
        entry: dict[str, Any] = {
            "name": f"{s.resource}/{s.name}",
            "singularName": "",
            "namespaced": namespaced,
            "kind": s.kind,
            "verbs": list(s.verbs),
        }
        if s.group:
            entry["group"] = s.group
            entry["version"] = s.version
        out.append(entry)
    return out
