"""The Deployment reconciler's plumbing: a Deployment's pods (`logic/deployments.py`).

Keys are Deployments. A Deployment is queued when it changes, when a pod it
controls changes or gets a new status, and when an orphan of its namespace
that its selector matches changes (it may adopt it). The worker reads the
caches, asks `plan_deployment` what to do, and applies it with fenced writes:
adoptions first (the plan's counts assume them), then pod creates and
graceful deletes, releases, and the status only when it differs. A deleted
Deployment takes its pods with it (Kubernetes' garbage collector).

Expectations, as Kubernetes' ReplicaSet controller: after creating or deleting
pods, the Deployment is not planned again until the pod informer has shown
those changes (or `EXPECTATION_TIMEOUT` passes). Without them a cache that
lags its own writes would create the same replicas twice.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

from kubelab.core import event_notes as notes
from kubelab.core.keys import ObjectKey
from kubelab.core.live_state import pod_with_status
from kubelab.core.pods import controller_owner, is_terminating, to_timestamp
from kubelab.runtime.clock import Clock
from kubelab.runtime.events import EventRecorder
from kubelab.runtime.expectations import Expectations
from kubelab.runtime.informer import Informer
from kubelab.runtime.queue import WorkQueue
from kubelab.store import AlreadyExistsError, Fence, StoreProtocol
from kubelab.v1 import objects_pb2
from services.controller.claims import adopt, deployments_selecting, release
from services.controller.logic.deployments import plan_deployment
from services.controller.pod_gc import delete_pod

log = logging.getLogger("controller")

EXPECTATION_TIMEOUT = 30.0
# What a pod observation can satisfy: a create waits for "present", a delete for "gone"
# (a terminating pod counts as gone: the node agent finishes the deletion).
PRESENT, GONE = "present", "gone"


def pod_states(pod: objects_pb2.Pod | None) -> tuple[str, ...]:
    if pod is None:
        return (GONE,)
    if is_terminating(pod):
        return (PRESENT, GONE)
    return (PRESENT,)


class DeploymentController:
    def __init__(
        self,
        store: StoreProtocol,
        fence: Fence,
        *,
        pods: Informer[ObjectKey, objects_pb2.Pod],
        statuses: Informer[ObjectKey, objects_pb2.PodStatus],
        heartbeats: Informer[str, bool],
        deployments: Informer[ObjectKey, objects_pb2.Deployment],
        clock: Callable[[], float],
        rng: random.Random | None = None,
        timers: Clock | None = None,
        events: EventRecorder | None = None,
    ) -> None:
        self.store = store
        self.events = events or EventRecorder.null()
        self.fence = fence
        self.pods = pods
        self.statuses = statuses
        self.heartbeats = heartbeats
        self.deployments = deployments
        self.clock = clock
        self.rng = rng or random.Random()
        self.queue: WorkQueue[ObjectKey] = WorkQueue(clock=timers)
        # Deployment → the pod writes it made that the pod informer has not shown yet.
        self.expectations: Expectations[ObjectKey, ObjectKey] = Expectations(
            kind="deploy",
            what="expected pod changes",
            timeout=EXPECTATION_TIMEOUT,
            clock=clock,
            on_met=self.queue.add,
            logger=log,
        )
        pods.on_change(self._pod_changed)
        statuses.on_change(lambda key, old, new: self._enqueue_owner(key[0], self.pods.get(key)))
        deployments.on_change(lambda key, old, new: self.queue.add(key))

    def start(self) -> None:
        """Queue every Deployment (call once every informer is synced)."""
        for key in self.deployments.cache:
            self.queue.add(key)

    # ------------------------------------------------------------------ events

    def _pod_changed(
        self, key: ObjectKey, old: objects_pb2.Pod | None, new: objects_pb2.Pod | None
    ) -> None:
        self.expectations.observe(key, *pod_states(new))
        for pod in (old, new):
            self._enqueue_owner(key[0], pod)
            self._enqueue_adopters(key[0], pod)

    def _enqueue_owner(self, namespace: str, pod: objects_pb2.Pod | None) -> None:
        owner = controller_owner(pod) if pod is not None else None
        if owner is not None and owner.kind == "Deployment":
            self.queue.add(ObjectKey((namespace, owner.name)))

    def _enqueue_adopters(self, namespace: str, pod: objects_pb2.Pod | None) -> None:
        """An orphan goes to every Deployment whose selector matches it: one may adopt it."""
        if pod is not None and controller_owner(pod) is None:
            for key in deployments_selecting(
                self.deployments.cache, namespace, pod.metadata.labels
            ):
                self.queue.add(key)

    # ------------------------------------------------------------------ work

    def _candidates(
        self, deployment: objects_pb2.Deployment
    ) -> tuple[list[objects_pb2.Pod], list[objects_pb2.Pod]]:
        """The pods `deployment` controls and the orphans of its namespace, status merged."""
        live = set(self.heartbeats.cache)
        owned, orphans = [], []
        for key, pod in self.pods.cache.items():
            if key[0] != deployment.metadata.namespace:
                continue
            owner = controller_owner(pod)
            if owner is None:
                orphans.append(pod_with_status(pod, self.statuses.get(key), live))
            elif owner.uid == deployment.metadata.uid:
                owned.append(pod_with_status(pod, self.statuses.get(key), live))
        return owned, orphans

    async def sync(self, key: ObjectKey) -> None:
        deployment = self.deployments.get(key)
        if deployment is None:
            await self._delete_orphans(key)
            return
        wait = self.expectations.wait(key)
        if wait is not None:
            self.queue.add_after(key, wait)
            return
        now = self.clock()
        owned, orphans = self._candidates(deployment)
        plan = plan_deployment(deployment, owned, now=now, rng=self.rng, orphans=orphans)
        if plan.adopt:
            await adopt(self.store, self.fence, self.pods, deployment, plan.adopt)
        if not plan.empty:
            # Begun before writing (the informer may deliver our writes mid-way); a pod is
            # only expected once its write succeeded, so a failed write cannot stall us.
            self.expectations.begin(key)
        try:
            await self._write_pods(key, plan.create, plan.delete)
        finally:
            self.expectations.finish(key)
        self.events.record(deployment, notes.scaled(key[1], owned, plan.create, plan.delete))
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
            self.queue.add_after(key, plan.recheck_at - now)

    async def _write_pods(
        self, key: ObjectKey, create: tuple[objects_pb2.Pod, ...], delete: tuple[str, ...]
    ) -> None:
        """A Deployment's pod creates and deletes, each expected once it succeeded."""
        for pod in create:
            try:
                await self.store.create(pod, fence=self.fence)
            except AlreadyExistsError:
                continue
            pod_key = ObjectKey((key[0], pod.metadata.name))
            self.expectations.expect(key, pod_key, PRESENT, seen=pod_states(self.pods.get(pod_key)))
        for name in delete:
            pod_key = ObjectKey((key[0], name))
            await self._delete_gracefully(pod_key)
            self.expectations.expect(key, pod_key, GONE, seen=pod_states(self.pods.get(pod_key)))

    async def _delete_gracefully(self, key: ObjectKey) -> None:
        """As the apiserver does for a user: a bound pod gets a deletionTimestamp and its
        node agent finishes the deletion; an unbound one goes at once."""
        pod = self.pods.get(key)
        if pod is None or is_terminating(pod):
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

    async def _delete_orphans(self, key: ObjectKey) -> None:
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
