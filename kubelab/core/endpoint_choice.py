"""Which endpoint a proxy sends a new connection to (DESIGN §2.4), as Kubernetes chooses.

Pure logic, no I/O; the clock is injected.

* Candidates: the ready endpoints; when none is ready, the ones that are still
  serving while terminating (kube-proxy's `CategorizeEndpoints` fallback, so a
  rolling update's last old pod keeps answering until its replacement is ready).
  Under a Local traffic policy the same rule applies to this node's endpoints
  only, and no endpoint elsewhere is ever used.
* Order: round robin over the candidates. `sessionAffinity: ClientIP` sends a
  client back to the endpoint it got last while that endpoint is still a
  candidate and the client came back within `timeoutSeconds` (measured from its
  last new connection, as kube-proxy's `recent` match is).
* Beyond Kubernetes: an endpoint that refused or timed out a connect is suspect
  and skipped while another candidate exists, until a connect to it succeeds or
  its conditions change (a fresh probe result in its slice).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import NamedTuple


class Target(NamedTuple):
    """Where a connection goes: a pod's address and port. A tuple, not a dataclass: it
    is hashed and compared several times per relayed connection (the balancer's sets,
    the proxy's counters), and a tuple does that in C."""

    ip: str
    port: int

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True, slots=True)
class Backend:
    """One endpoint of one Service port, with its slice conditions."""

    target: Target
    node: str
    ready: bool
    serving: bool
    terminating: bool
    pod: str = ""


def candidates(backends: Sequence[Backend], node: str | None = None) -> tuple[Backend, ...]:
    """The endpoints a new connection may use; `node` set means a Local policy."""
    pool = [b for b in backends if b.node == node] if node is not None else backends
    ready = tuple(b for b in pool if b.ready)
    if ready:
        return ready
    return tuple(b for b in pool if b.serving and b.terminating)


Clock = Callable[[], float]
_CLUSTER = "\0cluster"  # the pool key for "no Local filter"; no node is named that


class Balancer:
    """The endpoint choice for one Service port: round robin, affinity, suspects."""

    def __init__(self, *, affinity_timeout: float | None = None, clock: Clock = time.monotonic):
        self.affinity_timeout = affinity_timeout
        self._clock = clock
        self._backends: tuple[Backend, ...] = ()
        self._pools: dict[str, tuple[Target, ...]] = {}
        self._next: dict[str, int] = {}
        self._suspect: set[Target] = set()
        self._affinity: dict[str, tuple[Target, float]] = {}  # client → (target, last used)

    @property
    def backends(self) -> tuple[Backend, ...]:
        return self._backends

    def update(self, backends: Sequence[Backend], *, affinity_timeout: float | None) -> None:
        """Take a new endpoint set. An endpoint whose conditions changed is no longer
        suspect: its probe has spoken since."""
        before = {b.target: b for b in self._backends}
        self._backends = tuple(backends)
        self.affinity_timeout = affinity_timeout
        self._pools.clear()
        self._suspect = {t for t in self._suspect if before.get(t) in self._backends}
        if affinity_timeout is None:
            self._affinity.clear()

    def pool(self, node: str | None = None) -> tuple[Target, ...]:
        key = _CLUSTER if node is None else node
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = tuple(b.target for b in candidates(self._backends, node))
        return pool

    def pick(
        self, client_ip: str, *, node: str | None = None, exclude: Collection[Target] = ()
    ) -> Target | None:
        """The endpoint for a new connection from `client_ip`, None when there is none.
        `exclude`: endpoints this connection already failed to reach."""
        pool = self.pool(node)
        if not pool:
            return None
        if self.affinity_timeout is not None:
            sticky = self._affinity.get(client_ip)
            now = self._clock()
            if (
                sticky is not None
                # Measured against the timeout in force now: a lowered timeoutSeconds
                # applies to clients already pinned.
                and now - sticky[1] < self.affinity_timeout
                and sticky[0] in pool
                and sticky[0] not in exclude
                and sticky[0] not in self._suspect
            ):
                self._affinity[client_ip] = (sticky[0], now)
                return sticky[0]
        chosen = self._round_robin(pool, _CLUSTER if node is None else node, exclude)
        if chosen is not None and self.affinity_timeout is not None:
            self._affinity[client_ip] = (chosen, self._clock())
        return chosen

    def _round_robin(
        self, pool: tuple[Target, ...], key: str, exclude: Collection[Target]
    ) -> Target | None:
        start = self._next.get(key, 0)
        size = len(pool)
        fallback: Target | None = None
        for step in range(size):
            target = pool[(start + step) % size]
            if target in exclude:
                continue
            if target in self._suspect:
                fallback = fallback or target
                continue
            self._next[key] = (start + step + 1) % size
            return target
        # Every candidate left is suspect: try one anyway (a connect is the only way
        # to find out it is back), rather than refuse a connection that might work.
        return fallback

    def connect_failed(self, target: Target) -> None:
        self._suspect.add(target)

    def connected(self, target: Target) -> None:
        self._suspect.discard(target)

    @property
    def suspects(self) -> frozenset[Target]:
        return frozenset(self._suspect)

    def expire_affinity(self) -> int:
        """Drop expired ClientIP entries (a sweep, so the table cannot grow without
        bound); returns how many went."""
        if self.affinity_timeout is None:
            return 0
        timeout, now = self.affinity_timeout, self._clock()
        stale = [ip for ip, (_, used) in self._affinity.items() if now - used >= timeout]
        for ip in stale:
            del self._affinity[ip]
        return len(stale)
