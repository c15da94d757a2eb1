"""Objects as users see them: a pod with the status its node reports, a node with its liveness.

A pod's status does not live in the pod object: its node agent writes it to a
key attached to the node's lease (DESIGN §2.2), so it vanishes when the node
dies. A node is Ready while its agent's lease lives. These pure functions put
the two together for reads (`kubelab get pods`, `get nodes`), in Kubernetes'
shapes: no reported status → phase Pending (Unknown when the pod's node is
gone); a node without a live lease → condition Ready "Unknown", reason
NodeStatusUnknown, as Kubernetes' node lifecycle controller marks it.
"""

from __future__ import annotations

from collections.abc import Container

from kubelab.v1 import objects_pb2


def pod_with_status(
    pod: objects_pb2.Pod,
    status: objects_pb2.PodStatus | None,
    live_nodes: Container[str] | None = None,
) -> objects_pb2.Pod:
    merged = objects_pb2.Pod()
    merged.CopyFrom(pod)
    if status is not None:
        merged.status.CopyFrom(status)
        return merged
    merged.ClearField("status")
    node_gone = (
        bool(pod.spec.node_name) and live_nodes is not None and pod.spec.node_name not in live_nodes
    )
    merged.status.phase = "Unknown" if node_gone else "Pending"
    if node_gone:
        merged.status.reason = "NodeLost"
        merged.status.message = f"Node {pod.spec.node_name} which was running pod is unresponsive"
    scheduled = merged.status.conditions.add(type="PodScheduled")
    scheduled.status = "True" if pod.spec.node_name else "False"
    if not pod.spec.node_name:
        scheduled.reason = "Unschedulable" if pod.status.reason == "Unschedulable" else ""
    return merged


def node_with_liveness(node: objects_pb2.Node, alive: bool) -> objects_pb2.Node:
    merged = objects_pb2.Node()
    merged.CopyFrom(node)
    kept = [c for c in merged.status.conditions if c.type != "Ready"]
    del merged.status.conditions[:]
    merged.status.conditions.extend(kept)
    ready = merged.status.conditions.add(type="Ready")
    if alive:
        ready.status, ready.reason = "True", "KubeletReady"
        ready.message = "node agent is posting ready status"
    else:
        ready.status, ready.reason = "Unknown", "NodeStatusUnknown"
        ready.message = "Kubelet stopped posting node status."
    return merged
