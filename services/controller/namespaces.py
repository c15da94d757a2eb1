"""The namespace controller: a terminating namespace is emptied, then removed.

The decision is `services.controller.logic.namespaces.plan_deletion` (read it for the order
and the rules); this is its plumbing. Keys are `("", name)`, on a work queue of
its own run by the controller's shared worker: a namespace is queued when it
becomes (or is found) Terminating, and again when a pod of a terminating
namespace changes or goes (graceful pod deletions are what a namespace waits
for). A pass reads the namespace's contents
from the store itself, not from caches, as Kubernetes' deleter lists through the
API: the last pass must not miss an object a lagging informer has not shown, or
the namespace would go with it inside.

Every write is fenced (the leader's) and preconditioned on the revision read;
an object changed or gone in between is simply planned again on the next pass.
While anything remains the namespace is passed over again after
`recheck_period` seconds (a safety net under the pod events). When it is empty
the `kubernetes` finalizer is removed and, with no finalizer left, the
namespace is deleted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from kubelab.core import kinds
from kubelab.core.allocators import service_claims
from kubelab.core.keys import ObjectKey
from kubelab.core.kinds import ApiObject, KindInfo
from kubelab.core.pods import to_timestamp
from kubelab.runtime.clock import Clock
from kubelab.runtime.informer import Informer
from kubelab.runtime.queue import WorkQueue
from kubelab.store import ConflictError, Fence, NotFoundError, StoreProtocol
from kubelab.v1 import objects_pb2
from services.controller.logic.namespaces import CONTENT_KINDS, DeletionPlan, plan_deletion
from services.controller.logic.namespaces import is_terminating_namespace as terminating

log = logging.getLogger("controller")


class NamespaceController:
    def __init__(
        self,
        store: StoreProtocol,
        fence: Fence,
        *,
        namespaces: Informer[ObjectKey, objects_pb2.Namespace],
        pods: Informer[ObjectKey, objects_pb2.Pod],
        recheck_period: float = 5.0,
        clock: Callable[[], float] = time.time,
        timers: Clock | None = None,
    ) -> None:
        self.store = store
        self.fence = fence
        self.namespaces = namespaces
        self.recheck_period = recheck_period
        self.clock = clock
        self.queue: WorkQueue[ObjectKey] = WorkQueue(clock=timers)
        namespaces.on_change(self._namespace_changed)
        pods.on_change(self._pod_changed)

    def start(self) -> None:
        """Queue every namespace already terminating (call once the informers synced)."""
        for key, namespace in self.namespaces.cache.items():
            if terminating(namespace):
                self.queue.add(key)

    def _namespace_changed(
        self, key: ObjectKey, old: objects_pb2.Namespace | None, new: objects_pb2.Namespace | None
    ) -> None:
        if terminating(new):
            self.queue.add(key)

    def _pod_changed(
        self, key: ObjectKey, old: objects_pb2.Pod | None, new: objects_pb2.Pod | None
    ) -> None:
        if terminating(self.namespaces.get(ObjectKey(("", key[0])))):
            self.queue.add(ObjectKey(("", key[0])))

    async def sync(self, key: ObjectKey) -> None:
        name = key[1]
        try:
            namespace = await self.store.get(kinds.NAMESPACES, "", name)
        except NotFoundError:
            return
        if not terminating(namespace):
            return
        contents: dict[KindInfo, list[ApiObject]] = {}
        for info in CONTENT_KINDS:
            contents[info], _ = await self.store.list(info, name)
        plan = plan_deletion(namespace, contents)
        await self._apply(plan)
        if plan.remaining:
            log.info(
                "namespace terminating: %d objects remain",
                plan.remaining,
                extra={"namespace": name},
            )
            self.queue.add_after(key, self.recheck_period)
            return
        await self._finalize(namespace, plan)

    async def _apply(self, plan: DeletionPlan) -> None:
        for obj in plan.delete:
            info = kinds.info_of(obj)
            release = service_claims(obj) if isinstance(obj, objects_pb2.Service) else ()
            try:
                await self.store.delete(
                    info,
                    obj.metadata.namespace,
                    obj.metadata.name,
                    expected_revision=int(obj.metadata.resource_version),
                    release=release,
                    fence=self.fence,
                )
            except (NotFoundError, ConflictError):
                continue  # changed meanwhile: the next pass sees it as it is
        for pod in plan.mark:
            marked = objects_pb2.Pod()
            marked.CopyFrom(pod)
            marked.metadata.deletion_timestamp.CopyFrom(to_timestamp(float(int(self.clock()))))
            try:
                await self.store.update(
                    marked, expected_revision=int(pod.metadata.resource_version), fence=self.fence
                )
            except (NotFoundError, ConflictError):
                continue

    async def _finalize(self, namespace: objects_pb2.Namespace, plan: DeletionPlan) -> None:
        name = namespace.metadata.name
        revision = int(namespace.metadata.resource_version)
        if plan.remove:
            try:
                await self.store.delete(
                    kinds.NAMESPACES, "", name, expected_revision=revision, fence=self.fence
                )
            except NotFoundError:
                return
            log.info("namespace deleted", extra={"namespace": name})
            return
        kept = list(plan.finalizers or ())
        if list(namespace.spec.finalizers) == kept:
            return  # another finalizer's owner has yet to let go
        updated = objects_pb2.Namespace()
        updated.CopyFrom(namespace)
        updated.spec.ClearField("finalizers")
        updated.spec.finalizers.extend(kept)
        await self.store.update(updated, expected_revision=revision, fence=self.fence)
