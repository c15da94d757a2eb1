"""The shape of kubelab's kinds as Kubernetes declares them, for patches and apply.

One tree of nodes per kind (`kind_schema("Service")`), built once from
kubelab's protobuf descriptors (`kubelab.v1`, whose json_names are Kubernetes'
field names) plus `schema_tables`, which holds what a descriptor cannot say:

- list semantics, from the Go struct tags of k8s.io/api and apimachinery
  (`patchStrategy`/`patchMergeKey` for strategic merge, `+listType`/`+listMapKey`
  for server-side apply): Service `spec.ports` merge by `port` and are keyed by
  (`port`, `protocol`), containers by `name`, conditions by `type`, ...
- struct and map atomicity (`+structType=atomic`, `+mapType=atomic`): a label
  selector or an ObjectReference is replaced whole, `spec.selector` too;
- field-level strategies (`DeploymentSpec.strategy` is `retainKeys`);
- the Kubernetes definition names (`io.k8s.api.core.v1.ServicePort`) and the
  descriptions `kubectl explain` prints;
- the kinds and fields kubelab serves that have no message (Namespace, Event,
  `metadata.managedFields`, `metadata.finalizers`).

Defaults follow Kubernetes': an untagged list is atomic and replaced by a
strategic merge patch; a map[string]string (labels) is granular.
Strategic merge, server-side apply and the OpenAPI documents all read this one
tree, so they cannot disagree about a merge key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Literal, TypeAlias

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from kubelab.core.manifests_shape import INT_OR_STRING, descriptor_of, is_map, message_type_of
from services.apiserver.k8s import schema_tables as tables

ScalarType = Literal["string", "integer", "number", "boolean", "int-or-string", "date-time", "any"]
ListType = Literal["atomic", "set", "map"]


@dataclass(frozen=True, slots=True)
class Scalar:
    type: ScalarType


@dataclass(frozen=True, slots=True)
class MapOf:
    """A map with free keys (labels, annotations, selector)."""

    values: Node
    atomic: bool = False


@dataclass(frozen=True, slots=True)
class ListOf:
    items: Node
    list_type: ListType = "atomic"
    # Server-side apply's keys (`+listMapKey`), for list_type "map".
    map_keys: tuple[str, ...] = ()
    # Strategic merge patch's (`patchStrategy:"merge"`, `patchMergeKey`): a list
    # without `merge` is replaced by a patch, whatever its list_type.
    merge: bool = False
    merge_key: str | None = None


@dataclass(frozen=True, slots=True)
class Field:
    node: Node
    description: str = ""
    # `patchStrategy` besides merge: "retainKeys" (the patch may carry $retainKeys)
    # or "replace" (a map replaced whole by a strategic merge patch).
    strategy: str | None = None


@dataclass(frozen=True, slots=True)
class Struct:
    name: str  # Kubernetes' definition name, e.g. io.k8s.api.core.v1.ServiceSpec
    description: str = ""
    fields: dict[str, Field] = field(default_factory=dict, repr=False)
    atomic: bool = False
    # Set on kinds: (group, version, kind).
    gvk: tuple[str, str, str] | None = None
    # Kubernetes' OpenAPI `required` (`schema_tables.REQUIRED`), names it may lack included.
    required: tuple[str, ...] = ()


Node: TypeAlias = Scalar | MapOf | ListOf | Struct

ANY = Scalar("any")
_SCALARS: dict[int, ScalarType] = {
    FieldDescriptor.CPPTYPE_STRING: "string",
    FieldDescriptor.CPPTYPE_INT32: "integer",
    FieldDescriptor.CPPTYPE_INT64: "integer",
    FieldDescriptor.CPPTYPE_UINT32: "integer",
    FieldDescriptor.CPPTYPE_UINT64: "integer",
    FieldDescriptor.CPPTYPE_BOOL: "boolean",
    FieldDescriptor.CPPTYPE_DOUBLE: "number",
    FieldDescriptor.CPPTYPE_FLOAT: "number",
    FieldDescriptor.CPPTYPE_ENUM: "string",
}
_TIMESTAMP = "google.protobuf.Timestamp"


class _Builder:
    """Turns descriptors into nodes, one Struct per (definition name)."""

    def __init__(self) -> None:
        self.structs: dict[str, Struct] = {}

    def message(self, descriptor: Descriptor, owner: str = "") -> Struct:
        short = tables.definition_short_name(descriptor.name, owner)
        if short in tables.DECLARED_STRUCTS:
            # The table's declaration wins over a message of the same name
            # (ManagedFieldsEntry's fieldsV1 is free-form JSON, a Struct in proto).
            return self.declared_struct(short)
        name = tables.definition_name(short)
        known = self.structs.get(name)
        if known is not None:
            return known
        struct = Struct(
            name=name,
            description=tables.TYPE_DESCRIPTIONS.get(short, ""),
            atomic=short in tables.ATOMIC_STRUCTS,
            required=tables.REQUIRED.get(short, ()),
        )
        self.structs[name] = struct  # before the fields: a message may nest itself
        for fd in descriptor.fields:
            struct.fields[fd.json_name] = self._field(short, fd)
        for json_name, extra in tables.EXTRA_FIELDS.get(short, {}).items():
            struct.fields.setdefault(json_name, self.declared(extra))
        return struct

    def _field(self, owner: str, fd: FieldDescriptor) -> Field:
        key = f"{owner}.{fd.json_name}"
        description = tables.FIELD_DESCRIPTIONS.get(key, "")
        if is_map(fd):
            value_fd = message_type_of(fd).fields_by_name["value"]
            node: Node = MapOf(self._single(owner, value_fd), atomic=key in tables.ATOMIC_MAPS)
        elif fd.is_repeated:
            node = self._list(key, self._single(owner, fd))
        else:
            node = self._single(owner, fd)
        return Field(node, description, tables.FIELD_STRATEGIES.get(key))

    def _list(self, key: str, items: Node) -> ListOf:
        spec = tables.LISTS.get(key)
        if spec is None:
            return ListOf(items)
        return ListOf(items, spec.list_type, spec.map_keys, spec.merge, spec.merge_key)

    def _single(self, owner: str, fd: FieldDescriptor) -> Node:
        if fd.full_name in INT_OR_STRING:
            return Scalar("int-or-string")
        if fd.message_type is not None:
            if fd.message_type.full_name == _TIMESTAMP:
                return Scalar("date-time")
            return self.message(fd.message_type, owner)
        return Scalar(_SCALARS.get(fd.cpp_type, "any"))

    def declared(self, spec: tables.Decl) -> Field:
        """A field from `schema_tables` (kinds and fields with no proto message)."""
        return Field(self._declared_node(spec.type), spec.description, spec.strategy)

    def _declared_node(self, spec: tables.TypeDecl) -> Node:
        if isinstance(spec, str):
            if spec in tables.SCALAR_NAMES:
                return Scalar(tables.SCALAR_NAMES[spec])
            if spec in tables.DECLARED_STRUCTS:
                return self.declared_struct(spec)
            return self.message(descriptor_of(tables.message_class(spec)))
        if isinstance(spec, tables.ListDecl):
            items = self._declared_node(spec.items)
            return ListOf(items, spec.list_type, spec.map_keys, spec.merge, spec.merge_key)
        return MapOf(self._declared_node(spec.values), atomic=spec.atomic)

    def declared_struct(self, short: str) -> Struct:
        name = tables.definition_name(short)
        known = self.structs.get(name)
        if known is not None:
            return known
        struct = Struct(
            name=name,
            description=tables.TYPE_DESCRIPTIONS.get(short, ""),
            atomic=short in tables.ATOMIC_STRUCTS,
            required=tables.REQUIRED.get(short, ()),
        )
        self.structs[name] = struct
        for json_name, decl in tables.DECLARED_STRUCTS[short].items():
            struct.fields[json_name] = self.declared(decl)
        return struct


@dataclass(frozen=True, slots=True)
class KindSchema:
    kind: str
    group: str
    version: str
    resource: str
    namespaced: bool
    root: Struct

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


@cache
def _all() -> tuple[dict[str, KindSchema], dict[str, Struct]]:
    builder = _Builder()
    kinds: dict[str, KindSchema] = {}
    for info in tables.KINDS:
        if info.message is not None:
            root = builder.message(descriptor_of(info.message))
        else:
            root = builder.declared_struct(info.kind)
        group, _, version = info.api_version.rpartition("/")
        gvk_root = replace(root, gvk=(group, version, info.kind))
        builder.structs[root.name] = gvk_root
        kinds[info.kind] = KindSchema(
            info.kind, group, version, info.resource, info.namespaced, gvk_root
        )
    return kinds, builder.structs


def kind_schema(kind: str) -> KindSchema | None:
    """The schema of a kind kubelab serves (`Service`), or None."""
    return _all()[0].get(kind)


def all_kinds() -> Mapping[str, KindSchema]:
    return _all()[0]


def definitions() -> Mapping[str, Struct]:
    """Every struct, by Kubernetes definition name (for the OpenAPI documents)."""
    return _all()[1]


def child(node: Node | None, key: str) -> Node | None:
    """The node of `key` inside a struct or map node; None when unknown."""
    if isinstance(node, Struct):
        f = node.fields.get(key)
        return f.node if f is not None else None
    if isinstance(node, MapOf):
        return node.values
    return None


def field_of(node: Node | None, key: str) -> Field | None:
    if isinstance(node, Struct):
        return node.fields.get(key)
    return None
