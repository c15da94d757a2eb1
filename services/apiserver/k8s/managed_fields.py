"""Server-side apply and field ownership (`metadata.managedFields`).

Kubernetes' field manager (k8s.io/apimachinery managedfields +
sigs.k8s.io/structured-merge-diff), for kubelab's kinds:

- `apply(live, config, ...)`: PATCH `application/apply-patch+yaml`. The
  configuration is merged into the live object (maps by key, associative lists
  by their keys, atomic lists and structs replaced); the manager's Apply entry
  becomes exactly the fields the configuration sets; fields the manager
  applied last time and no longer does are removed from the object unless
  another manager owns them. Another manager owning a field whose value this
  changes is a conflict (`ApplyConflict`, 409, Kubernetes' wording) unless
  `force`, which takes the field over.
- `update(live, new, ...)`: any other write (POST, PUT, the other PATCH types)
  records an Update entry for its manager with the fields it added or changed,
  and takes them from the other managers; removed fields leave every set.

Ownership never covers what the server owns (`apiVersion`, `kind`,
`metadata.name`, `uid`, `resourceVersion`, ... as Kubernetes strips them), nor
`status` through the main resource or anything but `status` through the
status subresource. An object with no managedFields is given to
`before-first-apply` by its first apply (so the apply can conflict with what
was there) and left untracked by an update, as Kubernetes does. For the
manager `kubectl`, `last_applied` adds Kubernetes' client-side to server-side
apply migration. Entries are encoded by `managed_entries`. Pure: the caller
passes `now` and stores the result.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from services.apiserver.k8s import fieldsets as fs
from services.apiserver.k8s import last_applied, schema
from services.apiserver.k8s.fieldsets import ApplyError, FieldSet, Path
from services.apiserver.k8s.jsonvalue import Json, JsonObject, deep_copy, json_equal
from services.apiserver.k8s.managed_entries import (
    APPLY,
    MAX_UPDATE_MANAGERS,
    UPDATE,
    Entry,
    cap_updaters,
    decode_managed_fields,
    encode_managed_fields,
    timestamp,
)
from services.apiserver.k8s.ssa_merge import merge, remove_paths

__all__ = [
    "MAX_UPDATE_MANAGERS",
    "ApplyConflict",
    "ApplyError",
    "Conflict",
    "Entry",
    "apply",
    "decode_managed_fields",
    "encode_managed_fields",
    "update",
]

BEFORE_FIRST_APPLY = "before-first-apply"
_STRIPPED: frozenset[Path] = frozenset(
    {(fs.field("apiVersion"),), (fs.field("kind"),), (fs.field("metadata"),)}
    | {
        (fs.field("metadata"), fs.field(name))
        for name in (
            "name", "namespace", "creationTimestamp", "selfLink", "uid", "clusterName",
            "generation", "managedFields", "resourceVersion",
        )
    }
)  # fmt: skip
_STATUS = (fs.field("status"),)


@dataclass(frozen=True, slots=True)
class Conflict:
    manager: str  # as `Entry.describe` words it
    path: str  # `.spec.ports[port=80,protocol="TCP"].targetPort`


@dataclass(slots=True)
class ApplyConflict(Exception):
    """Apply would change fields another manager owns: 409 Conflict."""

    conflicts: list[Conflict] = field(default_factory=list)
    status_code = 409  # reason Conflict; the causes name each field

    def __str__(self) -> str:
        if len(self.conflicts) == 1:
            only = self.conflicts[0]
            return f"Apply failed with 1 conflict: conflict with {only.manager}: {only.path}"
        lines = []
        for manager in sorted({c.manager for c in self.conflicts}):
            lines.append(f"conflicts with {manager}:")
            lines += [f"- {c.path}" for c in self.conflicts if c.manager == manager]
        return f"Apply failed with {len(self.conflicts)} conflicts: " + "\n".join(lines)

    def causes(self) -> list[JsonObject]:
        """`details.causes` of the Status Kubernetes answers with."""
        return [
            {
                "reason": "FieldManagerConflict",
                "message": f"conflict with {c.manager}",
                "field": c.path,
            }
            for c in self.conflicts
        ]


def _root(kind: str) -> schema.Node | None:
    known = schema.kind_schema(kind)
    return known.root if known else None


def _owned(paths: Iterable[Path], subresource: str) -> FieldSet:
    def kept(p: Path) -> bool:
        if p in _STRIPPED:
            return False
        return fs.under(p, _STATUS) if subresource == "status" else not fs.under(p, _STATUS)

    return frozenset(p for p in paths if kept(p))


def _body(obj: JsonObject | None, kind: str) -> JsonObject:
    """The object without its managedFields, with the structs Go always has present,
    so creating an object does not count `spec` itself as added. Shallow: the
    result shares its nested values with `obj` and is only read."""
    body: JsonObject = dict(obj) if obj else {}
    root = _root(kind)
    for name in ("metadata", "spec", "status"):
        if isinstance(root, schema.Struct) and name in root.fields:
            body.setdefault(name, {})
    meta = body.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        body["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    return body


def _unpad(obj: JsonObject, *sources: JsonObject | None) -> JsonObject:
    """Drop the empty structs `_body` added that none of the inputs had."""
    obj = dict(obj)
    for name in ("spec", "status"):
        if obj.get(name) == {} and not any(src and name in src for src in sources):
            del obj[name]
    return obj


def _finish_entries(
    entries: list[Entry], acting: Entry, changed: bool, now: datetime
) -> list[Json] | None:
    """The encoded managedFields after a write (None: no entry holds a field)."""
    if changed or acting.time is None:
        acting.time = timestamp(now)
    kept = cap_updaters([e for e in entries if e.fields])
    return encode_managed_fields(kept) if kept else None


def _finish(
    obj: JsonObject, entries: list[Entry], acting: Entry, changed: bool, now: datetime
) -> JsonObject:
    managed = _finish_entries(entries, acting, changed, now)
    result = deep_copy(obj)
    assert isinstance(result, dict)
    meta = result.setdefault("metadata", {})
    assert isinstance(meta, dict)
    if managed is not None:
        meta["managedFields"] = managed
    else:
        meta.pop("managedFields", None)
    return result


def _entries_for(live: JsonObject | None, kind: str, api_version: str) -> list[Entry]:
    entries = decode_managed_fields(live) if live else []
    if live and not entries:
        # Kubernetes: fields nobody manages belong to "before-first-apply".
        body = _body(live, kind)
        paths = fs.compare(_body(None, kind), body, _root(kind)).added
        owned = _owned(paths, "")
        if owned:
            entries.append(Entry(BEFORE_FIRST_APPLY, UPDATE, api_version, owned))
    return entries


def update(
    live: JsonObject | None,
    new: JsonObject,
    *,
    manager: str,
    kind: str,
    api_version: str,
    now: datetime,
    subresource: str = "",
) -> JsonObject:
    """`new` (the object a create/update/patch produced) with managedFields updated
    for `manager`'s Update operation. `live` is None on create."""
    entries = update_managed(
        live, new, manager=manager, kind=kind, api_version=api_version, now=now,
        subresource=subresource,
    )  # fmt: skip
    result = deep_copy(_unpad(_body(new, kind), new))
    assert isinstance(result, dict)
    if entries is not None:
        meta = result.setdefault("metadata", {})
        assert isinstance(meta, dict)
        meta["managedFields"] = entries
    return result


