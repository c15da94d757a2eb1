"""What lives only as long as its node: node heartbeats and pod statuses (DESIGN §2.2).

A node agent holds one etcd lease. Its heartbeat key and the status key of
every pod it runs are attached to that lease, so when the agent dies and
stops renewing, etcd deletes all of them by itself (≈ the lease TTL, at least
2 s): the controller and the proxies see "node gone, its pods not ready"
without any timer of their own. A clean shutdown revokes the lease, which
deletes them at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from kubelab.core.keys import ObjectKey
from kubelab.store.etcd import EtcdConnection, Lease, delete, put
from kubelab.store.keys import (
    NODE_LEASES,
    POD_STATUS,
    last_segments,
    node_lease_key,
    pod_status_key,
)
from kubelab.v1 import objects_pb2


@dataclass(frozen=True, slots=True)
class PodStatusEvent:
    namespace: str
    name: str
    # None when the status key is gone (pod finished on its node, or the node died).
    status: objects_pb2.PodStatus | None
    revision: int


@dataclass(frozen=True, slots=True)
class HeartbeatEvent:
    node: str
    alive: bool
    revision: int


class LivenessStore(EtcdConnection):
    async def put_heartbeat(self, node: str, lease: Lease) -> None:
        await self._txn([], [put(node_lease_key(node), b"", lease)], [])

    async def live_nodes(self) -> tuple[set[str], int]:
        """Nodes whose agent's lease is alive, and the revision read at."""
        response = await self._range(NODE_LEASES.encode())
        names = {last_segments(kv.key, NODE_LEASES)[0] for kv in response.kvs}
        return names, response.revision

    async def watch_heartbeats(self, *, from_revision: int) -> AsyncIterator[HeartbeatEvent]:
        async for raw in self.watch_prefix(NODE_LEASES.encode(), from_revision):
            name = last_segments(raw.key, NODE_LEASES)[0]
            yield HeartbeatEvent(name, not raw.deleted, raw.revision)

    async def put_pod_status(
        self, namespace: str, name: str, status: objects_pb2.PodStatus, lease: Lease
    ) -> None:
        value = status.SerializeToString(deterministic=True)
        await self._txn([], [put(pod_status_key(namespace, name), value, lease)], [])

    async def delete_pod_status(self, namespace: str, name: str) -> None:
        await self._txn([], [delete(pod_status_key(namespace, name))], [])

    async def list_pod_statuses(
        self, namespace: str = ""
    ) -> tuple[dict[ObjectKey, objects_pb2.PodStatus], int]:
        prefix = f"{POD_STATUS}{namespace}/" if namespace else POD_STATUS
        response = await self._range(prefix.encode())
        statuses: dict[ObjectKey, objects_pb2.PodStatus] = {}
        for kv in response.kvs:
            ns, pod = last_segments(kv.key, POD_STATUS)
            statuses[ObjectKey((ns, pod))] = objects_pb2.PodStatus.FromString(kv.value)
        return statuses, response.revision

    async def get_pod_status(self, namespace: str, name: str) -> objects_pb2.PodStatus | None:
        response = await self._range_one(pod_status_key(namespace, name))
        return objects_pb2.PodStatus.FromString(response) if response is not None else None

    async def watch_pod_statuses(self, *, from_revision: int) -> AsyncIterator[PodStatusEvent]:
        async for raw in self.watch_prefix(POD_STATUS.encode(), from_revision):
            ns, pod = last_segments(raw.key, POD_STATUS)
            status = None if raw.deleted else objects_pb2.PodStatus.FromString(raw.value)
            yield PodStatusEvent(ns, pod, status, raw.revision)
