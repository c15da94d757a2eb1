"""The controller's wiring: one set of informers, every reconciler on them (DESIGN §2).

Each reconciler lives in its own module and owns its queue and event handlers:
EndpointSlices (`slices.py`), the scheduler (`scheduler.py`), Deployments
(`deployments.py`), node lifecycle (`node_lifecycle.py`), pod garbage
collection (`pod_gc.py`), LoadBalancers (`load_balancers.py`), namespaces
(`namespaces.py`), a `default` ServiceAccount per namespace (`serviceaccounts.py`); the
allocation repair (`repair.py`) is a periodic loop. This module builds them over shared
informers, and runs each reconciler's `sync` under the one worker loop
(`kubelab.runtime.worker.Worker`: back-off, 15 retries then drop, metrics per
reconciler). Nothing runs before every informer is synced (DESIGN §7a); a
fenced write refused because this process no longer leads (`NotLeaderError`)
ends the whole term.

A reconcile with nothing to do writes nothing: bindings only for unbound
pods, pod writes only for a plan's steps, status only when it differs.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable

from prometheus_client import Gauge

from kubelab.core import kinds
from kubelab.core.keys import ObjectKey
from kubelab.core.proxy_rules import NODE_HEALTH_PORT
from kubelab.obs.logs import kobj
from kubelab.runtime import sources
from kubelab.runtime.clock import Clock
from kubelab.runtime.events import EventSink
from kubelab.runtime.queue import WorkQueue
from kubelab.runtime.worker import Worker
from kubelab.store import (
    ConflictError,
    Fence,
    NotLeaderError,
    StoreProtocol,
    StoreUnavailableError,
)
from services.controller.deployments import DeploymentController
from services.controller.load_balancers import Cloud, LoadBalancerController
from services.controller.namespaces import NamespaceController
from services.controller.node_lifecycle import NodeLifecycle
from services.controller.pod_gc import PodGarbageCollector
from services.controller.repair import repair_forever
from services.controller.scheduler import Scheduler
from services.controller.serviceaccounts import ServiceAccountsController
from services.controller.slices import SliceController

log = logging.getLogger("controller")
SYNCED = Gauge("kubelab_controller_synced", "1 once this leader has reconciled everything once")


def worker(
    name: str,
    queue: WorkQueue[ObjectKey],
    sync: Callable[[ObjectKey], Awaitable[None]],
    *,
    kind: str,
) -> Worker[ObjectKey]:
    """A controller's worker: store trouble is expected (retried quietly), losing the
    leadership ends the term."""
    return Worker(
        name,
        queue,
        sync,
        describe=lambda key: kobj("/".join(key), kind=kind),
        expected=(StoreUnavailableError, ConflictError),
        fatal=(NotLeaderError,),
        logger=log,
    )


class Controllers:
    def __init__(
        self,
        store: StoreProtocol,
        fence: Fence,
        *,
        node_grace: float,
        pod_gc_quarantine: float = 5.0,
        max_endpoints: int = 100,
        repair_period: float = 30.0,
        cloud: Cloud | None = None,
        node_health_port: int = NODE_HEALTH_PORT,
        clock: Callable[[], float] = time.time,
        timers: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.fence = fence
        self.repair_period = repair_period
        self.clock = clock
        self.pods = sources.objects(store, kinds.PODS)
        self.statuses = sources.pod_statuses(store)
        self.nodes = sources.objects(store, kinds.NODES)
        self.heartbeats = sources.heartbeats(store)
        self.deployments = sources.objects(store, kinds.DEPLOYMENTS)
        self.services = sources.objects(store, kinds.SERVICES)
        self.slices = sources.objects(store, kinds.ENDPOINTSLICES)
        self.namespaces = sources.objects(store, kinds.NAMESPACES)
        self.service_accounts = sources.objects(store, kinds.SERVICEACCOUNTS)
        # One writer for the events of every reconciler, each recording as its component.
        self.events = EventSink(store)
        self.endpoints = SliceController(
            store,
            fence,
            pods=self.pods,
            statuses=self.statuses,
            services=self.services,
            slices=self.slices,
            max_endpoints=max_endpoints,
            timers=timers,
        )
        self.load_balancers = LoadBalancerController(
            store,
            fence,
            services=self.services,
            nodes=self.nodes,
            heartbeats=self.heartbeats,
            cloud=cloud,
            node_health_port=node_health_port,
            timers=timers,
            events=self.events.recorder("service-controller"),
        )
        self.pod_gc = PodGarbageCollector(
            store,
            fence,
            pods=self.pods,
            nodes=self.nodes,
            quarantine=pod_gc_quarantine,
            clock=clock,
            timers=timers,
        )
        self.scheduler = Scheduler(
            store,
            fence,
            pods=self.pods,
            nodes=self.nodes,
            heartbeats=self.heartbeats,
            timers=timers,
            events=self.events.recorder("default-scheduler"),
        )
        self.rollouts = DeploymentController(
            store,
            fence,
            pods=self.pods,
            statuses=self.statuses,
            heartbeats=self.heartbeats,
            deployments=self.deployments,
            clock=clock,
            rng=rng,
            timers=timers,
            events=self.events.recorder("deployment-controller"),
        )
        self.lifecycle = NodeLifecycle(
            store,
            fence,
            pods=self.pods,
            nodes=self.nodes,
            heartbeats=self.heartbeats,
            grace=node_grace,
            clock=clock,
            timers=timers,
            events=self.events.recorder("node-controller"),
        )
        self.namespace_deleter = NamespaceController(
            store, fence, namespaces=self.namespaces, pods=self.pods, clock=clock, timers=timers
        )
        self.accounts = ServiceAccountsController(
            store,
            fence,
            namespaces=self.namespaces,
            accounts=self.service_accounts,
            timers=timers,
        )
        self.workers = [
            worker("endpointslices", self.endpoints.queue, self.endpoints.reconcile, kind="svc"),
            worker("scheduler", self.scheduler.queue, self.scheduler.sync, kind="obj"),
            worker("deployments", self.rollouts.queue, self.rollouts.sync, kind="deploy"),
            worker("node-lifecycle", self.lifecycle.queue, self.lifecycle.sync, kind="obj"),
            worker("pod-gc", self.pod_gc.queue, self.pod_gc.collect, kind="obj"),
            worker(
                "namespaces", self.namespace_deleter.queue, self.namespace_deleter.sync, kind="obj"
            ),
            worker("serviceaccounts", self.accounts.queue, self.accounts.sync, kind="ns"),
        ]

    def queues(self) -> list[WorkQueue[ObjectKey]]:
        return [w.queue for w in self.workers] + [self.load_balancers.queue]

    async def run(self) -> None:
        informers = (
            self.pods,
            self.statuses,
            self.nodes,
            self.heartbeats,
            self.deployments,
            self.services,
            self.slices,
            self.namespaces,
            self.service_accounts,
        )
        tasks = [asyncio.create_task(i.run(), name=f"informer {i.name}") for i in informers]
        try:
            for informer in informers:
                await informer.synced.wait()
            started = self.clock()
            self.lifecycle.start()
            self.scheduler.start()
            self.pod_gc.start()
            self.rollouts.start()
            self.namespace_deleter.start()
            self.accounts.start()
            for key in self.services.cache:
                self.endpoints.queue.add(key)
            tasks += [asyncio.create_task(w.run(), name=w.name) for w in self.workers]
            tasks.append(asyncio.create_task(self.load_balancers.run(), name="load balancers"))
            tasks.append(asyncio.create_task(self._report_synced(started=started)))
            tasks.append(
                asyncio.create_task(repair_forever(self.store, self.fence, self.repair_period))
            )
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for queue in self.queues():
                queue.close()
            await self.events.close()

    async def _report_synced(self, *, started: float) -> None:
        """Log (and flag in metrics) the first moment every queue has drained: the
        cluster has been reconciled once by this leader."""
        queues = self.queues()
        while not all(q.idle for q in queues):
            for queue in queues:
                await queue.wait_idle()
        SYNCED.set(1)
        log.info("synced", extra={"seconds": round(self.clock() - started, 3)})
