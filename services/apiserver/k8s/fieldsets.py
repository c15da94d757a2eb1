"""Field sets for server-side apply: paths into an object, their FieldsV1 encoding.

A path is a tuple of path elements, as sigs.k8s.io/structured-merge-diff has them:
`("f", "spec")` a field; `("k", (("port", "80"), ("protocol", '"TCP"')))` the
item of an associative list with those keys (values kept as canonical JSON
text, so they hash); `("v", '"a"')` the item of a set; `("i", 0)` an index.
A `FieldSet` is a frozenset of paths; a manager owns a path and, when the
path is a list item or a map that became a member, the item itself.

- `encode`/`decode`: the FieldsV1 JSON in `metadata.managedFields`
  (`{"f:spec": {"f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, ...}}}}`),
  keys in structured-merge-diff's order so the output matches Kubernetes'.
- `path_text`: the human form conflicts print (`.spec.ports[port=80,protocol="TCP"].targetPort`).
- `fields_of(value, node)`: the set an apply configuration asserts (ToFieldSet).
- `compare(old, new, node)`: added / modified / removed paths (Compare).

Keyed list items that omit a key take the key's default (`protocol: TCP`, as
Kubernetes' schema defaults it); one that omits a key without a default, or a
list with two items of one key, is an `ApplyError` naming the path.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeAlias

from services.apiserver.k8s import schema
from services.apiserver.k8s.jsonvalue import Json, JsonObject, PatchError, json_equal
from services.apiserver.k8s.schema import ListOf, MapOf, Node, Struct

PathElement: TypeAlias = tuple[str, object]
Path: TypeAlias = tuple[PathElement, ...]
FieldSet: TypeAlias = frozenset[Path]

# Defaults Kubernetes' schema gives list-map keys (`+default="TCP"` on the protocols).
KEY_DEFAULTS: dict[str, Json] = {"protocol": "TCP"}


class ApplyError(PatchError):
    """An apply configuration that cannot be a field set (422)."""


def canonical(value: Json) -> str:
    """JSON text that is the same for equal values (keys sorted, no spaces)."""
    if isinstance(value, str):
        return _encode_string(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


# json's own string encoder (C), as json.dumps(..., ensure_ascii=False) uses it: a
# fast path for the strings most keys are.
_encode_string: Callable[[str], str] = json.encoder.encode_basestring


def _value_key(text: str) -> tuple[int, float, str]:
    """Orders canonical values as structured-merge-diff does within a type: numbers
    by value, strings by text."""
    if text.startswith('"'):
        return (2, 0.0, text)
    if text in ("true", "false", "null"):
        return (1, 0.0, text)
    try:
        return (0, float(text), text)
    except ValueError:
        return (3, 0.0, text)


def field(name: str) -> PathElement:
    return ("f", name)


def path_text(path: Path) -> str:
    out = []
    for kind, content in path:
        if kind == "f":
            out.append(f".{content}")
        elif kind == "k":
            pairs = content if isinstance(content, tuple) else ()
            # Key values are canonical JSON, which is how Go's value.ToString shows
            # them too: strings quoted, numbers and booleans bare.
            out.append("[" + ",".join(f"{k}={v}" for k, v in pairs) + "]")
        elif kind == "v":
            out.append(f"[={content}]")
        else:
            out.append(f"[{content}]")
    return "".join(out)


def _element_key(pe: PathElement) -> tuple[int, object]:
    kind, content = pe
    if kind == "k" and isinstance(content, tuple):
        return 1, tuple((name, _value_key(value)) for name, value in content)
    if kind == "v":
        return 2, _value_key(str(content))
    return {"f": 0, "i": 3}.get(kind, 4), content


def _element_text(pe: PathElement) -> str:
    kind, content = pe
    if kind == "k" and isinstance(content, tuple):
        body = ",".join(f"{json.dumps(k)}:{v}" for k, v in content)
        return "k:{" + body + "}"
    return f"{kind}:{content}"


def encode(fields: Iterable[Path]) -> JsonObject:
    """The FieldsV1 form of a set."""
    tree: dict[PathElement, dict[str, object]] = {}
    root: dict[str, object] = {"children": tree, "member": False}
    for path in fields:
        node = root
        for pe in path:
            children = node["children"]
            assert isinstance(children, dict)
            node = children.setdefault(pe, {"children": {}, "member": False})
        node["member"] = True
    return _encode_node(root)


def _encode_node(node: dict[str, object]) -> JsonObject:
    out: JsonObject = {}
    children = node["children"]
    assert isinstance(children, dict)
    if node["member"] and children:
        out["."] = {}
    for pe in sorted(children, key=_element_key):
        out[_element_text(pe)] = _encode_node(children[pe])
    return out


def decode(fields_v1: Json) -> FieldSet:
    """The set a FieldsV1 object holds; `ValueError` when it is not one."""
    if not isinstance(fields_v1, dict):
        raise ValueError("fieldsV1 must be an object")
    return frozenset(_decode(fields_v1, ()))


def _decode(tree: JsonObject, prefix: Path) -> Iterator[Path]:
    for text, sub in tree.items():
        if text == ".":
            if prefix:
                yield prefix
            continue
        if not isinstance(sub, dict):
            raise ValueError(f"fieldsV1 entry {text!r} must be an object")
        path = (*prefix, _parse_element(text))
        if not sub:
            yield path
        else:
            yield from _decode(sub, path)


def _parse_element(text: str) -> PathElement:
    kind, sep, content = text.partition(":")
    if not sep or kind not in ("f", "k", "v", "i"):
        raise ValueError(f"fieldsV1 key {text!r} is not f:, k:, v: or i:")
    if kind == "f":
        return ("f", content)
    if kind == "i":
        return ("i", int(content))
    value = json.loads(content)
    if kind == "v":
        return ("v", canonical(value))
    if not isinstance(value, dict):
        raise ValueError(f"fieldsV1 key {text!r} must hold a JSON object")
    return ("k", tuple(sorted((k, canonical(v)) for k, v in value.items())))


# ---------------------------------------------------------------- from values


@dataclass(frozen=True, slots=True)
class _Kind:
    """How a node is walked: a leaf, a granular map/struct or a granular list."""

    leaf: bool
    list_: ListOf | None = None


def _kind_of(value: Json, node: Node | None) -> _Kind:
    if isinstance(node, ListOf) and isinstance(value, list):
        return _Kind(node.list_type == "atomic", node)
    if isinstance(value, dict):
        atomic = isinstance(node, Struct | MapOf) and node.atomic
        return _Kind(atomic or isinstance(node, schema.Scalar))
    return _Kind(True)


def item_element(item: Json, spec: ListOf, path: Path) -> PathElement:
    """The path element of a list item: its keys, or its value for a set."""
    if spec.list_type == "set":
        return ("v", canonical(item))
    if not isinstance(item, dict):
        raise ApplyError(
            f"{path_text(path)}: items of this list must be objects", path=path_text(path)
        )
    pairs = []
    for key in spec.map_keys:
        value = item.get(key, KEY_DEFAULTS.get(key))
        if value is None:
            raise ApplyError(
                f'{path_text(path)}: an item omits key field "{key}" (and it has no default)',
                path=path_text(path),
            )
        pairs.append((key, canonical(value)))
    return ("k", tuple(sorted(pairs)))


def keyed_items(items: list[Json], spec: ListOf, path: Path) -> dict[PathElement, Json]:
    out: dict[PathElement, Json] = {}
    for item in items:
        pe = item_element(item, spec, path)
        if pe in out and spec.list_type == "map":
            where = path_text((*path, pe))
            raise ApplyError(f"{where}: duplicate entries for this key", path=where)
        out[pe] = item
    return out


def fields_of(value: Json, node: Node | None, path: Path = ()) -> set[Path]:
    """The paths an apply configuration sets (structured-merge-diff's ToFieldSet)."""
    out: set[Path] = set()
    kind = _kind_of(value, node)
    if kind.leaf:
        if path:
            out.add(path)
        return out
    if kind.list_ is not None:
        assert isinstance(value, list)
        for pe, item in keyed_items(value, kind.list_, path).items():
            item_path = (*path, pe)
            out.add(item_path)
            if kind.list_.list_type == "map":
                out |= fields_of(item, kind.list_.items, item_path)
        return out
    assert isinstance(value, dict)
    for key, sub in value.items():
        child_path = (*path, field(key))
        out |= fields_of(sub, schema.child(node, key), child_path)
        declared = isinstance(node, Struct) and key in node.fields
        if sub is None or sub == {} or not declared:
            out.add(child_path)
    return out


@dataclass(slots=True)
class Comparison:
    added: set[Path]
    modified: set[Path]
    removed: set[Path]


def compare(old: Json, new: Json, node: Node | None) -> Comparison:
    """What changed from `old` to `new`, path by path (structured-merge-diff's Compare)."""
    result = Comparison(set(), set(), set())
    _compare(old, new, node, (), result)
    return result


def _compare(old: Json, new: Json, node: Node | None, path: Path, out: Comparison) -> None:
    if old is None and new is None:
        return
    present = new if new is not None else old
    kind = _kind_of(present, node)
    other = old if new is not None else new
    both_empty = _empty(old) and _empty(new)
    if kind.leaf or both_empty or (other is not None and _kind_of(other, node) != kind):
        _leaf(old, new, path, out)
        return
    if kind.list_ is not None:
        spec = kind.list_
        try:
            olds = keyed_items(old if isinstance(old, list) else [], spec, path)
            news = keyed_items(new if isinstance(new, list) else [], spec, path)
        except ApplyError:
            # A stored list Kubernetes would not key (two env vars of one name): the
            # list is compared whole, as an atomic one.
            _leaf(old, new, path, out)
            return
        for pe in {**olds, **news}:
            inner = spec.items if spec.list_type == "map" else None
            _compare(olds.get(pe), news.get(pe), inner, (*path, pe), out)
    else:
        olds_map = old if isinstance(old, dict) else {}
        news_map = new if isinstance(new, dict) else {}
        for key in {**olds_map, **news_map}:
            _compare(
                olds_map.get(key),
                news_map.get(key),
                schema.child(node, key),
                (*path, field(key)),
                out,
            )
    if path and old is None:
        out.added.add(path)
    elif path and new is None:
        out.removed.add(path)


def _empty(value: Json) -> bool:
    return value is None or value == {} or value == []


def _leaf(old: Json, new: Json, path: Path, out: Comparison) -> None:
    if not path:
        return
    if old is None:
        out.added.add(path)
    elif new is None:
        out.removed.add(path)
    elif not json_equal(old, new):
        out.modified.add(path)


def under(path: Path, prefix: Path) -> bool:
    return path[: len(prefix)] == prefix
