"""Manifests: Kubernetes YAML/JSON text <-> kubelab proto objects.

This module owns the boundary between what a user writes (`kubectl apply -f`
style files) and the typed objects the rest of kubelab handles. Loading is
four steps, each with its own failure:

1. Text -> documents. JSON when the text is one JSON object, otherwise a YAML
   stream read with YAML 1.2 core-schema scalars: only true/false are
   booleans, so `on`, `off`, `yes`, `no` stay strings (PyYAML's YAML 1.1
   default reads them as booleans -- the "Norway problem"); `010` is ten, and
   `1:30` or `2024-01-01` stay strings. Duplicate mapping keys are an error,
   as in kubectl, rather than last-one-wins. Empty documents are skipped.
2. Document -> kind. `apiVersion` + `kind` must name a kind kubelab serves
   (`kinds.kind_of_manifest`); `kind: List` (and `ServiceList`, ...) is
   flattened into its `items`.
3. Shape check against the message descriptor, accepting each field's JSON
   name (`clusterIP`) and proto name (`cluster_ip`). Fields kubelab does not
   implement are dropped with a warning naming the full path; `status` is
   dropped silently (kubectl ignores it on apply too); `null` means unset.
   Int-or-string fields (targetPort, probe ports, maxSurge/maxUnavailable)
   take `8080` or `"http"`, stored as the string `"8080"`. Every type error in
   the document is collected with its path, Kubernetes-worded
   (`spec.ports[0].port: Invalid value: "eighty": must be an integer`).
4. `json_format.ParseDict` on the cleaned dict, which after step 3 cannot
   fail on types; should it fail anyway, its error is re-worded, not raised.

Every failure is a `ManifestError` naming the source and 1-based document
number (`shop.yaml: document 2: ...`); nothing else escapes `load_manifests`.

Printing (`to_kubernetes_dict`, `to_yaml`, `to_json`, `dump_yaml`) is the inverse, in the
shape `kubectl get -o yaml|json` shows: JSON names, apiVersion/kind filled in,
int64 and numeric int-or-string values as numbers, keys ordered apiVersion,
kind, metadata, spec, ..., status. YAML output quotes every string that a
YAML 1.1 *or* 1.2 reader would take for something else, so it reads back
identically here and in kubectl.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import yaml
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from kubelab.core import errors, kinds
from kubelab.core.errors import FieldError
from kubelab.v1 import objects_pb2

MANIFEST_SUFFIXES = (".json", ".yaml", ".yml")

# Int-or-string fields are proto strings; Kubernetes YAML writes them as either.
_INT_OR_STRING = frozenset(
    field.full_name
    for field in (
        objects_pb2.ServicePort.DESCRIPTOR.fields_by_name["target_port"],
        objects_pb2.HTTPGetAction.DESCRIPTOR.fields_by_name["port"],
        objects_pb2.TCPSocketAction.DESCRIPTOR.fields_by_name["port"],
        objects_pb2.RollingUpdateDeployment.DESCRIPTOR.fields_by_name["max_surge"],
        objects_pb2.RollingUpdateDeployment.DESCRIPTOR.fields_by_name["max_unavailable"],
    )
)

_INT_RANGES = {
    FieldDescriptor.CPPTYPE_INT32: (-(2**31), 2**31 - 1, "a 32-bit integer"),
    FieldDescriptor.CPPTYPE_INT64: (-(2**63), 2**63 - 1, "a 64-bit integer"),
    FieldDescriptor.CPPTYPE_UINT32: (0, 2**32 - 1, "an unsigned 32-bit integer"),
    FieldDescriptor.CPPTYPE_UINT64: (0, 2**64 - 1, "an unsigned 64-bit integer"),
}
_INT64_CPPTYPES = (FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT64)
_TIMESTAMP = Timestamp.DESCRIPTOR.full_name


class ManifestError(ValueError):
    """A manifest that cannot become an object; the message says where and why."""

    def __init__(
        self,
        message: str,
        *,
        source: str,
        document: int | None = None,
        field_errors: Sequence[FieldError] = (),
    ) -> None:
        self.source = source
        self.document = document
        self.field_errors = tuple(field_errors)
        super().__init__(message)


@dataclass(frozen=True)
class LoadedObject:
    info: kinds.KindInfo
    object: kinds.ApiObject
    # Paths of fields dropped because kubelab does not implement them.
    warnings: tuple[str, ...]
    source: str
    # 1-based position of the document in `source` (items of a List share it).
    document: int = 0


# ---------------------------------------------------------------- YAML dialect

_CORE_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_CORE_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_CORE_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_BOOL_TAG = "tag:yaml.org,2002:bool"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
# YAML 1.1 types the core schema does not have (timestamp, `=`) or types
# whose 1.1 spelling differs (bool, int, float): their resolvers go.
_REPLACED_TAGS = frozenset(
    {_BOOL_TAG, _INT_TAG, _FLOAT_TAG, "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value"}
)
_CORE_RESOLVERS = (
    (_BOOL_TAG, _CORE_BOOL, list("tTfF")),
    # int before float: "8080" matches both patterns and must be an int.
    (_INT_TAG, _CORE_INT, list("-+0123456789")),
    (_FLOAT_TAG, _CORE_FLOAT, list("-+.0123456789")),
)


class _CoreSchemaLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema scalars and no duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key = self.construct_object(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _construct_core_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    if not _CORE_INT.match(text):
        raise yaml.constructor.ConstructorError(
            None, None, f"{text!r} is not a YAML 1.2 integer", node.start_mark
        )
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


_CoreSchemaLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _REPLACED_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _tag, _regexp, _first in _CORE_RESOLVERS:
    _CoreSchemaLoader.add_implicit_resolver(_tag, _regexp, _first)
_CoreSchemaLoader.add_constructor(_INT_TAG, _construct_core_int)


class _QuotingDumper(yaml.SafeDumper):
    """SafeDumper that also quotes strings a YAML 1.2 core reader would retype."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # PyYAML folds NEL (U+0085) inside single-quoted and plain scalars, so the
    # text would read back changed; double quotes escape it (found by hypothesis).
    style = '"' if "\x85" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


