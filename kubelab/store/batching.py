"""Group commit: concurrent etcd transactions travel as one request.

etcd evaluates the nested transactions of one `Txn` request independently,
each against its own compares, and applies them all at one revision. So N
independent writes — N Service creates from N clients — can share one round
trip and one gRPC call instead of paying for N. `TxnBatcher` collects the
transactions submitted while the previous batch is in flight (or within the
same event-loop turn when nothing is in flight), so a lone write goes out at
once and waits for nobody; under load, batches form by themselves.

Rules etcd imposes, which the batcher keeps:

* one request may not write the same key twice ("duplicate key given in txn
  request"): a transaction whose written keys overlap the batch's waits for
  the next batch, so writes to one key keep their submission order;
* at most 128 operations per request (`--max-txn-ops`), and a bounded request
  size: batches stop at `max_batch` transactions or `max_bytes`.

Failure: when the batch's request fails (etcd unreachable), every transaction
in it receives that error; none of them was applied (a Txn is atomic).

Part of `kubelab.store` (the only code that knows etcd): it knows etcd's
protobufs but not the key layout.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aetcd.rpc as etcdrpc


@dataclass(frozen=True, slots=True)
class TxnResult:
    succeeded: bool
    # One entry per operation of the branch that ran (etcd ResponseOp messages).
    responses: tuple[Any, ...]
    # The store revision after the request: the mod revision of every key it wrote.
    revision: int


@dataclass(slots=True)
class _Pending:
    request: etcdrpc.TxnRequest
    written: frozenset[bytes]
    size: int
    done: asyncio.Future[TxnResult]


def _written_keys(request: etcdrpc.TxnRequest) -> frozenset[bytes]:
    keys: set[bytes] = set()
    for op in (*request.success, *request.failure):
        kind = op.WhichOneof("request")
        if kind == "request_put":
            keys.add(op.request_put.key)
        elif kind == "request_delete_range":
            keys.add(op.request_delete_range.key)
    return frozenset(keys)


class TxnBatcher:
    def __init__(
        self,
        send: Callable[[etcdrpc.TxnRequest], Awaitable[Any]],
        *,
        max_batch: int = 100,
        max_bytes: int = 1024 * 1024,
        fatal: tuple[type[BaseException], ...] = (),
    ) -> None:
        """`fatal` errors fail a whole batch at once (etcd unreachable); any other error
        of a multi-transaction request is blamed on one of them, found by sending each
        alone."""
        self._send = send
        self._fatal = fatal
        self._max_batch = max_batch
        self._max_bytes = max_bytes
        self._pending: deque[_Pending] = deque()
        self._flushing = False
        self._flush_task: asyncio.Future[None] | None = None

    async def submit(self, request: etcdrpc.TxnRequest) -> TxnResult:
        loop = asyncio.get_running_loop()
        item = _Pending(request, _written_keys(request), request.ByteSize(), loop.create_future())
        self._pending.append(item)
        if not self._flushing:
            self._flushing = True
            # call_soon: transactions submitted in this same loop turn join the batch.
            loop.call_soon(self._start_flush)
        return await item.done

    def _start_flush(self) -> None:
        # Held so the running flush cannot be garbage-collected mid-batch.
        self._flush_task = asyncio.ensure_future(self._flush())

    def _take_batch(self) -> list[_Pending]:
        batch: list[_Pending] = []
        written: set[bytes] = set()
        size = 0
        deferred: deque[_Pending] = deque()
        while self._pending and len(batch) < self._max_batch:
            item = self._pending.popleft()
            if item.done.done():  # the submitter was cancelled
                continue
            if (item.written & written) or (batch and size + item.size > self._max_bytes):
                deferred.append(item)
                # Keep per-key order: nothing written by a deferred txn may overtake it.
                written |= item.written
                continue
            batch.append(item)
            written |= item.written
            size += item.size
        deferred.extend(self._pending)
        self._pending = deferred
        return batch

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch = self._take_batch()
                if not batch:
                    continue
                try:
                    await self._send_batch(batch)
                except Exception as err:  # a bug here must not strand the submitters
                    for item in batch:
                        if not item.done.done():
                            item.done.set_exception(err)
        finally:
            self._flushing = False

    def _is_per_request(self, err: BaseException) -> bool:
        return not isinstance(err, (asyncio.CancelledError, *self._fatal))

    async def _send_batch(self, batch: list[_Pending]) -> None:
        try:
            if len(batch) == 1:
                response = await self._send(batch[0].request)
                results = [
                    TxnResult(
                        response.succeeded, tuple(response.responses), response.header.revision
                    )
                ]
            else:
                outer = etcdrpc.TxnRequest(
                    success=[etcdrpc.RequestOp(request_txn=item.request) for item in batch]
                )
                response = await self._send(outer)
                revision = response.header.revision
                results = [
                    TxnResult(op.response_txn.succeeded, tuple(op.response_txn.responses), revision)
                    for op in response.responses
                ]
        except BaseException as err:
            if len(batch) > 1 and self._is_per_request(err):
                # One transaction's fault (say, a put on an expired lease) fails the whole
                # request: send them one by one so only the faulty one fails.
                for item in batch:
                    await self._send_batch([item])
                return
            for item in batch:
                if not item.done.done():
                    item.done.set_exception(err)
            if isinstance(err, asyncio.CancelledError):
                raise
            return
        for item, result in zip(batch, results, strict=True):
            if not item.done.done():
                item.done.set_result(result)
