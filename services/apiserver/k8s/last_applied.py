"""Where server-side apply meets client-side apply's annotation, as Kubernetes has it.

Two rules of apimachinery's field manager, both only for the field manager
named `kubectl` (what `kubectl apply --server-side` uses):

- Migration (lastAppliedManager): an apply whose conflicts are all fields of
  the object's `kubectl.kubernetes.io/last-applied-configuration` is forced:
  the user is moving the same file from client-side to server-side apply.
- Upkeep (lastAppliedUpdater): after such an apply, an object that carries the
  annotation gets it rewritten to the applied configuration, so a later
  client-side `kubectl apply` diffs against what was applied last.
"""

from __future__ import annotations

import json

from services.apiserver.k8s import fieldsets as fs
from services.apiserver.k8s.jsonvalue import JsonObject, deep_copy
from services.apiserver.k8s.schema import Node

ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
MIGRATING_MANAGER = "kubectl"


def _annotation(obj: JsonObject | None) -> str:
    meta = obj.get("metadata") if obj else None
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    value = annotations.get(ANNOTATION) if isinstance(annotations, dict) else None
    return value if isinstance(value, str) else ""


def allowed_conflicts(live: JsonObject | None, root: Node | None) -> set[str]:
    """The paths (as conflicts print them) the live object's last-applied
    configuration sets; empty when it has none or it does not parse."""
    text = _annotation(live)
    if not text:
        return set()
    try:
        last = json.loads(text)
        return (
            {fs.path_text(p) for p in fs.fields_of(last, root)} if isinstance(last, dict) else set()
        )
    except (ValueError, RecursionError, fs.ApplyError):
        return set()


def with_updated_annotation(obj: JsonObject, config: JsonObject) -> JsonObject:
    """`obj` with its last-applied annotation set to `config`, if it has one."""
    if not _annotation(obj):
        return obj
    applied = deep_copy(config)
    assert isinstance(applied, dict)
    meta = applied.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    if isinstance(annotations, dict):
        annotations.pop(ANNOTATION, None)
    # As Go's json.Encoder writes it: keys sorted, compact, HTML characters escaped,
    # a trailing newline.
    text = json.dumps(applied, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    result = deep_copy(obj)
    assert isinstance(result, dict)
    result["metadata"]["annotations"][ANNOTATION] = text + "\n"  # type: ignore[index,call-overload]
    return result
