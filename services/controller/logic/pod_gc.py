"""Pod garbage collection: which pods are bound to a node that no longer exists. Pure, no clock.

Kubernetes' PodGC controller (`gcOrphaned`) deletes every pod whose
`spec.nodeName` names a Node object that does not exist: nothing will ever
run it, stop it or finish its graceful deletion, so without this a `delete
pod` of it would leave it terminating forever, and it would count as a
replica and an endpoint candidate for ever. Terminating pods are included
(force-deleted), as Kubernetes does.

This is not node lifecycle eviction (`node_lifecycle.py`): a node that is
merely NotReady — its agent's lease gone — still exists, and its pods are
left for the eviction grace, since the agent may come back. Only a deleted
Node object makes its pods orphans. A restarted agent re-registers its Node,
so a node that comes back before the quarantine ends loses nothing.

The quarantine (Kubernetes' `quarantineTime`, 40 s there) guards against a
cache that has not yet seen a freshly registered Node: a node must be seen
missing for `quarantine` seconds before its pods go. The caller remembers
since when each node has been missing (`missing_since`, carried from one
plan to the next) and, before deleting, checks the store itself that the Node
is still absent (Kubernetes' `checkIfNodeExists` against the apiserver).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from kubelab.core.keys import ObjectKey, key_of
from kubelab.v1 import objects_pb2


@dataclass(frozen=True, slots=True)
class PodGcPlan:
    """What to delete now, what to remember, when to look again."""

    # The keys of pods bound to a node missing for the whole quarantine, sorted.
    delete: tuple[ObjectKey, ...]
    # Node name → when it was first seen missing, for the nodes that still hold pods.
    missing_since: Mapping[str, float] = field(default_factory=dict)
    # When the next missing node's quarantine ends (None: nothing is waiting).
    recheck_at: float | None = None


def plan_pod_gc(
    pods: Sequence[objects_pb2.Pod],
    existing_nodes: Collection[str],
    missing_since: Mapping[str, float],
    *,
    now: float,
    quarantine: float,
) -> PodGcPlan:
    """The orphaned pods to delete now, given the Node objects that exist.

    A node first seen missing now starts its quarantine now; one that exists
    again, or holds no pod any more, is forgotten.
    """
    missing = {
        node: missing_since.get(node, now)
        for node in {pod.spec.node_name for pod in pods if pod.spec.node_name}
        if node not in existing_nodes
    }
    due = {node for node, since in missing.items() if since + quarantine <= now}
    delete = sorted(key_of(pod) for pod in pods if pod.spec.node_name in due)
    waiting = [since + quarantine for node, since in missing.items() if node not in due]
    return PodGcPlan(
        delete=tuple(delete), missing_since=missing, recheck_at=min(waiting, default=None)
    )
