"""What this apiserver believes is allocated: a cache of the claim keys in etcd.

The cache only steers the *choice* of a free ClusterIP or NodePort; the etcd
transaction is the authority. A stale cache costs a retry, never a duplicate.
Claims picked but not yet committed by this process are held as *pending*, so
two concurrent creates in one apiserver do not pick the same value.

It lists the claims, then watches from the list's revision; when the watch's
revision has been compacted it relists (DESIGN §7a).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from kubelab.core.allocators import Claim
from kubelab.store import CompactedError, Store

log = logging.getLogger(__name__)


class AllocationView:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._taken: set[Claim] = set()
        self._pending: set[Claim] = set()
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def is_taken(self, claim: Claim) -> bool:
        return claim in self._taken or claim in self._pending

    def hold(self, claims: Iterable[Claim]) -> None:
        self._pending.update(claims)

    def drop(self, claims: Iterable[Claim]) -> None:
        self._pending.difference_update(claims)

    def learn_taken(self, claims: Iterable[Claim]) -> None:
        self._taken.update(claims)

    async def start(self) -> None:
        """Start syncing; returns once the first list is loaded."""
        self._task = asyncio.create_task(self._run(), name="allocation-view")
        await self._synced.wait()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                claims, revision = await self._store.list_claims()
            except Exception as err:
                log.warning("listing allocations failed: %s; retrying", err)
                await asyncio.sleep(0.5)
                continue
            self._taken = set(claims)
            self._synced.set()
            try:
                async for event in self._store.watch_claims(from_revision=revision):
                    if event.owner_uid is None:
                        self._taken.discard(event.claim)
                    else:
                        self._taken.add(event.claim)
            except CompactedError:
                log.info("allocation watch compacted; relisting")