def update_managed(
    live: JsonObject | None,
    new: JsonObject,
    *,
    manager: str,
    kind: str,
    api_version: str,
    now: datetime,
    subresource: str = "",
) -> list[Json] | None:
    """Only the `metadata.managedFields` `update` gives `new` (None: none), for a
    caller that keeps the object itself in another form (the registry's hook, which
    writes them into the protobuf object): no copy of the object is made."""
    try:
        return _update(live, new, manager, kind, api_version, now, subresource)
    except RecursionError:
        raise ApplyError("the object is nested too deeply", path="") from None


def _update(
    live: JsonObject | None,
    new: JsonObject,
    manager: str,
    kind: str,
    api_version: str,
    now: datetime,
    subresource: str,
) -> list[Json] | None:
    root = _root(kind)
    entries = decode_managed_fields(live) if live else []
    given = (new.get("metadata") or {}).get("managedFields")  # type: ignore[union-attr]
    if isinstance(given, list) and given and not json_equal(given, _live_managed(live)):
        # A client may set managedFields; one empty entry resets them (Kubernetes' rule).
        entries = [] if given == [{}] else decode_managed_fields(new)
    elif live is not None and not entries:
        # Kubernetes does not start tracking an existing untracked object on update
        # (skipNonApplied); its first apply gives its fields to before-first-apply.
        return None
    diff = fs.compare(_body(live, kind), _body(new, kind), root)
    changed_paths = _owned(diff.added | diff.modified, subresource)
    removed = _owned(diff.removed, subresource)
    acting = _find(entries, manager, UPDATE, api_version, subresource)
    for entry in entries:
        if entry is not acting:
            entry.fields = entry.fields - changed_paths - removed
    acting.fields = (acting.fields - removed) | changed_paths
    return _finish_entries(entries, acting, bool(changed_paths or removed), now)


