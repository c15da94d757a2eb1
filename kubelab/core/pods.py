"""Small facts about pods that every controller asks the same way.

The scheduler, the Deployment controller, node lifecycle and the EndpointSlice
reconcile all need the same answers to "is this pod ready", "is it going
away", "who controls it" and "since when has it been ready". They live here
once, with Kubernetes' definitions (`k8s.io/kubernetes/pkg/api/v1/pod` and
`pkg/controller`):

* ready: the pod's `Ready` condition has status `"True"` (`IsPodReady`);
* terminating: `metadata.deletionTimestamp` is set;
* active: neither terminating nor finished (`Succeeded`/`Failed`), which is
  what a ReplicaSet counts as a replica (`controller.IsPodActive`);
* available: ready, and ready for at least `minReadySeconds` (`IsPodAvailable`).

Times are seconds since the epoch as floats, the unit every pure function in
`kubelab.core` takes `now` in; `to_seconds` / `to_timestamp` convert the
protobuf Timestamps objects carry. Nothing here reads a clock or does I/O.
"""

from __future__ import annotations

import math

from google.protobuf.timestamp_pb2 import Timestamp

from kubelab.core.kinds import ApiObject
from kubelab.v1 import meta_pb2, objects_pb2

READY = "Ready"
# Phases after which a pod's containers never run again (restartPolicy aside).
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})


def to_seconds(ts: Timestamp) -> float:
    """A protobuf Timestamp as float seconds since the epoch."""
    return ts.seconds + ts.nanos / 1e9


def to_timestamp(seconds: float) -> Timestamp:
    """Float seconds since the epoch as a protobuf Timestamp (nanosecond precision)."""
    whole = math.floor(seconds)
    nanos = round((seconds - whole) * 1e9)
    if nanos >= 1_000_000_000:  # rounding carried into the next second
        whole, nanos = whole + 1, nanos - 1_000_000_000
    return Timestamp(seconds=whole, nanos=nanos)


def _ready_condition(pod: objects_pb2.Pod) -> meta_pb2.Condition | None:
    for condition in pod.status.conditions:
        if condition.type == READY:
            return condition
    return None


def is_ready(pod: objects_pb2.Pod) -> bool:
    """The pod's Ready condition is "True" (Kubernetes' `IsPodReady`)."""
    condition = _ready_condition(pod)
    return condition is not None and condition.status == "True"


def ready_since(pod: objects_pb2.Pod) -> float | None:
    """When the pod last became Ready; None when it is not ready or the time is unknown."""
    condition = _ready_condition(pod)
    if condition is None or condition.status != "True":
        return None
    if not condition.HasField("last_transition_time"):
        return None
    return to_seconds(condition.last_transition_time)


def is_terminating(pod: objects_pb2.Pod) -> bool:
    """Deletion was requested: the pod is on its way out, whatever it still serves."""
    return pod.metadata.HasField("deletion_timestamp")


def is_active(pod: objects_pb2.Pod) -> bool:
    """Counts as a running replica: not terminating and not finished (`IsPodActive`)."""
    return not is_terminating(pod) and pod.status.phase not in TERMINAL_PHASES


def is_available(pod: objects_pb2.Pod, min_ready_seconds: int, now: float) -> bool:
    """Ready for at least `min_ready_seconds` at `now` (Kubernetes' `IsPodAvailable`).

    With `min_ready_seconds == 0` every ready pod is available. Otherwise the
    Ready condition must carry its transition time; Kubernetes wants it
    strictly before `now - minReadySeconds`, here it may equal it, so a caller
    that wakes up exactly at `ready_since + minReadySeconds` sees the pod
    available.
    """
    if not is_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = ready_since(pod)
    return since is not None and since + min_ready_seconds <= now


def controller_owner(obj: ApiObject) -> meta_pb2.OwnerReference | None:
    """The owner reference with `controller: true`; Kubernetes allows at most one."""
    for ref in obj.metadata.owner_references:
        if ref.controller:
            return ref
    return None
