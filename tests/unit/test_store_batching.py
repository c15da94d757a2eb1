"""Group commit: batches form under load, never write a key twice, keep per-key order."""

from __future__ import annotations

import asyncio
from typing import Any

import aetcd.rpc as etcdrpc
import pytest

from kubelab.store.batching import TxnBatcher


def put_txn(*keys: bytes) -> etcdrpc.TxnRequest:
    return etcdrpc.TxnRequest(
        success=[etcdrpc.RequestOp(request_put=etcdrpc.PutRequest(key=k, value=b"v")) for k in keys]
    )


class FakeEtcd:
    """Answers like etcd: nested txns succeed unless their first key is in `refuse`."""

    def __init__(self, refuse: set[bytes] | None = None, fail: Exception | None = None) -> None:
        self.requests: list[etcdrpc.TxnRequest] = []
        self.refuse = refuse or set()
        self.fail = fail
        self.revision = 10
        self.gate = asyncio.Event()
        self.gate.set()

    async def send(self, request: etcdrpc.TxnRequest) -> Any:
        self.requests.append(request)
        await self.gate.wait()
        if self.fail:
            raise self.fail
        self.revision += 1
        response = etcdrpc.TxnResponse(succeeded=True)
        response.header.revision = self.revision
        nested = [op.request_txn for op in request.success if op.HasField("request_txn")]
        written: list[bytes] = []
        for txn in nested or [request]:
            keys = [op.request_put.key for op in txn.success]
            assert not set(keys) & set(written), "duplicate key in one request"
            written += keys
            ok = keys[0] not in self.refuse
            if nested:
                response.responses.add().response_txn.succeeded = ok
            else:
                response.succeeded = ok
        return response


async def test_a_lone_transaction_goes_out_alone_and_at_once() -> None:
    etcd = FakeEtcd()
    batcher = TxnBatcher(etcd.send)
    result = await asyncio.wait_for(batcher.submit(put_txn(b"/a")), 1)
    assert result.succeeded and result.revision == 11
    assert len(etcd.requests) == 1 and not etcd.requests[0].success[0].HasField("request_txn")


async def test_concurrent_transactions_share_one_request_with_their_own_outcomes() -> None:
    etcd = FakeEtcd(refuse={b"/k3"})
    batcher = TxnBatcher(etcd.send)
    results = await asyncio.gather(*(batcher.submit(put_txn(f"/k{i}".encode())) for i in range(6)))
    assert len(etcd.requests) == 1
    assert [r.succeeded for r in results] == [True, True, True, False, True, True]
    assert {r.revision for r in results} == {11}


async def test_batches_form_while_one_is_in_flight() -> None:
    etcd = FakeEtcd()
    etcd.gate.clear()
    batcher = TxnBatcher(etcd.send)
    first = asyncio.ensure_future(batcher.submit(put_txn(b"/first")))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    rest = [asyncio.ensure_future(batcher.submit(put_txn(f"/r{i}".encode()))) for i in range(5)]
    await asyncio.sleep(0)
    etcd.gate.set()
    await asyncio.gather(first, *rest)
    assert [len(r.success) for r in etcd.requests] == [1, 5]


async def test_same_key_never_shares_a_request_and_keeps_its_order() -> None:
    etcd = FakeEtcd()
    batcher = TxnBatcher(etcd.send)
    await asyncio.gather(
        batcher.submit(put_txn(b"/a", b"/x")),
        batcher.submit(put_txn(b"/b")),
        batcher.submit(put_txn(b"/x")),
        batcher.submit(put_txn(b"/c", b"/x")),
    )
    order = []
    for request in etcd.requests:
        for op in request.success:
            txn = op.request_txn if op.HasField("request_txn") else request
            order.append([p.request_put.key for p in txn.success])
            if not op.HasField("request_txn"):
                break
    assert [keys for keys in order if b"/x" in keys] == [[b"/a", b"/x"], [b"/x"], [b"/c", b"/x"]]
    assert len(etcd.requests) == 3


