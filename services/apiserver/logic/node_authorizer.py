"""Kubernetes' Node authorizer: what a node agent (`system:node:<name>` in `system:nodes`)
may ask of the API, whoever bound which roles.

Kubernetes' counterpart is plugin/pkg/auth/authorizer/node (`NodeAuthorizer`, with the
AuthorizeNodeWithSelectors behaviour of current releases) and the node identity of
pkg/auth/nodeidentifier. A request from a node is decided here first, then by RBAC
(`authorize_chain`, Kubernetes' `--authorization-mode=Node,RBAC`):

* Nodes: a node may create, update and patch Nodes and their status (NodeRestriction,
  `node_restriction`, then limits that to its own) and read only its own Node (`node
  'n' cannot read all nodes, only its own Node object`);
* Pods: a node may get a pod bound to it (Kubernetes walks its object graph; the caller
  passes the named pod's spec.nodeName as `pod_node`), list and watch pods only with the
  field selector `spec.nodeName=<itself>`, create and delete pods and update their
  status (NodeRestriction narrows all three to its own pods);
* any other resource: the static rules Kubernetes gives every node (`NODE_RULES`, the
  `system:node` ClusterRole), cut to the kinds kubelab serves.

Everything else is "no opinion" with Kubernetes' reason text, and RBAC decides next.
kubelab has no Secrets, ConfigMaps, volumes or ServiceAccounts, so the graph checks for
those have no counterpart; nor has it Lease objects: a node's heartbeat is an etcd key
the agent's own etcd lease keeps alive, not an API object, so Kubernetes' node-lease
rules (get/create/update/delete its own Lease in kube-node-lease) are left out until
heartbeats travel through the API. Pure: no I/O.
"""

from __future__ import annotations

from services.apiserver.logic.rbac import (
    ALL_AUTHENTICATED,
    SYSTEM_MASTERS,
    Attributes,
    Decision,
    PolicyRule,
    RbacState,
    UserInfo,
    authorize,
    rules_allow,
)
from services.apiserver.logic.status_messages import go_quote

NODES_GROUP = "system:nodes"
NODE_USER_PREFIX = "system:node:"

_READ = ("get", "list", "watch")

# Kubernetes' bootstrappolicy.NodeRules, keeping the kinds kubelab serves.
NODE_RULES: tuple[PolicyRule, ...] = (
    # Service environment variables and the node's proxy.
    PolicyRule(_READ, ("",), ("services",)),
    # A node registers its Node object and reports its status (NodeRestriction: its own).
    PolicyRule(("create", "get", "list", "watch"), ("",), ("nodes",)),
    PolicyRule(("update", "patch"), ("",), ("nodes/status",)),
    PolicyRule(("update", "patch"), ("",), ("nodes",)),
    # The kubelet's event recorder.
    PolicyRule(("create", "update", "patch"), ("",), ("events",)),
    PolicyRule(_READ, ("",), ("pods",)),
    # Mirror pods in Kubernetes; NodeRestriction limits both to pods bound to the node.
    PolicyRule(("create", "delete"), ("",), ("pods",)),
    # The status of the pods the node runs (NodeRestriction: only those bound to it).
    PolicyRule(("update", "patch"), ("",), ("pods/status",)),
    PolicyRule(("get",), ("",), ("endpoints",)),
)

_NO_OPINION = Decision(False, "")


def node_user(name: str) -> UserInfo:
    """A node agent as Kubernetes' node client certificates present it."""
    return UserInfo(f"{NODE_USER_PREFIX}{name}", (NODES_GROUP, ALL_AUTHENTICATED))


def node_identity(user: UserInfo) -> tuple[str, bool]:
    """(node name, is a node): Kubernetes' default NodeIdentifier. A node is a user named
    `system:node:<name>` in the group `system:nodes`; the name may be empty."""
    if not user.name.startswith(NODE_USER_PREFIX) or NODES_GROUP not in user.groups:
        return "", False
    return user.name.removeprefix(NODE_USER_PREFIX), True


def _no_relationship(node: str) -> Decision:
    return Decision(False, f"no relationship found between node '{node}' and this object")


def _authorize_node_object(node: str, attrs: Attributes) -> Decision:
    if attrs.subresource == "" and attrs.verb in ("create", "update", "patch"):
        return Decision(True, "")
    if attrs.subresource == "" and attrs.verb in _READ:
        if attrs.name == node:
            return Decision(True, "")
        if not attrs.name:
            return Decision(False, f"node '{node}' cannot read all nodes, only its own Node object")
        return Decision(
            False, f"node '{node}' cannot read '{attrs.name}', only its own Node object"
        )
    if attrs.subresource == "status" and attrs.verb in ("update", "patch"):
        return Decision(True, "")
    return _NO_OPINION


def _authorize_related_pod(node: str, attrs: Attributes, pod_node: str | None) -> Decision:
    if not attrs.name:
        return Decision(False, "No Object name found")
    return Decision(True, "") if pod_node == node else _no_relationship(node)


def _authorize_pod(node: str, attrs: Attributes, pod_node: str | None) -> Decision:
    if attrs.subresource == "":
        if attrs.verb == "get":
            return _authorize_related_pod(node, attrs, pod_node)
        if attrs.verb in ("list", "watch"):
            if ("spec.nodeName", node) in attrs.field_selector:
                return Decision(True, "")
            if attrs.name:
                return _authorize_related_pod(node, attrs, pod_node)
            return Decision(False, "can only list/watch pods with spec.nodeName field selector")
        if attrs.verb in ("create", "delete"):
            return Decision(True, "")
    if attrs.subresource == "status" and attrs.verb in ("update", "patch"):
        return Decision(True, "")
    return _NO_OPINION


def authorize_node(attrs: Attributes, *, pod_node: str | None = None) -> Decision:
    """The Node authorizer's decision: allowed, or no opinion with Kubernetes' reason.

    `pod_node` is the spec.nodeName of the pod a pod request names (None when the
    apiserver holds no such pod); only pod reads by name consult it.
    """
    node, is_node = node_identity(attrs.user)
    if not is_node:
        return _NO_OPINION
    if not node:
        return Decision(False, f"unknown node for user {go_quote(attrs.user.name)}")
    if attrs.resource_request and attrs.api_group == "":
        if attrs.resource == "nodes":
            return _authorize_node_object(node, attrs)
        if attrs.resource == "pods":
            return _authorize_pod(node, attrs, pod_node)
    return Decision(True, "") if rules_allow(attrs, NODE_RULES) else _NO_OPINION


def authorize_chain(
    attrs: Attributes, state: RbacState, *, pod_node: str | None = None
) -> Decision:
    """Kubernetes' authorizer chain `system:masters`, Node, RBAC (its union authorizer):
    the first to allow decides; refused, the reasons given are joined by newlines."""
    if SYSTEM_MASTERS in attrs.user.groups:
        return Decision(True, "")
    by_node = authorize_node(attrs, pod_node=pod_node)
    if by_node.allowed:
        return by_node
    by_rbac = authorize(attrs, state)
    if by_rbac.allowed:
        return by_rbac
    return Decision(False, "\n".join(r for r in (by_node.reason, by_rbac.reason) if r))
