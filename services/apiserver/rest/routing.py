"""URL paths of the Kubernetes API -> what they name.

    /api/v1/namespaces/default/services/shop      object (core group)
    /apis/apps/v1/deployments                     collection, every namespace
    /apis/discovery.k8s.io/v1/namespaces/ns/endpointslices
    /api/v1/nodes/node-1                          object (cluster-scoped)
    /api/v1/namespaces/dev                        a Namespace (cluster-scoped)
    /api/v1/namespaces/default/pods/p/status      subresource
    /api, /apis, /api/v1, /apis/apps, /apis/apps/v1, /version   discovery

`parse` answers a `Target` (a resource request) or a `Discovery` (which document),
or raises a 404 `ApiError` for a path kubelab does not serve, with Kubernetes'
`the server could not find the requested resource`. A namespaced kind without a
namespace is a list across all namespaces (`kubectl get svc -A`); a name needs one.

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from kubelab.core import kinds
from kubelab.core.kinds import KindInfo
from services.apiserver.rest.errors import ApiError

NOT_FOUND = ApiError(404, "NotFound", "the server could not find the requested resource")

_BY_GROUP_VERSION_RESOURCE = {(i.api_version, i.resource): i for i in kinds.ALL_KINDS}


@dataclass(frozen=True, slots=True)
class Target:
    info: KindInfo
    namespace: str  # "" for cluster-scoped kinds and for lists across namespaces
    name: str = ""  # "" for the collection
    subresource: str = ""


@dataclass(frozen=True, slots=True)
class Discovery:
    # "version", "api", "apis", "group" (of `group`), "resources" (of `group_version`)
    document: str
    group: str = ""
    group_version: str = ""


def parse(path: str) -> Target | Discovery:
    parts = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
    if parts == ["version"]:
        return Discovery("version")
    if not parts or parts[0] not in ("api", "apis"):
        raise NOT_FOUND
    if parts[0] == "api":
        if len(parts) == 1:
            return Discovery("api")
        if parts[1] != "v1":
            raise NOT_FOUND
        group_version, rest = "v1", parts[2:]
    else:
        if len(parts) == 1:
            return Discovery("apis")
        if len(parts) == 2:
            return Discovery("group", group=parts[1])
        group_version, rest = f"{parts[1]}/{parts[2]}", parts[3:]
    if not rest:
        return Discovery("resources", group_version=group_version)
    return _target(group_version, rest)


def _target(group_version: str, rest: list[str]) -> Target:
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
        if not namespace:
            raise NOT_FOUND
    info = _BY_GROUP_VERSION_RESOURCE.get((group_version, rest[0]))
    if info is None or len(rest) > 3 or any(not p for p in rest):
        raise NOT_FOUND
    if namespace and not info.namespaced:
        raise NOT_FOUND
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if name and info.namespaced and not namespace:
        raise NOT_FOUND
    return Target(info, namespace, name, subresource)