@pytest.mark.parametrize("max_batch", [pytest.param(1, id="one"), pytest.param(3, id="three")])
async def test_batches_respect_the_size_limit(max_batch: int) -> None:
    etcd = FakeEtcd()
    batcher = TxnBatcher(etcd.send, max_batch=max_batch)
    await asyncio.gather(*(batcher.submit(put_txn(f"/k{i}".encode())) for i in range(7)))
    assert max(len(r.success) for r in etcd.requests) <= max_batch
    assert sum(len(r.success) for r in etcd.requests) == 7


async def test_a_failed_request_fails_every_transaction_in_it() -> None:
    etcd = FakeEtcd(fail=ConnectionError("etcd down"))
    batcher = TxnBatcher(etcd.send)
    results = await asyncio.gather(
        *(batcher.submit(put_txn(f"/k{i}".encode())) for i in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, ConnectionError) for r in results)
    etcd.fail = None
    assert (await batcher.submit(put_txn(b"/after"))).succeeded


async def test_one_refused_transaction_fails_alone_and_any_other_error_fails_all() -> None:
    class Refused(Exception):
        pass

    class Down(Exception):
        pass

    async def send(request: etcdrpc.TxnRequest) -> Any:
        keys = {
            op.request_put.key
            for nested in request.success
            for op in (nested.request_txn.success if nested.HasField("request_txn") else [nested])
        }
        if b"/down" in keys:
            raise Down()
        if b"/bad" in keys:
            raise Refused()
        return await FakeEtcd().send(request)

    batcher = TxnBatcher(send, refused=lambda err: isinstance(err, Refused))
    results = await asyncio.gather(
        *(batcher.submit(put_txn(k)) for k in (b"/a", b"/bad", b"/b")), return_exceptions=True
    )
    assert [type(r).__name__ for r in results] == ["TxnResult", "Refused", "TxnResult"]
    results = await asyncio.gather(
        *(batcher.submit(put_txn(k)) for k in (b"/c", b"/down")), return_exceptions=True
    )
    assert [type(r).__name__ for r in results] == ["Down", "Down"]


async def test_an_error_that_may_follow_the_apply_fails_all_and_resends_nothing() -> None:
    """An answer lost after etcd applied the batch (a deadline, an answer too large for the
    client) must reach each caller as that error: resending would answer a create that
    landed with "already exists"."""

    class AnswerLost(Exception):
        pass

    etcd = FakeEtcd(fail=AnswerLost())
    batcher = TxnBatcher(etcd.send, refused=lambda err: False)
    results = await asyncio.gather(
        *(batcher.submit(put_txn(f"/k{i}".encode())) for i in range(4)), return_exceptions=True
    )
    assert all(isinstance(r, AnswerLost) for r in results)
    assert len(etcd.requests) == 1


def sized_txn(key: bytes, value_bytes: int, ops: int = 1) -> etcdrpc.TxnRequest:
    puts = [etcdrpc.PutRequest(key=key + b"/%d" % n, value=b"v") for n in range(ops)]
    puts[0].value = b"x" * value_bytes
    return etcdrpc.TxnRequest(success=[etcdrpc.RequestOp(request_put=p) for p in puts])


@pytest.mark.parametrize(
    ("sizes", "ops"),
    [
        pytest.param([300_000] * 17, 1, id="17x300kB"),
        pytest.param([1_400_000, 10, 1_400_000, 500_000, 600_000], 1, id="near-limit"),
        pytest.param([100] * 100, 30, id="wide-txns"),
        pytest.param([100] * 60, 3, id="many-small"),
    ],
)
async def test_a_batch_never_passes_the_request_size_or_operation_limits(
    sizes: list[int], ops: int
) -> None:
    etcd = FakeEtcd()
    batcher = TxnBatcher(etcd.send, max_bytes=1024 * 1024, max_ops=128)
    txns = [sized_txn(f"/k{i}".encode(), size, ops) for i, size in enumerate(sizes)]
    results = await asyncio.gather(*(batcher.submit(t) for t in txns))
    assert all(r.succeeded for r in results)
    sent = 0
    for request in etcd.requests:
        nested = [op.request_txn for op in request.success if op.HasField("request_txn")]
        sent += len(nested) or 1
        if nested:  # a lone transaction goes out as itself, whatever its size
            assert request.ByteSize() <= 1024 * 1024
            assert len(nested) + max(len(t.success) for t in nested) <= 128
    assert sent == len(sizes)
