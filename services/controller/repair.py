"""The allocation repair loop (DESIGN §8 invariant 1), run by the leading controller.

Every `period` seconds (and once at start): list claims, then Services
(`services.controller.logic.repair` explains why in that order), plan, and fix with
fenced writes — orphaned claims released, missing ones restored, contested
ones reported. Each finding is logged naming the Service and counted in
`kubelab_allocation_repairs_total`. LoadBalancer address claims are the
cloud-stub's and never touched here (`services.controller.logic.repair` says why).
"""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import Counter

from kubelab.core import kinds
from kubelab.store import Fence, NotLeaderError, StoreProtocol
from services.controller.logic.repair import plan_repair

log = logging.getLogger("controller")

REPAIRS = Counter("kubelab_allocation_repairs_total", "allocation claims repaired", ["finding"])


async def repair_once(store: StoreProtocol, fence: Fence) -> None:
    claims, _ = await store.list_claims()
    services, _ = await store.list(kinds.SERVICES)
    plan = plan_repair(services, claims)
    if plan.empty:
        return
    if plan.orphaned:
        released = await store.release_claims(dict(plan.orphaned), fence=fence)
        REPAIRS.labels("orphaned").inc(released)
        for claim, uid in plan.orphaned.items():
            log.warning("released an orphaned claim", extra={"claim": claim.name, "owner": uid})
    for svc, claim in plan.missing:
        for restored in await store.restore_claims(svc, [claim], fence=fence):
            REPAIRS.labels("missing").inc()
            log.warning(
                "restored a missing claim",
                extra={
                    "svc": f"{svc.metadata.namespace}/{svc.metadata.name}",
                    "claim": restored.name,
                },
            )
    for svc, claim, holder in plan.contested:
        REPAIRS.labels("contested").inc()
        log.error(
            "claim held by another owner",
            extra={
                "svc": f"{svc.metadata.namespace}/{svc.metadata.name}",
                "claim": claim.name,
                "holder": holder,
            },
        )


async def repair_forever(store: StoreProtocol, fence: Fence, period: float) -> None:
    while True:
        try:
            await repair_once(store, fence)
        except NotLeaderError:
            raise
        except Exception as err:  # etcd away, or something unforeseen: try next period
            log.warning("allocation repair skipped: %r", err)
        await asyncio.sleep(period)
