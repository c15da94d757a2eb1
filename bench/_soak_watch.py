"""What bench/soak.py watches while it runs: node heartbeats and the controller
election straight from etcd, and one Service's EndpointSlices as a client sees them.

Watches, not polls: a lease lost and a node back within one poll interval, or a
controller that steps down and wins again, is a transition all the same, and a
watch sees every one (etcd delivers every revision). Every observation is stamped
with `time.monotonic()` when this process received it; the tallies over a phase's
window are `kubelab.testing.soak`'s.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from kubelab.client import Client
from kubelab.store import Store
from kubelab.testing.soak import Heartbeat, Holder, Term, false_not_ready, leader_changes
from kubelab.v1 import objects_pb2

ELECTION = "controller"  # services/controller's election


def _ready_nodes(slices: dict[str, objects_pb2.EndpointSlice]) -> frozenset[str]:
    return frozenset(
        ep.node_name
        for s in slices.values()
        for ep in s.endpoints
        if ep.conditions.ready and ep.node_name
    )


@dataclass
class Monitor:
    """Everything seen since `start`; `window` tallies a stretch of it."""

    store: Store
    api: Client
    service: str  # whose slices say which nodes hold ready endpoints
    live0: frozenset[str] = frozenset()
    term0: Term | None = None
    beats: list[Heartbeat] = field(default_factory=list)
    holders: list[Holder] = field(default_factory=list)
    # (received, nodes holding a ready endpoint of `service`) after every slice event
    endpoints: list[tuple[float, frozenset[str]]] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self, timeout: float = 30.0) -> None:
        live, revision = await self.store.live_nodes()
        self.live0 = frozenset(live)
        self.term0 = await self.store.leader(ELECTION)
        synced = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._heartbeats(revision), name="soak heartbeats"),
            asyncio.create_task(self._leader(revision), name="soak leader"),
            asyncio.create_task(self._slices(synced), name="soak slices"),
        ]
        await asyncio.wait_for(synced.wait(), timeout)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def check(self) -> None:
        """Raise what ended a watch early (a watch that stops sees nothing more)."""
        for task in self._tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise RuntimeError(f"{task.get_name()} ended") from task.exception()

    async def _heartbeats(self, revision: int) -> None:
        async for event in self.store.watch_heartbeats(from_revision=revision):
            self.beats.append(Heartbeat(time.monotonic(), event.node, event.alive))

    async def _leader(self, revision: int) -> None:
        async for holder, _ in self.store.watch_leader(ELECTION, from_revision=revision):
            self.holders.append(Holder(time.monotonic(), holder))

    async def _slices(self, synced: asyncio.Event) -> None:
        selector = f"kubernetes.io/service-name={self.service}"
        slices: dict[str, objects_pb2.EndpointSlice] = {}
        async for event in self.api.watch("endpointslices", "default", selector):
            received = time.monotonic()
            if event.type == "BOOKMARK":
                synced.set()
            elif isinstance(event.object, objects_pb2.EndpointSlice):
                name = event.object.metadata.name
                if event.type == "DELETED":
                    slices.pop(name, None)
                else:
                    slices[name] = event.object
            self.endpoints.append((received, _ready_nodes(slices)))

    # ------------------------------------------------------------------ tallies

    def live_at(self, moment: float) -> set[str]:
        live = set(self.live0)
        for beat in self.beats:
            if beat.at >= moment:
                break
            (live.add if beat.alive else live.discard)(beat.node)
        return live

    def term_at(self, moment: float) -> Term | None:
        term = self.term0
        for holder in self.holders:
            if holder.at >= moment:
                break
            term = holder.term
        return term

    def window(self, start: float, end: float) -> tuple[dict[str, int], int, list[str]]:
        """False NotReady per node, leader changes, and a line per transition, in
        [start, end) (no kill falls in a phase's window: the kill comes after it)."""
        beats = [b for b in self.beats if start <= b.at < end]
        holders = [h for h in self.holders if start <= h.at < end]
        lines = [
            f"+{b.at - start:7.2f}s {b.node} {'Ready' if b.alive else 'NotReady (lease gone)'}"
            for b in beats
        ] + [f"+{h.at - start:7.2f}s {ELECTION} leader {h.term}" for h in holders]
        return (
            false_not_ready(self.live_at(start), beats),
            leader_changes(self.term_at(start), holders),
            sorted(lines),
        )

    async def detected(self, node: str, killed: float, timeout: float) -> tuple[float, float]:
        """Seconds from `killed` until `node`'s heartbeat key is gone, and until no slice
        of the Service holds a ready endpoint on it; TimeoutError past `timeout`."""
        deadline = killed + timeout
        while True:
            self.check()
            gone = next(
                (b.at for b in self.beats if b.at >= killed and b.node == node and not b.alive),
                None,
            )
            before = [nodes for t, nodes in self.endpoints if t < killed]
            out = killed if before and node not in before[-1] else None
            out = out or next((t for t, n in self.endpoints if t >= killed and node not in n), None)
            if gone is not None and out is not None:
                return gone - killed, out - killed
            if time.monotonic() > deadline:
                raise TimeoutError(f"{node}: not seen gone within {timeout:g} s of its kill")
            await asyncio.sleep(0.01)
