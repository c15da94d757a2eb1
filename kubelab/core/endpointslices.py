"""The EndpointSlice reconcile: a Service, its pods and its slices in, a frozen plan out.

`reconcile_slices(service, pods, existing, rng=...)` is the pure half of the
controller's EndpointSlice loop (DESIGN §2.3, STYLE habit 1): it decides what
to create, update and delete so that the Service's slices list exactly the pods
its selector picks, each once (DESIGN §8 invariant 2), with the fewest writes.
The controller applies the plan (creates, compare-and-swap updates on each
slice's `resourceVersion`, deletes) and calls again on any change. Which pod
becomes which endpoint, and on which ports, is `kubelab.core.slice_endpoints`.

The rules are Kubernetes' EndpointSlice reconciler
(`staging/src/k8s.io/endpointslice/reconciler.go`):

* Services without a selector, and ExternalName Services, are left alone: an
  empty plan, their slices are someone else's (`syncService`). Of `existing`
  only the slices labelled as ours for this Service and in its namespace
  (`is_managed`) are looked at; the rest are never touched. A labelled slice
  not owned by this Service's uid (a predecessor of the same name), or of
  another addressType, is deleted (`ownedBy`).
* Endpoints are grouped by their resolved port set; each group has its own
  slices (`reconcileByPortMapping`), and groups that no longer exist lose
  theirs. Within a group:
  1. each existing slice keeps the endpoints still desired, with their current
     content; a slice whose endpoints changed is updated, one left with none is
     deleted; a slice whose labels differ is updated;
  2. leftover endpoints first fill the slices being updated anyway, the fullest
     first, up to `max_endpoints`;
  3. what is still left goes, when fewer than `max_endpoints`, into the
     fullest unchanged slice that can take all of it (`getSliceToFill`), else
     into new slices.
  Endpoints therefore never move between slices, an unchanged world writes
  nothing, and one pod added, removed or changed writes one slice.
* A Service with a selector but no endpoints keeps one placeholder slice (no
  endpoints, no ports); an equal one is kept as is.
* `finalize`: when the plan both creates and deletes, each create becomes an
  update of a slice that was to be deleted (same addressType and owner): one
  write instead of two. A placeholder thus turns into the first real slice,
  and the last slice into the placeholder.

New slices: name `<service>-<5 characters of Kubernetes' safe alphabet>`, as
the apiserver generates it from `generateName` (base cut to 58 characters),
unique among every name in `existing` and in the plan; namespace and
ownerReference (`controller`, `blockOwnerDeletion`) of the Service; labels are
the Service's own, then ours on top (`setEndpointSliceLabels`): service-name,
managed-by, and `service.kubernetes.io/headless` when the Service has no
ClusterIP. Updates are copies of the existing slices (name, uid,
resourceVersion kept) with new endpoints, ports and labels.

Where kubelab departs:

* An endpoint is identified by its pod (targetRef namespace/name), not by
  Kubernetes' hash of addresses, hostname and pod: a pod whose IP changes is
  updated in the slice that holds it rather than removed and re-added.
* Written slices list their endpoints sorted by pod name and their ports in the
  Service's order, so the same world gives the same bytes; comparisons are
  set-wise, so an existing slice's order never causes a write.
* Labels are compared as a whole (Kubernetes' check misses reserved labels).
* A slice left without endpoints in a group that still exists is deleted
  (Kubernetes keeps such a stray empty slice).
* Slices already over `max_endpoints` (the limit lowered) are not split, as in
  Kubernetes.

Failure: none by design. Junk in a slice that is not ours is ignored; junk in
one of ours is rewritten or deleted. `max_endpoints < 1` is a ValueError.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kubelab.core import kinds
from kubelab.core.kinds import SERVICE_NAME_LABEL
from kubelab.core.names import MAX_GENERATED_BASE, unique_name
from kubelab.core.slice_endpoints import (
    ADDRESS_TYPE,
    EndpointKey,
    PortSpec,
    desired_endpoints,
    endpoint_key,
)
from kubelab.core.validation.services import EXTERNAL_NAME, HEADLESS
from kubelab.v1 import objects_pb2

__all__ = [
    "HEADLESS_LABEL",
    "MANAGED_BY",
    "MANAGED_BY_LABEL",
    "MAX_ENDPOINTS_PER_SLICE",
    "SERVICE_NAME_LABEL",
    "PortSpec",
    "SlicePlan",
    "desired_endpoints",
    "is_managed",
    "reconcile_slices",
    "slice_labels",
]

MANAGED_BY = "endpointslice-controller.k8s.io"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
HEADLESS_LABEL = "service.kubernetes.io/headless"
_RESERVED_LABELS = frozenset({SERVICE_NAME_LABEL, MANAGED_BY_LABEL, HEADLESS_LABEL})
# Kubernetes' --max-endpoints-per-slice default.
MAX_ENDPOINTS_PER_SLICE = 100

Slice = objects_pb2.EndpointSlice


@dataclass(frozen=True, slots=True)
class SlicePlan:
    """What to write for one Service; apply it all, then reconcile again on any change."""

    # Complete new slices, named.
    create: tuple[Slice, ...] = ()
    # Existing slices with new content: same name, uid and resourceVersion (compare-and-swap).
    update: tuple[Slice, ...] = ()
    # Names of slices to delete.
    delete: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.create or self.update or self.delete)


def is_managed(eps: Slice, service_name: str) -> bool:
    """Labelled as this controller's slice for the Service named `service_name`."""
    labels = eps.metadata.labels
    return (
        labels.get(SERVICE_NAME_LABEL) == service_name
        and labels.get(MANAGED_BY_LABEL) == MANAGED_BY
    )


