"""`schema_tables` for ServiceAccount (core/v1) and the rbac.authorization.k8s.io/v1 kinds.

The Go struct tags of k8s.io/api rbac/v1 and core/v1 for what kubelab has: every RBAC
list is atomic (`+listType=atomic`: a patch replaces rules and subjects whole), RoleRef
and Subject are atomic structs, a ServiceAccount's `secrets` merge by `name`. The
OpenAPI `required` fields and short descriptions (`kubectl explain`) are Kubernetes'.
"""

from __future__ import annotations

from typing import Final

# Definitions of the rbac group (`io.k8s.api.rbac.v1.<name>`).
RBAC_DEFINITIONS: Final = frozenset(
    {
        "Role",
        "ClusterRole",
        "RoleBinding",
        "ClusterRoleBinding",
        "PolicyRule",
        "AggregationRule",
        "Subject",
        "RoleRef",
    }
)

ATOMIC_LISTS: Final = (
    "Role.rules",
    "ClusterRole.rules",
    "RoleBinding.subjects",
    "ClusterRoleBinding.subjects",
    "AggregationRule.clusterRoleSelectors",
    "PolicyRule.verbs",
    "PolicyRule.apiGroups",
    "PolicyRule.resources",
    "PolicyRule.resourceNames",
    "PolicyRule.nonResourceURLs",
)
MERGED_BY_NAME: Final = ("ServiceAccount.secrets",)
ATOMIC_STRUCTS: Final = frozenset({"RoleRef", "Subject"})

REQUIRED: Final[dict[str, tuple[str, ...]]] = {
    "PolicyRule": ("verbs",),
    "RoleBinding": ("roleRef",),
    "ClusterRoleBinding": ("roleRef",),
    "RoleRef": ("apiGroup", "kind", "name"),
    "Subject": ("kind", "name"),
}

KINDS: Final = ("ServiceAccount", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")

TYPE_DESCRIPTIONS: Final = {
    "ServiceAccount": "ServiceAccount binds together: a name, understood by users, and "
    "perhaps by peripheral systems, for an identity; a principal that can be authenticated "
    "and authorized; a set of secrets.",
    "Role": "Role is a namespaced, logical grouping of PolicyRules that can be referenced as "
    "a unit by a RoleBinding.",
    "ClusterRole": "ClusterRole is a cluster level, logical grouping of PolicyRules that can "
    "be referenced as a unit by a RoleBinding or ClusterRoleBinding.",
    "RoleBinding": "RoleBinding references a role, but does not contain it. It can reference "
    "a Role in the same namespace or a ClusterRole in the global namespace. It adds who "
    "information via Subjects and namespace information by which namespace it exists in.",
    "ClusterRoleBinding": "ClusterRoleBinding references a ClusterRole, but not contain it. "
    "It can reference a ClusterRole in the global namespace, and adds who information via "
    "Subject.",
    "PolicyRule": "PolicyRule holds information that describes a policy rule, but does not "
    "contain information about who the rule applies to or which namespace the rule applies "
    "to.",
    "AggregationRule": "AggregationRule describes how to locate ClusterRoles to aggregate "
    "into the ClusterRole",
    "Subject": "Subject contains a reference to the object or user identities a role binding "
    "applies to.",
    "RoleRef": "RoleRef contains information that points to the role being used",
}

FIELD_DESCRIPTIONS: Final = {
    **{f"{kind}.metadata": "Standard object's metadata." for kind in KINDS},
    "ServiceAccount.secrets": "Secrets is a list of the secrets in the same namespace that "
    "pods running using this ServiceAccount are allowed to use.",
    "ServiceAccount.automountServiceAccountToken": "AutomountServiceAccountToken indicates "
    "whether pods running as this service account should have an API token automatically "
    "mounted.",
    "Role.rules": "Rules holds all the PolicyRules for this Role",
    "ClusterRole.rules": "Rules holds all the PolicyRules for this ClusterRole",
    "ClusterRole.aggregationRule": "AggregationRule is an optional field that describes how "
    "to build the Rules for this ClusterRole. If AggregationRule is set, then the Rules are "
    "controller managed and direct changes to Rules will be stomped by the controller.",
    "AggregationRule.clusterRoleSelectors": "ClusterRoleSelectors holds a list of selectors "
    "which will be used to find ClusterRoles and create the rules.",
    "PolicyRule.verbs": "Verbs is a list of Verbs that apply to ALL the ResourceKinds "
    "contained in this rule. '*' represents all verbs.",
    "PolicyRule.apiGroups": 'The API groups of the resources; "" is the core group and "*" '
    "every group.",
    "PolicyRule.resources": "Resources is a list of resources this rule applies to. '*' "
    "represents all resources.",
    "PolicyRule.resourceNames": "ResourceNames is an optional white list of names that the "
    "rule applies to. An empty set means that everything is allowed.",
    "PolicyRule.nonResourceURLs": "NonResourceURLs is a set of partial urls that a user "
    "should have access to. *s are allowed, but only as the full, final step in the path.",
    "RoleBinding.subjects": "Subjects holds references to the objects the role applies to.",
    "ClusterRoleBinding.subjects": "Subjects holds references to the objects the role applies to.",
    "RoleBinding.roleRef": "RoleRef can reference a Role in the current namespace or a "
    "ClusterRole in the global namespace. This field is immutable.",
    "ClusterRoleBinding.roleRef": "RoleRef can only reference a ClusterRole in the global "
    "namespace. This field is immutable.",
    "RoleRef.apiGroup": "APIGroup is the group for the resource being referenced",
    "RoleRef.kind": "Kind is the type of resource being referenced",
    "RoleRef.name": "Name is the name of resource being referenced",
    "Subject.kind": 'Kind of object being referenced: "User", "Group" or "ServiceAccount".',
    "Subject.apiGroup": 'APIGroup holds the API group of the referenced subject: "" for '
    'ServiceAccount subjects, "rbac.authorization.k8s.io" for User and Group subjects.',
    "Subject.name": "Name of the object being referenced.",
    "Subject.namespace": "Namespace of the referenced object (ServiceAccounts).",
}
