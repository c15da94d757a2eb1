"""Kubernetes' NodeRestriction admission: a node agent changes only what is its own.

Kubernetes' counterpart is plugin/pkg/admission/noderestriction. The Node authorizer
(`node_authorizer`) lets every node write Nodes and pod statuses, because it cannot
see the objects; this plugin runs on the write itself, once the apiserver knows the
stored object, and refuses in Kubernetes' words:

* a node creates, updates (patches are updates here) or deletes only its own Node
  (`node "n1" is not allowed to modify node "n2"`), and may set only the labels a
  kubelet may set: none under node-restriction.kubernetes.io, and of kubernetes.io and
  k8s.io labels only kubelet's own (`kubernetes.io/hostname`, `kubernetes.io/os`, the
  topology labels, anything under kubelet.kubernetes.io or node.kubernetes.io);
* it updates the status of a pod only when that pod is bound to it, and not the pod's
  labels through it; it deletes only pods bound to it;
* it creates no pods: Kubernetes allows a node only mirror pods of its static pods, and
  kubelab runs no static pods, so every create gets the refusal Kubernetes gives a pod
  without the mirror annotation.

Requests from anyone but a node pass untouched. kubelab Nodes have no taints nor
configSource, so those checks have nothing to compare. A pod or Node that does not
exist is the caller's NotFound, answered before admission as Kubernetes does. Pure: no
I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from services.apiserver.logic.node_authorizer import node_identity
from services.apiserver.logic.rbac import Decision, UserInfo
from services.apiserver.logic.status_messages import go_quote

MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
NODE_RESTRICTION_LABEL_NAMESPACE = "node-restriction.kubernetes.io"

# k8s.io/kubelet/pkg/apis: the kubernetes.io labels a kubelet may set on its own Node.
KUBELET_LABELS = frozenset(
    {
        "kubernetes.io/hostname",
        "kubernetes.io/os",
        "kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/arch",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
        "node.kubernetes.io/instance-type",
        "beta.kubernetes.io/instance-type",
    }
)
KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")


class Operation(StrEnum):
    """admission.Operation; a PATCH is an UPDATE."""

    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    CONNECT = "CONNECT"


@dataclass(frozen=True, slots=True)
class AdmissionRequest:
    """A write as admission sees it.

    `name` is the request's name (on create, the new object's name, else its
    generateName). `bound_node` is the stored pod's spec.nodeName for a pod request.
    `old_labels` are the stored object's labels, `new_labels` the submitted object's.
    """

    user: UserInfo
    operation: Operation
    resource: str
    api_group: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    bound_node: str | None = None
    old_labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    new_labels: Mapping[str, str] = field(default_factory=dict, hash=False)


_ADMITTED = Decision(True, "")


def _refused(reason: str) -> Decision:
    return Decision(False, reason)


def _label_namespace(key: str) -> str:
    prefix, slash, _ = key.partition("/")
    return prefix if slash else ""


def _within(namespace: str, domain: str) -> bool:
    return namespace == domain or namespace.endswith("." + domain)


def _is_kubelet_label(key: str) -> bool:
    namespace = _label_namespace(key)
    return key in KUBELET_LABELS or any(_within(namespace, d) for d in KUBELET_LABEL_NAMESPACES)


def forbidden_node_labels(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    """The label keys added, removed or changed between `old` and `new` that a node may
    not set on its Node, sorted (Kubernetes' getForbiddenLabels)."""
    modified = {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)}
    forbidden = set()
    for key in modified:
        namespace = _label_namespace(key)
        if _within(namespace, NODE_RESTRICTION_LABEL_NAMESPACE):
            forbidden.add(key)
        kubernetes = _within(namespace, "kubernetes.io") or _within(namespace, "k8s.io")
        if kubernetes and not _is_kubelet_label(key):
            forbidden.add(key)
    return sorted(forbidden)


def _admit_pod(node: str, request: AdmissionRequest) -> Decision:
    quoted = go_quote(node)
    bound = request.bound_node or ""
    match request.operation:
        case Operation.CREATE:
            return _refused(
                f"pod does not have {go_quote(MIRROR_POD_ANNOTATION)} annotation, "
                f"node {quoted} can only create mirror pods"
            )
        case Operation.DELETE if bound != node:
            return _refused(f"node {quoted} can only delete pods with spec.nodeName set to itself")
        case Operation.DELETE:
            return _ADMITTED
    return _refused(
        f"unexpected operation {go_quote(request.operation.value)}, "
        f"node {quoted} can only create and delete mirror pods"
    )


def _admit_pod_status(node: str, request: AdmissionRequest) -> Decision:
    quoted = go_quote(node)
    if request.operation != Operation.UPDATE:
        return _refused(f"unexpected operation {go_quote(request.operation.value)}")
    if (request.bound_node or "") != node:
        return _refused(
            f"node {quoted} can only update pod status for pods with spec.nodeName set to itself"
        )
    if dict(request.old_labels) != dict(request.new_labels):
        return _refused(f"node {quoted} cannot update labels through pod status")
    return _ADMITTED


def _admit_node(node: str, request: AdmissionRequest) -> Decision:
    quoted = go_quote(node)
    if request.name != node:
        return _refused(f"node {quoted} is not allowed to modify node {go_quote(request.name)}")
    if request.operation == Operation.CREATE:
        if forbidden := forbidden_node_labels({}, request.new_labels):
            return _refused(
                f"node {quoted} is not allowed to set the following labels: {', '.join(forbidden)}"
            )
    if request.operation == Operation.UPDATE:
        if forbidden := forbidden_node_labels(request.old_labels, request.new_labels):
            # Kubernetes' wording, without the node's name.
            return _refused(f"is not allowed to modify labels: {', '.join(forbidden)}")
    return _ADMITTED


def admit(request: AdmissionRequest) -> Decision:
    """NodeRestriction's verdict on a write: admitted, or refused with its reason."""
    node, is_node = node_identity(request.user)
    if not is_node:
        return _ADMITTED
    if not node:
        return _refused(f"could not determine node from user {go_quote(request.user.name)}")
    if request.api_group != "":
        return _ADMITTED
    if request.resource == "pods":
        if request.subresource == "":
            return _admit_pod(node, request)
        if request.subresource == "status":
            return _admit_pod_status(node, request)
        return _refused(
            f"unexpected pod subresource {go_quote(request.subresource)}, "
            "only 'status' and 'eviction' are allowed"
        )
    if request.resource == "nodes":
        return _admit_node(node, request)
    return _ADMITTED


def admission_forbidden_message(request: AdmissionRequest, reason: str) -> str:
    """The 403 Status message of a refusal (admission.NewForbidden): `pods "x" is
    forbidden: <reason>`, the name `Unknown` when the request names none."""
    resource = f"{request.resource}.{request.api_group}" if request.api_group else request.resource
    return f"{resource} {go_quote(request.name or 'Unknown')} is forbidden: {reason}"