def _live_managed(live: JsonObject | None) -> Json:
    meta = live.get("metadata") if live else None
    return meta.get("managedFields") if isinstance(meta, dict) else None


def _find(entries: list[Entry], manager: str, operation: str, version: str, sub: str) -> Entry:
    probe = Entry(manager, operation, version, frozenset(), subresource=sub)
    for entry in entries:
        if entry.key == probe.key:
            entry.api_version = version
            return entry
    entries.append(probe)
    return probe


def apply(
    live: JsonObject | None,
    config: JsonObject,
    *,
    manager: str,
    kind: str,
    api_version: str,
    now: datetime,
    force: bool = False,
    subresource: str = "",
) -> JsonObject:
    """The object after `manager` applies `config` (PATCH apply-patch+yaml); `live`
    is None when the apply creates the object. Raises `ApplyConflict` (409) or
    `ApplyError` (422: an item without its keys, duplicate keys)."""
    if not manager:
        raise ApplyError("fieldManager is required for apply requests", path="fieldManager")
    args = (live, config, manager, kind, api_version, now, subresource)
    try:
        result = _apply(*args, force=force)
    except RecursionError:
        raise ApplyError("the configuration is nested too deeply", path="") from None
    except ApplyConflict as exc:
        if manager != last_applied.MIGRATING_MANAGER:
            raise
        allowed = last_applied.allowed_conflicts(live, _root(kind))
        remaining = [c for c in exc.conflicts if c.path not in allowed]
        if remaining:
            raise ApplyConflict(remaining) from None
        result = _apply(*args, force=True)
    if manager == last_applied.MIGRATING_MANAGER:
        result = last_applied.with_updated_annotation(result, config)
    return result


def _apply(
    live: JsonObject | None,
    config: JsonObject,
    manager: str,
    kind: str,
    api_version: str,
    now: datetime,
    subresource: str,
    *,
    force: bool,
) -> JsonObject:
    root = _root(kind)
    entries = _entries_for(live, kind, api_version)
    live_body = _body(live, kind)
    config_body = dict(config)
    config_meta = config_body.get("metadata")
    if isinstance(config_meta, dict) and "managedFields" in config_meta:
        config_body["metadata"] = {k: v for k, v in config_meta.items() if k != "managedFields"}
    applied = _owned(fs.fields_of(config_body, root), subresource)
    acting = _find(entries, manager, APPLY, api_version, subresource)
    last = acting.fields
    acting.fields = applied
    merged = merge(live_body, config_body, root)
    others = [e for e in entries if e is not acting]
    merged = remove_paths(merged, _unowned(last - applied, entries), root)
    diff = fs.compare(live_body, merged, root)
    changed = _owned(diff.added | diff.modified, subresource)
    conflicts = [
        Conflict(entry.describe(), fs.path_text(path))
        for entry in others
        for path in sorted(entry.fields & changed, key=fs.path_text)
    ]
    if conflicts and not force:
        raise ApplyConflict(conflicts)
    removed = _owned(diff.removed, subresource)
    for entry in others:
        entry.fields = entry.fields - changed - removed
    object_changed = not json_equal(live_body, merged)
    merged = _unpad(merged, live, config)
    return _finish(merged, entries, acting, object_changed or applied != last, now)


def _unowned(candidates: FieldSet, entries: list[Entry]) -> set[Path]:
    """Of the paths a manager stopped applying, those no manager owns, in or under."""
    owned = set().union(*(e.fields for e in entries)) if entries else set()
    return {p for p in candidates if not any(fs.under(o, p) for o in owned)}
