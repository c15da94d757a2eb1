"""The etcd connection every part of the store shares: calls, transactions, watches, leases.

One aetcd client per `Store` (per actor process). Unary calls and
transactions go through aetcd's raw KV stub, because the store needs the
response header's revision (aetcd's high-level `transaction` drops it);
transactions are group-committed by `TxnBatcher`. Any call that cannot reach
etcd raises `StoreUnavailableError` at once.

Ranges are paged (`_range_page`): a page is read at one revision in steps sized
to a byte budget, so no etcd answer grows with the cluster; `_range` walks every
page of a prefix at the first page's revision, for callers that want it all.

Watches (`watch_prefix`) reconnect by themselves with tenacity back-off and
resume from the last revision they delivered, so a consumer sees every event
exactly once across an etcd restart; a start revision that etcd has compacted
raises `CompactedError` and the consumer relists.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import aetcd
import aetcd.exceptions
import aetcd.rpc as etcdrpc
import grpc
from google.protobuf.message import Message
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from kubelab.core.paging import InvalidContinueError
from kubelab.limits import ETCD_MESSAGE_BYTES_MAX, LIST_CHUNK, PAGE_BYTES
from kubelab.store.batching import TxnBatcher, TxnResult
from kubelab.store.errors import (
    CompactedError,
    ExpiredContinueError,
    LeaseExpiredError,
    RequestTooLargeError,
    StoreUnavailableError,
)
from kubelab.store.keys import REGISTRY, prefix_end

log = logging.getLogger("kubelab.store")

# A page's first etcd range reads this many keys, and never more than _MAX_STEP at once.
_FIRST_STEP = 64
_MAX_STEP = 1000

_UNAVAILABLE_CODES = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
)


@dataclass(frozen=True, slots=True)
class Lease:
    """An etcd lease: keys attached to it vanish when it is revoked or expires."""

    id: int
    ttl: int


@dataclass(frozen=True, slots=True)
class RawPage:
    kvs: list[Any]
    # The revision the page was read at (every page of one list shares it).
    revision: int
    # Where the next page starts; None when this page ends the range.
    next_key: bytes | None


@dataclass(frozen=True, slots=True)
class RawEvent:
    deleted: bool
    created: bool
    key: bytes
    value: bytes
    revision: int
    previous: bytes | None


def put(key: bytes, value: bytes, lease: Lease | None = None) -> etcdrpc.RequestOp:
    request = etcdrpc.PutRequest(key=key, value=value, lease=lease.id if lease else 0)
    return etcdrpc.RequestOp(request_put=request)


def delete(key: bytes) -> etcdrpc.RequestOp:
    return etcdrpc.RequestOp(request_delete_range=etcdrpc.DeleteRangeRequest(key=key))


def read(key: bytes) -> etcdrpc.RequestOp:
    """A transaction's read-back of a key it compared: revisions and lease, never the value.
    Values would make a group-committed answer as large as every object it touched."""
    return etcdrpc.RequestOp(request_range=etcdrpc.RangeRequest(key=key, keys_only=True))


def version_is(key: bytes, version: int) -> etcdrpc.Compare:
    return etcdrpc.Compare(
        key=key, result=etcdrpc.Compare.EQUAL, target=etcdrpc.Compare.VERSION, version=version
    )


def mod_revision_is(key: bytes, revision: int) -> etcdrpc.Compare:
    return etcdrpc.Compare(
        key=key, result=etcdrpc.Compare.EQUAL, target=etcdrpc.Compare.MOD, mod_revision=revision
    )


def create_revision_is(key: bytes, revision: int) -> etcdrpc.Compare:
    return etcdrpc.Compare(
        key=key,
        result=etcdrpc.Compare.EQUAL,
        target=etcdrpc.Compare.CREATE,
        create_revision=revision,
    )


def channel_target(endpoints: str) -> tuple[str, int]:
    """aetcd's (host, port) for `host:port`, or for several members `a:2379,b:2379,...`.

    aetcd dials `f"{host}:{port}"`, so several members become one gRPC `ipv4:` target
    listing every address (names are resolved once, here): gRPC's pick_first policy
    keeps to one member and moves to the next when that one goes away, which is the
    failover an etcd client does."""
    members = [m.strip() for m in endpoints.split(",") if m.strip()]
    if not members:
        raise ValueError("no etcd endpoint given")
    pairs = []
    for member in members:
        host, colon, port = member.rpartition(":")
        if not colon or not port.isdigit():
            raise ValueError(f"etcd endpoint {member!r} is not host:port")
        pairs.append((host or "127.0.0.1", int(port)))
    if len(pairs) == 1:
        return pairs[0]
    addresses = [f"{socket.gethostbyname(host)}:{port}" for host, port in pairs]
    last_host, last_port = addresses[-1].rsplit(":", 1)
    return "ipv4:" + ",".join([*addresses[:-1], last_host]), int(last_port)


class EtcdConnection:
    def __init__(
        self,
        endpoint: str,
        *,
        timeout: float = 5.0,
        receive_bytes_max: int = ETCD_MESSAGE_BYTES_MAX,
    ) -> None:
        host, port = channel_target(endpoint)
        self.endpoint = endpoint
        self.timeout = timeout
        self._batcher = TxnBatcher(self._send_txn, refused=_refused_before_applying)
        self._target = (host, port)
        self._receive_bytes_max = receive_bytes_max
        self._client = self._new_client()

    def _new_client(self) -> aetcd.Client:
        host, port = self._target
        return aetcd.Client(
            host=host,
            port=port,
            timeout=None,
            options={
                # gRPC's default reconnect back-off grows to 120 s; after an etcd
                # restart we want the channel back within a second.
                "grpc.initial_reconnect_backoff_ms": 100,
                "grpc.max_reconnect_backoff_ms": 1000,
                # gRPC shares subchannels (and so TCP connections and their connect
                # attempts) between channels with the same target and arguments:
                # without a pool of its own, `reconnect()`'s new channel would take
                # over the old one's connection attempt, a SYN lost in a network cut
                # that is retried for up to 20 s.
                "grpc.use_local_subchannel_pool": 1,
                # A member that is frozen or cut off answers nothing, not even a reset:
                # pings on the open watches find it out, so pick_first moves on. etcd
                # answers pings more often than its --grpc-keepalive-min-time (5 s)
                # by closing the connection.
                "grpc.keepalive_time_ms": 10_000,
                "grpc.keepalive_timeout_ms": 3_000,
                # Sizes in `kubelab.limits` (ranges are paged to fit, `_range_page`).
                "grpc.max_receive_message_length": self._receive_bytes_max,
                "grpc.max_send_message_length": ETCD_MESSAGE_BYTES_MAX,
            },
        )

    async def close(self) -> None:
        await self._client.close()

    async def reconnect(self) -> None:
        """Drop the channel; the next call opens a new one. After a network cut the old
        TCP connection can outlive it half-dead, its retransmission timer backed off to
        seconds, and keepalive takes 13 s to notice: a caller that has just learned etcd
        was out of reach (its lease expired) starts afresh instead. In-flight calls fail
        as unavailable (their callers retry); watches resume from their last revision.

        The new client is in place before the old one closes: aetcd's close() is not
        safe against a caller that connects meanwhile (a watch resumed on the closing
        client waited for its "created" answer forever)."""
        old, self._client = self._client, self._new_client()
        await old.close()

    async def _connected(self) -> aetcd.Client:
        """The client, connected. Callers use the one returned, not `self._client`: a
        `reconnect()` while this waited has put an unconnected one there."""
        client = self._client
        try:
            await client.connect()
        except aetcd.exceptions.ClientError as err:
            raise StoreUnavailableError(f"etcd at {self.endpoint}: {err}") from None
        return client

    async def _call(self, method: str, request: Message, *, stub: str = "kvstub") -> Any:
        client = await self._connected()
        try:
            return await getattr(getattr(client, stub), method)(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as err:
            if err.code() in _UNAVAILABLE_CODES:
                raise StoreUnavailableError(
                    f"etcd at {self.endpoint} is unavailable: {err.details()}"
                ) from None
            if "requested lease not found" in (err.details() or ""):
                raise LeaseExpiredError(err.details()) from None
            details = err.details() or ""
            # etcd's own limit (--max-request-bytes), or its gRPC server's (that + 512 KiB),
            # in the words of etcd and of Go's gRPC server; an answer too large for this
            # client ("CLIENT: Received message larger than max") is the caller's to handle.
            if "request is too large" in details or details.startswith(
                "grpc: received message larger than max"
            ):
                raise RequestTooLargeError(details) from None
            raise

    async def _send_txn(self, request: etcdrpc.TxnRequest) -> Any:
        return await self._call("Txn", request)

    async def _txn(
        self,
        compare: Sequence[etcdrpc.Compare],
        success: Sequence[etcdrpc.RequestOp],
        failure: Sequence[etcdrpc.RequestOp],
    ) -> TxnResult:
        request = etcdrpc.TxnRequest(compare=compare, success=success, failure=failure)
        return await self._batcher.submit(request)

    async def _range(self, prefix: bytes) -> RawPage:
        """Every key under `prefix`, read page by page at one revision (a consistent
        snapshot however large the range; no response over the client's limit)."""
        kvs: list[Any] = []
        page = await self._range_page(prefix, limit=LIST_CHUNK)
        kvs += page.kvs
        while page.next_key is not None:
            page = await self._range_page(
                prefix, start=page.next_key, revision=page.revision, limit=LIST_CHUNK
            )
            kvs += page.kvs
        return RawPage(kvs, page.revision, None)

    async def _range_page(
        self,
        prefix: bytes,
        *,
        start: bytes | None = None,
        revision: int = 0,
        limit: int = 0,
        max_bytes: int = PAGE_BYTES,
    ) -> RawPage:
        """At most `limit` keys (0: no count limit) under `prefix` from `start`, read at
        `revision` (0: now), stopping once the values hold `max_bytes` (one key at least).

        etcd cannot bound a range by size, so the page is read in steps sized from the
        values seen so far; a step whose answer would exceed the client's receive limit
        is retried smaller. Raises ExpiredContinueError when `revision` was compacted."""
        end = prefix_end(prefix)
        key = start or prefix
        kvs: list[Any] = []
        size = 0
        step = min(limit or _FIRST_STEP, _FIRST_STEP)
        while True:
            request = etcdrpc.RangeRequest(key=key, range_end=end, limit=step, revision=revision)
            try:
                response = await self._call("Range", request)
            except grpc.aio.AioRpcError as err:
                if err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and step > 1:
                    step //= 2
                    continue
                if err.code() == grpc.StatusCode.OUT_OF_RANGE and revision:
                    if "compacted" in (err.details() or ""):
                        raise ExpiredContinueError() from None
                    raise InvalidContinueError(
                        f"resource version {revision} is in the future"
                    ) from None
                raise
            revision = revision or int(response.header.revision)
            for n, kv in enumerate(response.kvs):
                if kvs and size + len(kv.value) > max_bytes:
                    return RawPage(kvs, revision, bytes(kv.key))
                kvs.append(kv)
                size += len(kv.value)
                if len(kvs) == limit:
                    more = n + 1 < len(response.kvs) or response.more
                    return RawPage(kvs, revision, bytes(kv.key) + b"\0" if more else None)
            if not response.more:
                return RawPage(kvs, revision, None)
            key = bytes(response.kvs[-1].key) + b"\0"
            # Enough keys of the average size seen to fill the page, within its limit.
            fit = (max_bytes - size) * len(kvs) // max(size, 1) + 1
            step = max(1, min(fit, (limit - len(kvs)) if limit else fit, _MAX_STEP))

    async def _range_one(self, key: bytes) -> bytes | None:
        response = await self._call("Range", etcdrpc.RangeRequest(key=key))
        return bytes(response.kvs[0].value) if response.kvs else None

    async def current_revision(self) -> int:
        response = await self._call(
            "Range", etcdrpc.RangeRequest(key=REGISTRY.encode(), limit=1, count_only=True)
        )
        return int(response.header.revision)

    # ------------------------------------------------------------------ leases

    async def grant_lease(self, ttl: int) -> Lease:
        """A new lease; etcd grants at least its minimum TTL (2 s on etcd 3.5)."""
        response = await self._call(
            "LeaseGrant", etcdrpc.LeaseGrantRequest(TTL=ttl), stub="leasestub"
        )
        return Lease(int(response.ID), int(response.TTL))

    async def keep_alive(self, lease: Lease) -> bool:
        """Renew a lease once; False when it has already expired (its keys are gone).
        Bounded by a third of the TTL: a paused or cut-off etcd must read as
        "unconfirmed" in time for the holder to act, not hang the renewal."""
        client = await self._connected()
        try:
            reply = await asyncio.wait_for(
                client.refresh_lease(lease.id), min(self.timeout, max(lease.ttl / 3, 0.2))
            )
        except (aetcd.exceptions.ClientError, TimeoutError) as err:
            raise StoreUnavailableError(
                f"etcd at {self.endpoint}: lease renewal: {err!r}"
            ) from None
        return reply is not None and int(reply.TTL) > 0

    async def revoke_lease(self, lease: Lease) -> None:
        """Revoke a lease: every key attached to it is deleted at once."""
        try:
            await self._call(
                "LeaseRevoke", etcdrpc.LeaseRevokeRequest(ID=lease.id), stub="leasestub"
            )
        except grpc.aio.AioRpcError as err:
            if "requested lease not found" not in (err.details() or ""):
                raise

    # ------------------------------------------------------------------ watches

    async def watch_prefix(self, prefix: bytes, from_revision: int) -> AsyncIterator[RawEvent]:
        """Events under `prefix` after `from_revision`, in revision order; survives etcd
        restarts by re-watching from the last delivered revision."""
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
                        yield RawEvent(True, False, kv.key, prev or b"", revision, prev)
                    else:
                        created = kv.create_revision == kv.mod_revision
                        yield RawEvent(False, created, kv.key, kv.value, revision, prev)
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
            client = self._client
            await client.connect()
            return await client.watch(
                prefix,
                range_end=prefix_end(prefix),
                start_revision=start_revision,
                prev_kv=True,
            )
        except aetcd.exceptions.RevisionCompactedError as err:
            raise CompactedError(err.compacted_revision) from None
        except aetcd.exceptions.ClientError as err:
            raise StoreUnavailableError(str(err)) from None


def _refused_before_applying(err: BaseException) -> bool:
    """etcd checked the request and applied none of it: too large, too many operations,
    a key twice (INVALID_ARGUMENT), or a put on a lease that is gone."""
    if isinstance(err, LeaseExpiredError | RequestTooLargeError):
        return True
    return isinstance(err, grpc.aio.AioRpcError) and err.code() in (
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
    )


async def _cancel_quietly(watch: Any) -> None:
    try:
        await watch.cancel()
    except Exception as err:  # the stream may already be gone with its channel
        log.debug("cancelling watch: %s", err)
