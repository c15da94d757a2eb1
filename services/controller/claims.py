"""A Deployment's ownerReference writes: adopting and releasing pods (`logic/pod_claims.py`).

The planner decides; these apply, one compare-and-swap pod update each
(fenced, like every leader write), and log one line naming the pod and the
Deployment. Adoption runs before the rest of a plan, whose counts assume it,
so any adoption that cannot happen as planned — the pod changed or went, the
Deployment was deleted or replaced meanwhile — raises `ConflictError`: the
worker retries and the next plan starts from what is there.

`deployments_selecting` is the other direction, for the event handlers: an
orphan's label change must reach the Deployments that may now adopt it
(Kubernetes' `getPodReplicaSets`), as an owned pod's change reaches its owner.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from kubelab.core import kinds
from kubelab.core.keys import ObjectKey
from kubelab.core.pods import controller_owner
from kubelab.core.selectors import SelectorError, from_label_selector
from kubelab.runtime.informer import Informer
from kubelab.store import ConflictError, Fence, NotFoundError, StoreProtocol
from kubelab.v1 import objects_pb2
from services.controller.logic.deployments import controller_reference

log = logging.getLogger("controller")


async def adopt(
    store: StoreProtocol,
    fence: Fence,
    pods: Informer[ObjectKey, objects_pb2.Pod],
    deployment: objects_pb2.Deployment,
    names: Sequence[str],
) -> None:
    """Make `deployment` the controller of the orphans `names`."""
    namespace, name = deployment.metadata.namespace, deployment.metadata.name
    try:
        fresh = await store.get(kinds.DEPLOYMENTS, namespace, name)
    except NotFoundError:
        raise ConflictError(f'deployment "{name}" is gone; nothing to adopt', 0) from None
    # Kubernetes' RecheckDeletionTimestamp: the cache may not show a deletion yet.
    if fresh.metadata.uid != deployment.metadata.uid or fresh.metadata.HasField(
        "deletion_timestamp"
    ):
        raise ConflictError(f'deployment "{name}" was deleted or replaced; not adopting', 0)
    for pod_name in names:
        pod = pods.get(ObjectKey((namespace, pod_name)))
        if pod is None or controller_owner(pod) is not None:
            raise ConflictError(f'pod "{pod_name}" changed before it was adopted', 0)
        adopted = objects_pb2.Pod()
        adopted.CopyFrom(pod)
        adopted.metadata.owner_references.append(controller_reference(deployment))
        try:
            await store.update(
                adopted, expected_revision=int(pod.metadata.resource_version), fence=fence
            )
        except NotFoundError:
            raise ConflictError(f'pod "{pod_name}" is gone; not adopting', 0) from None
        log.info(
            "adopted a pod that matches the selector",
            extra={"pod": f"{namespace}/{pod_name}", "deploy": f"{namespace}/{name}"},
        )


async def release(
    store: StoreProtocol,
    fence: Fence,
    pods: Informer[ObjectKey, objects_pb2.Pod],
    deployment: objects_pb2.Deployment,
    pod_name: str,
) -> None:
    """Drop `deployment`'s ownerReference from a pod whose labels left its selector."""
    namespace = deployment.metadata.namespace
    pod = pods.get(ObjectKey((namespace, pod_name)))
    if pod is None:
        return
    released = objects_pb2.Pod()
    released.CopyFrom(pod)
    kept = [r for r in released.metadata.owner_references if r.uid != deployment.metadata.uid]
    del released.metadata.owner_references[:]
    released.metadata.owner_references.extend(kept)
    try:
        await store.update(
            released, expected_revision=int(pod.metadata.resource_version), fence=fence
        )
    except NotFoundError:
        return
    log.info(
        "released a pod whose labels no longer match the selector",
        extra={
            "pod": f"{namespace}/{pod_name}",
            "deploy": f"{namespace}/{deployment.metadata.name}",
        },
    )


def deployments_selecting(
    deployments: Mapping[ObjectKey, objects_pb2.Deployment],
    namespace: str,
    labels: Mapping[str, str],
) -> list[ObjectKey]:
    """The Deployments of `namespace` whose selector matches `labels`."""
    found = []
    for key, deployment in deployments.items():
        if key[0] != namespace:
            continue
        try:
            selector = from_label_selector(deployment.spec.selector)
        except SelectorError:  # validation refuses these; one stored anyway selects nothing
            continue
        if not selector.empty and selector.matches(labels):
            found.append(key)
    return found
