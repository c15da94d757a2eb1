"""managedFields entries: decoding, encoding, ordering and the cap on Update entries.

An `Entry` is one element of `metadata.managedFields`: a manager, its
operation (Apply or Update), the apiVersion and time, and its field set.
Entries are keyed as Kubernetes keys managers (BuildManagerIdentifier): an
Apply entry per manager and subresource, an Update entry per manager,
apiVersion and subresource. Encoding orders them as Kubernetes does (Apply
before Update, then by time, manager, apiVersion); decoding drops the whole
list when one entry is malformed, as Kubernetes resets what it cannot decode.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from services.apiserver.k8s import fieldsets as fs
from services.apiserver.k8s.fieldsets import FieldSet
from services.apiserver.k8s.jsonvalue import Json, JsonObject

APPLY, UPDATE = "Apply", "Update"
ANCIENT = "ancient-changes"
# Kubernetes caps Update entries, folding the oldest into "ancient-changes".
MAX_UPDATE_MANAGERS = 10


@dataclass(slots=True)
class Entry:
    manager: str
    operation: str
    api_version: str
    fields: FieldSet
    time: str | None = None
    subresource: str = ""

    @property
    def key(self) -> tuple[str, str, str, str]:
        # As Kubernetes' BuildManagerIdentifier: an Apply entry is one per manager.
        version = "" if self.operation == APPLY else self.api_version
        return (self.manager, self.operation, version, self.subresource)

    def describe(self) -> str:
        """How a conflict names this manager (`"kubectl-client-side-apply" using v1`)."""
        text = json.dumps(self.manager)
        if self.subresource:
            text += f" with subresource {json.dumps(self.subresource)}"
        if self.operation == UPDATE:
            text += f" using {self.api_version}"
        return text


def decode_managed_fields(obj: JsonObject) -> list[Entry]:
    """The entries of `metadata.managedFields`; malformed ones are dropped, as
    Kubernetes resets managed fields it cannot decode."""
    meta = obj.get("metadata")
    raw = meta.get("managedFields") if isinstance(meta, dict) else None
    entries: list[Entry] = []
    for item in raw if isinstance(raw, list) else []:
        try:
            entries.append(_decode_entry(item))
        except (ValueError, TypeError):
            return []
    return entries


def _decode_entry(item: Json) -> Entry:
    if not isinstance(item, dict):
        raise ValueError("managedFields entry must be an object")
    operation, version = item.get("operation"), item.get("apiVersion")
    if operation not in (APPLY, UPDATE) or not isinstance(version, str) or not version:
        raise ValueError("managedFields entry needs operation Apply/Update and an apiVersion")
    if item.get("fieldsType", "FieldsV1") != "FieldsV1":
        raise ValueError("fieldsType must be FieldsV1")
    manager, time, sub = item.get("manager", ""), item.get("time"), item.get("subresource", "")
    return Entry(
        str(manager), str(operation), version, fs.decode(item.get("fieldsV1", {})),
        time if isinstance(time, str) else None, str(sub),
    )  # fmt: skip


def encode_managed_fields(entries: Iterable[Entry]) -> list[Json]:
    """`metadata.managedFields`, in Kubernetes' order (Apply first, then by time, manager)."""
    ordered = sorted(
        entries,
        key=lambda e: (e.operation, e.time or "", e.manager, e.api_version, e.subresource),
    )
    out: list[Json] = []
    for e in ordered:
        item: JsonObject = {
            "manager": e.manager,
            "operation": e.operation,
            "apiVersion": e.api_version,
        }
        if e.time is not None:
            item["time"] = e.time
        item["fieldsType"] = "FieldsV1"
        item["fieldsV1"] = fs.encode(e.fields)
        if e.subresource:
            item["subresource"] = e.subresource
        out.append(item)
    return out


def timestamp(now: datetime) -> str:
    """managedFields time: RFC 3339 in UTC, whole seconds, as metav1.Time prints."""
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def cap_updaters(kept: list[Entry]) -> list[Entry]:
    """Fold the oldest Update entries into "ancient-changes" past the cap, as Kubernetes does."""
    updaters = sorted(
        (e for e in kept if e.operation == UPDATE), key=lambda e: (e.time or "", e.manager)
    )
    excess = len(updaters) - MAX_UPDATE_MANAGERS
    for oldest in updaters:
        if excess <= 0:
            break
        bucket = next(
            (e for e in kept if e is not oldest and e.manager == ANCIENT and e.operation == UPDATE
             and e.api_version == oldest.api_version and not e.subresource),
            None,
        )  # fmt: skip
        if bucket is None:
            oldest.manager = ANCIENT  # the first of its version becomes the bucket
            continue
        bucket.fields = bucket.fields | oldest.fields
        bucket.time = max(bucket.time or "", oldest.time or "") or None
        kept.remove(oldest)
        excess -= 1
    return kept
