"""Kubernetes strategic merge patch (`application/strategic-merge-patch+json`).

What `kubectl apply` (client-side) and `kubectl edit`/`patch` send, and what
the Python client sends for a dict body. Like a JSON merge patch (objects merge
key by key, `null` deletes a key) except where `schema` says otherwise:

- A list whose field has `patchStrategy:"merge"` merges: items of objects are
  matched by the merge key (Service `spec.ports` by `port`, containers and env
  by `name`, conditions by `type`) and merged recursively, new ones added;
  lists of scalars (finalizers, `podCIDRs`) become the union. Every other list
  is replaced.
- Directives, as kubectl's three-way patch writes them:
  `{"$patch": "delete", "port": 443}` in a merging list deletes that item;
  `{"$patch": "replace"}` in a list replaces the list with the rest of the patch's
  items; `"$patch": "replace"` in an object replaces the object, `"delete"`
  empties it; `$retainKeys: [...]` (on `retainKeys` fields such as a
  Deployment's `strategy`) drops every key not listed;
  `$deleteFromPrimitiveList/<field>: [...]` removes those values;
  `$setElementOrder/<field>: [...]` gives the order of the merged list.
- Order, as Kubernetes' implementation orders it: the patch's items in the
  patch's (or `$setElementOrder`'s) order, and the items only the server had
  kept where they were relative to the live list. A new item given without
  `$setElementOrder` therefore lands before the server's items, as it does
  against a real apiserver.
- `null` inside a new value is dropped (the server's IgnoreUnmatchedNulls).

Fields the schema does not know merge as in a JSON merge patch (objects merge,
lists replace). Errors are `PatchError`s naming the path
(`spec.ports[1]: missing merge key "port"`); inputs are never changed.
"""

from __future__ import annotations

from services.apiserver.k8s import schema
from services.apiserver.k8s.jsonvalue import (
    BadPatchError,
    Json,
    JsonObject,
    PatchError,
    deep_copy,
    json_equal,
)
from services.apiserver.k8s.schema import ListOf, Node

DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList/"
SET_ELEMENT_ORDER = "$setElementOrder/"


def apply_strategic_merge_patch(original: JsonObject, patch: Json, kind: str) -> JsonObject:
    """`original` (an object of `kind`, e.g. "Service") with `patch` applied."""
    if not isinstance(patch, dict):
        raise BadPatchError("a strategic merge patch must be a JSON object")
    known = schema.kind_schema(kind)
    merged = _merge_map(original, patch, known.root if known else None, "")
    # The merge copies only what it changes and shares the rest with `original`;
    # one copy at the end keeps the caller's object and the result apart.
    result = deep_copy(merged)
    assert isinstance(result, dict)
    return result


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _merge_map(original: JsonObject, patch: JsonObject, node: Node | None, path: str) -> JsonObject:
    patch = dict(patch)
    directive = patch.pop(DIRECTIVE, None)
    if directive == "replace":
        return _fresh_map(patch, node, path)
    if directive == "delete":
        return {}
    if directive not in (None, "merge"):
        raise PatchError(f"{path or '.'}: unknown $patch {directive!r} for an object", path=path)
    result = dict(original)
    _retain_keys(result, patch, path)
    for key in [k for k in patch if k.startswith(SET_ELEMENT_ORDER)]:
        _set_element_order(result, patch, key, node, path)
    for key, value in patch.items():
        if key.startswith(DELETE_FROM_PRIMITIVE_LIST):
            _delete_from_primitive_list(result, key, value, path)
        elif key.startswith("$"):
            raise PatchError(f"{_join(path, key)}: unknown directive", path=path)
        elif value is None:
            result.pop(key, None)
        else:
            merged = _merge_value(result.get(key), value, node, key, _join(path, key))
            if merged is _DROP:
                result.pop(key, None)
            else:
                result[key] = merged  # type: ignore[assignment]
    return result


class _Drop:
    """A new value that was only a `$patch: delete`: the key is not added."""


_DROP = _Drop()


