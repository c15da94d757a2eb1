"""Keys that expire: one shared etcd lease per short window, as Kubernetes' apiserver does.

Kubernetes stores Events with a TTL (`--event-ttl`, default 1 h) by attaching each
write to an etcd lease; granting one lease per write would fill etcd with leases,
so its `leaseManager` (storage/etcd3/lease_manager.go) reuses a lease for a small
share of the TTL (5 %) and grants it that much longer. A key written at any
moment of the window lives between `ttl` and `ttl + reuse` seconds after its last
write; etcd deletes it then, with no timer of ours.

`TtlLeases.lease()` is the only entry: it grants when the current lease is too old
(or was found gone, `forget`), under a lock so concurrent writers share one grant.
The clock is injected (monotonic seconds).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

from kubelab.store.etcd import Lease

# Kubernetes' LeaseReuseDurationPercent.
REUSE_SHARE = 0.05


class TtlLeases:
    def __init__(
        self,
        grant: Callable[[int], Awaitable[Lease]],
        ttl: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl <= 0:
            raise ValueError(f"a TTL must be positive, not {ttl}")
        self._grant = grant
        self.ttl = ttl
        self.reuse = ttl * REUSE_SHARE
        self._clock = clock
        self._lock = asyncio.Lock()
        self._current: Lease | None = None
        self._granted_at = 0.0

    def _fresh(self) -> Lease | None:
        if self._current is not None and self._clock() - self._granted_at < self.reuse:
            return self._current
        return None

    async def lease(self) -> Lease:
        """A lease that keeps a key written now for at least `ttl` seconds."""
        fresh = self._fresh()
        if fresh is not None:
            return fresh
        async with self._lock:
            fresh = self._fresh()
            if fresh is not None:
                return fresh
            now = self._clock()
            lease = await self._grant(math.ceil(self.ttl + self.reuse))
            self._current, self._granted_at = lease, now
            return lease

    def forget(self, lease: Lease) -> None:
        """`lease` is gone (etcd said so): the next write gets a new one."""
        if self._current == lease:
            self._current = None
