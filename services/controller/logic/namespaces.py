"""Emptying a terminating namespace: what the namespace controller does next (pure).

Kubernetes' namespace controller (pkg/controller/namespace/deletion): a namespace
marked for deletion is Terminating; the controller deletes everything it holds,
again on every pass until nothing is left, then removes its `kubernetes`
finalizer, and the namespace itself goes once no finalizer is left.

`plan_deletion(namespace, contents, now)` is one pass over what the store holds
now. Every object is deleted, in the order of `CONTENT_KINDS` (Deployments
first, so no controller re-creates pods; events last, which say what happened
until then), except pods: a pod bound to a node is deleted gracefully, as the
apiserver deletes it for a user (a deletionTimestamp; its node agent stops it
and removes it), an unbound one at once, and a pod already terminating is
waited for. With nothing left the plan finalizes: the namespace's finalizers
without `kubernetes`, and whether it can now be deleted (none left).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kubelab.core import kinds
from kubelab.core.kinds import ApiObject, KindInfo
from kubelab.core.pods import is_terminating
from kubelab.core.validation.namespaces import FINALIZER_KUBERNETES, TERMINATING
from kubelab.v1 import objects_pb2

CONTENT_KINDS: tuple[KindInfo, ...] = (
    kinds.DEPLOYMENTS,
    kinds.SERVICES,
    kinds.PODS,
    kinds.ENDPOINTSLICES,
    kinds.ROLEBINDINGS,
    kinds.ROLES,
    kinds.SERVICEACCOUNTS,
    kinds.EVENTS,
)


@dataclass(frozen=True, slots=True)
class DeletionPlan:
    # Objects to delete now, each as read (its resourceVersion is the precondition).
    delete: tuple[ApiObject, ...] = ()
    # Bound pods to delete gracefully (mark with a deletionTimestamp).
    mark: tuple[objects_pb2.Pod, ...] = ()
    # Objects still there after this pass (terminating pods included).
    remaining: int = 0
    # Once empty: the finalizers to keep, and whether the namespace may go.
    finalizers: tuple[str, ...] | None = None
    remove: bool = False

    @property
    def empty(self) -> bool:
        return not self.delete and not self.mark and self.finalizers is None


def is_terminating_namespace(namespace: ApiObject | None) -> bool:
    return isinstance(namespace, objects_pb2.Namespace) and (
        namespace.status.phase == TERMINATING or namespace.metadata.HasField("deletion_timestamp")
    )


def plan_deletion(
    namespace: objects_pb2.Namespace, contents: Mapping[KindInfo, Sequence[ApiObject]]
) -> DeletionPlan:
    """One pass of emptying `namespace`, given every object of `CONTENT_KINDS` it holds."""
    if not is_terminating_namespace(namespace):
        return DeletionPlan()
    delete: list[ApiObject] = []
    mark: list[objects_pb2.Pod] = []
    remaining = 0
    for info in CONTENT_KINDS:
        for obj in contents.get(info, ()):
            remaining += 1
            if isinstance(obj, objects_pb2.Pod):
                if is_terminating(obj):
                    continue
                if obj.spec.node_name:
                    mark.append(obj)
                    continue
            delete.append(obj)
    if remaining:
        return DeletionPlan(tuple(delete), tuple(mark), remaining)
    kept = tuple(f for f in namespace.spec.finalizers if f != FINALIZER_KUBERNETES)
    return DeletionPlan(finalizers=kept, remove=not kept)
