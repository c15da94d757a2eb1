"""One watcher's Endpoints, kept from EndpointSlice events: which Endpoints events to send.

A watch of `endpoints` is a watch of EndpointSlices underneath (`endpoints_mirror` says
how slices make Endpoints). `EndpointsWatch` holds the watcher's slices, as of the
revision its watch starts from, and the Endpoints it has derived from them; `apply`
takes the slice events of one revision (one transaction) and answers the Endpoints
events they amount to:

* one event per Service whose Endpoints changed, however many of its slices the
  change touched; none when its Endpoints are the same (a slice rewritten with the
  same content, a pod moved from one slice to another in one transaction, a slice
  that is not mirrored), so a watcher never sees a state that no revision had;
* ADDED when a Service gets its first slice, DELETED (its last state, at the event's
  revision) when its last slice goes, MODIFIED otherwise;
* the watcher's selectors apply to the Endpoints, not the slices, with Kubernetes'
  filtered-watch rule (`watch_window.watch_type`): Endpoints that stop matching (a
  label taken off the Service) are DELETED for this watcher, ones that start are ADDED.

Every Endpoints sent carries the revision of the events that made it, so a client
that resumes from it misses nothing and sees nothing twice.

Pure: no I/O. Slices are kept by reference and never changed (the watch cache shares
them between watchers).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from kubelab.core.keys import ObjectKey
from services.apiserver.k8s.endpoints_mirror import (
    Endpoints,
    Slice,
    endpoints_of,
    service_key,
    without_version,
)
from services.apiserver.watch_window import watch_type

Matches = Callable[[Endpoints], bool]


@dataclass(frozen=True, slots=True)
class SliceEvent:
    type: str  # ADDED, MODIFIED or DELETED
    object: Slice


@dataclass(frozen=True, slots=True)
class Change:
    type: str  # what the watcher is sent: ADDED, MODIFIED or DELETED
    object: Endpoints


class EndpointsWatch:
    def __init__(self, slices: Iterable[Slice], matches: Matches) -> None:
        self._matches = matches
        # Mirrored slices by Service, then by slice name.
        self._slices: dict[ObjectKey, dict[str, Slice]] = {}
        # Which Service each held slice belongs to, by (namespace, slice name).
        self._owner: dict[ObjectKey, ObjectKey] = {}
        for eps in slices:
            self._put(eps)
        self._shown: dict[ObjectKey, Endpoints] = {}
        for key in self._slices:
            derived = endpoints_of(key, list(self._slices[key].values()))
            if derived is not None:
                self._shown[key] = derived

    def current(self) -> list[Endpoints]:
        """The Endpoints the watcher's selectors match, by namespace and name (a watch's
        initial ADDED events)."""
        return [self._shown[key] for key in sorted(self._shown) if self._matches(self._shown[key])]

    def apply(self, events: Sequence[SliceEvent], revision: int) -> list[Change]:
        """The Endpoints events the slice events of `revision` make, by namespace and name."""
        touched: set[ObjectKey] = set()
        for event in events:
            meta = event.object.metadata
            slice_key = ObjectKey((meta.namespace, meta.name))
            before = self._drop(slice_key)
            if before is not None:
                touched.add(before)
            if event.type != "DELETED":
                after = self._put(event.object)
                if after is not None:
                    touched.add(after)
        changes = []
        for key in sorted(touched):
            change = self._change(key, revision)
            if change is not None:
                changes.append(change)
        return changes

    def _put(self, eps: Slice) -> ObjectKey | None:
        key = service_key(eps)
        if key is None:
            return None
        meta = eps.metadata
        self._slices.setdefault(key, {})[meta.name] = eps
        self._owner[ObjectKey((meta.namespace, meta.name))] = key
        return key

    def _drop(self, slice_key: ObjectKey) -> ObjectKey | None:
        key = self._owner.pop(slice_key, None)
        if key is not None:
            held = self._slices[key]
            held.pop(slice_key[1], None)
            if not held:
                del self._slices[key]
        return key

    def _change(self, key: ObjectKey, revision: int) -> Change | None:
        old = self._shown.get(key)
        held = self._slices.get(key)
        new = endpoints_of(key, list(held.values())) if held else None
        if old is None and new is None:
            return None
        if old is not None and new is not None and without_version(old) == without_version(new):
            return None
        if new is None:
            assert old is not None
            del self._shown[key]
            gone = _at(old, revision)
            return Change("DELETED", gone) if self._matches(old) else None
        new = _at(new, revision)
        self._shown[key] = new
        event = "ADDED" if old is None else "MODIFIED"
        before = old is not None and self._matches(old)
        kind = watch_type(event, self._matches(new), before, old is not None)
        if kind is None:
            return None
        # Stopped matching: Kubernetes sends the last state the watcher was allowed to see.
        return Change(kind, _at(old, revision) if kind == "DELETED" and old else new)


def _at(endpoints: Endpoints, revision: int) -> Endpoints:
    return {**endpoints, "metadata": {**endpoints["metadata"], "resourceVersion": str(revision)}}
