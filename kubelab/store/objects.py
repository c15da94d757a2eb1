"""Objects and allocation claims: typed objects in, typed objects out.

`metadata.resourceVersion` is the key's etcd mod revision; it is never stored
in the value, it is set when an object is read. Every write that must not
race is one etcd transaction: a create compares the object's `version == 0`
and each new claim's `version == 0`; an update or delete compares the object's
`mod_revision`. When a transaction fails, its failure branch reads back every
key it compared, so one round trip tells which condition failed and the
caller gets a precise error (`AlreadyExistsError`, `ConflictError`,
`ClaimTakenError` naming the claims, `NotLeaderError`).

Events are written under a shared, expiring lease (`ttl_leases`): etcd deletes
an Event `event_ttl` seconds (Kubernetes' --event-ttl, 1 h) after its last write.

A *fence* (DESIGN §7a) makes a write conditional on its writer still being
the leader it was elected as: the transaction also compares the election
key's create revision, so a deposed leader's late write is refused, never
applied.
"""

from __future__ import annotations

import builtins
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast

import aetcd.rpc as etcdrpc
import grpc
from google.protobuf.message import Message

from kubelab.core import kinds, paging
from kubelab.core.allocators import Claim, ClaimKind
from kubelab.core.kinds import ApiObject, KindInfo, ObjectT
from kubelab.store.errors import (
    AlreadyExistsError,
    ClaimTakenError,
    CompactedError,
    ConflictError,
    LeaseExpiredError,
    NotFoundError,
    NotLeaderError,
)
from kubelab.store.etcd import (
    EtcdConnection,
    Lease,
    create_revision_is,
    delete,
    mod_revision_is,
    put,
    read,
    version_is,
)
from kubelab.store.keys import (
    ALLOCATIONS,
    REGISTRY,
    claim_from_key,
    claim_key,
    kind_prefix,
    object_key,
)
from kubelab.store.ttl_leases import TtlLeases

# Kubernetes' --event-ttl default.
EVENT_TTL = 3600.0


@dataclass(frozen=True, slots=True)
class Fence:
    """Proof of leadership: the election key and the revision it was created at."""

    key: bytes
    revision: int


def _fenced(fence: Fence | None) -> list[etcdrpc.Compare]:
    return [create_revision_is(fence.key, fence.revision)] if fence else []


def _fence_read(fence: Fence | None) -> list[etcdrpc.RequestOp]:
    return [read(fence.key)] if fence else []


def _check_fence(fence: Fence | None, reads: Sequence[Any]) -> None:
    """After a failed fenced transaction: raise NotLeaderError if the fence is what failed."""
    if fence is None:
        return
    kvs = reads[-1].response_range.kvs
    if not kvs or kvs[0].create_revision != fence.revision:
        raise NotLeaderError(f"leadership {fence.key.decode()}@{fence.revision} is over")


