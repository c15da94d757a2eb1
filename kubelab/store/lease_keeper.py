"""Keeping a lease alive where the holder's own work cannot delay it.

A lease is a promise to etcd: "I am alive; renew me within the TTL (2 s)".
Renewed from the actor's event loop, the promise breaks whenever the loop is
busy for a TTL with the actor's own work (a rebuild, a burst of events, a
machine with every core taken): etcd then deletes the node's heartbeat and
pod statuses, or the controller's election key, for an actor that is alive.
That was the commonest false failure on a loaded machine (a surviving node
turning NotReady, a leader stepping down).

So `LeaseKeeper` renews from its own thread, on its own synchronous gRPC
channel to etcd: the event loop never stands between the lease and etcd.
The thread needs the GIL only for the few microseconds of a renewal, and a
CPU-bound event loop hands the GIL over every switch interval (5 ms), so a
busy loop delays a renewal by milliseconds, not seconds. This is the
kubelet's split: its node lease is renewed by a goroutine of its own.

A keeper that kept renewing for a wedged process would hide a real failure,
so the event loop proves it still turns: `run()` ticks every renewal
interval, and the thread stops renewing (the lease then expires, as for a
dead process) when the loop has not ticked for `stall_limit` seconds, far
longer than any honest burst of work.

`await keeper.run()` returns when the lease is lost, with the reason:
`EXPIRED` (etcd answered that the lease is gone: its keys are gone too),
`UNCONFIRMED` (no renewal confirmed for a whole TTL: etcd may have let it
expire and, for an election, moved on) or `STALLED`. Cancelling `run()`
stops the thread; the lease is then the holder's to revoke.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import threading
import time
from collections.abc import Callable

import aetcd.rpc as etcdrpc
import grpc

from kubelab.store.etcd import Lease, channel_target

log = logging.getLogger(__name__)

DEFAULT_STALL_LIMIT = 30.0
RETRY_DELAY = 0.05  # after a failed renewal (a refused connection fails at once)


class LeaseLost(enum.Enum):
    EXPIRED = "expired"
    UNCONFIRMED = "unconfirmed for a whole TTL"
    STALLED = "the event loop stopped turning"


class LeaseKeeper:
    def __init__(
        self,
        endpoint: str,
        lease: Lease,
        *,
        stall_limit: float = DEFAULT_STALL_LIMIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoint = endpoint
        self.lease = lease
        self.interval = max(lease.ttl / 3, 0.2)
        self.stall_limit = stall_limit
        self._clock = clock
        self._ticked = clock()
        self._stop = threading.Event()
        self.renewals = 0

    def _renew_once(self, stub: etcdrpc.LeaseStub, timeout: float) -> int:
        """One keep-alive round trip; the TTL etcd answered (0: the lease is gone)."""
        request = etcdrpc.LeaseKeepAliveRequest(ID=self.lease.id)
        replies = stub.LeaseKeepAlive(iter([request]), timeout=timeout)
        try:
            for reply in replies:
                return int(reply.TTL)
        finally:
            replies.cancel()
        raise grpc.RpcError("the keep-alive stream ended without an answer")

    def _keep(self) -> LeaseLost | None:
        """The thread: renew every interval until the lease is lost (its reason) or
        `_stop` is set (None).

        A renewal may take as long as the lease has left (a starved etcd answers in
        hundreds of milliseconds, and an answer that arrives in time still counts); a
        failed one is tried again at once, not an interval later, which with a 2 s TTL
        left a single slow renewal no second chance. "Confirmed" is when the renewal
        that etcd answered was sent: etcd's own TTL restarts no earlier than that."""
        host, port = channel_target(self.endpoint)
        options = [
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000),
            # Each keeper (a new one after every unconfirmed TTL) gets a connection of
            # its own, not the last one's attempt stuck in a network cut.
            ("grpc.use_local_subchannel_pool", 1),
        ]
        with grpc.insecure_channel(f"{host}:{port}", options=options) as channel:
            stub = etcdrpc.LeaseStub(channel)
            confirmed = self._clock()
            due = confirmed + self.interval
            failure: grpc.RpcError | None = None
            while not self._stop.wait(max(0.0, due - self._clock())):
                sent = self._clock()
                if sent - self._ticked > self.stall_limit:
                    return LeaseLost.STALLED
                left = confirmed + self.lease.ttl - sent
                if left <= 0:
                    log.warning("lease %x: renewal failed: %s", self.lease.id, failure)
                    return LeaseLost.UNCONFIRMED
                try:
                    ttl = self._renew_once(stub, timeout=left)
                except grpc.RpcError as err:
                    failure = err
                    due = self._clock() + RETRY_DELAY
                    continue
                if ttl <= 0:
                    return LeaseLost.EXPIRED
                confirmed, failure = sent, None
                due = sent + self.interval
                self.renewals += 1
        return None

    async def run(self) -> LeaseLost:
        """Keep the lease alive until it is lost; the reason. Ticks for the stall check."""
        self._ticked = self._clock()
        self._stop.clear()
        loop = asyncio.get_running_loop()
        thread_result: asyncio.Future[LeaseLost | None] = loop.create_future()

        def body() -> None:
            try:
                found: LeaseLost | None = self._keep()
            except Exception:  # a bug here must end the lease's holder, not linger
                log.exception("lease %x: keeper failed", self.lease.id)
                found = LeaseLost.UNCONFIRMED
            if not loop.is_closed():
                loop.call_soon_threadsafe(_settle, thread_result, found)

        thread = threading.Thread(target=body, name=f"lease-{self.lease.id:x}", daemon=True)
        thread.start()
        try:
            while not thread_result.done():
                self._ticked = self._clock()
                await asyncio.wait([thread_result], timeout=self.interval)
            found = thread_result.result()
            assert found is not None  # only a stop request ends the thread without a reason
            return found
        finally:
            self._stop.set()


def _settle(future: asyncio.Future[LeaseLost | None], value: LeaseLost | None) -> None:
    if not future.done():
        future.set_result(value)
