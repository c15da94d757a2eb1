"""Which pods a controller claims: ControllerRef adoption and release. Pure.

Kubernetes' `PodControllerRefManager.ClaimPods`, as the ReplicaSet
controller runs it on every sync, with the controller's label selector:

* a pod whose controller ownerReference is this controller is *claimed*
  while its labels match the selector; once they stop matching it is
  *released* (the caller removes that ownerReference), unless the controller
  is being deleted or the pod is terminating, and is counted nowhere, so the
  controller makes a replacement;
* an *orphan* (no ownerReference with `controller: true`) whose labels match
  is *adopted* (the caller adds this controller's ownerReference) and counted
  at once, so the same plan already deletes a surplus; only active orphans
  (neither terminating nor finished, Kubernetes filters with
  `FilterActivePods` before claiming), and never by a controller being
  deleted;
* a pod controlled by anyone else is never touched.

The caller applies adoptions before anything else of the plan and plans
again if one fails: the counts assumed it. Before adopting it also re-reads
the controller from the store (Kubernetes' `RecheckDeletionTimestamp`), so a
controller deleted a moment ago adopts nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kubelab.core.pods import controller_owner, is_active, is_terminating
from kubelab.core.selectors import Selector
from kubelab.v1 import objects_pb2


@dataclass(frozen=True, slots=True)
class Claims:
    """The pods one controller counts, and the ownerReference writes that makes true."""

    # Owned pods that match, then the orphans being adopted.
    claimed: tuple[objects_pb2.Pod, ...]
    # Names of orphans to adopt (add the controller's ownerReference), sorted.
    adopt: tuple[str, ...]
    # Names of owned pods to release (remove the controller's ownerReference), sorted.
    release: tuple[str, ...]


def claim_pods(
    selector: Selector,
    owned: Sequence[objects_pb2.Pod],
    orphans: Sequence[objects_pb2.Pod],
    *,
    deleting: bool,
) -> Claims:
    """Claim from `owned` (controlled by this controller) and `orphans` (the namespace's pods
    with no controller; any that has one is ignored)."""
    matching = [pod for pod in owned if selector.matches(pod.metadata.labels)]
    release = sorted(
        pod.metadata.name
        for pod in owned
        if not deleting and not is_terminating(pod) and not selector.matches(pod.metadata.labels)
    )
    adopted = (
        []
        if deleting
        else sorted(
            (
                pod
                for pod in orphans
                if controller_owner(pod) is None
                and is_active(pod)
                and selector.matches(pod.metadata.labels)
            ),
            key=lambda pod: pod.metadata.name,
        )
    )
    return Claims(
        claimed=(*matching, *adopted),
        adopt=tuple(pod.metadata.name for pod in adopted),
        release=tuple(release),
    )