for _tag, _regexp, _first in _CORE_RESOLVERS:
    _QuotingDumper.add_implicit_resolver(_tag, _regexp, _first)
_QuotingDumper.add_representer(str, _represent_str)


# ---------------------------------------------------------------- text -> documents


class _DuplicateKeyError(ValueError):
    pass


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(f"found duplicate key {key!r}")
        result[key] = value
    return result


def _documents(text: str, source: str) -> list[object]:
    if text.lstrip().startswith("{"):
        try:
            return [json.loads(text, object_pairs_hook=_json_object)]
        except _DuplicateKeyError as err:
            raise ManifestError(f"{source}: invalid JSON: {err}", source=source) from None
        except RecursionError:
            raise ManifestError(
                f"{source}: invalid JSON: nested too deeply", source=source
            ) from None
        except json.JSONDecodeError:
            pass  # Maybe a YAML flow mapping; the YAML reader words any error.
    documents: list[object] = []
    try:
        for document in yaml.load_all(text, Loader=_CoreSchemaLoader):
            documents.append(document)
    except yaml.YAMLError as err:
        number = len(documents) + 1
        raise ManifestError(
            f"{source}: document {number}: invalid YAML: {_yaml_problem(err)}",
            source=source,
            document=number,
        ) from None
    except RecursionError:
        number = len(documents) + 1
        raise ManifestError(
            f"{source}: document {number}: invalid YAML: nested too deeply",
            source=source,
            document=number,
        ) from None
    return documents


def _yaml_problem(err: yaml.YAMLError) -> str:
    if not isinstance(err, yaml.MarkedYAMLError):
        return str(err)
    problem = err.problem or err.context or "cannot parse"
    mark = err.problem_mark or err.context_mark
    if err.context and err.problem:
        problem = f"{problem} ({err.context})"
    if mark is None:
        return problem
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"


# ---------------------------------------------------------------- documents -> objects


def load_manifests(text: str, source: str = "-") -> list[LoadedObject]:
    """Every object in `text`, in order; raises `ManifestError` on the first bad one."""
    loaded: list[LoadedObject] = []
    for number, document in enumerate(_documents(text, source), start=1):
        if document is None:
            continue
        where = f"{source}: document {number}"
        for item_where, item in _flatten_list(document, where, source, number):
            info, message, warnings = _decode(item, item_where, source, number)
            obj = cast(kinds.ApiObject, message)
            loaded.append(LoadedObject(info, obj, warnings, source, number))
    return loaded


