"""Discovery: what kubectl reads before anything else (`/version`, `/api`, `/apis`, ...).

Every kubectl command but `version` starts with `GET /api` and `GET /apis` asking for
aggregated discovery (apidiscovery.k8s.io/v2 `APIGroupDiscoveryList`). The answer
must carry the same media-type parameters in its Content-Type
(`AGGREGATED_CONTENT_TYPE`), or kubectl silently sees no resources. A client that
does not ask for it gets the legacy forms (APIVersions, APIGroupList), and then
reads `/api/v1` and `/apis/<group>/<version>` (APIResourceList) per group.

Built from `kubelab.core.kinds`, so a new kind is served here without a line more.
The verbs are those the HTTP front serves (`verbs`), sorted as Kubernetes lists them:
deletecollection on every kind but Namespaces, which have none in Kubernetes either. The
core group also lists `endpoints`, which is no stored kind: get, list and watch only
(`endpoints_wire`).
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kubelab.core import kinds
from kubelab.core.kinds import KindInfo
from services.apiserver.rest import endpoints_wire, subresources

AGGREGATED_CONTENT_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
# Kubernetes serves no deletecollection of Namespaces (`kubectl api-resources -o wide`).
_NO_DELETE_COLLECTION = frozenset({"namespaces"})
# Kubernetes puts these in the `all` category (`kubectl get all`).
_IN_ALL = frozenset({"services", "pods", "deployments"})
# kubectl's short names are the server's: Kubernetes gives EndpointSlices and the RBAC
# kinds none.
_SHORT_NAMES = {
    "services": ["svc"],
    "pods": ["po"],
    "deployments": ["deploy"],
    "nodes": ["no"],
    "namespaces": ["ns"],
    "events": ["ev"],
    "serviceaccounts": ["sa"],
}


@dataclass(frozen=True, slots=True)
class MediaType:
    type: str
    params: dict[str, str]


def parse_accept(header: str) -> list[MediaType]:
    """`Accept` as its media types in order, with their parameters (q ignored)."""
    out = []
    for part in header.split(","):
        pieces = [p.strip() for p in part.split(";")]
        if not pieces[0]:
            continue
        params = {}
        for piece in pieces[1:]:
            key, _, value = piece.partition("=")
            params[key.strip().lower()] = value.strip()
        out.append(MediaType(pieces[0].lower(), params))
    return out


def wants(accept: Sequence[MediaType], *, group: str, version: str, kind: str) -> bool:
    """True when `accept` names a JSON form `as=<kind>` of `group`/`version` before any
    plain JSON (`application/json;as=Table;v=v1;g=meta.k8s.io`)."""
    for media in accept:
        if media.type not in ("application/json", "*/*", "application/*"):
            continue
        params = media.params
        if params.get("as") == kind and params.get("g") == group and params.get("v") == version:
            return True
        if "as" not in params:
            return False
    return False


def deletes_collections(info: KindInfo) -> bool:
    return info.resource not in _NO_DELETE_COLLECTION


def verbs(info: KindInfo) -> list[str]:
    """The verbs a kind's resource is served with, as discovery lists them (sorted)."""
    return [v for v in VERBS if v != "deletecollection" or deletes_collections(info)]


def groups() -> dict[str, list[KindInfo]]:
    """The named groups and their kinds (the core group "" is served under /api)."""
    out: dict[str, list[KindInfo]] = {}
    for info in kinds.ALL_KINDS:
        out.setdefault(group_of(info), []).append(info)
    return out


def group_of(info: KindInfo) -> str:
    return info.api_version.rpartition("/")[0]


def version_of(info: KindInfo) -> str:
    return info.api_version.rpartition("/")[2]


def _aggregated_resource(info: KindInfo) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resource": info.resource,
        "responseKind": {"group": group_of(info), "version": version_of(info), "kind": info.kind},
        "scope": "Namespaced" if info.namespaced else "Cluster",
        "singularResource": info.kind.lower(),
        "verbs": verbs(info),
    }
    if info.resource in _SHORT_NAMES:
        resource["shortNames"] = _SHORT_NAMES[info.resource]
    if info.resource in _IN_ALL:
        resource["categories"] = ["all"]
    if found := subresources.aggregated(info.resource):
        resource["subresources"] = found
    return resource


def _aggregated_group(name: str, members: Sequence[KindInfo]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"creationTimestamp": None}
    resources = [_aggregated_resource(i) for i in members]
    if name:
        metadata["name"] = name
    else:
        resources.append(endpoints_wire.discovery_entry(aggregated=True))
    return {
        "metadata": metadata,
        "versions": [
            {
                "version": version_of(members[0]),
                "resources": resources,
                "freshness": "Current",
            }
        ],
    }


def aggregated(core: bool) -> dict[str, Any]:
    """`/api` (core=True) or `/apis` as an APIGroupDiscoveryList."""
    items = [
        _aggregated_group(name, members)
        for name, members in groups().items()
        if (name == "") == core
    ]
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    }


def api_versions(server_address: str) -> dict[str, Any]:
    """Legacy `/api`."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group_entry(name: str, members: Sequence[KindInfo]) -> dict[str, Any]:
    version = {"groupVersion": members[0].api_version, "version": version_of(members[0])}
    return {"name": name, "versions": [version], "preferredVersion": version}


def api_group_list() -> dict[str, Any]:
    """Legacy `/apis`."""
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group_entry(n, m) for n, m in groups().items() if n],
    }


def api_group(name: str) -> dict[str, Any] | None:
    """`/apis/<group>`."""
    members = groups().get(name)
    if not name or members is None:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(name, members)}


def resource_list(group_version: str) -> dict[str, Any] | None:
    """`/api/v1` or `/apis/<group>/<version>` (APIResourceList); None when not served."""
    members = [i for i in kinds.ALL_KINDS if i.api_version == group_version]
    if not members:
        return None
    resources = []
    for info in members:
        resource: dict[str, Any] = {
            "name": info.resource,
            "singularName": info.kind.lower(),
            "namespaced": info.namespaced,
            "kind": info.kind,
            "verbs": verbs(info),
        }
        if info.resource in _SHORT_NAMES:
            resource["shortNames"] = _SHORT_NAMES[info.resource]
        if info.resource in _IN_ALL:
            resource["categories"] = ["all"]
        resources.append(resource)
        resources += subresources.legacy(info.resource, info.namespaced)
    if group_version == "v1":
        resources.append(endpoints_wire.discovery_entry(aggregated=False))
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }


def version_info(kubelab_version: str, python: str, platform: str) -> dict[str, Any]:
    """`/version`: the Kubernetes API version kubelab speaks (kubectl warns when its own
    minor version is more than one away), and kubelab's own version in gitVersion."""
    return {
        "major": "1",
        "minor": "37",
        "emulationMajor": "1",
        "emulationMinor": "37",
        "gitVersion": f"v1.37.0+kubelab.{kubelab_version}",
        "gitCommit": "",
        "gitTreeState": "",
        "buildDate": "",
        "goVersion": python,
        "compiler": "cpython",
        "platform": platform,
    }
