"""OpenAPI v3 documents for kubelab's kinds, and the unknown-field check.

`kubectl` reads these before it applies or explains anything:

- `GET /openapi/v3` -> `openapi_index()`: one entry per group-version,
  `{"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=..."}}}`;
  kubectl fetches the URL as given, so the hash changes with the document and
  lets clients cache it (`document_hash`).
- `GET /openapi/v3/<gv>` -> `openapi_document("api/v1")`: the component schemas
  of the group-version's kinds and every type they reach, named as Kubernetes
  names them (`io.k8s.api.core.v1.ServicePort`) with descriptions for
  `kubectl explain service.spec.ports`, `x-kubernetes-group-version-kind` on the
  kinds, and the list extensions (`x-kubernetes-patch-merge-key`,
  `x-kubernetes-patch-strategy`, `x-kubernetes-list-type`,
  `x-kubernetes-list-map-keys`) and `required` fields (which `kubectl explain`
  marks "-required-") that `schema` holds; and the paths, whose
  PATCH operations list the `fieldValidation` query parameter inline: kubectl
  sends `fieldValidation=Strict` only when the PATCH operation of the kind
  (found by its `x-kubernetes-group-version-kind`) has it, and otherwise falls
  back to OpenAPI v2 and fails (recordings 08, 46).

`check_fields(obj, kind)` lists the fields of an incoming object that the
kind's schema does not have, for `fieldValidation`: `unknown` ones no
Kubernetes type has either (`.spec.portz`, `.spec.ports[0].nam`) — Strict
refuses them (`strict_decoding_message`), Warn answers each in a `Warning`
header (`warning_text`), Ignore drops them — and `ignored` ones Kubernetes has
but kubelab does not implement (`resources`): never an error, since real
manifests carry them, but dropped, and worth a warning (`ignored_text`).
Documents are built once and cached; they are pure functions of the schema.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cache

from services.apiserver.k8s import schema
from services.apiserver.k8s.jsonvalue import Json, JsonObject, deep_copy
from services.apiserver.k8s.kubernetes_fields import KUBERNETES_ONLY
from services.apiserver.k8s.schema import KindSchema, ListOf, MapOf, Node, Scalar, Struct

INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)
# Kinds whose `/status` subresource the HTTP front serves (`rest.subresources_status`);
# Kubernetes also has one for Nodes and Namespaces, which kubelab does not serve yet.
_STATUS_KINDS = {"Service", "Pod", "Deployment"}
# Kinds served for reading only (get, list, watch): Endpoints, derived from slices.
_READ_ONLY_KINDS = {"Endpoints"}


def group_versions() -> list[str]:
    """The documents there are, as `/openapi/v3` names them (`api/v1`, `apis/apps/v1`)."""
    return sorted({_gv_path(k) for k in schema.all_kinds().values()})


def _gv_path(kind: KindSchema) -> str:
    return f"apis/{kind.group}/{kind.version}" if kind.group else f"api/{kind.version}"


@cache
def document_bytes(gv_path: str) -> bytes | None:
    doc = openapi_document(gv_path)
    if doc is None:
        return None
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def document_hash(gv_path: str) -> str:
    body = document_bytes(gv_path) or b""
    return hashlib.sha512(body).hexdigest()[:32].upper()


def openapi_index() -> JsonObject:
    return {
        "paths": {
            gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash={document_hash(gv)}"}
            for gv in group_versions()
        }
    }


@cache
def _documents() -> dict[str, JsonObject]:
    docs: dict[str, JsonObject] = {}
    for gv in group_versions():
        kinds = [k for k in schema.all_kinds().values() if _gv_path(k) == gv]
        schemas: dict[str, Json] = {}
        for kind in kinds:
            _collect(kind.root, schemas)
            schemas[_list_name(kind)] = _list_schema(kind)
        paths: dict[str, Json] = {}
        for kind in kinds:
            paths.update(_paths(kind))
        docs[gv] = {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": "v1.37.1"},
            "paths": paths,
            "components": {"schemas": dict(sorted(schemas.items()))},
        }
    return docs


def openapi_document(gv_path: str) -> JsonObject | None:
    """The document for `api/v1`, `apis/apps/v1`, ...; None for any other."""
    return _documents().get(gv_path.strip("/"))


# ---------------------------------------------------------------- schemas


def _ref(name: str) -> JsonObject:
    return {"$ref": f"#/components/schemas/{name}"}


def _collect(struct: Struct, out: dict[str, Json]) -> None:
    if struct.name in out:
        return
    out[struct.name] = {}  # placeholder: a type may reach itself
    properties: JsonObject = {}
    for name, f in struct.fields.items():
        prop = _node_schema(f.node, out)
        if f.description:
            prop["description"] = f.description
        if f.strategy:
            prop["x-kubernetes-patch-strategy"] = f.strategy
        properties[name] = prop
    body: JsonObject = {"type": "object", "properties": properties}
    required: list[Json] = [name for name in struct.required if name in struct.fields]
    if required:
        body["required"] = required
    if struct.description:
        body["description"] = struct.description
    if struct.atomic:
        body["x-kubernetes-map-type"] = "atomic"
    if struct.gvk is not None:
        group, version, kind = struct.gvk
        body["x-kubernetes-group-version-kind"] = [
            {"group": group, "kind": kind, "version": version}
        ]
    out[struct.name] = body


def _node_schema(node: Node, out: dict[str, Json]) -> JsonObject:
    if isinstance(node, Struct):
        _collect(node, out)
        return {"allOf": [_ref(node.name)], "default": {}}
    if isinstance(node, ListOf):
        body: JsonObject = {"type": "array", "items": _node_schema(node.items, out)}
        body["x-kubernetes-list-type"] = node.list_type
        if node.list_type == "map":
            body["x-kubernetes-list-map-keys"] = list(node.map_keys)
        if node.merge:
            body["x-kubernetes-patch-strategy"] = "merge"
            if node.merge_key:
                body["x-kubernetes-patch-merge-key"] = node.merge_key
        return body
    if isinstance(node, MapOf):
        body = {"type": "object", "additionalProperties": _node_schema(node.values, out)}
        if node.atomic:
            body["x-kubernetes-map-type"] = "atomic"
        return body
    return _scalar_schema(node, out)


def _scalar_schema(node: Scalar, out: dict[str, Json]) -> JsonObject:
    if node.type == "int-or-string":
        out.setdefault(
            INT_OR_STRING,
            {
                "type": "string",
                "format": "int-or-string",
                "description": "IntOrString is a type that can hold an int32 or a string.",
            },
        )
        return {"allOf": [_ref(INT_OR_STRING)]}
    if node.type == "date-time":
        return {"type": "string", "format": "date-time"}
    if node.type == "integer":
        return {"type": "integer", "format": "int64"}
    if node.type == "any":
        return {"type": "object"}
    return {"type": node.type, "default": "" if node.type == "string" else False}


def _list_name(kind: KindSchema) -> str:
    return f"{kind.root.name}List"


def _list_schema(kind: KindSchema) -> JsonObject:
    return {
        "type": "object",
        "description": f"{kind.kind}List is a list of {kind.kind} objects.",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object", "description": "Standard list metadata."},
            "items": {"type": "array", "items": {"allOf": [_ref(kind.root.name)], "default": {}}},
        },
        "x-kubernetes-group-version-kind": [
            {"group": kind.group, "kind": f"{kind.kind}List", "version": kind.version}
        ],
    }


# ---------------------------------------------------------------- paths


def _param(name: str, where: str, description: str, *, required: bool = False) -> JsonObject:
    kind = "boolean" if name in ("force", "watch", "allowWatchBookmarks") else "string"
    body: JsonObject = {
        "name": name,
        "in": where,
        "description": description,
        "schema": {"type": kind, "uniqueItems": True},
    }
    if required:
        body["required"] = True
    return body


_DRY_RUN = _param("dryRun", "query", "When present, modifications are not persisted: All.")
_FIELD_MANAGER = _param("fieldManager", "query", "The name of the actor making the change.")
_FIELD_VALIDATION = _param(
    "fieldValidation",
    "query",
    "How the server treats fields it does not know or duplicated fields: Ignore, Warn "
    "(the default: a warning per field) or Strict (the request fails).",
)
_FORCE = _param("force", "query", "Apply: take the fields other managers own (conflicts).")
_WATCH = _param("watch", "query", "Watch for changes to the described resources.")


def _operation(
    verb: str, action: str, kind: KindSchema, *, sub: str = "", params: list[JsonObject]
) -> JsonObject:
    scope = "Namespaced" if kind.namespaced else ""
    group = "".join(p.capitalize() for p in (kind.group.split(".")[0] or "core", kind.version))
    suffix = sub.capitalize()
    op: JsonObject = {
        "operationId": f"{verb}{group}{scope}{kind.kind}{suffix}",
        "tags": [f"{kind.group.split('.')[0] or 'core'}_{kind.version}"],
        "parameters": list(params),
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": _ref(
                _list_name(kind) if action == "list" else kind.root.name
            )}}},
            "401": {"description": "Unauthorized"},
        },
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {
            "group": kind.group, "version": kind.version, "kind": kind.kind,
        },
    }  # fmt: skip
    if verb in ("create", "replace", "patch"):
        types = _PATCH_TYPES if verb == "patch" else ("application/json", "application/yaml")
        op["requestBody"] = {
            "required": True,
            "content": {t: {"schema": _ref(kind.root.name)} for t in types},
        }
    return op


def _paths(kind: KindSchema) -> dict[str, Json]:
    prefix = f"/apis/{kind.group}/{kind.version}" if kind.group else f"/api/{kind.version}"
    scope = f"{prefix}/namespaces/{{namespace}}" if kind.namespaced else prefix
    path_params = [_param("name", "path", f"name of the {kind.kind}", required=True)]
    if kind.namespaced:
        path_params.append(_param("namespace", "path", "object name and auth scope", required=True))
    writes = [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION]
    collection = f"{scope}/{kind.resource}"
    item = f"{collection}/{{name}}"
    if kind.kind in _READ_ONLY_KINDS:
        return {
            collection: {
                "get": _operation("list", "list", kind, params=[_WATCH]),
                "parameters": path_params[1:],  # type: ignore[dict-item]
            },
            item: {
                "get": _operation("read", "get", kind, params=[]),
                "parameters": path_params,  # type: ignore[dict-item]
            },
        }
    operations: JsonObject = {
        "get": _operation("list", "list", kind, params=[]),
        "post": _operation("create", "post", kind, params=writes),
        "parameters": path_params[1:],  # type: ignore[dict-item]
    }
    if kind.resource != "namespaces":  # Kubernetes has no deletecollection of Namespaces
        operations["delete"] = _operation(
            "deletecollection", "deletecollection", kind, params=[_DRY_RUN]
        )
    paths: dict[str, Json] = {
        collection: operations,
        item: _item_operations(kind, "", writes, path_params),
    }
    if kind.kind in _STATUS_KINDS:
        paths[f"{item}/status"] = _item_operations(kind, "status", writes, path_params)
    return paths


def _item_operations(
    kind: KindSchema, sub: str, writes: list[JsonObject], path_params: list[JsonObject]
) -> JsonObject:
    ops: JsonObject = {
        "get": _operation("read", "get", kind, sub=sub, params=[]),
        "put": _operation("replace", "put", kind, sub=sub, params=writes),
        "patch": _operation("patch", "patch", kind, sub=sub, params=[*writes, _FORCE]),
        "parameters": path_params,  # type: ignore[dict-item]
    }
    if not sub:
        ops["delete"] = _operation("delete", "delete", kind, params=[_DRY_RUN])
    return ops


# ---------------------------------------------------------------- fieldValidation


@dataclass(frozen=True, slots=True)
class FieldReport:
    """The fields of an incoming object that kubelab will not store.

    `unknown`: no such field in Kubernetes either (a typo: `.spec.portz`);
    fieldValidation Strict refuses these, Warn warns, Ignore drops them.
    `ignored`: fields Kubernetes has and kubelab does not implement
    (`.spec.containers[0].resources`); Kubernetes would accept them, so they are
    never an error, but kubelab drops them and should say so in a warning.
    """

    unknown: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def check_fields(obj: Json, kind: str) -> FieldReport:
    report = FieldReport()
    known = schema.kind_schema(kind)
    if known is not None:
        _check(obj, known.root, "", report)
    return report


def unknown_fields(obj: Json, kind: str) -> list[str]:
    """The fields of `obj` neither kubelab nor Kubernetes has, as `.spec.portz`."""
    return check_fields(obj, kind).unknown


def _check(value: Json, node: Node, path: str, out: FieldReport) -> None:
    if isinstance(node, Struct) and isinstance(value, dict):
        kubernetes_only = KUBERNETES_ONLY.get(node.name.rsplit(".", 1)[1], ())
        for key, sub in value.items():
            f = node.fields.get(key)
            if f is not None:
                _check(sub, f.node, f"{path}.{key}", out)
            elif key in kubernetes_only:
                out.ignored.append(f"{path}.{key}")
            else:
                out.unknown.append(f"{path}.{key}")
    elif isinstance(node, MapOf) and isinstance(value, dict):
        for key, sub in value.items():
            _check(sub, node.values, f"{path}.{key}", out)
    elif isinstance(node, ListOf) and isinstance(value, list):
        for index, item in enumerate(value):
            _check(item, node.items, f"{path}[{index}]", out)


def known_fields_only(obj: Json, kind: str) -> Json:
    """A copy of `obj` without the fields `check_fields` reports (unknown and
    ignored alike): what to apply or store, so managedFields never claim a field
    the stored object cannot hold."""
    known = schema.kind_schema(kind)
    return _known_only(obj, known.root) if known is not None else deep_copy(obj)


def _known_only(value: Json, node: Node) -> Json:
    if isinstance(node, Struct) and isinstance(value, dict):
        return {
            k: _known_only(v, node.fields[k].node) for k, v in value.items() if k in node.fields
        }
    if isinstance(node, MapOf) and isinstance(value, dict):
        return {k: _known_only(v, node.values) for k, v in value.items()}
    if isinstance(node, ListOf) and isinstance(value, list):
        return [_known_only(v, node.items) for v in value]
    return deep_copy(value)


def strict_decoding_message(paths: list[str]) -> str:
    """Kubernetes' words for fieldValidation=Strict (the Status message of the 400)."""
    return "strict decoding error: " + ", ".join(f'unknown field "{p[1:]}"' for p in paths)


def warning_text(path: str) -> str:
    """One `Warning` header's text for fieldValidation=Warn (code 299)."""
    return f'unknown field "{path[1:]}"'


def ignored_text(path: str) -> str:
    """A `Warning` header's text for a Kubernetes field kubelab does not implement."""
    return f"{path[1:]}: kubelab does not implement this field; it is ignored"