def load_manifest_files(paths: Sequence[str]) -> list[LoadedObject]:
    """Load files, directories (their *.yaml, *.yml, *.json, sorted, not
    recursive, like `kubectl apply -f dir`) and `-` (stdin), in the order given."""
    loaded: list[LoadedObject] = []
    for path in paths:
        if path == "-":
            loaded += load_manifests(sys.stdin.read(), "STDIN")
            continue
        target = Path(path)
        if target.is_dir():
            files = sorted(
                p for p in target.iterdir() if p.suffix in MANIFEST_SUFFIXES and p.is_file()
            )
        else:
            files = [target]
        for file in files:
            try:
                text = file.read_text(encoding="utf-8-sig")
            except OSError as err:
                raise ManifestError(f"{file}: {err.strerror or err}", source=str(file)) from None
            except UnicodeDecodeError as err:
                raise ManifestError(
                    f"{file}: not UTF-8 text (byte {err.start})", source=str(file)
                ) from None
            loaded += load_manifests(text, str(file))
    return loaded


def _described(value: object) -> str:
    """`a list`, `an object`, `null`: a value's JSON type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _flatten_list(
    document: object, where: str, source: str, number: int
) -> list[tuple[str, object]]:
    """The document itself, or the items of a `List` / `<Kind>List` document."""
    if not isinstance(document, dict):
        raise ManifestError(
            f"{where}: expected an object with apiVersion and kind, got {_described(document)}",
            source=source,
            document=number,
        )
    kind, api_version = document.get("kind"), document.get("apiVersion")
    if not isinstance(kind, str) or not kind.endswith("List"):
        return [(where, document)]
    item_info = None
    if kind != "List":
        item_info = kinds.kind_of_manifest(str(api_version), kind.removesuffix("List"))
        if item_info is None:
            return [(where, document)]  # Reported as an unsupported kind.
    items = document.get("items") or []
    if not isinstance(items, list):
        raise ManifestError(
            f"{where}: items: must be a list, got {_described(items)}",
            source=source,
            document=number,
        )
    flattened: list[tuple[str, object]] = []
    for i, item in enumerate(items):
        # A typed list (`kubectl get --raw`) leaves apiVersion/kind off its items.
        if item_info is not None and isinstance(item, dict):
            item = {"apiVersion": item_info.api_version, "kind": item_info.kind, **item}
        if isinstance(item, dict) and item.get("kind") == "List":
            raise ManifestError(
                f"{where}: items[{i}]: a List inside a List is not supported",
                source=source,
                document=number,
            )
        flattened.append((f"{where}: items[{i}]", item))
    return flattened


def _unsupported(api_version: str, kind: str) -> str:
    supported = ", ".join(f"{i.kind} ({i.api_version})" for i in kinds.ALL_KINDS)
    return (
        f'kind "{kind}" (apiVersion {api_version}) is not supported by kubelab; '
        f"supported: {supported}"
    )


def _decode(
    document: object, where: str, source: str, number: int
) -> tuple[kinds.KindInfo, Message, tuple[str, ...]]:
    def fail(message: str, field_errors: Sequence[FieldError] = ()) -> ManifestError:
        return ManifestError(
            f"{where}: {message}", source=source, document=number, field_errors=field_errors
        )

    if not isinstance(document, dict):
        raise fail(f"expected an object with apiVersion and kind, got {_described(document)}")
    api_version, kind = document.get("apiVersion"), document.get("kind")
    for name, value in (("apiVersion", api_version), ("kind", kind)):
        if value is None or value == "":
            raise fail(f"'{name}' is missing")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        bad, value = ("kind", kind) if isinstance(api_version, str) else ("apiVersion", api_version)
        raise fail(f"{bad}: Invalid value: {_show(value)}: must be a string")
    info = kinds.kind_of_manifest(api_version, kind)
    if info is None:
        raise fail(_unsupported(api_version, kind))

    walk = _Walk()
    cleaned = walk.message(document, _descriptor(info.message), "")
    metadata = document.get("metadata")
    given_name = metadata.get("name") if isinstance(metadata, dict) else None
    name = given_name if isinstance(given_name, str) else ""
    if walk.errors or cleaned is None:
        raise fail(errors.format_invalid(info.kind, name, walk.errors), walk.errors)
    message = info.message()
    try:
        json_format.ParseDict(cleaned, message)
    except (json_format.ParseError, ValueError, TypeError) as err:
        raise fail(f'{info.kind} "{name}" is invalid: {err}') from None
    return info, message, tuple(walk.warnings)


# ---------------------------------------------------------------- the shape check


class _Shown:
    """A value as an error message shows it (`null`, `{...}`), not as Python does."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text


