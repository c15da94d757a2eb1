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
* at most 128 operations per request (`--max-txn-ops`), counted as etcd counts
  them: a nested transaction may hold at most 128 minus the number of
  transactions beside it;
* at most `--max-request-bytes` (1.5 MiB by default) per request: a batch stops
  before its encoded request would pass `max_bytes` (1 MiB, leaving room for
  etcd's own framing). A transaction larger than that goes alone, and etcd
  answers it alone.

Failure: a request etcd *refused* (`refused` says which errors prove that:
request too large, too many operations, a put on an expired lease) applied
nothing, so its transactions are sent again one by one and only the faulty
one fails. Any other error may have come after etcd applied the batch (the
answer did not arrive: a deadline, a lost connection), so every transaction in
it receives that error as is; sending them again would answer a write that
landed with a conflict. Read-backs carry no values (`etcd.read`), so a batch's
answer stays small whatever the objects' sizes.

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
    ops: int
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
        max_ops: int = 128,
        refused: Callable[[BaseException], bool] = lambda err: False,
    ) -> None:
        """`refused(err)`: etcd refused the request before applying any of it, so the
        fault is one transaction's, found by sending each alone. Any other error fails
        the whole batch (it may have been applied)."""
        self._send = send
        self._refused = refused
        self._max_batch = max_batch
        self._max_bytes = max_bytes
        self._max_ops = max_ops
        self._pending: deque[_Pending] = deque()
        self._flushing = False
        self._flush_task: asyncio.Future[None] | None = None

    async def submit(self, request: etcdrpc.TxnRequest) -> TxnResult:
        loop = asyncio.get_running_loop()
        # Sized as it travels: nested in the batch's request.
        size = etcdrpc.RequestOp(request_txn=request).ByteSize()
        ops = max(len(request.compare), len(request.success), len(request.failure))
        item = _Pending(request, _written_keys(request), size, ops, loop.create_future())
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
        widest = 0
        deferred: deque[_Pending] = deque()
        while self._pending and len(batch) < self._max_batch:
            item = self._pending.popleft()
            if item.done.done():  # the submitter was cancelled
                continue
            too_big = batch and (
                size + item.size > self._max_bytes
                or len(batch) + 1 + max(widest, item.ops) > self._max_ops
            )
            if (item.written & written) or too_big:
                deferred.append(item)
                # Keep per-key order: nothing written by a deferred txn may overtake it.
                written |= item.written
                continue
            batch.append(item)
            written |= item.written
            size += item.size
            widest = max(widest, item.ops)
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
            if len(batch) > 1 and self._refused(err):
                # One transaction's fault (say, a put on an expired lease) fails the whole
                # request before any of it applies: send them one by one so only the
                # faulty one fails.
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
