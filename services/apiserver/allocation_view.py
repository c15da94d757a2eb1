"""What this apiserver believes is allocated: a hint for picking free values.

The view only steers the *choice* of a free ClusterIP or NodePort; the etcd
transaction that writes the claim is the authority. So the view may be stale
in either direction without harm:

* a value another apiserver took, unknown here: the transaction fails, the
  registry `learn_taken`s it and picks again;
* a value another apiserver released, still "taken" here: it is simply not
  picked until the next relist.

It is kept current without a watch, because a watch costs etcd and this
process work on every create of every apiserver: it learns its own claims and
releases as they commit, the conflicts it meets, and relists every
`relist_period` seconds and whenever a range looks full (`refresh`), so
"range is full" is only ever answered from a fresh list.

Claims picked but not yet committed by this process are held as *pending*,
so two concurrent creates in one apiserver do not pick the same value.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from kubelab.core.allocators import Claim
from kubelab.store import Store

log = logging.getLogger(__name__)


class AllocationView:
    def __init__(self, store: Store, *, relist_period: float = 30.0) -> None:
        self._store = store
        self._relist_period = relist_period
        self._taken: set[Claim] = set()
        self._pending: set[Claim] = set()
        self._task: asyncio.Task[None] | None = None
        self._relisting: asyncio.Lock = asyncio.Lock()

    def is_taken(self, claim: Claim) -> bool:
        return claim in self._taken or claim in self._pending

    def hold(self, claims: Iterable[Claim]) -> None:
        self._pending.update(claims)

    def drop(self, claims: Iterable[Claim]) -> None:
        self._pending.difference_update(claims)

    def learn_taken(self, claims: Iterable[Claim]) -> None:
        self._taken.update(claims)

    def learn_released(self, claims: Iterable[Claim]) -> None:
        self._taken.difference_update(claims)

    async def refresh(self) -> None:
        """Relist now (concurrent callers share one list)."""
        if self._relisting.locked():
            async with self._relisting:
                return
        async with self._relisting:
            claims, _ = await self._store.list_claims()
            self._taken = set(claims)

    async def start(self) -> None:
        """Load the first list (retrying while etcd is away), then relist periodically."""
        while True:
            try:
                await self.refresh()
                break
            except Exception as err:
                log.warning("listing allocations failed: %s; retrying", err)
                await asyncio.sleep(0.5)
        self._task = asyncio.create_task(self._relist_forever(), name="allocation-relist")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _relist_forever(self) -> None:
        while True:
            await asyncio.sleep(self._relist_period)
            try:
                await self.refresh()
            except Exception as err:
                log.warning("relisting allocations failed: %s", err)
