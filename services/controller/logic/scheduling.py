"""Scheduling: which node each pending pod is bound to. Pure choice, no I/O.

The controller's scheduler loop hands `schedule` every pod it knows of and the
nodes as `NodeInfo`, and writes each returned `Binding` as the pod's
`spec.nodeName` (Kubernetes' binding subresource). A pod that gets no binding
is reported with `why_unschedulable`, worded as Kubernetes' `FitError`
(`0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.`),
and tried again on the next node or pod change; there is no back-off queue
here because nothing in the answer depends on time.

What is scheduled: pods with no `spec.nodeName` that are neither terminating
nor finished (the scheduler's `unassignedNonTerminatedPod` filter). They are
placed in a stable order, oldest first (creationTimestamp, then namespace and
name), like the FIFO of Kubernetes' scheduling queue without priorities, so
the same inputs always give the same bindings whatever order they came in.

Filters, each node failing on the first that refuses it, in the order of
Kubernetes' default profile (NodeUnschedulable, TaintToleration,
NodeAffinity):

1. `spec.unschedulable` (cordoned) nodes take nothing;
2. nodes that are not ready take nothing: Kubernetes taints a node whose
   lease expired `node.kubernetes.io/unreachable:NoSchedule`, and pods carry
   no toleration for it at scheduling time;
3. `spec.nodeSelector` must match the node's labels exactly (the caller puts
   `kubernetes.io/hostname=<name>` among them, as the kubelet does).

Scoring (Kubernetes' default spreading, made deterministic): among the nodes
left, prefer the one with the fewest pods of the same *spread group*, then the
fewest pods in total, then the smallest name. The spread group is the pod's
controller (owner uid); a bare pod's group is the pods of its namespace with
the same set of labels, the stand-in for the Service selecting them that
Kubernetes' SelectorSpread looks at. Pods bound earlier in the same call
count, so 4 replicas over 3 nodes land 2/1/1 and 30 over 3 land 10/10/10.
Bound pods count while they exist, terminating ones included (they still hold
their node until they are gone); finished pods do not, as the scheduler's
cache drops them. There is no resource accounting: kubelab pods declare no
requests, so any feasible node fits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, TypeAlias

from kubelab.core.pods import TERMINAL_PHASES, controller_owner, is_terminating, to_seconds
from kubelab.v1 import objects_pb2

# Kubernetes' reasons (pkg/scheduler/framework/plugins/...), one per refusing filter.
UNSCHEDULABLE = "node(s) were unschedulable"
NOT_READY = "node(s) had untolerated taint {node.kubernetes.io/unreachable: }"
SELECTOR_MISMATCH = "node(s) didn't match Pod's node affinity/selector"
NO_NODES = "no nodes available to schedule pods"


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """What the scheduler needs of a Node; `labels` include `kubernetes.io/hostname`."""

    name: str
    ready: bool
    schedulable: bool
    labels: Mapping[str, str]


class Binding(NamedTuple):
    """Bind pod `namespace/pod` to `node`."""

    namespace: str
    pod: str
    node: str


# ("owner", uid) for a controlled pod, ("labels", namespace, *sorted label items) for a bare one.
_Group: TypeAlias = tuple[str, ...]


def _group(pod: objects_pb2.Pod) -> _Group:
    owner = controller_owner(pod)
    if owner is not None:
        return ("owner", owner.uid)
    labels = sorted(f"{k}={v}" for k, v in pod.metadata.labels.items())
    return ("labels", pod.metadata.namespace, *labels)


def _refusal(pod: objects_pb2.Pod, node: NodeInfo) -> str | None:
    """Why `node` cannot take `pod`, in Kubernetes' filter order; None when it can."""
    if not node.schedulable:
        return UNSCHEDULABLE
    if not node.ready:
        return NOT_READY
    selector = pod.spec.node_selector
    if any(node.labels.get(key) != value for key, value in selector.items()):
        return SELECTOR_MISMATCH
    return None


def _queue_order(pod: objects_pb2.Pod) -> tuple[float, str, str]:
    return (to_seconds(pod.metadata.creation_timestamp), pod.metadata.namespace, pod.metadata.name)


def schedule(
    pending: Sequence[objects_pb2.Pod],
    nodes: Sequence[NodeInfo],
    bound: Sequence[objects_pb2.Pod],
) -> list[Binding]:
    """Bindings for the unbound, non-terminating, unfinished pods among `pending`.

    `bound` are the pods already on nodes (others in it are ignored). Pods no
    node can take are left out; ask `why_unschedulable` for the reason.
    """
    total: Counter[str] = Counter()
    per_group: Counter[tuple[_Group, str]] = Counter()
    for pod in bound:
        if pod.spec.node_name and pod.status.phase not in TERMINAL_PHASES:
            total[pod.spec.node_name] += 1
            per_group[_group(pod), pod.spec.node_name] += 1
    queue = sorted(
        (
            pod
            for pod in pending
            if not pod.spec.node_name
            and not is_terminating(pod)
            and pod.status.phase not in TERMINAL_PHASES
        ),
        key=_queue_order,
    )
    bindings = []
    for pod in queue:
        feasible = [node.name for node in nodes if _refusal(pod, node) is None]
        if not feasible:
            continue
        group = _group(pod)
        chosen = min(feasible, key=lambda name: (per_group[group, name], total[name], name))
        bindings.append(Binding(pod.metadata.namespace, pod.metadata.name, chosen))
        total[chosen] += 1
        per_group[group, chosen] += 1
    return bindings


def why_unschedulable(pod: objects_pb2.Pod, nodes: Sequence[NodeInfo]) -> str:
    """The `FailedScheduling` message for `pod`, as Kubernetes' FitError words it.

    Reasons are counted per node and sorted as text, as Kubernetes does:
    `0/3 nodes are available: 1 node(s) were unschedulable, 2 node(s) didn't
    match Pod's node affinity/selector.` A pod some node can take gets the
    same sentence with that node counted as available.
    """
    if not nodes:
        return NO_NODES
    reasons = Counter(r for node in nodes if (r := _refusal(pod, node)) is not None)
    available = len(nodes) - sum(reasons.values())
    histogram = sorted(f"{count} {reason}" for reason, count in reasons.items())
    message = f"{available}/{len(nodes)} nodes are available"
    return f"{message}: {', '.join(histogram)}." if histogram else f"{message}."
