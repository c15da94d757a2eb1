"""Pod garbage collection in the controller: pods bound to a deleted Node are deleted.

The decision is `services.controller.logic.pod_gc.plan_pod_gc` (read it for the rules and
why); this is its plumbing. One key on its own work queue: any pod that is
bound to a node the cache does not hold, and any Node deletion, asks for a
pass; a pass plans over the whole pod cache and sleeps until the next
quarantine ends (`recheck_at`), so nothing polls.

Before deleting, the Node is read from the store itself, not the cache: a
node that re-registered a moment ago must not lose its pods to a lagging
informer (Kubernetes' `checkIfNodeExists`). A pod is deleted outright, at
the revision the cache saw (fenced, like every leader write): graceful
deletion needs the node agent, which is what is missing. A pod that changed
in between is planned again (the worker retries on conflict).

Each deletion is one log line naming the pod and its node, and a count in
`kubelab_controller_pods_garbage_collected_total{reason="orphaned"}`
(Kubernetes' `pod_gc_collector_force_delete_pods_total`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from prometheus_client import Counter

from kubelab.core import kinds
from kubelab.core.keys import ObjectKey
from kubelab.runtime.clock import Clock
from kubelab.runtime.informer import Informer
from kubelab.runtime.queue import WorkQueue
from kubelab.store import Fence, NotFoundError, StoreProtocol
from kubelab.v1 import objects_pb2
from services.controller.logic.pod_gc import plan_pod_gc

log = logging.getLogger("controller")

COLLECTED = Counter(
    "kubelab_controller_pods_garbage_collected_total",
    "pods deleted by the pod garbage collector",
    ["reason"],
)

_GC = ObjectKey(("", "pod-gc"))


async def delete_pod(store: StoreProtocol, pod: objects_pb2.Pod, fence: Fence) -> bool:
    """Delete `pod` as it was read (its resourceVersion), as the leader (`fence`); False
    when it is gone already."""
    try:
        await store.delete(
            kinds.PODS,
            pod.metadata.namespace,
            pod.metadata.name,
            expected_revision=int(pod.metadata.resource_version),
            fence=fence,
        )
    except NotFoundError:
        return False
    return True


class PodGarbageCollector:
    def __init__(
        self,
        store: StoreProtocol,
        fence: Fence,
        *,
        pods: Informer[ObjectKey, objects_pb2.Pod],
        nodes: Informer[ObjectKey, objects_pb2.Node],
        quarantine: float,
        clock: Callable[[], float],
        timers: Clock | None = None,
    ) -> None:
        self.store = store
        self.fence = fence
        self.pods = pods
        self.nodes = nodes
        self.quarantine = quarantine
        self.clock = clock
        self.queue: WorkQueue[ObjectKey] = WorkQueue(clock=timers)
        # Node name → when this leader first saw it missing while pods were bound to it.
        self.missing_since: dict[str, float] = {}
        pods.on_change(self._pod_changed)
        nodes.on_change(self._node_changed)

    def start(self) -> None:
        """Ask for the first pass (call once every informer is synced)."""
        self.queue.add(_GC)

    def _pod_changed(
        self, key: ObjectKey, old: objects_pb2.Pod | None, new: objects_pb2.Pod | None
    ) -> None:
        if (
            new is not None
            and new.spec.node_name
            and ("", new.spec.node_name) not in self.nodes.cache
        ):
            self.queue.add(_GC)

    def _node_changed(
        self, key: ObjectKey, old: objects_pb2.Node | None, new: objects_pb2.Node | None
    ) -> None:
        if new is None or old is None:
            self.queue.add(_GC)

    async def collect(self, key: ObjectKey) -> None:
        """One pass: plan over the caches, delete what is due, sleep until the next is."""
        pods = list(self.pods.cache.values())
        existing = {name for _, name in self.nodes.cache}
        now = self.clock()
        plan = plan_pod_gc(pods, existing, self.missing_since, now=now, quarantine=self.quarantine)
        self.missing_since = dict(plan.missing_since)
        absent: dict[str, bool] = {}
        for pod_key in plan.delete:
            pod = self.pods.get(pod_key)
            if pod is None:
                continue
            node = pod.spec.node_name
            if node not in absent:
                absent[node] = await self._node_absent(node)
            if not absent[node]:
                continue
            if not await delete_pod(self.store, pod, self.fence):
                continue
            COLLECTED.labels("orphaned").inc()
            log.info(
                "garbage-collected a pod whose node no longer exists",
                extra={"pod": f"{pod_key[0]}/{pod_key[1]}", "node": node},
            )
        if plan.recheck_at is not None:
            self.queue.add_after(_GC, plan.recheck_at - now)

    async def _node_absent(self, name: str) -> bool:
        try:
            await self.store.get(kinds.NODES, "", name)
        except NotFoundError:
            return True
        log.info("node exists again; its pods stay", extra={"node": name})
        return False