def _merge_value(
    current: Json, value: Json, parent: Node | None, key: str, path: str
) -> Json | _Drop:
    child = schema.child(parent, key)
    field = schema.field_of(parent, key)
    if isinstance(value, dict):
        if current is None and value.get(DIRECTIVE) == "delete":
            return _DROP
        if field is not None and field.strategy == "replace":
            return _fresh_map(value, child, path)
        base = current if isinstance(current, dict) else {}
        return _merge_map(base, value, child, path)
    if isinstance(value, list):
        base_list = current if isinstance(current, list) else []
        return _merge_list(base_list, value, child, path)
    return value


def _fresh_map(patch: JsonObject, node: Node | None, path: str) -> JsonObject:
    """A patch's object as a new value: directives applied to nothing, nulls dropped."""
    return _merge_map({}, {k: v for k, v in patch.items() if k != DIRECTIVE}, node, path)


def _retain_keys(result: JsonObject, patch: JsonObject, path: str) -> None:
    if RETAIN_KEYS not in patch:
        return
    keep = patch.pop(RETAIN_KEYS)
    if not isinstance(keep, list) or not all(isinstance(k, str) for k in keep):
        raise PatchError(f"{_join(path, RETAIN_KEYS)}: must be a list of field names", path=path)
    for key, value in patch.items():
        if value is not None and not key.startswith("$") and key not in keep:
            raise PatchError(
                f"{_join(path, RETAIN_KEYS)}: the patch sets {key!r}, which is not retained",
                path=path,
            )
    for key in list(result):
        if key not in keep:
            del result[key]


def _delete_from_primitive_list(result: JsonObject, key: str, value: Json, path: str) -> None:
    name = key[len(DELETE_FROM_PRIMITIVE_LIST) :]
    if not isinstance(value, list):
        raise PatchError(f"{_join(path, key)}: must be a list", path=path)
    current = result.get(name)
    if isinstance(current, list):
        result[name] = [v for v in current if not any(json_equal(v, d) for d in value)]


def _merge_list(
    original: list[Json], patch: list[Json], node: Node | None, path: str, *, ordered: bool = True
) -> list[Json]:
    """The merged list; `ordered=False` leaves it in the order Kubernetes' code
    builds it in place (survivors, then new items), which `$setElementOrder`
    then uses as the server's order."""
    if not isinstance(node, ListOf) or not node.merge:
        return [_strip(item, node.items if isinstance(node, ListOf) else None) for item in patch]
    if not patch:
        return list(original)
    if all(not isinstance(v, dict) for v in (*original, *patch)):
        merged = list(original)
        for value in patch:
            if not any(json_equal(value, v) for v in merged):
                merged.append(value)
        return _order(merged, patch, list(original), None) if ordered else merged
    key = node.merge_key
    if key is None:
        raise PatchError(f"{path}: cannot merge a list of objects without a merge key", path=path)
    survivors, items, replace = _special_items(original, patch, key, path)
    if replace:
        return [_fresh_map(item, node.items, path) for item in items]
    built: list[Json] = list(survivors)
    for index, item in enumerate(items):
        at = _find(built, key, item[key])
        where = f"{path}[{index}]"
        current = built[at] if at is not None else None
        if isinstance(current, dict):
            built[at] = _merge_map(current, item, node.items, where)  # type: ignore[index]
        else:
            built.append(_fresh_map(item, node.items, where))
    return _order(built, list(items), survivors, key) if ordered else built


def _special_items(
    original: list[Json], patch: list[Json], key: str, path: str
) -> tuple[list[Json], list[JsonObject], bool]:
    """The original less `$patch: delete` items, the patch's plain items, and whether
    a `{"$patch": "replace"}` item asked for the whole list to be replaced."""
    survivors = list(original)
    items: list[JsonObject] = []
    replace = False
    for index, item in enumerate(patch):
        where = f"{path}[{index}]"
        if not isinstance(item, dict):
            raise PatchError(f"{where}: must be an object, as every item of this list", path=where)
        directive = item.get(DIRECTIVE)
        if directive is None:
            if key not in item:
                raise PatchError(f'{where}: missing merge key "{key}"', path=where)
            items.append(item)
        elif directive == "delete":
            if key not in item:
                raise PatchError(f'{where}: $patch delete without merge key "{key}"', path=where)
            survivors = [
                v for v in survivors if not (isinstance(v, dict) and _same(v.get(key), item[key]))
            ]
        elif directive == "replace":
            replace = True
        else:
            raise PatchError(f"{where}: unknown $patch {directive!r} in a list", path=where)
    return survivors, items, replace


