"""Node lifecycle: when the pods of a lost node are evicted. Pure, no clock.

A node is *gone* while its agent's etcd lease is absent (DESIGN §2.7: lease
expiry deletes its pod statuses, so its pods already read as not ready and
leave every Service's ready endpoints at once). The controller remembers since
when each node has been gone — `node_gone_since`, node name to seconds — and
drops a node from that map when its lease comes back.

Kubernetes taints such a node `node.kubernetes.io/unreachable:NoExecute`, and
every pod tolerates that taint for `tolerationSeconds` (300 by default,
`DefaultTolerationSeconds` admission); when the toleration runs out the taint
manager deletes the pod, and the Deployment controller creates a replacement,
which the scheduler puts on a live node. Here `grace` plays the toleration,
the same for every pod.

Eviction is a deletion *outright*, not a graceful one: the node that would run
the pod's shutdown and confirm it is dead, so a graceful deletion would leave
the pod terminating forever (Kubernetes' pod GC force-deletes terminating pods
on unreachable nodes for the same reason, `gcTerminating`). Pods already
terminating on a gone node are therefore evicted too.

Nothing here polls: `next_eviction_due` tells the caller when the next grace
runs out, so it can sleep exactly that long (or until the next node or pod
change, which makes it ask again).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kubelab.core.keys import ObjectKey, key_of
from kubelab.v1 import objects_pb2


def _deadline(gone_since: float, grace: float) -> float:
    # One expression for both functions: a caller that wakes at exactly the time
    # `next_eviction_due` named must find those pods due, float rounding included.
    return gone_since + grace


def pods_to_evict(
    pods: Sequence[objects_pb2.Pod],
    node_gone_since: Mapping[str, float],
    *,
    now: float,
    grace: float,
) -> list[ObjectKey]:
    """The key of every pod bound to a node gone for at least `grace` seconds.

    Sorted, so the caller deletes in a stable order.
    """
    return sorted(
        key_of(pod)
        for pod in pods
        if pod.spec.node_name
        and pod.spec.node_name in node_gone_since
        and _deadline(node_gone_since[pod.spec.node_name], grace) <= now
    )


def next_eviction_due(
    pods: Sequence[objects_pb2.Pod],
    node_gone_since: Mapping[str, float],
    *,
    now: float,
    grace: float,
) -> float | None:
    """The earliest time after `now` at which a gone node holding pods runs out of grace.

    None when no such time exists: no gone node holds a pod, or every one is
    already due (and `pods_to_evict` lists its pods now).
    """
    deadlines = [
        deadline
        for node in {pod.spec.node_name for pod in pods if pod.spec.node_name}
        if node in node_gone_since and (deadline := _deadline(node_gone_since[node], grace)) > now
    ]
    return min(deadlines, default=None)
