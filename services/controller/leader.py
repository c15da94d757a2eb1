"""Leadership: run the controllers only while this process leads (DESIGN §1).

Each controller process keeps one etcd lease alive and campaigns with it; the
winner runs `lead(fence)` until its leadership ends, standbys wait inside
`campaign`. Leadership ends when the lease cannot be renewed: the renewal
answers "expired", or etcd has not confirmed it for a whole TTL (after which
etcd may have let it expire and elected someone else). The renewals run on a
thread of their own (`LeaseKeeper`), so the controllers' own work, however
heavy, never costs the leadership. Then the controllers
stop and the process campaigns again with a new lease.

Stopping in time is a courtesy; safety does not depend on it: every write the
controllers make carries the `Fence`, so a deposed leader's late writes are
refused by etcd (`NotLeaderError`). A killed leader's lease expires after the
TTL and a standby takes over: failover ≈ TTL (2 s by default; up to twice the TTL
across an etcd leader change, DESIGN §7a).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from kubelab.store import Fence, Lease, LeaseKeeper, Store

log = logging.getLogger("controller")

ELECTION = "controller"


async def _hold(store: Store, lease: Lease) -> None:
    """Keep `lease` alive (from its own thread: a busy controller never loses it by
    being busy); return when it is lost."""
    lost = await LeaseKeeper(store.endpoint, lease).run()
    log.warning("lease %s; stepping down", lost.value)


async def lead_forever(
    store: Store,
    identity: str,
    ttl: int,
    lead: Callable[[Fence], Coroutine[Any, Any, None]],
    *,
    on_change: Callable[[bool], None] = lambda leading: None,
) -> None:
    while True:
        try:
            lease = await store.grant_lease(ttl)
        except Exception as err:
            log.warning("cannot reach etcd to campaign: %s", err)
            await asyncio.sleep(0.5)
            continue
        holder = asyncio.create_task(_hold(store, lease), name="lease")
        campaign = asyncio.create_task(store.campaign(ELECTION, identity, lease), name="campaign")
        await asyncio.wait({holder, campaign}, return_when=asyncio.FIRST_COMPLETED)
        if holder.done():
            campaign.cancel()
            await asyncio.gather(campaign, return_exceptions=True)
            continue
        try:
            fence = campaign.result()
        except Exception as err:  # etcd away, a compacted watch, an expired lease
            log.warning("campaign failed: %r; campaigning again", err)
            holder.cancel()
            await asyncio.gather(holder, return_exceptions=True)
            await asyncio.sleep(0.2)
            continue
        log.info("leading", extra={"identity": identity, "fence": fence.revision})
        on_change(True)
        leading = asyncio.create_task(lead(fence), name="lead")
        try:
            await asyncio.wait({holder, leading}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            leading.cancel()
            holder.cancel()
            await asyncio.gather(leading, holder, return_exceptions=True)
            on_change(False)
            # Step down at once rather than leave the standby waiting a whole TTL:
            # revoking the lease deletes the election key. Shielded, so it also happens
            # when this task is being cancelled (SIGTERM).
            with contextlib.suppress(Exception):
                await asyncio.shield(store.revoke_lease(lease))
        if leading.done() and not leading.cancelled() and leading.exception() is not None:
            log.error("controllers failed: %r; campaigning again", leading.exception())
        else:
            log.warning("leadership lost; campaigning again", extra={"identity": identity})