def _show(value: object) -> object:
    if value is None:
        return _Shown("null")
    if isinstance(value, dict):
        return _Shown("{...}")
    if isinstance(value, list):
        return _Shown("[...]")
    if isinstance(value, str) and len(value) > 64:
        return _Shown(json.dumps(value[:61]) + "...")
    if isinstance(value, bool | int | float | str):
        return value
    return _Shown(type(value).__name__)


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _join(path: str, key: str) -> str:
    if not _PLAIN_KEY.fullmatch(key):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _key_text(key: object) -> str | None:
    """A mapping key as text, converted the way sigs.k8s.io/yaml converts it."""
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int | float):
        return str(key)
    return None


_FIELDS: dict[str, dict[str, FieldDescriptor]] = {}


def _fields(descriptor: Descriptor) -> dict[str, FieldDescriptor]:
    fields = _FIELDS.get(descriptor.full_name)
    if fields is None:
        fields = {f.name: f for f in descriptor.fields}
        fields.update({f.json_name: f for f in descriptor.fields})
        _FIELDS[descriptor.full_name] = fields
    return fields


def _descriptor(message: Message | type[Message]) -> Descriptor:
    # The stubs type DESCRIPTOR as a union with upb's own class; it is one.
    return cast(Descriptor, message.DESCRIPTOR)


def _message_type(field: FieldDescriptor) -> Descriptor:
    if field.message_type is None:
        raise TypeError(f"{field.full_name} is not a message field")
    return field.message_type


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


class _Invalid:
    """Marks a value that failed the check (its error is already recorded)."""


_INVALID = _Invalid()


class _Walk:
    """One document's shape check: collects a cleaned dict, warnings and errors."""

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.errors: list[FieldError] = []

    def _invalid(self, path: str, value: object, detail: str) -> _Invalid:
        self.errors.append(errors.invalid(path, _show(value), detail))
        return _INVALID

    def message(self, value: object, descriptor: Descriptor, path: str) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self._invalid(path, value, "must be an object")
            return None
        fields = _fields(descriptor)
        cleaned: dict[str, Any] = {}
        given_as: dict[str, str] = {}
        for key, item in value.items():
            if not path and key == "status":
                continue  # Written by kubelab, never by a manifest (as with kubectl apply).
            text = _key_text(key)
            field = fields.get(text) if text is not None else None
            sub = _join(path, text if text is not None else repr(key))
            if field is None:
                self.warnings.append(f"{sub}: unknown field, ignored")
                continue
            if field.json_name in given_as:
                self._invalid(sub, item, f"the same field as {given_as[field.json_name]}")
                continue
            given_as[field.json_name] = sub
            if item is None:
                continue  # null means "not set", as in Kubernetes.
            result = self._field(item, field, sub)
            if not isinstance(result, _Invalid):
                cleaned[field.json_name] = result
        return cleaned

    def _field(self, value: object, field: FieldDescriptor, path: str) -> object:
        if _is_map(field):
            if not isinstance(value, dict):
                return self._invalid(path, value, "must be an object")
            value_field = _message_type(field).fields_by_name["value"]
            entries: dict[str, object] = {}
            for key, item in value.items():
                text = _key_text(key)
                if text is None:
                    self._invalid(path, key, "keys must be strings")
                    continue
                result = self._single(item, value_field, _join(path, text))
                if not isinstance(result, _Invalid):
                    entries[text] = result
            return entries
        if field.is_repeated:
            if not isinstance(value, list):
                return self._invalid(path, value, "must be a list")
            items = [self._single(item, field, f"{path}[{i}]") for i, item in enumerate(value)]
            return [item for item in items if not isinstance(item, _Invalid)]
        return self._single(value, field, path)

    def _single(self, value: object, field: FieldDescriptor, path: str) -> object:
        cpp = field.cpp_type
        if cpp == FieldDescriptor.CPPTYPE_MESSAGE:
            message_type = _message_type(field)
            if message_type.full_name == _TIMESTAMP:
                return self._timestamp(value, path)
            result = self.message(value, message_type, path)
            return _INVALID if result is None else result
        if cpp == FieldDescriptor.CPPTYPE_STRING:
            if isinstance(value, str):
                return value
            if field.full_name in _INT_OR_STRING:
                number = _as_int(value)
                if number is None:
                    return self._invalid(path, value, "must be an integer or a string")
                return str(number)
            return self._invalid(path, value, "must be a string")
        if cpp == FieldDescriptor.CPPTYPE_BOOL:
            if isinstance(value, bool):
                return value
            return self._invalid(path, value, "must be a boolean")
        if cpp in _INT_RANGES:
            low, high, what = _INT_RANGES[cpp]
            number = _as_int(value)
            if number is None:
                return self._invalid(path, value, "must be an integer")
            if not low <= number <= high:
                return self._invalid(path, value, f"must fit in {what}")
            return number
        if cpp in (FieldDescriptor.CPPTYPE_DOUBLE, FieldDescriptor.CPPTYPE_FLOAT):
            if isinstance(value, int | float) and not isinstance(value, bool):
                return value
            return self._invalid(path, value, "must be a number")
        if cpp == FieldDescriptor.CPPTYPE_ENUM and field.enum_type is not None:
            if isinstance(value, str) and value in field.enum_type.values_by_name:
                return value
            names = ", ".join(field.enum_type.values_by_name)
            return self._invalid(path, value, f"must be one of {names}")
        return self._invalid(path, value, "is not supported by kubelab")

    def _timestamp(self, value: object, path: str) -> object:
        if isinstance(value, str):
            try:
                Timestamp().FromJsonString(value)
            except ValueError:
                pass
            else:
                return value
        return self._invalid(path, value, "must be an RFC 3339 time (2006-01-02T15:04:05Z)")


