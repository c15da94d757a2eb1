"""The only module that knows etcd: typed objects in, typed objects out.

Layout (private to this module; DESIGN §3):

* `/registry/<resource>/<namespace>/<name>` — an object, serialized binary
  protobuf; Nodes at `/registry/nodes/<name>`.
* `/registry/allocations/<clusterips|nodeports|lbips>/<value>` — a claim; its
  value names the owner (uid and key) so repair can find orphans.

`metadata.resourceVersion` is the key's etcd mod revision; it is never stored
in the value, it is set when an object is read. Every write that must not
race is one etcd transaction: a create compares the object's `version == 0`
and each new claim's `version == 0`; an update or delete compares the object's
`mod_revision`. When a transaction fails, its failure branch reads back every
key it compared, so one round trip tells which condition failed and the
caller gets a precise error (`AlreadyExistsError`, `ConflictError`,
`ClaimTakenError` naming the claims).

Failure: any etcd call that cannot reach etcd raises `StoreUnavailableError`
at once (callers map it to gRPC UNAVAILABLE; the apiserver does not hang).
Watches reconnect by themselves with tenacity back-off and resume from the
last revision they delivered, so a consumer sees every event exactly once
across an etcd restart; a start revision that etcd has compacted raises
`CompactedError` and the consumer relists.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast

import aetcd
import aetcd.exceptions
import aetcd.rpc as etcdrpc
import grpc
from google.protobuf.message import Message
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from kubelab.core import kinds
from kubelab.core.allocators import Claim, ClaimKind
from kubelab.core.kinds import ApiObject, KindInfo, ObjectT
from kubelab.store_batching import TxnBatcher, TxnResult

log = logging.getLogger(__name__)


_REGISTRY = "/registry/"
_ALLOCATIONS = "/registry/allocations/"
_UNAVAILABLE_CODES = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
)


class StoreError(Exception):
    pass


class StoreUnavailableError(StoreError):
    """etcd cannot be reached right now; retry."""


class NotFoundError(StoreError):
    pass


class AlreadyExistsError(StoreError):
    pass


class ConflictError(StoreError):
    """The object changed since the revision the caller read (Kubernetes' 409)."""

    def __init__(self, message: str, current_revision: int) -> None:
        super().__init__(message)
        self.current_revision = current_revision

    @classmethod
    def modified(cls, resource: str, name: str, current_revision: int) -> ConflictError:
        """Kubernetes' words for a stale resourceVersion."""
        return cls(
            f'Operation cannot be fulfilled on {resource} "{name}": the object has been '
            "modified; please apply your changes to the latest version and try again",
            current_revision,
        )


class ClaimTakenError(StoreError):
    def __init__(self, claims: Sequence[Claim]) -> None:
        super().__init__("already allocated: " + ", ".join(c.name for c in claims))
        self.claims = tuple(claims)


class CompactedError(StoreError):
    def __init__(self, compact_revision: int) -> None:
        super().__init__(f"revision compacted; oldest available is {compact_revision}")
        self.compact_revision = compact_revision


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
class ClaimEvent:
    claim: Claim
    # None when the claim was released.
    owner_uid: str | None
    revision: int


@dataclass(frozen=True, slots=True)
class _RawEvent:
    deleted: bool
    created: bool
    key: bytes
    value: bytes
    revision: int
    previous: bytes | None


def _object_key(info: KindInfo, namespace: str, name: str) -> bytes:
    if info.namespaced:
        return f"{_REGISTRY}{info.resource}/{namespace}/{name}".encode()
    return f"{_REGISTRY}{info.resource}/{name}".encode()


def _kind_prefix(info: KindInfo, namespace: str = "") -> bytes:
    if info.namespaced and namespace:
        return f"{_REGISTRY}{info.resource}/{namespace}/".encode()
    return f"{_REGISTRY}{info.resource}/".encode()


def _claim_key(claim: Claim) -> bytes:
    return f"{_ALLOCATIONS}{claim.kind.value}/{claim.name}".encode()


def _claim_from_key(key: bytes) -> Claim:
    kind, _, name = key.decode()[len(_ALLOCATIONS) :].partition("/")
    return Claim(ClaimKind(kind), name)


def _prefix_end(prefix: bytes) -> bytes:
    return prefix[:-1] + bytes([prefix[-1] + 1])


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


def _decode(info: KindInfo, value: bytes, revision: int) -> ApiObject:
    obj = cast(ApiObject, info.message.FromString(value))
    _meta(obj).resource_version = str(revision)
    return obj


def _owner_value(obj: Message) -> bytes:
    info = kinds.info_of(obj)
    meta = _meta(obj)
    owner = f"{info.resource}/{meta.namespace}/{meta.name}"
    # uid and names are from fixed alphabets (validated), so no JSON escaping is needed.
    return f'{{"uid": "{meta.uid}", "owner": "{owner}"}}'.encode()


def _held_by_others(claims: Sequence[Claim], reads: Sequence[Any]) -> list[Claim]:
    """From a failed transaction's read-back of each claim key: the claims that exist."""
    return [claim for claim, op in zip(claims, reads, strict=True) if op.response_range.kvs]


def _put(key: bytes, value: bytes) -> etcdrpc.RequestOp:
    return etcdrpc.RequestOp(request_put=etcdrpc.PutRequest(key=key, value=value))


def _delete(key: bytes) -> etcdrpc.RequestOp:
    return etcdrpc.RequestOp(request_delete_range=etcdrpc.DeleteRangeRequest(key=key))


def _read(key: bytes) -> etcdrpc.RequestOp:
    return etcdrpc.RequestOp(request_range=etcdrpc.RangeRequest(key=key))


def _version_is(key: bytes, version: int) -> etcdrpc.Compare:
    return etcdrpc.Compare(
        key=key,
        result=etcdrpc.Compare.EQUAL,
        target=etcdrpc.Compare.VERSION,
        version=version,
    )


def _mod_revision_is(key: bytes, revision: int) -> etcdrpc.Compare:
    return etcdrpc.Compare(
        key=key,
        result=etcdrpc.Compare.EQUAL,
        target=etcdrpc.Compare.MOD,
        mod_revision=revision,
    )


class Store:
    """Typed access to the cluster state in etcd. One per actor process."""

    def __init__(self, endpoint: str, *, timeout: float = 5.0) -> None:
        host, _, port = endpoint.rpartition(":")
        self.endpoint = endpoint
        self.timeout = timeout
        self._batcher = TxnBatcher(self._send_txn)
        self._client = aetcd.Client(
            host=host or "127.0.0.1",
            port=int(port),
            timeout=None,
            # gRPC's default reconnect back-off grows to 120 s; after an etcd restart
            # we want the channel back within a second.
            options={
                "grpc.initial_reconnect_backoff_ms": 100,
                "grpc.max_reconnect_backoff_ms": 1000,
            },
        )

    async def _send_txn(self, request: etcdrpc.TxnRequest) -> Any:
        return await self._call("Txn", request)

    async def close(self) -> None:
        await self._client.close()

    async def _kv(self) -> Any:
        try:
            await self._client.connect()
        except aetcd.exceptions.ClientError as err:
            raise StoreUnavailableError(f"etcd at {self.endpoint}: {err}") from None
        return self._client.kvstub

    async def _call(self, method: str, request: Message) -> Any:
        kv = await self._kv()
        try:
            return await getattr(kv, method)(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as err:
            if err.code() in _UNAVAILABLE_CODES:
                raise StoreUnavailableError(
                    f"etcd at {self.endpoint} is unavailable: {err.details()}"
                ) from None
            raise

    async def _txn(
        self,
        compare: Sequence[etcdrpc.Compare],
        success: Sequence[etcdrpc.RequestOp],
        failure: Sequence[etcdrpc.RequestOp],
    ) -> TxnResult:
        request = etcdrpc.TxnRequest(compare=compare, success=success, failure=failure)
        return await self._batcher.submit(request)

    # ------------------------------------------------------------------ reads

    async def current_revision(self) -> int:
        response = await self._call(
            "Range", etcdrpc.RangeRequest(key=_REGISTRY.encode(), limit=1, count_only=True)
        )
        return int(response.header.revision)

    async def get(self, info: KindInfo, namespace: str, name: str) -> ApiObject:
        response = await self._call(
            "Range", etcdrpc.RangeRequest(key=_object_key(info, namespace, name))
        )
        if not response.kvs:
            raise NotFoundError(f'{info.resource} "{name}" not found')
        kv = response.kvs[0]
        return _decode(info, kv.value, kv.mod_revision)

    async def list(self, info: KindInfo, namespace: str = "") -> tuple[list[ApiObject], int]:
        """Every object of a kind (in one namespace, or all), and the revision read at."""
        prefix = _kind_prefix(info, namespace)
        response = await self._call(
            "Range", etcdrpc.RangeRequest(key=prefix, range_end=_prefix_end(prefix))
        )
        items = [_decode(info, kv.value, kv.mod_revision) for kv in response.kvs]
        return items, int(response.header.revision)

    async def list_claims(self, kind: ClaimKind | None = None) -> tuple[dict[Claim, str], int]:
        """Every claim (of one kind, or all) with its owner's uid, and the revision read at."""
        prefix = (_ALLOCATIONS + (f"{kind.value}/" if kind else "")).encode()
        response = await self._call(
            "Range", etcdrpc.RangeRequest(key=prefix, range_end=_prefix_end(prefix))
        )
        claims = {
            _claim_from_key(kv.key): json.loads(kv.value).get("uid", "") for kv in response.kvs
        }
        return claims, int(response.header.revision)

    # ------------------------------------------------------------------ writes

    async def create(self, obj: ObjectT, claims: Iterable[Claim] = ()) -> ObjectT:
        """Write a new object and its claims atomically; returns `obj` itself with its
        new resourceVersion set (the caller hands the object over).

        Raises AlreadyExistsError, or ClaimTakenError naming every claim that
        someone else holds; on either, nothing was written.
        """
        info = kinds.info_of(obj)
        meta = _meta(obj)
        key = _object_key(info, meta.namespace, meta.name)
        claim_list = sorted(set(claims))
        claim_keys = [_claim_key(c) for c in claim_list]
        owner = _owner_value(obj)
        response = await self._txn(
            [_version_is(key, 0), *(_version_is(k, 0) for k in claim_keys)],
            [_put(key, _encode(obj)), *(_put(k, owner) for k in claim_keys)],
            [_read(key), *(_read(k) for k in claim_keys)],
        )
        if not response.succeeded:
            if response.responses[0].response_range.kvs:
                raise AlreadyExistsError(f'{info.resource} "{meta.name}" already exists')
            raise ClaimTakenError(_held_by_others(claim_list, response.responses[1:]))
        meta.resource_version = str(response.revision)
        return obj

    async def update(
        self,
        obj: ObjectT,
        *,
        expected_revision: int,
        claim: Iterable[Claim] = (),
        release: Iterable[Claim] = (),
    ) -> ObjectT:
        """Replace an object if its mod revision is still `expected_revision`, taking new
        claims and releasing old ones in the same transaction. Returns `obj` itself with
        its new resourceVersion set.

        Raises NotFoundError, ConflictError (someone wrote in between), or
        ClaimTakenError; on any of them nothing was written.
        """
        info = kinds.info_of(obj)
        meta = _meta(obj)
        key = _object_key(info, meta.namespace, meta.name)
        claim_list = sorted(set(claim))
        claim_keys = [_claim_key(c) for c in claim_list]
        owner = _owner_value(obj)
        response = await self._txn(
            [_mod_revision_is(key, expected_revision), *(_version_is(k, 0) for k in claim_keys)],
            [
                _put(key, _encode(obj)),
                *(_put(k, owner) for k in claim_keys),
                *(_delete(_claim_key(c)) for c in sorted(set(release))),
            ],
            [_read(key), *(_read(k) for k in claim_keys)],
        )
        if not response.succeeded:
            current = response.responses[0].response_range.kvs
            if not current:
                raise NotFoundError(f'{info.resource} "{meta.name}" not found')
            if current[0].mod_revision != expected_revision:
                raise ConflictError.modified(info.resource, meta.name, current[0].mod_revision)
            raise ClaimTakenError(_held_by_others(claim_list, response.responses[1:]))
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
    ) -> None:
        """Delete an object at `expected_revision` and release its claims atomically."""
        key = _object_key(info, namespace, name)
        response = await self._txn(
            [_mod_revision_is(key, expected_revision)],
            [_delete(key), *(_delete(_claim_key(c)) for c in sorted(set(release)))],
            [_read(key)],
        )
        if not response.succeeded:
            current = response.responses[0].response_range.kvs
            if not current:
                raise NotFoundError(f'{info.resource} "{name}" not found')
            raise ConflictError.modified(info.resource, name, current[0].mod_revision)

    async def release_claims(self, owned: dict[Claim, str]) -> int:
        """Delete claims whose value still names the given owner uid (repair); returns how
        many were released. A claim re-taken by someone else in between is left alone."""
        released = 0
        for claim, uid in owned.items():
            key = _claim_key(claim)
            current = await self._call("Range", etcdrpc.RangeRequest(key=key))
            if not current.kvs or json.loads(current.kvs[0].value).get("uid") != uid:
                continue
            response = await self._txn(
                [_mod_revision_is(key, current.kvs[0].mod_revision)], [_delete(key)], []
            )
            released += int(response.succeeded)
        return released

    # ------------------------------------------------------------------ watches

    async def watch(
        self, info: KindInfo, namespace: str = "", *, from_revision: int
    ) -> AsyncIterator[ObjectEvent]:
        """Every change to a kind strictly after `from_revision`, in revision order."""
        async for raw in self._watch_prefix(_kind_prefix(info, namespace), from_revision):
            obj = _decode(info, raw.value, raw.revision)
            if raw.deleted and not raw.value:
                # The previous value was compacted away: name the object from its key.
                parts = raw.key.decode()[len(_REGISTRY) :].split("/")
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
        async for raw in self._watch_prefix(_ALLOCATIONS.encode(), from_revision):
            owner = None if raw.deleted else json.loads(raw.value).get("uid", "")
            yield ClaimEvent(_claim_from_key(raw.key), owner, raw.revision)

    async def _watch_prefix(self, prefix: bytes, from_revision: int) -> AsyncIterator[_RawEvent]:
        """Events under `prefix` after `from_revision`; survives etcd restarts by re-watching
        from the last delivered revision (tenacity back-off while etcd is away)."""
        last = from_revision
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(StoreUnavailableError),
            wait=wait_exponential(multiplier=0.05, max=2.0),
            reraise=True,
        )
        while True:
            watch = None
            async for attempt in retrying:
                with attempt:
                    watch = await self._open_watch(prefix, last + 1)
            assert watch is not None
            try:
                async for event in watch:
                    kv = event.kv
                    revision = int(kv.mod_revision)
                    prev = event.prev_kv.value if event.prev_kv is not None else None
                    if event.kind == aetcd.rtypes.EventKind.DELETE:
                        yield _RawEvent(True, False, kv.key, prev or b"", revision, prev)
                    else:
                        created = kv.create_revision == kv.mod_revision
                        yield _RawEvent(False, created, kv.key, kv.value, revision, prev)
                    last = revision
            except aetcd.exceptions.RevisionCompactedError as err:
                raise CompactedError(err.compacted_revision) from None
            except (aetcd.exceptions.ClientError, grpc.aio.AioRpcError) as err:
                # aetcd opens a new stream on the next watch(); the channel reconnects itself.
                log.info("watch %s interrupted (%s); resuming from %d", prefix, err, last)
            finally:
                await _cancel_quietly(watch)

    async def _open_watch(self, prefix: bytes, start_revision: int) -> Any:
        try:
            await self._client.connect()
            return await self._client.watch(
                prefix,
                range_end=_prefix_end(prefix),
                start_revision=start_revision,
                prev_kv=True,
            )
        except aetcd.exceptions.RevisionCompactedError as err:
            raise CompactedError(err.compacted_revision) from None
        except aetcd.exceptions.ClientError as err:
            raise StoreUnavailableError(str(err)) from None


async def _cancel_quietly(watch: Any) -> None:
    try:
        await watch.cancel()
    except Exception as err:  # the stream may already be gone with its channel
        log.debug("cancelling watch: %s", err)
