"""Stored RBAC objects -> the authorizer's values, and the state the apiserver authorizes with.

The API kinds (`kubelab.v1.access_pb2` Role, ClusterRole, RoleBinding,
ClusterRoleBinding) become `rbac`'s frozen dataclasses field for field: a rule's verbs,
apiGroups, resources, resourceNames and nonResourceURLs; a ClusterRole's
aggregationRule as selectors (`kubelab.core.selectors`, as Kubernetes'
LabelSelectorAsSelector reads them; a selector that does not parse selects nothing, as
the aggregation controller then leaves the role alone); a subject's kind, name and
namespace (its apiGroup does not change whom it names: Kubernetes' appliesTo ignores it).

`state_of` layers the stored objects over Kubernetes' bootstrap policy
(`rbac_defaults`): an object stored under a default's name replaces that default, so an
edited `view` counts as edited, and the apiserver writes the defaults at start anyway
(`rbac_bootstrap`), while a default deleted from the store keeps granting (the
cluster's own components and `system:masters` cannot be locked out by a `kubectl
delete`; Kubernetes restores deleted defaults at the next apiserver start instead).
ClusterRoles with an aggregationRule get their rules recomputed over all ClusterRoles
(`rbac_aggregation.aggregate`), so a role labelled `aggregate-to-view` counts at once.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from kubelab.core.selectors import Selector, SelectorError, from_label_selector
from kubelab.v1 import access_pb2
from services.apiserver.logic.rbac import (
    ClusterRole,
    ClusterRoleBinding,
    PolicyRule,
    RbacState,
    Role,
    RoleBinding,
    RoleRef,
    Subject,
)
from services.apiserver.logic.rbac_aggregation import aggregate
from services.apiserver.logic.rbac_defaults import (
    default_cluster_role_bindings,
    default_cluster_roles,
)


def policy_rule(rule: access_pb2.PolicyRule) -> PolicyRule:
    return PolicyRule(
        verbs=tuple(rule.verbs),
        api_groups=tuple(rule.api_groups),
        resources=tuple(rule.resources),
        resource_names=tuple(rule.resource_names),
        non_resource_urls=tuple(rule.non_resource_urls),
    )


def _rules(rules: Sequence[access_pb2.PolicyRule]) -> tuple[PolicyRule, ...]:
    return tuple(policy_rule(r) for r in rules)


def role(obj: access_pb2.Role) -> Role:
    return Role(obj.metadata.name, obj.metadata.namespace, _rules(obj.rules))


def _selectors(rule: access_pb2.AggregationRule) -> tuple[Selector, ...]:
    selectors = []
    for selector in rule.cluster_role_selectors:
        try:
            selectors.append(from_label_selector(selector))
        except SelectorError:
            continue
    return tuple(selectors)


def cluster_role(obj: access_pb2.ClusterRole) -> ClusterRole:
    aggregation = _selectors(obj.aggregation_rule) if obj.HasField("aggregation_rule") else None
    return ClusterRole(
        obj.metadata.name,
        _rules(obj.rules),
        aggregation_rule=aggregation,
        labels=dict(obj.metadata.labels),
    )


def subject(obj: access_pb2.Subject) -> Subject:
    return Subject(obj.kind, obj.name, obj.namespace)


def role_ref(obj: access_pb2.RoleRef) -> RoleRef:
    return RoleRef(obj.kind, obj.name)


def role_binding(obj: access_pb2.RoleBinding) -> RoleBinding:
    return RoleBinding(
        obj.metadata.name,
        obj.metadata.namespace,
        role_ref(obj.role_ref),
        tuple(subject(s) for s in obj.subjects),
    )


def cluster_role_binding(obj: access_pb2.ClusterRoleBinding) -> ClusterRoleBinding:
    return ClusterRoleBinding(
        obj.metadata.name,
        role_ref(obj.role_ref),
        tuple(subject(s) for s in obj.subjects),
    )


def state_of(
    *,
    roles: Iterable[access_pb2.Role] = (),
    cluster_roles: Iterable[access_pb2.ClusterRole] = (),
    role_bindings: Iterable[access_pb2.RoleBinding] = (),
    cluster_role_bindings: Iterable[access_pb2.ClusterRoleBinding] = (),
) -> RbacState:
    """The authorizer's state: the bootstrap policy with the stored objects over it."""
    by_name = {r.name: r for r in default_cluster_roles()}
    by_name |= {r.name: r for r in map(cluster_role, cluster_roles)}
    crbs = {b.name: b for b in default_cluster_role_bindings()}
    crbs |= {b.name: b for b in map(cluster_role_binding, cluster_role_bindings)}
    return RbacState.build(
        roles=map(role, roles),
        cluster_roles=aggregate(by_name.values()),
        role_bindings=map(role_binding, role_bindings),
        cluster_role_bindings=crbs.values(),
    )
