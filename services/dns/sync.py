"""Keeping the DNS table in step with etcd: two informers and one rebuild loop.

Services and EndpointSlices come from etcd through informers (list + watch +
cache, `kubelab.runtime.informer`). Their handlers note which Service a change
concerns (a slice's by its `kubernetes.io/service-name` label, old and new)
and mark the zone dirty (STYLE habit 2); the rebuild recomputes only those
Services' records, part by part (`services.dns.logic.dns_records.service_parts`,
pure: a headless Service's slices each on its own, and a slice that did not
change keeps its records, `SliceMemo`), hands the parts that changed to the
zone kept by `ZoneBuilder` (which also says which questions they touch),
re-renders the questions whose answer changed (`Table.update` copies the
rest) and hands the new table to the server, which swaps it in one
assignment (habit 3, kube-proxy's `syncProxyRules`). Nothing is served before
both informers have listed (`first_table`): a DNS server that answered
NXDOMAIN for Services it had not read yet would be cached as "no such name"
by every client. The first table renders nothing ahead: each answer is
rendered by its first query (`Table.pending`), so a cold start over 10,000
endpoints serves once the zone is built.

A rebuild of more than a few hundred endpoints (a big headless Service) runs
off the query path, on a worker thread (a small one runs on the loop, in about a
millisecond, sooner than a thread could take it): the event loop takes
a snapshot of the changed Services and their slices (references to immutable
cached objects, a few per change), the thread computes records, zone and
table from the snapshot and from state only it touches (`ZoneBuilder`, the
last table), and the loop swaps the result in. Queries keep being answered
from the previous table meanwhile; the process's GIL switch interval is set
short (`SWITCH_INTERVAL`) so a query waits at most that long for a rebuild
holding the GIL. A change after an idle spell is rebuilt at once; changes that
arrive while a rebuild runs make the next rebuild together, so a burst of a
thousand changes costs a few rebuilds. The SOA serial is the newest etcd
revision either informer has seen.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram

from kubelab.core import kinds
from kubelab.core.keys import ObjectKey
from kubelab.core.kinds import SERVICE_NAME_LABEL
from kubelab.runtime import sources
from kubelab.store import Store
from kubelab.v1 import objects_pb2
from services.dns.logic.dns_builder import ZoneBuilder
from services.dns.logic.dns_records import (
    Record,
    headless_slice_records,
    service_parts,
    split_servable,
)
from services.dns.wire import Table

log = logging.getLogger("dns.sync")

# The changed Services (None: gone) with their slices, as the rebuild thread gets them.
Snapshot = dict[ObjectKey, tuple[objects_pb2.Service | None, list[objects_pb2.EndpointSlice]]]
# How long a query may wait for the GIL while a rebuild thread holds it (Python's
# default is 5 ms, the whole budget of an answer).
SWITCH_INTERVAL = 0.0005
# Rebuilds touching at most this many endpoints run on the event loop itself.
INLINE_ENDPOINTS = 500


def _endpoints(snapshot: Snapshot) -> int:
    return sum(len(eps.endpoints) for _, slices in snapshot.values() for eps in slices)


REBUILD_SECONDS = Histogram(
    "kubelab_dns_rebuild_seconds",
    "Time to rebuild the zone and render its changed answers",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
QUESTIONS = Gauge("kubelab_dns_prerendered_questions", "Questions answered from pre-rendered bytes")
SKIPPED = Counter(
    "kubelab_dns_skipped_records_total",
    "Records left out of the zone (their names do not fit DNS, or their Service failed to render)",
    ["reason"],
)
UNSERVED = Gauge("kubelab_dns_services_with_skipped_records", "Services with records left out")


Memo = tuple[objects_pb2.EndpointSlice, str, bool, int, list[Record]]
# A Service's part (`service_parts`) as `ZoneBuilder` keys it: namespace, Service, slice.
Part = tuple[str, str, str]
# A part's records, and them split into (servable, unfit).
Split = tuple[list[Record], list[Record], list[Record]]


class SliceMemo:
    """One rebuild's `per_slice` for one Service: a slice whose object (or content),
    name, and the Service's publishNotReadyAddresses are as last time gets last time's
    records; `fresh` holds what this rebuild used, so slices that left are dropped."""

    def __init__(self, last: dict[str, Memo]) -> None:
        self.last = last
        self.fresh: dict[str, Memo] = {}

    def records(
        self, base: str, eps: objects_pb2.EndpointSlice, publish: bool, ttl: int
    ) -> list[Record]:
        name = eps.metadata.name
        kept = self.last.get(name)
        if (
            kept is not None
            and kept[1:4] == (base, publish, ttl)
            and (kept[0] is eps or kept[0] == eps)
        ):
            records = kept[4]
        else:
            records = headless_slice_records(base, eps, publish, ttl)
        self.fresh[name] = (eps, base, publish, ttl, records)
        return records


class ZoneSync:
    def __init__(self, store: Store, *, domain: str, ttl: int) -> None:
        self.domain = domain
        self.ttl = ttl
        self.services = sources.objects(store, kinds.SERVICES)
        self.slices = sources.objects(store, kinds.ENDPOINTSLICES)
        self.table: Table | None = None
        self.builder = ZoneBuilder(domain=domain, ttl=ttl)
        # Slices by the Service their label names, kept by the handler.
        self._groups: dict[ObjectKey, dict[ObjectKey, objects_pb2.EndpointSlice]] = {}
        self._pending: set[ObjectKey] = set()
        self._unserved: set[ObjectKey] = set()
        # Per Service, each slice's records from the last rebuild (rebuild thread only).
        self._slice_memos: dict[ObjectKey, dict[str, Memo]] = {}
        # Per Service, each part's records as last given to the builder (rebuild thread).
        self._parts: dict[ObjectKey, dict[str, Split]] = {}
        self._dirty = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.services.on_change(self._service_changed)
        self.slices.on_change(self._slice_changed)

    def _service_changed(
        self, key: ObjectKey, _old: objects_pb2.Service | None, _new: objects_pb2.Service | None
    ) -> None:
        self._pending.add(key)
        self._dirty.set()

    def _slice_changed(
        self,
        key: ObjectKey,
        old: objects_pb2.EndpointSlice | None,
        new: objects_pb2.EndpointSlice | None,
    ) -> None:
        for value, keep in ((old, False), (new, True)):
            if value is None:
                continue
            owner = value.metadata.labels.get(SERVICE_NAME_LABEL)
            if not owner:
                continue
            service = ObjectKey((value.metadata.namespace, owner))
            group = self._groups.setdefault(service, {})
            if keep:
                group[key] = value
            else:
                group.pop(key, None)
                if not group:
                    del self._groups[service]
            self._pending.add(service)
        self._dirty.set()

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
        # The first zone allocates a few objects per record at once (hundreds of
        # thousands over 10,000 endpoints): without the collector running over them
        # again and again meanwhile, and, once built, frozen out of its reach (they
        # live as long as their Services; refcounting still frees them), so that no
        # later collection walks them all holding the GIL while queries wait.
        gc.disable()
        try:
            return self.rebuild()
        finally:
            gc.enable()
            gc.freeze()

    def _records(
        self,
        key: ObjectKey,
        svc: objects_pb2.Service | None,
        slices: list[objects_pb2.EndpointSlice],
    ) -> dict[Part, list[Record]]:
        """The parts of one Service whose servable records changed (`service_parts`:
        a headless Service's slices, each on its own), with their records; an empty
        list for a part that is gone. What cannot be served (a name over DNS's limits,
        or any error computing the records) is that Service's problem: logged once
        per change, counted, left out; every other name keeps being served."""
        self._unserved.discard(key)
        old = self._parts.pop(key, {})
        new: dict[str, Split] = {}
        if svc is None:
            self._slice_memos.pop(key, None)
        else:
            try:
                memo = SliceMemo(self._slice_memos.get(key, {}))
                parts = service_parts(
                    svc, slices, domain=self.domain, ttl=self.ttl, per_slice=memo.records
                )
                for part, records in parts.items():
                    kept = old.get(part)
                    if kept is not None and kept[0] is records:
                        new[part] = kept  # a slice `SliceMemo` kept: nothing to redo
                    else:
                        new[part] = (records, *split_servable(records))
                self._slice_memos[key] = memo.fresh
            except Exception as err:
                log.exception("svc=%s/%s: records not served: %r", *key, err)
                SKIPPED.labels("error").inc()
                new = {}
                self._unserved.add(key)
        unfit = [record for split in new.values() for record in split[2]]
        if unfit:
            SKIPPED.labels("name_too_long").inc(len(unfit))
            self._unserved.add(key)
            log.warning(
                "svc=%s/%s: %d record(s) not served: name over DNS limits "
                "(63 octets a label, 255 a name), e.g. %s",
                *key,
                len(unfit),
                unfit[0].name,
            )
        UNSERVED.set(len(self._unserved))
        if new:
            self._parts[key] = new
        changed: dict[Part, list[Record]] = {(*key, part): [] for part in old.keys() - new}
        for part, split in new.items():
            if old.get(part) is not split:
                changed[(*key, part)] = split[1]
        return changed

    def _snapshot(self) -> tuple[Snapshot, int]:
        """On the event loop: the changed Services with their slices, and the serial.
        The cached objects are replaced, never changed, by the informers, so holding
        references is a consistent copy."""
        keys, self._pending = self._pending, set()
        snapshot: Snapshot = {}
        for key in keys:
            svc = self.services.cache.get(key)
            slices = list(self._groups.get(key, {}).values())
            snapshot[key] = (svc, slices)
        return snapshot, max(self.services.revision, self.slices.revision)

    def _rebuild(self, snapshot: Snapshot, serial: int) -> Table:
        """Off the loop: the next table from the changed Services. Touches only the
        builder and the last table, which no other code changes."""
        began = time.perf_counter()
        cpu = time.thread_time()  # this rebuild's own CPU, whatever else the machine runs
        changed: dict[Part, list[Record]] = {}
        for key, inputs in snapshot.items():
            changed.update(self._records(key, *inputs))
        zone, answers, removed = self.builder.update(changed, serial)
        if self.table is None:
            # Lazily: the first query of each question renders it (a cold start serves
            # ten thousand endpoints' names without rendering them all first).
            table = Table.build(zone, answers=self.builder.answers, lazy=True)
        else:
            table = Table.update(zone, self.table, answers, removed)
        self.table = table
        took = time.perf_counter() - began
        REBUILD_SECONDS.observe(took)
        QUESTIONS.set(len(self.builder.answers))
        log.info(
            "zone updated",
            extra={
                "services": len(snapshot),
                "questions": len(answers),
                "serial": serial,
                "ms": round(took * 1000, 1),
                "cpu_ms": round((time.thread_time() - cpu) * 1000, 2),
            },
        )
        return table

    def rebuild(self) -> Table:
        """Redo the Services changed since the last rebuild, here and now."""
        return self._rebuild(*self._snapshot())

    async def run(self, swap: Callable[[Table], None]) -> None:
        """Rebuild after changes, forever, handing each table to `swap`: at once after
        an idle spell, on a worker thread; changes that arrive during a rebuild make
        the next one."""
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            snapshot, serial = self._snapshot()
            if _endpoints(snapshot) <= INLINE_ENDPOINTS:
                # Small: done here in about a millisecond, sooner than a thread could
                # take it (handing it over, then sharing the GIL with the queries).
                swap(self._rebuild(snapshot, serial))
            else:
                swap(await asyncio.to_thread(self._rebuild, snapshot, serial))

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
