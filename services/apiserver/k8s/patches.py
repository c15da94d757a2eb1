"""One entry point for PATCH bodies that are not server-side apply.

`apply_patch(live, body, content_type, kind)` picks the patch type by the
request's Content-Type (its media type, parameters ignored), as the apiserver
does, and returns the patched object. What the HTTP front answers:

- `UnsupportedPatchType` (415) for any other Content-Type, with Kubernetes'
  list of the accepted ones;
- `BadPatchError` (400) for a body that is not that kind of patch, or a result
  that is not a JSON object (a merge patch of `"x"`, a json-patch replacing `/`
  with a list);
- `PatchError` (422) for a patch that does not fit the object;
- `BadPatchError` too for a body nested deeper than Python's recursion allows.

`application/apply-patch+yaml` is `managed_fields.apply`, which needs the field
manager and `force`; `is_apply` tells the caller to go there.
"""

from __future__ import annotations

from services.apiserver.k8s.json_patch import apply_json_patch
from services.apiserver.k8s.jsonvalue import BadPatchError, Json, JsonObject, PatchError
from services.apiserver.k8s.merge_patch import apply_merge_patch
from services.apiserver.k8s.strategic_merge import apply_strategic_merge_patch

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, APPLY_PATCH, STRATEGIC_MERGE_PATCH)


class UnsupportedPatchType(PatchError):
    @property
    def status_code(self) -> int:
        return 415


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def is_apply(content_type: str) -> bool:
    return media_type(content_type) == APPLY_PATCH


def apply_patch(live: JsonObject, body: Json, content_type: str, kind: str) -> JsonObject:
    """`live` patched by `body`; `live` is never changed."""
    try:
        return _apply_patch(live, body, content_type, kind)
    except RecursionError:
        # json.loads accepts nesting a little deeper than the merges can walk.
        raise BadPatchError("the patch is nested too deeply") from None


def _apply_patch(live: JsonObject, body: Json, content_type: str, kind: str) -> JsonObject:
    media = media_type(content_type)
    if media == JSON_PATCH:
        result = apply_json_patch(live, body)
    elif media == MERGE_PATCH:
        if not isinstance(body, dict):
            raise BadPatchError("a merge patch of an object must be a JSON object")
        result = apply_merge_patch(live, body)
    elif media == STRATEGIC_MERGE_PATCH:
        result = apply_strategic_merge_patch(live, body, kind)
    else:
        accepted = ", ".join(f'"{t}"' for t in PATCH_TYPES)
        raise UnsupportedPatchType(
            f"the body of the request was in an unknown format - accepted media types include: "
            f"{accepted}"
        )
    if not isinstance(result, dict):
        raise BadPatchError("the patched object must be a JSON object")
    return result