def _as_int(value: object) -> int | None:
    """An integer, or a float with no fractional part (JSON `8080.0`); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


# ---------------------------------------------------------------- objects -> text

_FIRST_KEYS = ("apiVersion", "kind", "metadata", "spec")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


def to_kubernetes_dict(obj: Message) -> dict[str, Any]:
    """The object as `kubectl get -o json` shows it."""
    body = json_format.MessageToDict(obj)
    _restore_numbers(body, _descriptor(obj))
    for info in kinds.ALL_KINDS:
        if isinstance(obj, info.message):
            body["apiVersion"] = body.get("apiVersion") or info.api_version
            body["kind"] = body.get("kind") or info.kind
            break
    ordered = {key: body[key] for key in _FIRST_KEYS if key in body}
    ordered.update((k, v) for k, v in body.items() if k not in ordered and k != "status")
    if "status" in body:
        ordered["status"] = body["status"]
    return ordered


def _restore_numbers(body: dict[str, Any], descriptor: Descriptor) -> None:
    """Undo proto JSON's strings: int64 fields and numeric int-or-string values."""
    fields = _fields(descriptor)
    for key, value in body.items():
        field = fields.get(key)
        if field is None or _is_map(field):
            continue  # Maps here are string -> string; nothing to restore.
        if field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, dict):  # Timestamps are already strings.
                    _restore_numbers(item, _message_type(field))
        elif field.cpp_type in _INT64_CPPTYPES:
            body[key] = [int(v) for v in value] if isinstance(value, list) else int(value)
        elif field.full_name in _INT_OR_STRING and _DECIMAL.fullmatch(value):
            # "0080" stays a string: as a number it would read back as "80".
            body[key] = int(value)


def to_yaml(obj: Message) -> str:
    return dump_yaml(to_kubernetes_dict(obj))


def dump_yaml(data: Mapping[str, Any]) -> str:
    """YAML for already-shaped data (a `kind: List` of `to_kubernetes_dict`
    items), quoted so that both YAML 1.1 and 1.2 readers read it back as is."""
    return yaml.dump(
        dict(data),
        Dumper=_QuotingDumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=1 << 20,
    )


def to_json(obj: Message) -> str:
    return json.dumps(to_kubernetes_dict(obj), indent=4, ensure_ascii=False) + "\n"