def slice_labels(service: objects_pb2.Service) -> dict[str, str]:
    """The labels every slice of `service` carries: the Service's own, then ours."""
    labels = {k: v for k, v in service.metadata.labels.items() if k not in _RESERVED_LABELS}
    # Kubernetes' IsServiceIPSet: "" counts as headless too.
    if service.spec.cluster_ip in ("", HEADLESS):
        labels[HEADLESS_LABEL] = ""
    labels[SERVICE_NAME_LABEL] = service.metadata.name
    labels[MANAGED_BY_LABEL] = MANAGED_BY
    return labels


def _owned_by(eps: Slice, service: objects_pb2.Service) -> bool:
    return any(
        ref.uid == service.metadata.uid
        and ref.kind == kinds.SERVICES.kind
        and ref.api_version == kinds.SERVICES.api_version
        for ref in eps.metadata.owner_references
    )


def _port_set(eps: Slice) -> frozenset[PortSpec]:
    return frozenset(PortSpec.from_proto(port) for port in eps.ports)


def _new_slice(
    service: objects_pb2.Service,
    labels: Mapping[str, str],
    ports: Sequence[PortSpec],
    endpoints: Sequence[objects_pb2.Endpoint],
) -> Slice:
    """A slice for `service`, not yet named (`newEndpointSlice`)."""
    eps = Slice(
        api_version=kinds.ENDPOINTSLICES.api_version,
        kind=kinds.ENDPOINTSLICES.kind,
        address_type=ADDRESS_TYPE,
    )
    meta = eps.metadata
    meta.namespace = service.metadata.namespace
    meta.labels.update(labels)
    meta.owner_references.add(
        api_version=kinds.SERVICES.api_version,
        kind=kinds.SERVICES.kind,
        name=service.metadata.name,
        uid=service.metadata.uid,
        controller=True,
        block_owner_deletion=True,
    )
    _set_content(eps, ports, endpoints)
    return eps


def _set_content(
    eps: Slice, ports: Sequence[PortSpec], endpoints: Sequence[objects_pb2.Endpoint]
) -> None:
    del eps.ports[:]
    eps.ports.extend(port.to_proto() for port in ports)
    del eps.endpoints[:]
    eps.endpoints.extend(sorted(endpoints, key=endpoint_key))


def _rewritten(eps: Slice, labels: Mapping[str, str]) -> Slice:
    """A copy of an existing slice to update: identity kept, labels replaced."""
    copy = Slice()
    copy.CopyFrom(eps)
    copy.api_version, copy.kind = kinds.ENDPOINTSLICES.api_version, kinds.ENDPOINTSLICES.kind
    copy.metadata.labels.clear()
    copy.metadata.labels.update(labels)
    return copy


# ---------------------------------------------------------------- one port group


@dataclass(slots=True)
class _Draft:
    """A slice being planned: an existing one (`source`) or a new one (None)."""

    source: Slice | None
    endpoints: list[objects_pb2.Endpoint]


@dataclass(slots=True)
class _GroupPlan:
    create: list[_Draft]
    update: list[_Draft]
    unchanged: list[_Draft]
    delete: list[Slice]


def _reconcile_group(
    existing: Sequence[Slice],
    desired: Sequence[objects_pb2.Endpoint],
    labels: Mapping[str, str],
    max_endpoints: int,
) -> _GroupPlan:
    """Kubernetes' `reconcileByPortMapping` for the slices of one port set."""
    left: dict[EndpointKey, objects_pb2.Endpoint] = {endpoint_key(ep): ep for ep in desired}
    plan = _GroupPlan([], [], [], [])

    # 1. Keep what is still desired, in the slice that holds it.
    for eps in existing:
        kept = []
        changed = False
        for ep in eps.endpoints:
            want = left.pop(endpoint_key(ep), None)
            if want is None:  # gone, or a duplicate of one already placed
                changed = True
                continue
            kept.append(want)
            changed = changed or want != ep
        draft = _Draft(eps, kept)
        if changed and not kept:
            plan.delete.append(eps)
        elif changed or dict(eps.metadata.labels) != labels:
            plan.update.append(draft)
        else:
            plan.unchanged.append(draft)

    # 2. Fill the slices that are written anyway, the fullest first.
    pending = [left[key] for key in sorted(left)]
    for draft in sorted(plan.update, key=lambda d: -len(d.endpoints)):
        room = max(0, max_endpoints - len(draft.endpoints))
        draft.endpoints += pending[:room]
        pending = pending[room:]

    # 3. The rest: into one unchanged slice that takes it all, else into new slices.
    while pending:
        target = None
        if len(pending) < max_endpoints:
            target = _slice_to_fill(plan.unchanged, len(pending), max_endpoints)
        if target is None:
            target = _Draft(None, [])
            plan.create.append(target)
        else:
            plan.unchanged.remove(target)
            plan.update.append(target)
        room = max_endpoints - len(target.endpoints)
        target.endpoints += pending[:room]
        pending = pending[room:]

    for draft in [d for d in plan.unchanged if not d.endpoints]:
        plan.unchanged.remove(draft)
        assert draft.source is not None
        plan.delete.append(draft.source)
    return plan


