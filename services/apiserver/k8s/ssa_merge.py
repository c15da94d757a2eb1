"""Server-side apply's structural merge, and removal of paths from an object.

`merge(live, config, node)` is structured-merge-diff's Merge: objects merge
key by key (an atomic struct or map, such as a label selector or a Service's
`selector`, is replaced whole); associative lists merge item by item by
their keys and sets by value, keeping the live list's items where they were
and the configuration's in its order (structured-merge-diff's interleaving);
atomic lists are replaced. A `null` in the configuration unsets the field.

`remove_paths(obj, paths, node)` removes fields, list items and set values by
their `fieldsets` paths (what an applier stopped applying and nobody owns).
"""

from __future__ import annotations

from collections.abc import Iterable

from services.apiserver.k8s import fieldsets as fs
from services.apiserver.k8s import schema
from services.apiserver.k8s.fieldsets import Path, PathElement
from services.apiserver.k8s.jsonvalue import Json, JsonObject, deep_copy
from services.apiserver.k8s.schema import ListOf, MapOf, Node, Struct


def merge(live: JsonObject, config: JsonObject, node: Node | None) -> JsonObject:
    result = _merge(live, config, node, ())
    assert isinstance(result, dict)
    return result


def _merge(lhs: Json, rhs: Json, node: Node | None, path: Path) -> Json:
    if isinstance(rhs, list) and isinstance(lhs, list) and isinstance(node, ListOf):
        if node.list_type != "atomic":
            return _merge_list(lhs, rhs, node, path)
    if isinstance(rhs, dict) and isinstance(lhs, dict):
        if not (isinstance(node, Struct | MapOf) and node.atomic):
            out = dict(lhs)  # shares untouched values; managed_fields copies the result
            for key, value in rhs.items():
                if value is None:
                    out.pop(key, None)
                else:
                    out[key] = _merge(lhs.get(key), value, schema.child(node, key), path)
            return out
    return _without_nulls(rhs)


def _without_nulls(value: Json) -> Json:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _merge_list(lhs: list[Json], rhs: list[Json], spec: ListOf, path: Path) -> list[Json]:
    right = fs.keyed_items(rhs, spec, path)
    try:
        left = fs.keyed_items(lhs, spec, path)
    except fs.ApplyError:
        # A stored list Kubernetes would not key (two env vars of one name) is replaced.
        return [_without_nulls(item) for item in rhs]
    lpes, rpes = list(left), list(right)
    shared = [pe for pe in rpes if pe in left]
    next_shared = shared.pop(0) if shared else None
    done: set[PathElement] = set()
    out: list[Json] = []

    def take(pe: PathElement) -> None:
        l_item, r_item = left.get(pe), right.get(pe)
        if r_item is None:
            out.append(l_item)
        elif spec.list_type == "set":
            out.append(r_item)
        else:
            out.append(_merge(l_item if l_item is not None else {}, r_item, spec.items, path))

    li = ri = 0
    # structured-merge-diff's visitListItems: live-only items stay in place, the
    # configuration's items come in its order, shared items where it puts them.
    while li < len(lpes) or ri < len(rpes):
        if li < len(lpes) and ri < len(rpes):
            pe = lpes[li]
            if pe == rpes[ri]:
                done.add(pe)
                take(pe)
                li, ri = li + 1, ri + 1
                next_shared = shared.pop(0) if shared else None
                continue
            if pe in right and next_shared is not None and next_shared != pe:
                li += 1
                continue
        if li < len(lpes):
            pe = lpes[li]
            if pe not in right:
                take(pe)
                li += 1
                continue
            if pe in done:
                li += 1
        if ri < len(rpes):
            pe = rpes[ri]
            done.add(pe)
            take(pe)
            ri += 1
            if next_shared is not None and next_shared == pe:
                next_shared = shared.pop(0) if shared else None
    return out


def remove_paths(obj: JsonObject, paths: Iterable[Path], node: Node | None) -> JsonObject:
    wanted = set(paths)
    if not wanted:
        return obj
    result = deep_copy(obj)
    assert isinstance(result, dict)
    # A path inside one that goes too needs no removal of its own (and removing a
    # list item's key field first would leave the item unfindable).
    for path in wanted:
        if not any(path[:n] in wanted for n in range(1, len(path))):
            _remove(result, path, node)
    return result


def _remove(value: Json, path: Path, node: Node | None) -> None:
    pe, rest = path[0], path[1:]
    if pe[0] == "f" and isinstance(value, dict):
        name = str(pe[1])
        if not rest:
            value.pop(name, None)
        elif name in value:
            _remove(value[name], rest, schema.child(node, name))
        return
    if pe[0] in ("k", "v") and isinstance(value, list) and isinstance(node, ListOf):
        for index, item in enumerate(value):
            try:
                matches = fs.item_element(item, node, ()) == pe
            except fs.ApplyError:
                matches = False
            if matches:
                if rest:
                    _remove(item, rest, node.items)
                else:
                    del value[index]
                return
