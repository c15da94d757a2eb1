"""The scheduler's plumbing: binds pending pods to nodes (`services.controller.logic.scheduling`).

One key (`SCHEDULE`): any pod created, deleted or unbound, and any change of a
Node or of a node's heartbeat, asks for a pass; a pass plans over the whole pod
cache and binds each chosen pod with a fenced compare-and-swap of its
`spec.nodeName` (a pod changed in between is a `ConflictError`: the worker
retries and the next pass plans from what is there). A pod that fits nowhere
gets one log line saying why, per pass.
"""

from __future__ import annotations

import logging

from kubelab.core import event_notes as notes
from kubelab.core.keys import ObjectKey, key_of
from kubelab.core.pods import is_terminating
from kubelab.runtime.clock import Clock
from kubelab.runtime.events import EventRecorder
from kubelab.runtime.informer import Informer
from kubelab.runtime.queue import WorkQueue
from kubelab.store import Fence, StoreProtocol
from kubelab.v1 import objects_pb2
from services.controller.logic.scheduling import NodeInfo, schedule, why_unschedulable

log = logging.getLogger("controller")

SCHEDULE = ObjectKey(("", "schedule"))


class Scheduler:
    def __init__(
        self,
        store: StoreProtocol,
        fence: Fence,
        *,
        pods: Informer[ObjectKey, objects_pb2.Pod],
        nodes: Informer[ObjectKey, objects_pb2.Node],
        heartbeats: Informer[str, bool],
        timers: Clock | None = None,
        events: EventRecorder | None = None,
    ) -> None:
        self.store = store
        self.events = events or EventRecorder.null()
        self.fence = fence
        self.pods = pods
        self.nodes = nodes
        self.heartbeats = heartbeats
        self.queue: WorkQueue[ObjectKey] = WorkQueue(clock=timers)
        pods.on_change(self._pod_changed)
        nodes.on_change(lambda key, old, new: self.queue.add(SCHEDULE))
        heartbeats.on_change(lambda key, old, new: self.queue.add(SCHEDULE))

    def start(self) -> None:
        """Ask for the first pass (call once every informer is synced)."""
        self.queue.add(SCHEDULE)

    def _pod_changed(
        self, key: ObjectKey, old: objects_pb2.Pod | None, new: objects_pb2.Pod | None
    ) -> None:
        for pod in (old, new):
            if pod is not None and (not pod.spec.node_name or old is None or new is None):
                self.queue.add(SCHEDULE)

    def _node_infos(self) -> list[NodeInfo]:
        infos = []
        for (_, name), node in sorted(self.nodes.cache.items()):
            infos.append(
                NodeInfo(
                    name=name,
                    ready=name in self.heartbeats.cache,
                    schedulable=not node.spec.unschedulable,
                    labels=dict(node.metadata.labels),
                )
            )
        return infos

    async def sync(self, key: ObjectKey) -> None:
        """One pass: bind what fits, say why the rest does not."""
        pods = list(self.pods.cache.values())
        pending = [p for p in pods if not p.spec.node_name]
        bound = [p for p in pods if p.spec.node_name]
        nodes = self._node_infos()
        bindings = schedule(pending, nodes, bound)
        chosen = {(b.namespace, b.pod) for b in bindings}
        for binding in bindings:
            pod = self.pods.get(ObjectKey((binding.namespace, binding.pod)))
            if pod is None or pod.spec.node_name:
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
            self.events.record(
                bound_pod, notes.scheduled(binding.namespace, binding.pod, binding.node)
            )
        for pod in pending:
            key = key_of(pod)
            if key not in chosen and not is_terminating(pod):
                log.info(
                    "unschedulable: %s",
                    why_unschedulable(pod, nodes),
                    extra={"pod": f"{key[0]}/{key[1]}"},
                )
                self.events.record(pod, notes.failed_scheduling(why_unschedulable(pod, nodes)))