def _slice_to_fill(drafts: Sequence[_Draft], count: int, max_endpoints: int) -> _Draft | None:
    """The fullest slice with room for `count` more endpoints (`getSliceToFill`)."""
    fitting = [d for d in drafts if len(d.endpoints) + count <= max_endpoints]
    return max(fitting, key=lambda d: len(d.endpoints), default=None)


# ---------------------------------------------------------------- the plan


def reconcile_slices(
    service: objects_pb2.Service,
    pods: Sequence[objects_pb2.Pod],
    existing: Sequence[Slice],
    *,
    max_endpoints: int = MAX_ENDPOINTS_PER_SLICE,
    rng: random.Random,
) -> SlicePlan:
    """The writes that make `service`'s slices list its pods.

    `pods` are the namespace's pods with their node-reported status merged in
    (any others are ignored); `existing` the slices that may be this Service's.
    `rng` only picks new slice names: the contents depend on the inputs alone.
    """
    if max_endpoints < 1:
        raise ValueError(f"max_endpoints must be at least 1, got {max_endpoints}")
    if service.spec.type == EXTERNAL_NAME or not service.spec.selector:
        return SlicePlan()

    labels = slice_labels(service)
    ours = sorted(
        (
            eps
            for eps in existing
            if is_managed(eps, service.metadata.name)
            and eps.metadata.namespace == service.metadata.namespace
        ),
        key=lambda eps: eps.metadata.name,
    )
    delete: list[Slice] = []
    by_ports: dict[frozenset[PortSpec], list[Slice]] = {}
    for eps in ours:
        if _owned_by(eps, service) and eps.address_type == ADDRESS_TYPE:
            by_ports.setdefault(_port_set(eps), []).append(eps)
        else:
            delete.append(eps)

    create: list[Slice] = []
    update: list[Slice] = []
    desired = desired_endpoints(service, pods)
    for ports in sorted(desired):
        group = _reconcile_group(
            by_ports.pop(frozenset(ports), []), desired[ports], labels, max_endpoints
        )
        create += [_new_slice(service, labels, ports, d.endpoints) for d in group.create]
        for draft in group.update:
            assert draft.source is not None
            eps = _rewritten(draft.source, labels)
            _set_content(eps, ports, draft.endpoints)
            update.append(eps)
        delete += group.delete
    for stale in by_ports.values():
        delete += stale

    if len(delete) == len(ours) and not create:
        placeholder = _new_slice(service, labels, (), ())
        if len(delete) == 1 and _same_placeholder(delete[0], placeholder):
            delete.clear()
        else:
            create.append(placeholder)

    # finalize: turn create + delete pairs into updates of the doomed slices.
    delete.sort(key=lambda eps: eps.metadata.name)
    for victim in list(delete):
        if not create:
            break
        if victim.address_type == ADDRESS_TYPE and _owned_by(victim, service):
            eps = _rewritten(victim, labels)
            new = create.pop()
            _copy_content(eps, new)
            update.append(eps)
            delete.remove(victim)

    taken = {eps.metadata.name for eps in existing}
    base = f"{service.metadata.name}-"[:MAX_GENERATED_BASE]
    for eps in create:
        eps.metadata.generate_name = base
        eps.metadata.name = unique_name(base, taken, rng)
    return SlicePlan(
        create=tuple(create),
        update=tuple(sorted(update, key=lambda eps: eps.metadata.name)),
        delete=tuple(sorted(eps.metadata.name for eps in delete)),
    )


def _copy_content(target: Slice, source: Slice) -> None:
    del target.metadata.owner_references[:]
    target.metadata.owner_references.extend(source.metadata.owner_references)
    del target.ports[:]
    target.ports.extend(source.ports)
    del target.endpoints[:]
    target.endpoints.extend(source.endpoints)


def _same_placeholder(eps: Slice, placeholder: Slice) -> bool:
    """Kubernetes' `placeholderSliceCompare`: everything but name and bookkeeping."""
    return (
        not eps.endpoints
        and not eps.ports
        and eps.address_type == placeholder.address_type
        and eps.metadata.namespace == placeholder.metadata.namespace
        and dict(eps.metadata.labels) == dict(placeholder.metadata.labels)
        and list(eps.metadata.owner_references) == list(placeholder.metadata.owner_references)
    )
