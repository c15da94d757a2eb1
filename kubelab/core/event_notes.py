"""The events kubelab's actors record, in Kubernetes' reasons and words.

One function per thing that happens, returning a `Note` (type, reason, message,
and the fieldPath of a container event), so an actor records with one line at the
point where the thing happens: `events.record(pod, notes.scheduled(pod, node))`.
The reasons are the ones `kubectl describe` users know:

* default-scheduler: Scheduled, FailedScheduling (a pod bound, or not placeable);
* kubelet: Started, Killing, Unhealthy, BackOff, Failed (a container started,
  stopped, failed a probe, waits out a crash-loop back-off, cannot start);
* deployment-controller: ScalingReplicaSet (a Deployment's pod count changes);
* service-controller: EnsuringLoadBalancer, EnsuredLoadBalancer,
  SyncLoadBalancerFailed, DeletedLoadBalancer (the cloud's load balancer);
* node-controller: NodeNotReady, NodeReady (a node's lease lapses or returns),
  TaintManagerEviction (a lost node's pod deleted);
* endpoint-slice-controller: FailedToUpdateEndpointSlices (a slice write fails).

kubelab has no ReplicaSets: a Deployment owns its pods itself. `scaled` keeps
Kubernetes' reason `ScalingReplicaSet` (what people and tools look for) and says
what kubelab does: `Scaled up pods of deployment shop to 4 from 2`.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kubelab.core.events import NORMAL, WARNING
from kubelab.core.pods import is_terminating
from kubelab.v1 import objects_pb2


@dataclass(frozen=True, slots=True)
class Note:
    type: str
    reason: str
    message: str
    # A container's events name it: `spec.containers{web}` (Kubernetes' fieldPath).
    field_path: str = ""


def _container(name: str) -> str:
    return f"spec.containers{{{name}}}"


# ---------------------------------------------------------------- scheduler


def scheduled(namespace: str, name: str, node: str) -> Note:
    return Note(NORMAL, "Scheduled", f"Successfully assigned {namespace}/{name} to {node}")


def failed_scheduling(why: str) -> Note:
    return Note(WARNING, "FailedScheduling", why)


# ---------------------------------------------------------------- kubelet


def started(container: str) -> Note:
    return Note(NORMAL, "Started", f"Started container {container}", _container(container))


def killing(container: str, why: str = "") -> Note:
    message = why or f"Stopping container {container}"
    return Note(NORMAL, "Killing", message, _container(container))


def failed_probe(container: str, probe: str) -> Note:
    """The kill after a liveness (or startup) probe's last failure."""
    message = f"Container {container} failed {probe} probe, will be restarted"
    return killing(container, message)


def unhealthy(container: str, probe: str, detail: str, *, failed: bool = True) -> Note | None:
    """A failed probe (None for one that passed): `probe` is readiness, liveness or
    startup. The kubelet records every failure; repeats count up one event."""
    if not failed:
        return None
    message = f"{probe.capitalize()} probe failed: {detail}".rstrip(": ")
    return Note(WARNING, "Unhealthy", message, _container(container))


def back_off(container: str, namespace: str, pod: str, uid: str) -> Note:
    message = f"Back-off restarting failed container {container} in pod {pod}_{namespace}({uid})"
    return Note(WARNING, "BackOff", message, _container(container))


def failed_start(container: str, error: str) -> Note:
    return Note(WARNING, "Failed", f"Error: {error}", _container(container))


# ---------------------------------------------------------------- controllers


def scaled(
    deployment: str,
    owned: Sequence[objects_pb2.Pod],
    created: Sequence[objects_pb2.Pod],
    deleted: Sequence[str],
) -> Note | None:
    """A Deployment's pods going from its active ones (`owned` but terminating ones) to
    those plus `created` less `deleted` (None when the count stays)."""
    before = sum(1 for pod in owned if not is_terminating(pod))
    after = before + len(created) - len(deleted)
    if after == before:
        return None
    direction = "up" if after > before else "down"
    message = f"Scaled {direction} pods of deployment {deployment} to {after} from {before}"
    return Note(NORMAL, "ScalingReplicaSet", message)


def ensuring_load_balancer(first: bool = True) -> Note | None:
    """Only on a Service's first attempt (`first`): retries every few seconds while the
    pool is full would spend the Service's share of events (the spam filter)."""
    return Note(NORMAL, "EnsuringLoadBalancer", "Ensuring load balancer") if first else None


def ensured_load_balancer() -> Note:
    return Note(NORMAL, "EnsuredLoadBalancer", "Ensured load balancer")


def load_balancer_failed(detail: str) -> Note:
    return Note(WARNING, "SyncLoadBalancerFailed", f"Error syncing load balancer: {detail}")


def deleted_load_balancer() -> Note:
    return Note(NORMAL, "DeletedLoadBalancer", "Deleted load balancer")


def node_status(node: str, ready: bool) -> Note:
    status = "NodeReady" if ready else "NodeNotReady"
    return Note(NORMAL, status, f"Node {node} status is now: {status}")


def evicted(namespace: str, name: str) -> Note:
    return Note(NORMAL, "TaintManagerEviction", f"Marking for deletion Pod {namespace}/{name}")


def slices_failed(namespace: str, name: str, error: str) -> Note:
    message = f"Error updating Endpoint Slices for Service {namespace}/{name}: {error}"
    return Note(WARNING, "FailedToUpdateEndpointSlices", message)
