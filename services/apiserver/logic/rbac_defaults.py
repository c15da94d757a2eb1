"""The ClusterRoles and ClusterRoleBindings an apiserver starts with.

Kubernetes' counterpart is plugin/pkg/auth/authorizer/rbac/bootstrappolicy (policy.go;
its rendering in testdata/cluster-roles.yaml). Its roles are kept as they are, cut to
the resources kubelab serves (core: namespaces, services(/status), endpoints (read
only), pods(/status, /log), nodes, events, serviceaccounts; apps: deployments(/scale, /status);
discovery.k8s.io: endpointslices; rbac.authorization.k8s.io; the self-reviews `kubectl
auth can-i` and `whoami` create):

* `cluster-admin` (everything, bound to `system:masters`);
* `admin`, `edit`, `view`, which own no rules: they aggregate the roles labelled
  `rbac.authorization.k8s.io/aggregate-to-<name>: "true"` (`system:aggregate-to-*`
  here, any a user adds later), `view` being aggregated into `edit` and `edit` into
  `admin`. Since Kubernetes 1.22 `edit` no longer writes Endpoints; nor does it here;
* `system:discovery`, `system:basic-user` (bound to every authenticated user) and
  `system:public-info-viewer` (bound to everyone): `kubectl api-resources`, `version`
  and `auth can-i` work for any user;
* `system:node` (the Node authorizer's static rules, its binding left without subjects
  as Kubernetes leaves it) and `system:node-proxier` (kube-proxy's reads).

kubelab's own actors get least-privilege roles in `rbac_actor_roles`. `bootstrap_state`
builds the authorizer's state from all of them. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import replace

from kubelab.core.selectors import from_match_labels
from services.apiserver.logic import rbac_actor_roles
from services.apiserver.logic.node_authorizer import NODE_RULES
from services.apiserver.logic.rbac import (
    ALL,
    ALL_AUTHENTICATED,
    ALL_UNAUTHENTICATED,
    CLUSTER_ROLE,
    GROUP,
    SYSTEM_MASTERS,
    USER,
    ClusterRole,
    ClusterRoleBinding,
    PolicyRule,
    RbacState,
    RoleRef,
    Subject,
)
from services.apiserver.logic.rbac_aggregation import aggregate

# bootstrappolicy's verb sets, in its order.
READ = ("get", "list", "watch")
WRITE = ("create", "update", "patch", "delete", "deletecollection")
READ_WRITE = READ + WRITE

# Every role and binding an apiserver bootstraps carries this label.
BOOTSTRAP_LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
AGGREGATE_TO_ADMIN = "rbac.authorization.k8s.io/aggregate-to-admin"
AGGREGATE_TO_EDIT = "rbac.authorization.k8s.io/aggregate-to-edit"
AGGREGATE_TO_VIEW = "rbac.authorization.k8s.io/aggregate-to-view"

KUBE_PROXY_USER = "system:kube-proxy"

_CORE, _APPS, _DISCOVERY = "", "apps", "discovery.k8s.io"
_RBAC = "rbac.authorization.k8s.io"


def _aggregating(name: str, selects: str, labels: dict[str, str]) -> ClusterRole:
    return ClusterRole(
        name,
        aggregation_rule=(from_match_labels({selects: "true"}),),
        labels={**BOOTSTRAP_LABELS, **labels},
    )


def _role(name: str, *rules: PolicyRule, labels: dict[str, str] | None = None) -> ClusterRole:
    return ClusterRole(name, rules, labels={**BOOTSTRAP_LABELS, **(labels or {})})


KUBERNETES_CLUSTER_ROLES: tuple[ClusterRole, ...] = (
    _role(
        "cluster-admin",
        PolicyRule((ALL,), (ALL,), (ALL,)),
        PolicyRule((ALL,), non_resource_urls=(ALL,)),
    ),
    _aggregating("admin", AGGREGATE_TO_ADMIN, {}),
    _aggregating("edit", AGGREGATE_TO_EDIT, {AGGREGATE_TO_ADMIN: "true"}),
    _aggregating("view", AGGREGATE_TO_VIEW, {AGGREGATE_TO_EDIT: "true"}),
    _role(
        "system:aggregate-to-admin",
        # Granting within a namespace is what admin adds to edit.
        PolicyRule(READ_WRITE, (_RBAC,), ("roles", "rolebindings")),
        labels={AGGREGATE_TO_ADMIN: "true"},
    ),
    _role(
        "system:aggregate-to-edit",
        PolicyRule(WRITE, (_CORE,), ("pods",)),
        PolicyRule(WRITE, (_CORE,), ("serviceaccounts", "services", "events")),
        PolicyRule(WRITE, (_APPS,), ("deployments", "deployments/scale")),
        labels={AGGREGATE_TO_EDIT: "true"},
    ),
    _role(
        "system:aggregate-to-view",
        PolicyRule(
            READ, (_CORE,), ("pods", "serviceaccounts", "services", "services/status", "endpoints")
        ),
        PolicyRule(READ, (_CORE,), ("events", "pods/log", "pods/status")),
        # Reading the namespace at namespace scope: which namespaces one may use.
        PolicyRule(READ, (_CORE,), ("namespaces",)),
        PolicyRule(READ, (_DISCOVERY,), ("endpointslices",)),
        PolicyRule(READ, (_APPS,), ("deployments", "deployments/scale", "deployments/status")),
        labels={AGGREGATE_TO_VIEW: "true"},
    ),
    _role(
        "system:discovery",
        PolicyRule(
            ("get",),
            non_resource_urls=(
                "/api",
                "/api/*",
                "/apis",
                "/apis/*",
                "/healthz",
                "/livez",
                "/openapi",
                "/openapi/*",
                "/readyz",
                "/version",
                "/version/",
            ),
        ),
    ),
    _role(
        "system:basic-user",
        PolicyRule(
            ("create",),
            ("authorization.k8s.io",),
            ("selfsubjectaccessreviews", "selfsubjectrulesreviews"),
        ),
        PolicyRule(("create",), ("authentication.k8s.io",), ("selfsubjectreviews",)),
    ),
    _role(
        "system:public-info-viewer",
        PolicyRule(
            ("get",),
            non_resource_urls=("/healthz", "/livez", "/readyz", "/version", "/version/"),
        ),
    ),
    _role("system:node", *NODE_RULES),
    _role(
        "system:node-proxier",
        PolicyRule(("list", "watch"), (_CORE,), ("endpoints", "services")),
        PolicyRule(READ, (_CORE,), ("nodes",)),
        PolicyRule(("create", "patch", "update"), (_CORE,), ("events",)),
        PolicyRule(("list", "watch"), (_DISCOVERY,), ("endpointslices",)),
    ),
)


def _binding(name: str, *subjects: Subject, role: str | None = None) -> ClusterRoleBinding:
    return ClusterRoleBinding(name, RoleRef(CLUSTER_ROLE, role or name), subjects)


KUBERNETES_CLUSTER_ROLE_BINDINGS: tuple[ClusterRoleBinding, ...] = (
    _binding("cluster-admin", Subject(GROUP, SYSTEM_MASTERS)),
    _binding("system:discovery", Subject(GROUP, ALL_AUTHENTICATED)),
    _binding("system:basic-user", Subject(GROUP, ALL_AUTHENTICATED)),
    _binding(
        "system:public-info-viewer",
        Subject(GROUP, ALL_AUTHENTICATED),
        Subject(GROUP, ALL_UNAUTHENTICATED),
    ),
    # Deprecated since the Node authorizer (1.7); kept, without subjects.
    _binding("system:node"),
    _binding("system:node-proxier", Subject(USER, KUBE_PROXY_USER)),
)


def default_cluster_roles() -> tuple[ClusterRole, ...]:
    """Kubernetes' defaults and kubelab's actors' roles, aggregated, in name order."""
    actors = (
        replace(role, labels={**BOOTSTRAP_LABELS, **role.labels})
        for role in rbac_actor_roles.ACTOR_CLUSTER_ROLES
    )
    return aggregate((*KUBERNETES_CLUSTER_ROLES, *actors))


def default_cluster_role_bindings() -> tuple[ClusterRoleBinding, ...]:
    return (*KUBERNETES_CLUSTER_ROLE_BINDINGS, *rbac_actor_roles.ACTOR_CLUSTER_ROLE_BINDINGS)


def bootstrap_state() -> RbacState:
    """The authorizer's state of a cluster holding only the default RBAC objects."""
    return RbacState.build(
        cluster_roles=default_cluster_roles(),
        cluster_role_bindings=default_cluster_role_bindings(),
    )