def _same(a: Json, b: Json) -> bool:
    return json_equal(a, b)


def _find(items: list[Json], key: str, value: Json) -> int | None:
    for index, item in enumerate(items):
        if isinstance(item, dict) and key in item and _same(item[key], value):
            return index
    return None


def _identity(item: Json, key: str | None) -> Json:
    return item.get(key) if key is not None and isinstance(item, dict) else item


def _index(order: list[Json], item: Json, key: str | None) -> int:
    wanted = _identity(item, key)
    for index, candidate in enumerate(order):
        if _same(_identity(candidate, key), wanted):
            return index
    return -1


def _order(
    merged: list[Json], patch_order: list[Json], server_order: list[Json], key: str | None
) -> list[Json]:
    """Kubernetes' normalizeElementOrder: patch items in patch order, server-only
    items in server order, interleaved by their places in the server's list."""
    in_patch = [item for item in merged if _index(patch_order, item, key) >= 0]
    server_only = [item for item in merged if _index(patch_order, item, key) < 0]
    in_patch.sort(key=lambda item: _index(patch_order, item, key))
    server_only.sort(key=lambda item: _index(server_order, item, key))
    result: list[Json] = []
    i = j = 0
    while i < len(server_only) or j < len(in_patch):
        if j >= len(in_patch):
            result.append(server_only[i])
            i += 1
            continue
        if i < len(server_only):
            left = _index(server_order, server_only[i], key)
            right = _index(server_order, in_patch[j], key)
            if left >= 0 and right >= 0 and left < right:
                result.append(server_only[i])
                i += 1
                continue
        result.append(in_patch[j])
        j += 1
    return result


def _set_element_order(
    result: JsonObject, patch: JsonObject, directive_key: str, node: Node | None, path: str
) -> None:
    name = directive_key[len(SET_ELEMENT_ORDER) :]
    order = patch.pop(directive_key)
    where = _join(path, directive_key)
    if not isinstance(order, list):
        raise PatchError(f"{where}: must be a list", path=where)
    child = schema.child(node, name)
    key = child.merge_key if isinstance(child, ListOf) else None
    if key is not None and not all(isinstance(o, dict) and key in o for o in order):
        raise PatchError(f'{where}: every item must carry the merge key "{key}"', path=where)
    current = result.get(name)
    given = patch.pop(name, None)
    if given is not None and not isinstance(given, list):
        raise PatchError(f"{_join(path, name)}: must be a list", path=path)
    if given is not None:
        _check_order(given, order, key, where)
    if current is None and given is None:
        return
    if given is not None:
        base = current if isinstance(current, list) else []
        merged = _merge_list(base, given, child, _join(path, name), ordered=False)
    else:
        merged = list(current) if isinstance(current, list) else []
    # The server's order is the merged list as built in place: Kubernetes' code
    # reads the live list after its items were deleted and appended in place.
    result[name] = _order(merged, order, merged, key)


def _check_order(given: list[Json], order: list[Json], key: str | None, where: str) -> None:
    places = [
        _index(order, item, key)
        for item in given
        if not (isinstance(item, dict) and item.get(DIRECTIVE) is not None)
    ]
    if any(p < 0 for p in places) or places != sorted(places):
        raise PatchError(f"{where}: does not match the order of the patch's list", path=where)


def _strip(value: Json, node: Node | None) -> Json:
    """A replacing value: directives resolved against nothing, nulls in objects dropped."""
    if isinstance(value, dict):
        return _fresh_map(value, node, "")
    if isinstance(value, list):
        inner = node.items if isinstance(node, ListOf) else None
        return [_strip(v, inner) for v in value]
    return value
