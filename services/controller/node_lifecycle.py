"""Node lifecycle's plumbing: the pods of a lost node are evicted (DESIGN §2.7).

The decision is `services.controller.logic.node_lifecycle` (which pods, and when: a node
gone for `grace` seconds). A node is *gone* from the moment this leader sees
its heartbeat missing (`gone_since`, started for every Node without a
heartbeat when the leader starts), and back when its heartbeat returns.

One key (`EVICT`): a heartbeat or Node change, or a pod bound to a gone node
changing, asks for a pass; a pass deletes the pods that are due (fenced, at
the revision the cache saw: their status keys went with the dead node's
lease) and schedules itself for the next grace period to end, so nothing polls.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from kubelab.core import event_notes as notes
from kubelab.core.keys import ObjectKey
from kubelab.runtime.clock import Clock
from kubelab.runtime.events import EventRecorder
from kubelab.runtime.informer import Informer
from kubelab.runtime.queue import WorkQueue
from kubelab.store import Fence, StoreProtocol
from kubelab.v1 import objects_pb2
from services.controller.logic.node_lifecycle import next_eviction_due, pods_to_evict
from services.controller.pod_gc import delete_pod

log = logging.getLogger("controller")

EVICT = ObjectKey(("", "evict"))


class NodeLifecycle:
    def __init__(
        self,
        store: StoreProtocol,
        fence: Fence,
        *,
        pods: Informer[ObjectKey, objects_pb2.Pod],
        nodes: Informer[ObjectKey, objects_pb2.Node],
        heartbeats: Informer[str, bool],
        grace: float,
        clock: Callable[[], float],
        timers: Clock | None = None,
        events: EventRecorder | None = None,
    ) -> None:
        self.store = store
        self.events = events or EventRecorder.null()
        self.fence = fence
        self.pods = pods
        self.nodes = nodes
        self.heartbeats = heartbeats
        self.grace = grace
        self.clock = clock
        self.queue: WorkQueue[ObjectKey] = WorkQueue(clock=timers)
        # Node name → when this leader first saw it without a heartbeat.
        self.gone_since: dict[str, float] = {}
        pods.on_change(self._pod_changed)
        nodes.on_change(lambda key, old, new: self.queue.add(EVICT))
        heartbeats.on_change(self._heartbeat_changed)

    def start(self) -> None:
        """Every Node without a heartbeat is gone from now; ask for the first pass (call
        once every informer is synced)."""
        now = self.clock()
        for _, name in self.nodes.cache:
            if name not in self.heartbeats.cache:
                self.gone_since.setdefault(name, now)
        self.queue.add(EVICT)

    def _pod_changed(
        self, key: ObjectKey, old: objects_pb2.Pod | None, new: objects_pb2.Pod | None
    ) -> None:
        for pod in (old, new):
            if pod is not None and pod.spec.node_name in self.gone_since:
                self.queue.add(EVICT)

    def _heartbeat_changed(self, key: str, old: bool | None, new: bool | None) -> None:
        if new:
            if self.gone_since.pop(key, None) is not None:
                self.events.record(
                    self.nodes.get(ObjectKey(("", key))), notes.node_status(key, True)
                )
        else:
            self.gone_since.setdefault(key, self.clock())
            self.events.record(self.nodes.get(ObjectKey(("", key))), notes.node_status(key, False))
        self.queue.add(EVICT)

    async def sync(self, key: ObjectKey) -> None:
        """One pass: evict what is due, wake up when the next eviction is."""
        pods = list(self.pods.cache.values())
        now = self.clock()
        for pod_key in pods_to_evict(pods, self.gone_since, now=now, grace=self.grace):
            pod = self.pods.get(pod_key)
            # Its status key went with the dead node's lease; nothing else to remove.
            if pod is None or not await delete_pod(self.store, pod, self.fence):
                continue
            log.info(
                "evicted from a lost node",
                extra={"pod": f"{pod_key[0]}/{pod_key[1]}", "node": pod.spec.node_name},
            )
            self.events.record(pod, notes.evicted(*pod_key))
        due = next_eviction_due(pods, self.gone_since, now=now, grace=self.grace)
        if due is not None:
            self.queue.add_after(EVICT, due - now)
