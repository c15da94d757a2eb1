"""Manifests: Kubernetes YAML/JSON text <-> kubelab proto objects.

This module owns the boundary between what a user writes (`kubectl apply -f`
style files) and the typed objects the rest of kubelab handles. Loading is
five steps, each with its own failure:

1. Text -> documents. JSON when the text is one JSON object (duplicate keys
   are an error), otherwise a YAML stream read as YAML 1.2, as Kubernetes
   reads it (`kubelab.core.yaml12`: `on`/`no` stay strings, `010` is ten,
   duplicate keys are an error). Empty documents are skipped.
2. Document -> kind. `apiVersion` + `kind` must name a kind kubelab serves
   (`kinds.kind_of_manifest`); `kind: List` (and `ServiceList`, ...) is
   flattened into its `items`.
3. Shape check against the message descriptor (`kubelab.core.manifests_shape`):
   JSON and proto field names accepted, unimplemented fields dropped with a
   warning, `status` dropped, int-or-string fields normalised, every type
   error collected with its path, Kubernetes-worded.
4. The cleaned dict into the message (`kubelab.core.dict_proto.fill`, what
   `json_format.ParseDict` builds, planned per message type), which after step 3
   cannot fail on types; should it fail anyway, its error is re-worded, not raised.

5. Size: an object whose encoded size is above what the apiserver stores
   (`validation.MAX_OBJECT_BYTES`) is refused here, with every problem the
   apiserver would report (a 5 MB name: `must be no more than 63
   characters`), because it could not even be sent: gRPC caps messages.

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
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import yaml
from google.protobuf.message import Message

from kubelab.core import dict_proto, errors, kinds, yaml12
from kubelab.core.errors import FieldError
from kubelab.core.manifests_shape import (
    INT_OR_STRING,
    ShapeCheck,
    descriptor_of,
    show,
)
from kubelab.core.proto_dict import message_to_dict
from kubelab.core.validation import objects as validation

MANIFEST_SUFFIXES = (".json", ".yaml", ".yml")


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
            return [
                json.loads(text, object_pairs_hook=_json_object, parse_int=yaml12.parse_decimal)
            ]
        except _DuplicateKeyError as err:
            raise ManifestError(f"{source}: invalid JSON: {err}", source=source) from None
        except RecursionError:
            raise ManifestError(
                f"{source}: invalid JSON: nested too deeply", source=source
            ) from None
        except json.JSONDecodeError:
            pass  # Maybe a YAML flow mapping; the YAML reader words any error.
        except ValueError as err:
            # A number Python will not convert (long integers are LongInteger by now;
            # this is the net under that).
            raise ManifestError(f"{source}: invalid JSON: {err}", source=source) from None
    documents: list[object] = []
    try:
        for document in yaml12.load_all(text):
            documents.append(document)
    except (yaml.YAMLError, RecursionError, ValueError) as err:
        number = len(documents) + 1
        if isinstance(err, yaml.YAMLError):
            problem = yaml12.problem(err)
        elif isinstance(err, RecursionError):
            problem = "nested too deeply"
        else:
            problem = str(err)  # a number Python will not convert
        raise ManifestError(
            f"{source}: document {number}: invalid YAML: {problem}",
            source=source,
            document=number,
        ) from None
    return documents


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


def load_object(document: object, where: str) -> LoadedObject:
    """One already-parsed document (an HTTP request's body), steps 2 to 5 without the
    List flattening; errors name `where` (`request body`)."""
    info, message, warnings = _decode(document, where, where, 1)
    return LoadedObject(info, cast(kinds.ApiObject, message), warnings, where, 1)


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
    if isinstance(value, int | float | yaml12.LongInteger):
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
        raise fail(f"{bad}: Invalid value: {show(value)}: must be a string")
    info = kinds.kind_of_manifest(api_version, kind)
    if info is None:
        raise fail(_unsupported(api_version, kind))

    walk = ShapeCheck()
    cleaned = walk.message(document, descriptor_of(info.message), "")
    metadata = document.get("metadata")
    given_name = metadata.get("name") if isinstance(metadata, dict) else None
    name = given_name if isinstance(given_name, str) else ""
    if walk.errors or cleaned is None:
        raise fail(errors.format_invalid(info.kind, name, walk.errors), walk.errors)
    message = info.message()
    try:
        dict_proto.fill(cleaned, message)
    except (ValueError, TypeError) as err:
        raise fail(f'{info.kind} "{name}" is invalid: {err}') from None
    if message.ByteSize() > validation.MAX_OBJECT_BYTES:
        # It could not be sent (gRPC caps messages) nor stored; the server's own
        # words come from the same pure validation, defaults applied first.
        shown = info.message()
        cast(Message, shown).CopyFrom(message)
        validation.apply_defaults(info, shown)
        problems = validation.validate_object(info, shown)
        raise fail(errors.format_invalid(info.kind, name, problems), problems)
    return info, message, tuple(walk.warnings)


# ---------------------------------------------------------------- objects -> text

_FIRST_KEYS = ("apiVersion", "kind", "metadata", "spec")


def to_kubernetes_dict(obj: Message) -> dict[str, Any]:
    """The object as `kubectl get -o json` shows it."""
    body: dict[str, Any] = message_to_dict(obj, INT_OR_STRING)
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


def to_yaml(obj: Message) -> str:
    return dump_yaml(to_kubernetes_dict(obj))


def dump_yaml(data: Mapping[str, Any]) -> str:
    """YAML for already-shaped data (a `kind: List` of `to_kubernetes_dict`
    items), quoted so that both YAML 1.1 and 1.2 readers read it back as is."""
    return yaml12.dump(dict(data))


def to_json(obj: Message) -> str:
    return json.dumps(to_kubernetes_dict(obj), indent=4, ensure_ascii=False) + "\n"
