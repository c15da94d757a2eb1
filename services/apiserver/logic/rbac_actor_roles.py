"""Least-privilege ClusterRoles for kubelab's own actors, derived from what their code
reads and writes.

Kubernetes gives each control-plane component a role of its own
(`system:kube-controller-manager`, `system:kube-scheduler`, the `system:controller:*`
roles, `system:kube-dns`); these are kubelab's counterparts, each rule the verbs the
actor's code calls on the store today, as API verbs (an informer is list + watch, a
write of only `status` is an update of the `status` subresource). Each rule says who
needs it. What the actors keep outside the API has no rule: the controller's leader
election and the node heartbeats are etcd leases (Kubernetes: coordination.k8s.io
Leases), the allocation claims the repair loop and the cloud-stub read are etcd keys
written with the Services, and the cloud-stub's load-balancer records are its own.

* the controller (User `system:kube-controller-manager`): one process running what
  Kubernetes splits among kube-controller-manager's loops, kube-scheduler and the cloud
  controller's service controller (services/controller/reconcilers.py);
* the DNS server (ServiceAccount kube-system/kube-dns, as Kubernetes binds kube-dns):
  reads Services and EndpointSlices (services/dns/sync.py), nothing else;
* the cloud-stub (User `system:kubelab:cloud-stub`): reads Nodes and which NodePorts
  Services hold (services/cloud_stub/cluster.py);
* the node agents run kube-proxy in the same process as the kubelet, under the node's
  identity: `system:kubelab:node-proxier` binds Kubernetes' `system:node-proxier` role
  to the group `system:nodes` (node_agent/proxy.py, lab_network.py watch Services,
  EndpointSlices and every Node, which the Node authorizer alone does not allow).

Pure data: no I/O.
"""

from __future__ import annotations

from services.apiserver.logic.node_authorizer import NODES_GROUP
from services.apiserver.logic.rbac import (
    CLUSTER_ROLE,
    GROUP,
    SERVICE_ACCOUNT,
    USER,
    ClusterRole,
    ClusterRoleBinding,
    PolicyRule,
    RoleRef,
    Subject,
)

CONTROLLER_USER = "system:kube-controller-manager"
CLOUD_STUB_USER = "system:kubelab:cloud-stub"
DNS_SUBJECT = Subject(SERVICE_ACCOUNT, "kube-dns", "kube-system")

_CORE, _APPS, _DISCOVERY = "", "apps", "discovery.k8s.io"
_RBAC = "rbac.authorization.k8s.io"

CONTROLLER_ROLE = ClusterRole(
    "system:kube-controller-manager",
    (
        # pods: the informer every loop shares and the namespace deleter's listing; the
        # Deployment controller creates them; the scheduler binds (spec.nodeName) and the
        # Deployment controller adopts and releases (ownerReferences) by update; pod GC,
        # node lifecycle's evictions, scale-down and the namespace deleter delete.
        PolicyRule(("list", "watch", "create", "update", "delete"), (_CORE,), ("pods",)),
        # nodes: the scheduler's and node lifecycle's informer; pod GC re-reads one
        # before collecting its pods.
        PolicyRule(("get", "list", "watch"), (_CORE,), ("nodes",)),
        # services: the EndpointSlice and load-balancer controllers' informer, the
        # repair loop's listing; the namespace deleter deletes them.
        PolicyRule(("list", "watch", "delete"), (_CORE,), ("services",)),
        # The load-balancer controller writes status.loadBalancer.
        PolicyRule(("update",), (_CORE,), ("services/status",)),
        # namespaces: the namespace deleter reads, drops its finalizer (kubelab has no
        # namespaces/finalize) and deletes it when empty.
        PolicyRule(("get", "list", "watch", "update", "delete"), (_CORE,), ("namespaces",)),
        # events: the event recorder creates them and re-reads a repeat to count it; the
        # namespace deleter lists and deletes them.
        PolicyRule(("get", "list", "create", "update", "delete"), (_CORE,), ("events",)),
        # deployments: the Deployment controller's informer, its re-read before adopting
        # (Kubernetes' RecheckDeletionTimestamp); the namespace deleter deletes them.
        PolicyRule(("get", "list", "watch", "delete"), (_APPS,), ("deployments",)),
        # The Deployment controller writes replicas counts and conditions.
        PolicyRule(("update",), (_APPS,), ("deployments/status",)),
        # serviceaccounts: the serviceaccounts controller's informer and its `default`
        # in every namespace; the namespace deleter deletes them.
        PolicyRule(("list", "watch", "create", "delete"), (_CORE,), ("serviceaccounts",)),
        # The namespace deleter lists and deletes a namespace's roles and bindings.
        PolicyRule(("list", "delete"), (_RBAC,), ("roles", "rolebindings")),
        # The EndpointSlice controller owns every slice; the namespace deleter lists
        # them with the rest.
        PolicyRule(
            ("list", "watch", "create", "update", "delete"), (_DISCOVERY,), ("endpointslices",)
        ),
    ),
)

DNS_ROLE = ClusterRole(
    "system:kube-dns",
    # The zone is rendered from Services and their EndpointSlices' ready addresses
    # (Kubernetes' system:kube-dns reads Endpoints; CoreDNS today reads slices).
    (
        PolicyRule(("list", "watch"), (_CORE,), ("services",)),
        PolicyRule(("list", "watch"), (_DISCOVERY,), ("endpointslices",)),
    ),
)

CLOUD_STUB_ROLE = ClusterRole(
    "system:kubelab:cloud-stub",
    (
        # A load balancer forwards to ready nodes: an informer, and a fresh list when a
        # request names a node the informer has not seen yet.
        PolicyRule(("list", "watch"), (_CORE,), ("nodes",)),
        # Which NodePorts exist; read from the allocation claims today, through the API
        # that is the Services' spec.ports[].nodePort.
        PolicyRule(("list",), (_CORE,), ("services",)),
    ),
)

ACTOR_CLUSTER_ROLES: tuple[ClusterRole, ...] = (CONTROLLER_ROLE, DNS_ROLE, CLOUD_STUB_ROLE)

ACTOR_CLUSTER_ROLE_BINDINGS: tuple[ClusterRoleBinding, ...] = (
    ClusterRoleBinding(
        CONTROLLER_ROLE.name,
        RoleRef(CLUSTER_ROLE, CONTROLLER_ROLE.name),
        (Subject(USER, CONTROLLER_USER),),
    ),
    ClusterRoleBinding(DNS_ROLE.name, RoleRef(CLUSTER_ROLE, DNS_ROLE.name), (DNS_SUBJECT,)),
    ClusterRoleBinding(
        CLOUD_STUB_ROLE.name,
        RoleRef(CLUSTER_ROLE, CLOUD_STUB_ROLE.name),
        (Subject(USER, CLOUD_STUB_USER),),
    ),
    ClusterRoleBinding(
        "system:kubelab:node-proxier",
        RoleRef(CLUSTER_ROLE, "system:node-proxier"),
        (Subject(GROUP, NODES_GROUP),),
    ),
)
