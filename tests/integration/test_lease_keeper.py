"""`LeaseKeeper` on a real etcd: a busy event loop keeps its lease, a wedged one loses it.

The busy loop is simulated the way it happens: the event loop thread runs
Python code without yielding (here `time.sleep` holding the loop, and a
CPU-bound loop holding the GIL) for longer than the lease's TTL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator

import pytest

from kubelab.store import LeaseKeeper, LeaseLost, Store
from kubelab.testing.processes import EtcdServer
from kubelab.testing.wait import until_passes, until_read

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(etcd: EtcdServer) -> AsyncIterator[Store]:
    s = Store(etcd.endpoint, timeout=2.0)
    yield s
    await s.close()


def spin(seconds: float) -> None:
    """Hold the event loop (and the GIL, between switch intervals) with Python work."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sum(range(1000))


async def test_a_lease_survives_an_event_loop_busy_for_twice_its_ttl(store: Store) -> None:
    lease = await store.grant_lease(2)
    await store.put_heartbeat("node-1", lease)
    keeper = LeaseKeeper(store.endpoint, lease)
    running = asyncio.create_task(keeper.run())
    await asyncio.sleep(0)  # the keeper's thread starts
    # The loop does nothing else: a renewal from it would be 2.5 s late.
    time.sleep(2.5)  # noqa: ASYNC251
    spin(2.5)
    assert (await store.live_nodes())[0] == {"node-1"}
    assert keeper.renewals >= 4
    assert not running.done()
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    await store.revoke_lease(lease)


async def test_a_revoked_lease_is_reported_expired(store: Store) -> None:
    lease = await store.grant_lease(2)
    running = asyncio.create_task(LeaseKeeper(store.endpoint, lease).run())
    await store.revoke_lease(lease)
    assert await asyncio.wait_for(running, 5) is LeaseLost.EXPIRED


async def test_a_wedged_event_loop_lets_its_lease_expire(store: Store) -> None:
    """The keeper renews only while the loop turns: a process stuck for longer than the
    stall limit must look dead, as it would without the keeper."""
    lease = await store.grant_lease(2)
    await store.put_heartbeat("node-1", lease)
    running = asyncio.create_task(LeaseKeeper(store.endpoint, lease, stall_limit=1.0).run())
    await asyncio.sleep(0)
    time.sleep(2.0)  # noqa: ASYNC251 (a wedged loop, past the 1 s stall limit)
    assert await asyncio.wait_for(running, 5) is LeaseLost.STALLED

    async def expired() -> None:
        assert (await store.live_nodes())[0] == set()

    await until_passes("the stalled holder's heartbeat to expire", expired, timeout=lease.ttl + 3)


async def test_an_unreachable_etcd_is_reported_after_a_ttl(store: Store, etcd: EtcdServer) -> None:
    lease = await store.grant_lease(2)
    running = asyncio.create_task(LeaseKeeper(store.endpoint, lease).run())
    assert etcd.process is not None
    os.kill(etcd.process.pid, signal.SIGSTOP)
    try:
        began = time.monotonic()
        assert await asyncio.wait_for(running, 6) is LeaseLost.UNCONFIRMED
        assert 1.5 <= time.monotonic() - began <= 4.5
    finally:
        os.kill(etcd.process.pid, signal.SIGCONT)


async def test_a_renewal_slower_than_an_interval_still_counts(
    store: Store, etcd: EtcdServer
) -> None:
    """A starved etcd answers late; an answer within the TTL keeps the lease. (Each
    renewal once had only a third of the TTL, and a failure waited another third: one
    slow renewal, here etcd frozen for 3 s of a 4 s lease, lost a live holder's lease.)"""
    lease = await store.grant_lease(4)
    await store.put_heartbeat("node-1", lease)
    keeper = LeaseKeeper(store.endpoint, lease)
    running = asyncio.create_task(keeper.run())
    assert etcd.process is not None
    # Freeze etcd right after a renewal: the next one is due in 1.33 s, and waits.
    await until_read("a first renewal", lambda: keeper.renewals >= 1, timeout=5, interval=0.002)
    renewed = keeper.renewals
    await until_read("a renewal", lambda: keeper.renewals > renewed, timeout=5, interval=0.002)
    os.kill(etcd.process.pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(3.0)
    finally:
        os.kill(etcd.process.pid, signal.SIGCONT)
    frozen_through = keeper.renewals
    await until_read("renewals again", lambda: keeper.renewals > frozen_through, timeout=5)
    assert not running.done(), running.result()
    assert (await store.live_nodes())[0] == {"node-1"}
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    await store.revoke_lease(lease)
