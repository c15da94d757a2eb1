"""The apiserver's operations: default, validate, allocate, store (DESIGN §2.1).

`Registry` turns an API call into at most one etcd transaction. For a
Service, the object and every claim it takes or releases (ClusterIP,
NodePorts, healthCheckNodePort) are written in that same transaction, so no
allocation can be duplicated or leaked, whichever of several apiservers
answers. Order of work:

1. defaults (Kubernetes'), then validation: bad input stops here and nothing
   is written;
2. for Services, fill in clusterIP / nodePorts / healthCheckNodePort:
   requested values are checked against the ranges, missing ones are picked
   from what `AllocationView` believes is free;
3. one transaction. A requested value someone else holds is refused with
   Kubernetes' words (`provided port is already allocated`); a value this
   process picked that turns out taken (another apiserver won the race) is
   picked again, a bounded number of times.

Updates without a resourceVersion (apply, label) read, change and
compare-and-swap, retrying on conflict; with one, a conflict is the caller's
(ABORTED).

Namespaces (`namespace_view`): a create in a missing namespace is NotFound, in a
terminating one Forbidden, checked before validation as Kubernetes' admission
runs before it. Deleting a Namespace marks it Terminating (deletionTimestamp and
status.phase); the namespace controller empties it and removes it. `default`,
`kube-system` and `kube-public` may not be deleted.

A write may carry two functions of the object it finds, called again on every
attempt (as Kubernetes' patch handler re-applies a patch after a conflict):
`change` (current -> the whole new object: a PATCH, a server-side apply) and
`fields` (current or None, new -> sets new's `metadata.managedFields`: the HTTP
front's field manager, run after defaults and before allocation, as Kubernetes
runs it before storage allocates a ClusterIP). A write without `fields` (gRPC,
kubelab's CLI) keeps the managedFields it finds: it is recorded as no manager's.
`subresource="status"` writes only status, everything else kept (Kubernetes'
status strategies); any other write keeps status. `dry_run` does all but the
transaction (Kubernetes' dryRun=All, what `kubectl diff` asks): nothing is
allocated or written, and the answer is the object that would have been stored.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from kubelab.core import errors, kinds
from kubelab.core.allocators import (
    HEALTH_CHECK_FIELD,
    PORT_TAKEN,
    Claim,
    ClaimKind,
    ClusterIPAllocator,
    NodePortAllocator,
    RangeFullError,
    assign_service,
    health_check_claim,
    keep_allocated_values,
    service_claims,
)
from kubelab.core.errors import FieldError, ForbiddenError, InvalidObjectError
from kubelab.core.kinds import ApiObject, KindInfo
from kubelab.core.names import random_suffix
from kubelab.core.validation import objects as validation
from kubelab.core.validation.namespaces import ACTIVE, IMMORTAL_NAMESPACES
from kubelab.store import (
    AlreadyExistsError,
    ClaimTakenError,
    ConflictError,
    NotFoundError,
    Store,
)
from kubelab.v1 import meta_pb2, objects_pb2
from services.apiserver.allocation_view import AllocationView
from services.apiserver.namespace_view import NamespaceView, mark_terminating

log = logging.getLogger(__name__)

_ALLOCATION_ATTEMPTS = 16
# Kubernetes' GuaranteedUpdate retries a lost compare-and-swap without limit; kubelab
# bounds it, high enough for dozens of concurrent writers of one object.
_CAS_ATTEMPTS = 64
_CAS_PAUSE = 0.002  # seconds: the first random pause after a lost compare-and-swap
_CAS_PAUSE_MAX = 0.05
A = TypeVar("A", bound=Message)
Change = Callable[[ApiObject], ApiObject]
FieldsHook = Callable[[ApiObject | None, ApiObject], None]
# (current or None, new): raises to refuse the write (an admission step).
AdmitHook = Callable[[ApiObject | None, ApiObject], None]
# Kubernetes' generateName alphabet: no vowels (no accidental words), no look-alikes.


@dataclass(frozen=True, slots=True)
class AllocationConfig:
    ips: ClusterIPAllocator
    ports: NodePortAllocator


def _meta(obj: ApiObject) -> meta_pb2.ObjectMeta:
    return obj.metadata


def _now() -> Timestamp:
    # Whole seconds, as Kubernetes stores creationTimestamp.
    return Timestamp(seconds=int(time.time()))


def _copy(obj: A) -> A:
    out = obj.__class__()
    out.CopyFrom(obj)
    return out


def _spec_or_none(obj: ApiObject) -> Message | None:
    # EndpointSlices, Events, ServiceAccounts and the RBAC kinds have no spec.
    if obj.DESCRIPTOR.fields_by_name.get("spec") is None or not obj.HasField("spec"):
        return None
    spec: Message = cast(Any, obj).spec
    return spec


def _same_content(a: ApiObject, b: ApiObject, subresource: str = "") -> bool:
    """True when an update would change nothing a user wrote (spec, labels, annotations;
    status through /status) nor who owns it (managedFields)."""
    meta_a, meta_b = _meta(a), _meta(b)
    if list(meta_a.managed_fields) != list(meta_b.managed_fields):
        return False
    if subresource == "status":
        return bool(getattr(a, "status", None) == getattr(b, "status", None))
    if dict(meta_a.labels) != dict(meta_b.labels):
        return False
    if dict(meta_a.annotations) != dict(meta_b.annotations):
        return False
    rest_a, rest_b = _copy(a), _copy(b)
    for obj in (rest_a, rest_b):
        obj.ClearField("metadata")
        if obj.DESCRIPTOR.fields_by_name.get("status") is not None:
            obj.ClearField("status")
    return bool(rest_a == rest_b)


def _requested_field(svc: objects_pb2.Service, claim: Claim) -> tuple[str, object, str]:
    if claim.kind is ClaimKind.CLUSTER_IP:
        return "spec.clusterIP", svc.spec.cluster_ip, "provided IP is already allocated"
    protocol, _, number = claim.name.partition("/")
    for index, port in enumerate(svc.spec.ports):
        if port.node_port == int(number) and (port.protocol or "TCP") == protocol:
            return f"spec.ports[{index}].nodePort", port.node_port, PORT_TAKEN
    if claim == health_check_claim(svc):
        return HEALTH_CHECK_FIELD, svc.spec.health_check_node_port, PORT_TAKEN
    return "spec.ports", claim.name, PORT_TAKEN


class Registry:
    def __init__(
        self,
        store: Store,
        view: AllocationView,
        allocation: AllocationConfig,
        *,
        namespaces: NamespaceView | None = None,
        rng: random.Random | None = None,
        admit: AdmitHook | None = None,
    ) -> None:
        self.store = store
        # Admission after validation, before storage (`services.apiserver.admission`:
        # RBAC's escalation prevention for the request's user); None: none.
        self.admit = admit
        self.view = view
        self.allocation = allocation
        # None: every namespace is taken to exist (tests of the registry alone).
        self.namespaces = namespaces
        self.rng = rng or random.Random()

    # ------------------------------------------------------------------ helpers

    def _prepare(self, info: KindInfo, obj: ApiObject) -> Any:
        """A defaulted copy of what the client sent, with server-owned metadata cleared."""
        prepared = _copy(obj)
        validation.apply_defaults(info, prepared)
        meta = _meta(prepared)
        if not info.namespaced:
            meta.namespace = ""
        return prepared

    def _check(self, info: KindInfo, obj: ApiObject | str, found: list[FieldError]) -> None:
        if found:
            name = obj if isinstance(obj, str) else _meta(obj).name
            raise InvalidObjectError(info.kind, name, found)

    def _check_before_reading(self, info: KindInfo, obj: ApiObject, namespace: str) -> None:
        """The name, namespace and size rules, before the store is read by them: a
        huge name would otherwise become an etcd request, refused as INTERNAL."""
        name = _meta(obj).name
        self._check(info, name, validation.validate_key(info, namespace, name))
        self._check(info, name, validation.validate_size(obj))

    async def _write_service(
        self,
        svc: objects_pb2.Service,
        *,
        current: objects_pb2.Service | None,
    ) -> objects_pb2.Service:
        """Allocate and write a Service (create when `current` is None)."""
        held = service_claims(current) if current is not None else frozenset()
        requested = service_claims(svc)
        refreshed = False
        for _ in range(_ALLOCATION_ATTEMPTS):
            attempt = _copy(svc)
            try:
                assignment = assign_service(
                    attempt,
                    ips=self.allocation.ips,
                    ports=self.allocation.ports,
                    is_taken=self.view.is_taken,
                    held=held,
                    rng=self.rng,
                )
            except RangeFullError:
                # The view may hold values others released since: only a fresh list
                # may say "full".
                if refreshed:
                    raise
                await self.view.refresh()
                refreshed = True
                continue
            self._check(SERVICE, attempt, list(assignment.errors))
            new_claims = assignment.claims - held
            self.view.hold(new_claims)
            try:
                if current is None:
                    written: objects_pb2.Service = await self.store.create(attempt, new_claims)
                else:
                    written = await self.store.update(
                        attempt,
                        expected_revision=int(current.metadata.resource_version),
                        claim=new_claims,
                        release=held - assignment.claims,
                    )
            except ClaimTakenError as err:
                refused = [c for c in err.claims if c in requested]
                if refused:
                    problems = []
                    for claim in refused:
                        field, value, detail = _requested_field(attempt, claim)
                        problems.append(errors.invalid(field, value, detail))
                    raise InvalidObjectError("Service", attempt.metadata.name, problems) from None
                self.view.learn_taken(err.claims)
                continue
            finally:
                self.view.drop(new_claims)
            self.view.learn_taken(new_claims)
            self.view.learn_released(held - assignment.claims)
            return written
        raise ConflictError(
            "could not allocate after several attempts (heavy contention); retry", 0
        )

    async def _write(self, info: KindInfo, obj: ApiObject, current: ApiObject | None) -> ApiObject:
        if isinstance(obj, objects_pb2.Service):
            cur = current if isinstance(current, objects_pb2.Service) else None
            return await self._write_service(obj, current=cur)
        if current is None:
            return await self.store.create(obj)
        return await self.store.update(obj, expected_revision=int(_meta(current).resource_version))

    # ------------------------------------------------------------------ operations

    async def create(
        self, obj: ApiObject, *, fields: FieldsHook | None = None, dry_run: bool = False
    ) -> ApiObject:
        info = kinds.info_of(obj)
        new = self._prepare(info, obj)
        if fields is not None:
            fields(None, new)
        meta = _meta(new)
        if not meta.name and meta.generate_name:
            meta.name = meta.generate_name + random_suffix(self.rng)
        meta.uid = str(uuid.uuid4())
        meta.resource_version = ""
        meta.generation = 1
        meta.creation_timestamp.CopyFrom(_now())
        meta.ClearField("deletion_timestamp")
        if info.message in (objects_pb2.Service, objects_pb2.Pod, objects_pb2.Deployment):
            new.ClearField("status")
        if isinstance(new, objects_pb2.Namespace):
            new.status.CopyFrom(objects_pb2.NamespaceStatus(phase=ACTIVE))
        if (
            info.namespaced
            and self.namespaces is not None
            and not validation.validate_key(info, meta.namespace, "")
        ):
            await self.namespaces.admit_create(info.resource, meta.name, meta.namespace)
        self._check(info, new, validation.validate_object(info, new))
        if self.admit is not None:
            self.admit(None, new)
        if dry_run:
            dry: ApiObject = new
            return dry
        written = await self._write(info, new, None)
        log.debug("created", extra={info.resource: f"{meta.namespace}/{meta.name}"})
        return written

    async def update(
        self,
        obj: ApiObject,
        *,
        read: ApiObject | None = None,
        change: Change | None = None,
        fields: FieldsHook | None = None,
        subresource: str = "",
        dry_run: bool = False,
    ) -> tuple[ApiObject, bool]:
        """Replace spec, labels and annotations (or only status, for `subresource`
        "status"). Returns the stored object and whether anything changed. With
        metadata.resourceVersion set, only at that version. `read` is the current object
        when the caller has just read it (apply): the first attempt uses it instead of
        reading again; a conflict re-reads. With `change`, `obj` names the object and
        each attempt writes `change(current)` (module docstring)."""
        info = kinds.info_of(obj)
        namespace = (_meta(obj).namespace or "default") if info.namespaced else ""
        self._check_before_reading(info, obj, namespace)
        for attempt in range(_CAS_ATTEMPTS):
            if read is not None:
                current, read = read, None
            else:
                current = await self.store.get(info, namespace, _meta(obj).name)
            sent = change(current) if change is not None else obj
            wanted_revision = _meta(sent).resource_version
            new = self._prepare(info, sent)
            if subresource == "status":
                new = _with_status(current, new)
            meta = _meta(new)
            current_meta = _meta(current)
            if wanted_revision and wanted_revision != current_meta.resource_version:
                raise ConflictError.modified(
                    info.qualified_resource, meta.name, int(current_meta.resource_version)
                )
            if isinstance(new, objects_pb2.Service) and isinstance(current, objects_pb2.Service):
                keep_allocated_values(current, new)
            if isinstance(new, objects_pb2.Pod) and isinstance(current, objects_pb2.Pod):
                # The binding is the scheduler's; a manifest that leaves it out keeps it
                # (`kubectl apply` of a bare pod's file again changes nothing).
                if not new.spec.node_name:
                    new.spec.node_name = current.spec.node_name
            _carry_server_metadata(current_meta, meta)
            if isinstance(new, objects_pb2.Namespace) and isinstance(
                current, objects_pb2.Namespace
            ):
                # Kubernetes' NamespaceStrategy: finalizers change only through /finalize.
                new.spec.ClearField("finalizers")
                new.spec.finalizers.extend(current.spec.finalizers)
            meta.resource_version = current_meta.resource_version
            if new.DESCRIPTOR.fields_by_name.get("status") is not None and subresource != "status":
                _carry_status(current, new)
            if fields is None:
                meta.ClearField("managed_fields")
                meta.managed_fields.extend(current_meta.managed_fields)
            else:
                fields(current, new)
            if _same_content(new, current, subresource):
                return current, False
            if _spec_or_none(new) != _spec_or_none(current):
                meta.generation = current_meta.generation + 1
            found = validation.validate_update(info, current, new)
            found += validation.validate_object(info, new)
            self._check(info, new, found)
            if self.admit is not None:
                self.admit(current, new)
            try:
                written = new if dry_run else await self._write(info, new, current)
            except ConflictError:
                if wanted_revision:
                    raise
                # Writers that lost together would read and collide together again:
                # a random pause, growing, spreads them out (one wins each round).
                pause = min(_CAS_PAUSE_MAX, _CAS_PAUSE * 2**attempt)
                await asyncio.sleep(self.rng.uniform(0, pause))
                continue
            log.debug("updated", extra={info.resource: f"{meta.namespace}/{meta.name}"})
            return written, True
        raise ConflictError(
            f'{info.qualified_resource} "{_meta(obj).name}" keeps changing; retry', 0
        )

    async def apply(self, obj: ApiObject, *, create_first: bool = False) -> tuple[ApiObject, str]:
        """Create or update, as `kubectl apply`. `create_first` skips the read for objects
        expected to be new (bulk loads): an existing one costs a failed create instead."""
        info = kinds.info_of(obj)
        meta = _meta(obj)
        namespace = (meta.namespace or "default") if info.namespaced else ""
        self._check_before_reading(info, obj, namespace)
        exists = False
        current: ApiObject | None = None
        for _ in range(_CAS_ATTEMPTS):
            if not exists and not create_first:
                try:
                    current = await self.store.get(info, namespace, meta.name)
                    exists = True
                except NotFoundError:
                    pass
            if not exists:
                try:
                    return await self.create(obj), "created"
                except AlreadyExistsError:
                    exists = True
            try:
                written, changed = await self.update(obj, read=current)
            except NotFoundError:
                exists = False
                create_first = True
                continue
            finally:
                current = None
            return written, "configured" if changed else "unchanged"
        raise ConflictError(f'{info.qualified_resource} "{meta.name}" keeps changing; retry', 0)

    async def delete(
        self,
        info: KindInfo,
        namespace: str,
        name: str,
        resource_version: str = "",
        grace_period_seconds: int | None = None,
    ) -> ApiObject:
        """Delete an object. A pod bound to a node is deleted gracefully (Kubernetes): it
        is marked with a deletionTimestamp and its node agent stops and removes it;
        `grace_period_seconds=0` removes it at once."""
        namespace = (namespace or "default") if info.namespaced else ""
        if grace_period_seconds is not None:
            self._check(info, name, validation.validate_grace_period(grace_period_seconds))
        if info is kinds.NAMESPACES and name in IMMORTAL_NAMESPACES:
            raise ForbiddenError(info.resource, name, "this namespace may not be deleted")
        for _ in range(_CAS_ATTEMPTS):
            current = await self.store.get(info, namespace, name)
            current_revision = _meta(current).resource_version
            if resource_version and resource_version != current_revision:
                raise ConflictError.modified(info.qualified_resource, name, int(current_revision))
            if (
                isinstance(current, objects_pb2.Pod)
                and current.spec.node_name
                and grace_period_seconds != 0
            ):
                if current.metadata.HasField("deletion_timestamp"):
                    return current
                marked = _copy(current)
                marked.metadata.deletion_timestamp.CopyFrom(_now())
                if grace_period_seconds is not None:
                    marked.spec.termination_grace_period_seconds = grace_period_seconds
                try:
                    return await self.store.update(marked, expected_revision=int(current_revision))
                except ConflictError:
                    if resource_version:
                        raise
                    continue
            if isinstance(current, objects_pb2.Namespace) and current.spec.finalizers:
                try:
                    return await mark_terminating(self.store, self.namespaces, current)
                except ConflictError:
                    if resource_version:
                        raise
                    continue
            release = service_claims(current) if isinstance(current, objects_pb2.Service) else ()
            try:
                await self.store.delete(
                    info, namespace, name, expected_revision=int(current_revision), release=release
                )
                self.view.learn_released(release)
            except ConflictError:
                if resource_version:
                    raise
                continue
            log.debug("deleted", extra={info.resource: f"{namespace}/{name}"})
            return current
        raise ConflictError(f'{info.qualified_resource} "{name}" keeps changing; retry', 0)


def _carry_status(current: ApiObject, new: ApiObject) -> None:
    """Updates replace what the user owns; status belongs to controllers and agents."""
    if new.DESCRIPTOR.fields_by_name.get("status") is None:
        return  # EndpointSlices, Events, ServiceAccounts, the RBAC kinds
    source: Any = current  # a kind with status: a Service, Pod, Deployment, Node, Namespace
    target: Any = new
    if source.HasField("status"):
        target.status.CopyFrom(source.status)
    else:
        target.ClearField("status")


def _with_status(current: ApiObject, new: ApiObject) -> ApiObject:
    """A /status write: the current object with the new status (and managedFields,
    which the field manager then sets), as Kubernetes' status strategies reset spec
    and metadata."""
    out = _copy(current)
    out.metadata.resource_version = new.metadata.resource_version
    out.metadata.ClearField("managed_fields")
    out.metadata.managed_fields.extend(new.metadata.managed_fields)
    if new.DESCRIPTOR.fields_by_name.get("status") is not None:
        if new.HasField("status"):
            out.status.CopyFrom(new.status)  # type: ignore[union-attr,arg-type]
        else:
            out.ClearField("status")
    return out


def _carry_server_metadata(current: Any, new: Any) -> None:
    """Fields the server owns survive an update whatever the client sent."""
    new.uid = current.uid
    new.generation = current.generation
    new.creation_timestamp.CopyFrom(current.creation_timestamp)
    if current.HasField("deletion_timestamp"):
        new.deletion_timestamp.CopyFrom(current.deletion_timestamp)
    else:
        new.ClearField("deletion_timestamp")


SERVICE = kinds.SERVICES
