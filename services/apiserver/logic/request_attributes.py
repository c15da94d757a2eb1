"""What a request asks, as the authorizer reads it (Kubernetes' RequestInfo).

Both fronts describe a request the same way before RBAC sees it:

- the Kubernetes HTTP API (`rest_attributes`) as Kubernetes' RequestInfoFactory does:
  GET of a name is `get`, of a collection `list` (`watch` with `?watch=true`), POST
  `create`, PUT `update`, PATCH `patch`, DELETE of a name `delete`, of a collection
  `deletecollection`; a list or watch whose field selector is `metadata.name=<x>` names
  `<x>` (so a rule with resourceNames can allow it); paths outside /api and /apis
  (`/version`, `/openapi/v3`, `/healthz`) and discovery are non-resource requests;
- kubelab's gRPC API (`grpc_attributes`) by its methods: Get, List, Watch, Create,
  Update and Delete are the verbs of their names; Apply is server-side apply, which
  Kubernetes authorizes as `patch`.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

from kubelab.core.kinds import KindInfo
from services.apiserver.logic.rbac import Attributes, UserInfo

_BY_METHOD = {"POST": "create", "PUT": "update", "PATCH": "patch"}
_GRPC_VERBS = {
    "Get": "get",
    "List": "list",
    "Watch": "watch",
    "Create": "create",
    "Update": "update",
    "Delete": "delete",
    "Apply": "patch",
    "ApplyStream": "patch",
}


def api_group(info: KindInfo) -> str:
    return info.api_version.rpartition("/")[0]


def field_terms(field_selector: str) -> tuple[tuple[str, str], ...]:
    """The `field=value` / `field==value` terms of a field selector (`!=` left out)."""
    terms = []
    for part in field_selector.split(","):
        if "!=" in part:
            continue
        key, sep, value = part.partition("==") if "==" in part else part.partition("=")
        if sep:
            terms.append((key.strip(), value.strip()))
    return tuple(terms)


def resource_verb(method: str, named: bool, watch: bool) -> str:
    method = method.upper()
    if method in ("GET", "HEAD"):
        if named:
            return "get"
        return "watch" if watch else "list"
    if method == "DELETE":
        return "delete" if named else "deletecollection"
    return _BY_METHOD.get(method, method.lower())


def rest_attributes(
    user: UserInfo,
    method: str,
    *,
    resource: str,
    group: str,
    namespace: str,
    name: str,
    subresource: str,
    query: Mapping[str, str],
) -> Attributes:
    """A request for a resource of the Kubernetes HTTP API."""
    watch = query.get("watch", "").lower() in ("true", "1")
    terms = field_terms(query.get("fieldSelector", ""))
    verb = resource_verb(method, bool(name), watch)
    if not name and verb in ("list", "watch"):
        # Kubernetes names a list or watch of one object by its field selector.
        name = next((value for key, value in terms if key == "metadata.name"), "")
    return Attributes(
        user,
        verb,
        namespace=namespace,
        api_group=group,
        resource=resource,
        subresource=subresource,
        name=name,
        field_selector=terms,
    )


def path_attributes(user: UserInfo, method: str, path: str) -> Attributes:
    """A non-resource request: discovery, /version, /openapi, health."""
    return Attributes(user, method.lower(), resource_request=False, path=path)


def grpc_attributes(
    user: UserInfo,
    method: str,
    info: KindInfo,
    namespace: str,
    name: str = "",
    field_selector: str = "",
) -> Attributes:
    """A call of kubelab's gRPC API on one kind."""
    verb = _GRPC_VERBS[method]
    terms = field_terms(field_selector)
    if not name and verb in ("list", "watch"):
        name = next((value for key, value in terms if key == "metadata.name"), "")
    return Attributes(
        user,
        verb,
        namespace=namespace if info.namespaced else "",
        api_group=api_group(info),
        resource=info.resource,
        name=name,
        field_selector=terms,
    )


def path_request(user: UserInfo, method: str, path: str, query: Mapping[str, str]) -> Attributes:
    """Any path as Kubernetes' RequestInfoFactory reads it, whether or not kubelab serves
    it: under /api/VERSION and /apis/GROUP/VERSION a resource request (namespace, resource,
    name, subresource by position), anything else a path. The apiserver authorizes a
    request before it knows whether the resource exists, so a caller without rights is
    refused (403) where one with them is told it is not found (404)."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 3:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        group, rest = parts[1], parts[3:]
    else:
        return path_attributes(user, method, path)
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    elif rest[0] == "namespaces" and len(rest) == 2:
        # A Namespace itself: /api/v1/namespaces/NAME
        return rest_attributes(
            user, method, resource="namespaces", group=group, namespace=rest[1],
            name=rest[1], subresource="", query=query,
        )  # fmt: skip
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    return rest_attributes(
        user, method, resource=resource, group=group, namespace=namespace, name=name,
        subresource=subresource, query=query,
    )  # fmt: skip
