"""RFC 7386 JSON merge patch (`application/merge-patch+json`).

What `kubectl label`, `kubectl scale` and the Python client's merge patches
send. An object in the patch merges key by key; `null` deletes the key; any
other value, lists included, replaces what was there. A patch that is not an
object replaces the whole target, as the RFC says; the HTTP front refuses
that for an API object before it gets here (a Kubernetes object is an object).

`create_merge_patch(a, b)` is the inverse: the smallest patch that turns `a`
into `b` (used by tests and by `kubectl diff`-like callers).
"""

from __future__ import annotations

from services.apiserver.k8s.jsonvalue import Json, deep_copy, json_equal


def apply_merge_patch(target: Json, patch: Json) -> Json:
    """`target` with `patch` applied; neither argument is changed."""
    if not isinstance(patch, dict):
        return deep_copy(patch)
    result: dict[str, Json] = deep_copy(target) if isinstance(target, dict) else {}  # type: ignore[assignment]
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


def create_merge_patch(original: Json, modified: Json) -> Json:
    """A merge patch that turns `original` into `modified`.

    Exact for every pair whose `modified` holds no `null` inside an object (a
    merge patch cannot set a key to null: null means delete).
    """
    if not isinstance(original, dict) or not isinstance(modified, dict):
        return deep_copy(modified)
    patch: dict[str, Json] = {}
    for key in original.keys() - modified.keys():
        patch[key] = None
    for key, value in modified.items():
        if key not in original:
            patch[key] = deep_copy(value)
        elif not json_equal(original[key], value):
            patch[key] = create_merge_patch(original[key], value)
    return patch
