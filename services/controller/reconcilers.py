"""The controller's reconcilers: scheduler, Deployments, node lifecycle (DESIGN §2.7).

EndpointSlices (`slices.py`), LoadBalancers (`load_balancers.py`), pod garbage
collection (`pod_gc.py`) and the allocation repair (`repair.py`) live in their
own modules; they are wired here, on the same informers.

Plumbing only: informers feed caches, handlers enqueue keys, one worker per
reconciler reads the caches, asks a pure planner in `kubelab.core` what to do
(`scheduling.schedule`, `deployments.plan_deployment`,
`node_lifecycle.pods_to_evict`), and applies the answer with fenced writes.
Nothing runs before every informer is synced (DESIGN §7a).

Deployments use *expectations*, as Kubernetes' ReplicaSet controller does:
after creating or deleting pods, the Deployment is not planned again until
the pod informer has seen those changes (or a timeout passes). Without them a
cache that lags its own writes would create the same replicas twice.

A reconcile with nothing to do writes nothing: bindings only for unbound
pods, pod writes only for a plan's steps, status only when it differs.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import Gauge

from kubelab.core import event_notes as notes
from kubelab.core import kinds
from kubelab.core.deployments import plan_deployment
from kubelab.core.kinds import ApiObject
from kubelab.core.live_state import pod_with_status
from kubelab.core.node_lifecycle import next_eviction_due, pods_to_evict
from kubelab.core.pods import controller_owner, is_terminating, to_timestamp
from kubelab.core.proxy_rules import NODE_HEALTH_PORT
from kubelab.core.scheduling import NodeInfo, schedule, why_unschedulable
from kubelab.runtime import sources
from kubelab.runtime.events import EventSink
from kubelab.runtime.queue import WorkQueue
from kubelab.store import (
    AlreadyExistsError,
    ConflictError,
    Fence,
    NotLeaderError,
    PodKey,
    Store,
    StoreUnavailableError,
)
from kubelab.v1 import objects_pb2
from services.controller.claims import adopt, deployments_selecting, release
from services.controller.load_balancers import Cloud, LoadBalancerController
from services.controller.namespaces import NamespaceController
from services.controller.pod_gc import PodGarbageCollector, delete_pod
from services.controller.repair import repair_forever
from services.controller.slices import SliceController

log = logging.getLogger("controller")
SYNCED = Gauge("kubelab_controller_synced", "1 once this leader has reconciled everything once")

_EXPECTATION_TIMEOUT = 30.0
_SCHEDULE = ("", "schedule")
_EVICT = ("", "evict")


class Controllers:
    def __init__(
        self,
        store: Store,
        fence: Fence,
        *,
        node_grace: float,
        pod_gc_quarantine: float = 5.0,
        max_endpoints: int = 100,
        repair_period: float = 30.0,
        cloud: Cloud | None = None,
        node_health_port: int = NODE_HEALTH_PORT,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.fence = fence
        self.node_grace = node_grace
        self.repair_period = repair_period
        self.clock = clock
        self.rng = rng or random.Random()
        self.pods = sources.objects(store, kinds.PODS)
        self.statuses = sources.pod_statuses(store)
        self.nodes = sources.objects(store, kinds.NODES)
        self.heartbeats = sources.heartbeats(store)
        self.deployments = sources.objects(store, kinds.DEPLOYMENTS)
        self.services = sources.objects(store, kinds.SERVICES)
        self.slices = sources.objects(store, kinds.ENDPOINTSLICES)
        self.events = EventSink(store)
        self.scheduler_events = self.events.recorder("default-scheduler")
        self.deployment_events = self.events.recorder("deployment-controller")
        self.node_events = self.events.recorder("node-controller")
        self.namespace_deleter = NamespaceController(store, fence, pods=self.pods)
        self.endpoints = SliceController(
            store,
            fence,
            pods=self.pods,
            statuses=self.statuses,
            services=self.services,
            slices=self.slices,
            max_endpoints=max_endpoints,
        )
        self.load_balancers = LoadBalancerController(
            store,
            fence,
            services=self.services,
            nodes=self.nodes,
            heartbeats=self.heartbeats,
            cloud=cloud,
            node_health_port=node_health_port,
            events=self.events.recorder("service-controller"),
        )
        self.pod_gc = PodGarbageCollector(
            store,
            fence,
            pods=self.pods,
            nodes=self.nodes,
            quarantine=pod_gc_quarantine,
            clock=clock,
        )
        self.scheduling: WorkQueue[PodKey] = WorkQueue()
        self.rollouts: WorkQueue[PodKey] = WorkQueue()
        self.lifecycle: WorkQueue[PodKey] = WorkQueue()
        self.gone_since: dict[str, float] = {}
        # Deployment key → (pod names still to appear, pod names still to go, deadline).
        self.expectations: dict[PodKey, tuple[set[str], set[str], float]] = {}
        # Deployments whose reconcile is writing pods right now: their expectations are
        # still being filled, so an empty one is not met yet.
        self.writing: set[PodKey] = set()

    # ------------------------------------------------------------------ wiring

    async def run(self) -> None:
        informers = (
            self.pods,
            self.statuses,
            self.nodes,
            self.heartbeats,
            self.deployments,
            self.services,
            self.slices,
        )
        self.pods.on_change(self._pod_changed)
        self.statuses.on_change(
            lambda key, old, new: self._enqueue_owner(key[0], self.pods.get(key))
        )
        self.nodes.on_change(lambda key, old, new: self._nodes_changed())
        self.heartbeats.on_change(self._heartbeat_changed)
        self.deployments.on_change(lambda key, old, new: self.rollouts.add(key))
        tasks = [asyncio.create_task(i.run(), name=f"informer {i.name}") for i in informers]
        try:
            for informer in informers:
                await informer.synced.wait()
            now = self.clock()
            for node_key in self.nodes.cache:
                if node_key[1] not in self.heartbeats.cache:
                    self.gone_since.setdefault(node_key[1], now)
            self.scheduling.add(_SCHEDULE)
            self.lifecycle.add(_EVICT)
            self.pod_gc.start()
            for key in self.deployments.cache:
                self.rollouts.add(key)
            for key in self.services.cache:
                self.endpoints.queue.add(key)
            workers = [
                self._worker("endpointslices", self.endpoints.queue, self.endpoints.reconcile),
                self._worker("scheduler", self.scheduling, lambda key: self._schedule()),
                self._worker("deployments", self.rollouts, self._reconcile_deployment),
                self._worker("node-lifecycle", self.lifecycle, lambda key: self._evict()),
                self._worker("pod-gc", self.pod_gc.queue, self.pod_gc.collect),
            ]
            tasks += [asyncio.create_task(w) for w in workers]
            tasks.append(asyncio.create_task(self.load_balancers.run(), name="load balancers"))
            tasks.append(asyncio.create_task(self.namespace_deleter.run(), name="namespaces"))
            tasks.append(asyncio.create_task(self._report_synced(started=now)))
            tasks.append(
                asyncio.create_task(repair_forever(self.store, self.fence, self.repair_period))
            )
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for queue in (
                self.scheduling,
                self.rollouts,
                self.lifecycle,
                self.pod_gc.queue,
                self.endpoints.queue,
            ):
                queue.close()
            await self.events.close()

    async def _report_synced(self, *, started: float) -> None:
        """Log (and flag in metrics) the first moment every queue has drained: the
        cluster has been reconciled once by this leader."""
        queues = (
            self.scheduling,
            self.rollouts,
            self.lifecycle,
            self.pod_gc.queue,
            self.endpoints.queue,
            self.load_balancers.queue,
        )
        while not all(q.idle for q in queues):
            for queue in queues:
                await queue.wait_idle()
        SYNCED.set(1)
        log.info("synced", extra={"seconds": round(self.clock() - started, 3)})

    async def _worker(
        self, name: str, queue: WorkQueue[PodKey], handle: Callable[[PodKey], Awaitable[None]]
    ) -> None:
        while True:
            key = await queue.get()
            try:
                await handle(key)
                queue.forget(key)
            except NotLeaderError:
                raise
            except (StoreUnavailableError, ConflictError) as err:
                log.info("%s %s/%s: %s; retrying", name, *key, err)
                queue.retry(key)
            except Exception:
                log.exception("%s %s/%s failed", name, *key)
                queue.retry(key)
            finally:
                queue.done(key)

    def _pod_changed(self, key: PodKey, old: ApiObject | None, new: ApiObject | None) -> None:
        for pod in (old, new):
            if isinstance(pod, objects_pb2.Pod):
                if not pod.spec.node_name or old is None or new is None:
                    self.scheduling.add(_SCHEDULE)
                if pod.spec.node_name in self.gone_since:
                    self.lifecycle.add(_EVICT)
        self._observe(key, new)
        for pod in (old, new):
            self._enqueue_owner(key[0], pod)
            self._enqueue_adopters(key[0], pod)

    def _enqueue_owner(self, namespace: str, pod: ApiObject | None) -> None:
        owner = controller_owner(pod) if pod is not None else None
        if owner is not None and owner.kind == "Deployment":
            self.rollouts.add((namespace, owner.name))

    def _enqueue_adopters(self, namespace: str, pod: ApiObject | None) -> None:
        """An orphan goes to every Deployment whose selector matches it: one may adopt it."""
        if isinstance(pod, objects_pb2.Pod) and controller_owner(pod) is None:
            for key in deployments_selecting(
                self.deployments.cache, namespace, pod.metadata.labels
            ):
                self.rollouts.add(key)

    def _nodes_changed(self) -> None:
        self.scheduling.add(_SCHEDULE)
        self.lifecycle.add(_EVICT)

    def _heartbeat_changed(self, key: str, old: bool | None, new: bool | None) -> None:
        if new:
            if self.gone_since.pop(key, None) is not None:
                self.node_events.record(self.nodes.get(("", key)), notes.node_status(key, True))
        else:
            self.gone_since.setdefault(key, self.clock())
            self.node_events.record(self.nodes.get(("", key)), notes.node_status(key, False))
        self._nodes_changed()

    def _observe(self, key: PodKey, pod: ApiObject | None) -> None:
        """Tick off expectations as the pod informer sees our own writes."""
        for deployment, (adds, removes, _deadline) in list(self.expectations.items()):
            if deployment[0] != key[0]:
                continue
            if pod is not None:
                adds.discard(key[1])
            if pod is None or (isinstance(pod, objects_pb2.Pod) and is_terminating(pod)):
                removes.discard(key[1])
            if not adds and not removes and deployment not in self.writing:
                del self.expectations[deployment]
                self.rollouts.add(deployment)

    # ------------------------------------------------------------------ scheduler

    def _node_infos(self) -> list[NodeInfo]:
        infos = []
        for (_, name), node in sorted(self.nodes.cache.items()):
            if isinstance(node, objects_pb2.Node):
                infos.append(
                    NodeInfo(
                        name=name,
                        ready=name in self.heartbeats.cache,
                        schedulable=not node.spec.unschedulable,
                        labels=dict(node.metadata.labels),
                    )
                )
        return infos

    async def _schedule(self) -> None:
        pods = [p for p in self.pods.cache.values() if isinstance(p, objects_pb2.Pod)]
        pending = [p for p in pods if not p.spec.node_name]
        bound = [p for p in pods if p.spec.node_name]
        nodes = self._node_infos()
        bindings = schedule(pending, nodes, bound)
        chosen = {(b.namespace, b.pod) for b in bindings}
        for binding in bindings:
            pod = self.pods.get((binding.namespace, binding.pod))
            if not isinstance(pod, objects_pb2.Pod) or pod.spec.node_name:
                continue
            bound_pod = objects_pb2.Pod()
            bound_pod.CopyFrom(pod)
            bound_pod.spec.node_name = binding.node
            await self.store.update(
                bound_pod, expected_revision=int(pod.metadata.resource_version), fence=self.fence
            )
            log.info(
                "bound", extra={"pod": f"{binding.namespace}/{binding.pod}", "node": binding.node}
            )
            self.scheduler_events.record(
                bound_pod, notes.scheduled(binding.namespace, binding.pod, binding.node)
            )
        for pod in pending:
            key = (pod.metadata.namespace, pod.metadata.name)
            if key not in chosen and not is_terminating(pod):
                log.info(
                    "unschedulable: %s",
                    why_unschedulable(pod, nodes),
                    extra={"pod": f"{key[0]}/{key[1]}"},
                )
                self.scheduler_events.record(
                    pod, notes.failed_scheduling(why_unschedulable(pod, nodes))
                )

    # ------------------------------------------------------------------ deployments

    def _candidates(
        self, deployment: objects_pb2.Deployment
    ) -> tuple[list[objects_pb2.Pod], list[objects_pb2.Pod]]:
        """The pods `deployment` controls and the orphans of its namespace, status merged."""
        live = set(self.heartbeats.cache)
        owned, orphans = [], []
        for key, pod in self.pods.cache.items():
            if not isinstance(pod, objects_pb2.Pod) or key[0] != deployment.metadata.namespace:
                continue
            owner = controller_owner(pod)
            if owner is None:
                orphans.append(pod_with_status(pod, self.statuses.get(key), live))
            elif owner.uid == deployment.metadata.uid:
                owned.append(pod_with_status(pod, self.statuses.get(key), live))
        return owned, orphans

    async def _write_pods(
        self,
        key: PodKey,
        create: tuple[objects_pb2.Pod, ...],
        delete: tuple[str, ...],
        adds: set[str],
        removes: set[str],
    ) -> None:
        """A Deployment's pod creates and deletes; `adds` and `removes` get the names
        whose write the pod informer has not shown yet."""
        for pod in create:
            try:
                await self.store.create(pod, fence=self.fence)
            except AlreadyExistsError:
                continue
            if (key[0], pod.metadata.name) not in self.pods.cache:
                adds.add(pod.metadata.name)
        for name in delete:
            await self._delete_gracefully((key[0], name))
            current = self.pods.get((key[0], name))
            if isinstance(current, objects_pb2.Pod) and not is_terminating(current):
                removes.add(name)

    async def _reconcile_deployment(self, key: PodKey) -> None:
        deployment = self.deployments.get(key)
        if not isinstance(deployment, objects_pb2.Deployment):
            await self._delete_orphans(key)
            return
        pending = self.expectations.get(key)
        if pending is not None and not pending[0] and not pending[1]:
            del self.expectations[key]
            pending = None
        if pending is not None:
            if self.clock() < pending[2]:
                self.rollouts.add_after(key, pending[2] - self.clock())
                return
            log.warning(
                "expected pod changes never showed up; planning anew",
                extra={"deploy": f"{key[0]}/{key[1]}"},
            )
            del self.expectations[key]
        now = self.clock()
        owned, orphans = self._candidates(deployment)
        plan = plan_deployment(deployment, owned, now=now, rng=self.rng, orphans=orphans)
        if plan.adopt:
            await adopt(self.store, self.fence, self.pods, deployment, plan.adopt)
        # Registered before writing (the informer may deliver our writes mid-way); a name
        # is only expected once its write succeeded, so a failed write cannot stall us.
        adds: set[str] = set()
        removes: set[str] = set()
        if not plan.empty:
            self.expectations[key] = (adds, removes, now + _EXPECTATION_TIMEOUT)
        self.writing.add(key)
        try:
            await self._write_pods(key, plan.create, plan.delete, adds, removes)
        finally:
            self.writing.discard(key)
        self.deployment_events.record(
            deployment, notes.scaled(key[1], owned, plan.create, plan.delete)
        )
        if not plan.empty and not adds and not removes:
            self.expectations.pop(key, None)
        for name in plan.release:
            await release(self.store, self.fence, self.pods, deployment, name)
        if plan.status != deployment.status:
            updated = objects_pb2.Deployment()
            updated.CopyFrom(deployment)
            updated.status.CopyFrom(plan.status)
            await self.store.update(
                updated,
                expected_revision=int(deployment.metadata.resource_version),
                fence=self.fence,
            )
        if plan.recheck_at is not None:
            self.rollouts.add_after(key, plan.recheck_at - now)

    async def _delete_gracefully(self, key: PodKey) -> None:
        """As the apiserver does for a user: a bound pod gets a deletionTimestamp and its
        node agent finishes the deletion; an unbound one goes at once."""
        pod = self.pods.get(key)
        if not isinstance(pod, objects_pb2.Pod) or is_terminating(pod):
            return
        if not pod.spec.node_name:
            await delete_pod(self.store, pod, self.fence)
            return
        marked = objects_pb2.Pod()
        marked.CopyFrom(pod)
        marked.metadata.deletion_timestamp.CopyFrom(to_timestamp(float(int(self.clock()))))
        await self.store.update(
            marked, expected_revision=int(pod.metadata.resource_version), fence=self.fence
        )

    async def _delete_orphans(self, key: PodKey) -> None:
        """A deleted Deployment takes its pods with it (Kubernetes' garbage collector)."""
        for pod_key, pod in list(self.pods.cache.items()):
            owner = controller_owner(pod)
            if (
                pod_key[0] == key[0]
                and owner is not None
                and owner.kind == "Deployment"
                and owner.name == key[1]
            ):
                await self._delete_gracefully(pod_key)

    # ------------------------------------------------------------------ node lifecycle

    async def _evict(self) -> None:
        pods = [p for p in self.pods.cache.values() if isinstance(p, objects_pb2.Pod)]
        now = self.clock()
        for key in pods_to_evict(pods, self.gone_since, now=now, grace=self.node_grace):
            pod = self.pods.get(key)
            # Its status key went with the dead node's lease; nothing else to remove.
            if not isinstance(pod, objects_pb2.Pod) or not await delete_pod(
                self.store, pod, self.fence
            ):
                continue
            log.info(
                "evicted from a lost node",
                extra={"pod": f"{key[0]}/{key[1]}", "node": _node_of(pod)},
            )
            self.node_events.record(pod, notes.evicted(*key))
        due = next_eviction_due(pods, self.gone_since, now=now, grace=self.node_grace)
        if due is not None:
            self.lifecycle.add_after(_EVICT, due - now)


def _node_of(pod: Any) -> str:
    return str(pod.spec.node_name)
