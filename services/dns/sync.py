"""Keeping the DNS table in step with etcd: two informers and one rebuild loop.

Services and EndpointSlices come from etcd through informers (list + watch +
cache, `kubelab.runtime.informer`). Their handlers only mark the zone dirty
(STYLE habit 2); the rebuild reads both caches whole, computes the zone
(`kubelab.core.dns_records.build_zone`, pure), renders the questions whose
answer changed (`Table.build` reuses the rest) and hands the new table to the
server, which swaps it in one assignment (habit 3, kube-proxy's
`syncProxyRules`). Nothing is served before both informers have listed
(`first_table`): a DNS server that answered NXDOMAIN for Services it had not
read yet would be cached as "no such name" by every client.

Rebuilds coalesce: after a change the loop waits `min_interval` (50 ms), and
at least as long as the last rebuild took, for more changes to come along, so
a burst of a thousand changes costs a few rebuilds, and a busy zone spends at
most half the loop rebuilding. The rebuild runs on the event loop: queries
wait for it (tens of milliseconds for a thousand Services), never see half of
it.
Measured on the project's 2-core machine with 1,000 Services (and 100
headless ones): a rebuild after one Service changed takes 40-50 ms (the zone
~25 ms, comparing every answer with the last table's ~15 ms, rendering the
few that changed), the first full rendering 0.6-1 s (before the server
binds). The SOA serial is the newest etcd revision either informer has seen.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from prometheus_client import Gauge, Histogram

from kubelab.core import kinds
from kubelab.core.dns_records import build_zone
from kubelab.runtime import sources
from kubelab.store import Store
from kubelab.v1 import objects_pb2
from services.dns.wire import Table, summary

log = logging.getLogger("dns.sync")

REBUILD_SECONDS = Histogram(
    "kubelab_dns_rebuild_seconds",
    "Time to rebuild the zone and render its changed answers",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
QUESTIONS = Gauge("kubelab_dns_prerendered_questions", "Questions answered from pre-rendered bytes")


class ZoneSync:
    def __init__(self, store: Store, *, domain: str, ttl: int, min_interval: float = 0.05) -> None:
        self.domain = domain
        self.ttl = ttl
        self.min_interval = min_interval
        self.services = sources.objects(store, kinds.SERVICES)
        self.slices = sources.objects(store, kinds.ENDPOINTSLICES)
        self.table: Table | None = None
        self._dirty = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        for informer in (self.services, self.slices):
            informer.on_change(lambda _key, _old, _new: self._dirty.set())

    def start(self) -> None:
        self.tasks = [
            asyncio.create_task(self.services.run(), name="informer-services"),
            asyncio.create_task(self.slices.run(), name="informer-endpointslices"),
        ]

    async def first_table(self) -> Table:
        """The first table, once both informers have listed everything."""
        await self.services.synced.wait()
        await self.slices.synced.wait()
        self._dirty.clear()
        return self.rebuild()

    def rebuild(self) -> Table:
        began = time.perf_counter()
        services = [s for s in self.services.cache.values() if isinstance(s, objects_pb2.Service)]
        slices = [s for s in self.slices.cache.values() if isinstance(s, objects_pb2.EndpointSlice)]
        serial = max(self.services.revision, self.slices.revision)
        zone = build_zone(services, slices, domain=self.domain, ttl=self.ttl, serial=serial)
        table = Table.build(zone, self.table)
        self.table = table
        took = time.perf_counter() - began
        REBUILD_SECONDS.observe(took)
        sizes = summary(table)
        QUESTIONS.set(sizes["questions"])
        log.info(
            "zone rebuilt",
            extra={
                "services": len(services),
                "slices": len(slices),
                "serial": serial,
                "ms": round(took * 1000, 1),
                **sizes,
            },
        )
        return table

    async def run(self, swap: Callable[[Table], None]) -> None:
        """Rebuild after changes, forever, handing each table to `swap`."""
        took = 0.0
        while True:
            await self._dirty.wait()
            await asyncio.sleep(max(self.min_interval, took))
            self._dirty.clear()
            began = time.perf_counter()
            swap(self.rebuild())
            took = time.perf_counter() - began

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