class EventType(StrEnum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


@dataclass(frozen=True, slots=True)
class ObjectEvent:
    type: EventType
    info: KindInfo
    object: ApiObject
    revision: int
    # The object before this change (None for ADDED, or when etcd no longer has it).
    previous: ApiObject | None = None


@dataclass(frozen=True, slots=True)
class ListPage:
    items: list[ApiObject]
    # The revision every page of this list is read at.
    revision: int
    # The token for the next page; "" when this page is the last.
    continue_token: str


@dataclass(frozen=True, slots=True)
class ClaimEvent:
    claim: Claim
    # None when the claim was released.
    owner_uid: str | None
    revision: int


def _meta(obj: Message) -> Any:
    return obj.metadata  # type: ignore[attr-defined]


def _encode(obj: Message) -> bytes:
    meta = _meta(obj)
    revision = meta.resource_version
    meta.resource_version = ""
    try:
        return obj.SerializeToString(deterministic=True)
    finally:
        meta.resource_version = revision


def _decode(info: KindInfo[ObjectT], value: bytes, revision: int) -> ObjectT:
    obj = cast(ObjectT, info.message.FromString(value))  # the stubs lose the TypeVar
    _meta(obj).resource_version = str(revision)
    return obj


def _owner_value(obj: Message) -> bytes:
    info = kinds.info_of(obj)
    meta = _meta(obj)
    owner = f"{info.resource}/{meta.namespace}/{meta.name}"
    # uid and names are from fixed alphabets (validated), so no JSON escaping is needed.
    return f'{{"uid": "{meta.uid}", "owner": "{owner}"}}'.encode()


def _owner_uid(value: bytes) -> str:
    """The owner uid a claim's value names; "" (no owner: an orphan to repair) when the
    value is not what kubelab writes (a hand edit, a corrupt restore)."""
    try:
        owner = json.loads(value)
    except ValueError:
        return ""
    uid = owner.get("uid", "") if isinstance(owner, dict) else ""
    return uid if isinstance(uid, str) else ""


def _held_by_others(claims: Sequence[Claim], reads: Sequence[Any]) -> list[Claim]:
    """From a failed transaction's read-back of each claim key: the claims that exist."""
    return [claim for claim, op in zip(claims, reads, strict=True) if op.response_range.kvs]


class ObjectStore(EtcdConnection):
    """Objects of every kind and the allocation claims Services hold."""

    def __init__(self, endpoint: str, *, event_ttl: float = EVENT_TTL, **options: Any) -> None:
        super().__init__(endpoint, **options)
        self.event_leases = TtlLeases(self.grant_lease, event_ttl)

    async def _lease_for(self, info: KindInfo) -> Lease | None:
        return await self.event_leases.lease() if info is kinds.EVENTS else None

    async def _txn_leased(
        self,
        lease: Lease | None,
        compare: Sequence[etcdrpc.Compare],
        success: Callable[[Lease | None], Sequence[etcdrpc.RequestOp]],
        failure: Sequence[etcdrpc.RequestOp],
    ) -> Any:
        """A transaction whose puts hang on `lease`; once again with a new lease when
        that one has just expired (etcd applied nothing then)."""
        try:
            return await self._txn(compare, success(lease), failure)
        except LeaseExpiredError:
            if lease is None:
                raise
            self.event_leases.forget(lease)
            return await self._txn(compare, success(await self.event_leases.lease()), failure)

    # ------------------------------------------------------------------ reads

    async def get(self, info: KindInfo[ObjectT], namespace: str, name: str) -> ObjectT:
        response = await self._call(
            "Range", etcdrpc.RangeRequest(key=object_key(info, namespace, name))
        )
        if not response.kvs:
            raise NotFoundError(f'{info.qualified_resource} "{name}" not found')
        kv = response.kvs[0]
        return _decode(info, kv.value, kv.mod_revision)

    async def list(self, info: KindInfo[ObjectT], namespace: str = "") -> tuple[list[ObjectT], int]:
        """Every object of a kind (in one namespace, or all), and the revision read at."""
        response = await self._range(kind_prefix(info, namespace))
        items = [_decode(info, kv.value, kv.mod_revision) for kv in response.kvs]
        return items, response.revision

    async def list_page(
        self, info: KindInfo, namespace: str = "", *, limit: int = 0, continue_token: str = ""
    ) -> ListPage:
        """One page of a list (Kubernetes' limit / continue): at most `limit` objects
        (0: as many as fit the page's byte budget), from where `continue_token` says, at
        the revision of the list's first page. Raises InvalidContinueError for a token
        kubelab did not make, ExpiredContinueError when its revision was compacted."""
        prefix = kind_prefix(info, namespace)
        start, revision = None, 0
        if continue_token:
            token = paging.decode_continue(continue_token)
            start, revision = prefix + token.start.encode(), token.revision
        page = await self._range_page(prefix, start=start, revision=revision, limit=limit)
        items = [_decode(info, kv.value, kv.mod_revision) for kv in page.kvs]
        following = ""
        if page.next_key is not None:
            relative = page.next_key[len(prefix) :].decode()
            following = paging.encode_continue(paging.Continue(page.revision, relative))
        return ListPage(items, page.revision, following)

    async def list_claims(self, kind: ClaimKind | None = None) -> tuple[dict[Claim, str], int]:
        """Every claim (of one kind, or all) with its owner's uid, and the revision read at."""
        response = await self._range((ALLOCATIONS + (f"{kind.value}/" if kind else "")).encode())
        claims = {claim_from_key(kv.key): _owner_uid(kv.value) for kv in response.kvs}
        return claims, response.revision

    # ------------------------------------------------------------------ writes

    async def create(
        self, obj: ObjectT, claims: Iterable[Claim] = (), *, fence: Fence | None = None
    ) -> ObjectT:
        """Write a new object and its claims atomically; returns `obj` itself with its
        new resourceVersion set (the caller hands the object over).

        Raises AlreadyExistsError, or ClaimTakenError naming every claim that
        someone else holds; on either, nothing was written. Controllers and agents
        create through here without the apiserver, so what the apiserver would stamp
        on a new object (uid, creationTimestamp, generation) is filled in when missing.
        """
        info = kinds.info_of(obj)
        meta = _meta(obj)
        if not meta.uid:
            meta.uid = str(uuid.uuid4())
        if not meta.HasField("creation_timestamp"):
            meta.creation_timestamp.seconds = int(time.time())
        if not meta.generation:
            meta.generation = 1
        key = object_key(info, meta.namespace, meta.name)
        claim_list = sorted(set(claims))
        claim_keys = [claim_key(c) for c in claim_list]
        owner = _owner_value(obj)
        value = _encode(obj)
        response = await self._txn_leased(
            await self._lease_for(info),
            [version_is(key, 0), *(version_is(k, 0) for k in claim_keys), *_fenced(fence)],
            lambda lease: [put(key, value, lease), *(put(k, owner) for k in claim_keys)],
            [read(key), *(read(k) for k in claim_keys), *_fence_read(fence)],
        )
        if not response.succeeded:
            _check_fence(fence, response.responses)
            if response.responses[0].response_range.kvs:
                raise AlreadyExistsError(f'{info.qualified_resource} "{meta.name}" already exists')
            raise ClaimTakenError(
                _held_by_others(claim_list, response.responses[1 : 1 + len(claim_list)])
            )
        meta.resource_version = str(response.revision)
        return obj

    async def update(
        self,
        obj: ObjectT,
        *,
        expected_revision: int,
        claim: Iterable[Claim] = (),
        release: Iterable[Claim] = (),
        fence: Fence | None = None,
    ) -> ObjectT:
        """Replace an object if its mod revision is still `expected_revision`, taking new
        claims and releasing old ones in the same transaction. Returns `obj` itself with
        its new resourceVersion set.

        Raises NotFoundError, ConflictError (someone wrote in between), or
        ClaimTakenError; on any of them nothing was written.
        """
        info = kinds.info_of(obj)
        meta = _meta(obj)
        key = object_key(info, meta.namespace, meta.name)
        claim_list = sorted(set(claim))
        claim_keys = [claim_key(c) for c in claim_list]
        owner = _owner_value(obj)
        value = _encode(obj)
        released = sorted(set(release))
        response = await self._txn_leased(
            await self._lease_for(info),
            [
                mod_revision_is(key, expected_revision),
                *(version_is(k, 0) for k in claim_keys),
                *_fenced(fence),
            ],
            lambda lease: [
                put(key, value, lease),
                *(put(k, owner) for k in claim_keys),
                *(delete(claim_key(c)) for c in released),
            ],
            [read(key), *(read(k) for k in claim_keys), *_fence_read(fence)],
        )
        if not response.succeeded:
            _check_fence(fence, response.responses)
            current = response.responses[0].response_range.kvs
            if not current:
                raise NotFoundError(f'{info.qualified_resource} "{meta.name}" not found')
            if current[0].mod_revision != expected_revision:
                raise ConflictError.modified(
                    info.qualified_resource, meta.name, current[0].mod_revision
                )
            raise ClaimTakenError(
                _held_by_others(claim_list, response.responses[1 : 1 + len(claim_list)])
            )
        meta.resource_version = str(response.revision)
        return obj

    async def delete(
        self,
        info: KindInfo,
        namespace: str,
        name: str,
        *,
        expected_revision: int,
        release: Iterable[Claim] = (),
        fence: Fence | None = None,
    ) -> None:
        """Delete an object at `expected_revision` and release its claims atomically."""
        key = object_key(info, namespace, name)
        response = await self._txn(
            [mod_revision_is(key, expected_revision), *_fenced(fence)],
            [delete(key), *(delete(claim_key(c)) for c in sorted(set(release)))],
            [read(key), *_fence_read(fence)],
        )
        if not response.succeeded:
            _check_fence(fence, response.responses)
            current = response.responses[0].response_range.kvs
            if not current:
                raise NotFoundError(f'{info.qualified_resource} "{name}" not found')
            raise ConflictError.modified(info.qualified_resource, name, current[0].mod_revision)

    async def release_claims(self, owned: dict[Claim, str], *, fence: Fence | None = None) -> int:
        """Delete claims whose value still names the given owner uid (repair); returns how
        many were released. A claim re-taken by someone else in between is left alone."""
        released = 0
        for claim, uid in owned.items():
            key = claim_key(claim)
            current = await self._call("Range", etcdrpc.RangeRequest(key=key))
            if not current.kvs or _owner_uid(current.kvs[0].value) != uid:
                continue
            response = await self._txn(
                [mod_revision_is(key, current.kvs[0].mod_revision), *_fenced(fence)],
                [delete(key)],
                [*_fence_read(fence)],
            )
            if not response.succeeded:
                _check_fence(fence, response.responses)
            released += int(response.succeeded)
        return released

    async def restore_claims(
        self, obj: ApiObject, claims: Iterable[Claim], *, fence: Fence | None = None
    ) -> builtins.list[Claim]:
        """Write the claims `obj` holds but etcd lacks (repair); a claim that exists by
        now (someone holds it) is left alone. Returns the claims written."""
        owner = _owner_value(obj)
        restored: builtins.list[Claim] = []
        for claim in sorted(set(claims)):
            key = claim_key(claim)
            response = await self._txn(
                [version_is(key, 0), *_fenced(fence)], [put(key, owner)], [*_fence_read(fence)]
            )
            if response.succeeded:
                restored.append(claim)
            else:
                _check_fence(fence, response.responses)
        return restored

    # ------------------------------------------------------------------ watches

    async def check_history(self, revision: int) -> None:
        """Raise CompactedError when etcd no longer keeps the changes after `revision`: a
        watch from it would be cancelled. (A cache that still holds them answers the same.)"""
        request = etcdrpc.RangeRequest(
            key=REGISTRY.encode(), limit=1, count_only=True, revision=revision + 1
        )
        try:
            await self._call("Range", request)
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.OUT_OF_RANGE:
                raise
            if "compacted" in (err.details() or ""):
                message = f"too old resource version: {revision} (etcd has compacted it)"
                raise CompactedError(0, message) from None
            # A future revision: a watch from it waits for it, as etcd's does.

    async def watch(
        self, info: KindInfo, namespace: str = "", *, from_revision: int
    ) -> AsyncIterator[ObjectEvent]:
        """Every change to a kind strictly after `from_revision`, in revision order."""
        async for raw in self.watch_prefix(kind_prefix(info, namespace), from_revision):
            obj = _decode(info, raw.value, raw.revision)
            if raw.deleted and not raw.value:
                # The previous value was compacted away: name the object from its key.
                parts = raw.key.decode()[len(REGISTRY) :].split("/")
                _meta(obj).name = parts[-1]
                _meta(obj).namespace = parts[1] if info.namespaced else ""
            if raw.deleted:
                kind = EventType.DELETED
            else:
                kind = EventType.ADDED if raw.created else EventType.MODIFIED
            previous = None
            if raw.previous:
                previous = _decode(info, raw.previous, raw.revision)
            yield ObjectEvent(kind, info, obj, raw.revision, previous)

    async def watch_claims(self, *, from_revision: int) -> AsyncIterator[ClaimEvent]:
        async for raw in self.watch_prefix(ALLOCATIONS.encode(), from_revision):
            owner = None if raw.deleted else _owner_uid(raw.value)
            yield ClaimEvent(claim_from_key(raw.key), owner, raw.revision)
