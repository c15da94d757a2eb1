"""Pods as tests need them: one keyword per fact a controller looks at.

`make_pod("web-1", node="n1", ready_since=10.0, owner_uid="d-uid")` reads as
the situation it sets up; everything left out stays unset, as in a pod the
apiserver just stored. Times are float seconds, like the `now` the pure
controllers in `kubelab.core` take.
"""

from __future__ import annotations

from collections.abc import Mapping

from kubelab.core.pods import READY, to_timestamp
from kubelab.v1 import meta_pb2, objects_pb2


def make_pod(
    name: str,
    *,
    namespace: str = "default",
    node: str = "",
    labels: Mapping[str, str] | None = None,
    owner_uid: str | None = None,
    phase: str = "",
    ready_since: float | None = None,
    not_ready_since: float | None = None,
    created: float | None = None,
    deleted: float | None = None,
    node_selector: Mapping[str, str] | None = None,
) -> objects_pb2.Pod:
    """A Pod; `ready_since` adds Ready=True at that time, `not_ready_since` Ready=False."""
    pod = objects_pb2.Pod(api_version="v1", kind="Pod")
    pod.metadata.name = name
    pod.metadata.namespace = namespace
    pod.metadata.labels.update(labels or {})
    if owner_uid is not None:
        pod.metadata.owner_references.add(
            api_version="apps/v1", kind="Deployment", name="owner", uid=owner_uid, controller=True
        )
    if created is not None:
        pod.metadata.creation_timestamp.CopyFrom(to_timestamp(created))
    if deleted is not None:
        pod.metadata.deletion_timestamp.CopyFrom(to_timestamp(deleted))
    pod.spec.node_name = node
    pod.spec.node_selector.update(node_selector or {})
    pod.status.phase = phase
    if ready_since is not None:
        set_ready(pod, True, ready_since)
    if not_ready_since is not None:
        set_ready(pod, False, not_ready_since)
    return pod


def set_ready(pod: objects_pb2.Pod, ready: bool, since: float) -> None:
    """Replace the pod's Ready condition, as a node agent reports a probe flip at `since`."""
    kept = [c for c in pod.status.conditions if c.type != READY]
    del pod.status.conditions[:]
    pod.status.conditions.extend(kept)
    pod.status.conditions.append(
        meta_pb2.Condition(
            type=READY,
            status="True" if ready else "False",
            last_transition_time=to_timestamp(since),
        )
    )
