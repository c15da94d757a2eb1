"""The default ClusterRoles and ClusterRoleBindings as stored objects, and their reconciliation.

Kubernetes' apiserver writes its bootstrap policy (`rbac_defaults`) at start and keeps
it current (pkg/registry/rbac/rest's PostStartHook and pkg/registry/rbac/reconciliation,
`computeReconciledRole` / `computeReconciledRoleBinding` with RemoveExtraPermissions
off), so `kubectl get clusterroles` lists cluster-admin, admin, edit, view, system:...
Each default carries the `kubernetes.io/bootstrapping: rbac-defaults` label and the
`rbac.authorization.kubernetes.io/autoupdate: "true"` annotation. `reconcile_*` gives
the object to write, or None when nothing is to change:

* missing: create it as the default;
* annotated `autoupdate: "false"`: the user's, left alone;
* otherwise the labels and annotations are the default's with the stored ones over
  them; a role keeps its rules and gains the default's rules it does not cover (rule
  coverage as Kubernetes' `Covers`: every verb/group/resource/name a default rule names
  is allowed by some stored rule), an aggregated role the default's selectors it lacks
  (its rules are the aggregation's); a binding keeps its subjects and gains the missing
  ones; a binding whose roleRef differs is recreated (`Recreate`: roleRef is immutable).

An aggregated default is written with the rules aggregation gives at that moment, as
Kubernetes' aggregation controller fills them in right after. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from kubelab.core import kinds
from kubelab.core.selectors import Operator, Selector
from kubelab.v1 import access_pb2, meta_pb2
from services.apiserver.logic.rbac import (
    ANONYMOUS_USER,
    Attributes,
    ClusterRole,
    ClusterRoleBinding,
    PolicyRule,
    Subject,
    rules_allow,
)
from services.apiserver.logic.rbac_defaults import (
    BOOTSTRAP_LABELS,
    default_cluster_role_bindings,
    default_cluster_roles,
)
from services.apiserver.logic.rbac_objects import policy_rule

AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
_EXPRESSIONS = {
    Operator.IN: "In",
    Operator.NOT_IN: "NotIn",
    Operator.EXISTS: "Exists",
    Operator.DOES_NOT_EXIST: "DoesNotExist",
}


# ---------------------------------------------------------------- dataclasses -> objects


def _meta(name: str, labels: dict[str, str]) -> meta_pb2.ObjectMeta:
    return meta_pb2.ObjectMeta(name=name, labels=labels, annotations={AUTOUPDATE: "true"})


def policy_rule_object(rule: PolicyRule) -> access_pb2.PolicyRule:
    return access_pb2.PolicyRule(
        verbs=rule.verbs,
        api_groups=rule.api_groups,
        resources=rule.resources,
        resource_names=rule.resource_names,
        non_resource_urls=rule.non_resource_urls,
    )


def label_selector_object(selector: Selector) -> meta_pb2.LabelSelector:
    out = meta_pb2.LabelSelector()
    for requirement in selector.requirements:
        if requirement.operator is Operator.EQUALS:
            out.match_labels[requirement.key] = next(iter(requirement.values))
        else:  # `!=` has no LabelSelector form; the defaults use none
            out.match_expressions.append(
                meta_pb2.LabelSelectorRequirement(
                    key=requirement.key,
                    operator=_EXPRESSIONS.get(requirement.operator, "NotIn"),
                    values=sorted(requirement.values),
                )
            )
    return out


def cluster_role_object(role: ClusterRole) -> access_pb2.ClusterRole:
    out = access_pb2.ClusterRole(
        api_version=kinds.RBAC_V1,
        kind="ClusterRole",
        metadata=_meta(role.name, {**BOOTSTRAP_LABELS, **role.labels}),
        rules=[policy_rule_object(r) for r in role.rules],
    )
    if role.aggregation_rule is not None:
        out.aggregation_rule.SetInParent()
        out.aggregation_rule.cluster_role_selectors.extend(
            label_selector_object(s) for s in role.aggregation_rule
        )
    return out


def subject_object(subject: Subject) -> access_pb2.Subject:
    group = "" if subject.kind == "ServiceAccount" else kinds.RBAC_GROUP
    return access_pb2.Subject(
        kind=subject.kind, api_group=group, name=subject.name, namespace=subject.namespace
    )


def cluster_role_binding_object(binding: ClusterRoleBinding) -> access_pb2.ClusterRoleBinding:
    return access_pb2.ClusterRoleBinding(
        api_version=kinds.RBAC_V1,
        kind="ClusterRoleBinding",
        metadata=_meta(binding.name, dict(BOOTSTRAP_LABELS)),
        role_ref=access_pb2.RoleRef(
            api_group=kinds.RBAC_GROUP, kind=binding.role_ref.kind, name=binding.role_ref.name
        ),
        subjects=[subject_object(s) for s in binding.subjects],
    )


def default_objects() -> tuple[list[access_pb2.ClusterRole], list[access_pb2.ClusterRoleBinding]]:
    """The bootstrap policy as objects to store, roles in name order."""
    roles = [cluster_role_object(r) for r in default_cluster_roles()]
    bindings = [cluster_role_binding_object(b) for b in default_cluster_role_bindings()]
    return roles, bindings


# ---------------------------------------------------------------- coverage


def _atoms(rule: PolicyRule) -> list[Attributes]:
    """A rule as the single requests it allows (Kubernetes' BreakdownRule)."""
    if rule.non_resource_urls:
        return [
            Attributes(ANONYMOUS_USER, verb, resource_request=False, path=url)
            for verb in rule.verbs
            for url in rule.non_resource_urls
        ]
    out = []
    for verb in rule.verbs:
        for group in rule.api_groups:
            for combined in rule.resources:
                resource, _, subresource = combined.partition("/")
                for name in rule.resource_names or ("",):
                    out.append(
                        Attributes(
                            ANONYMOUS_USER,
                            verb,
                            api_group=group,
                            resource=resource,
                            subresource=subresource,
                            name=name,
                        )
                    )
    return out


def covers(owner: Sequence[PolicyRule], rule: PolicyRule) -> bool:
    """Whether `owner`'s rules allow everything `rule` does."""
    return all(rules_allow(atom, owner) for atom in _atoms(rule))


# ---------------------------------------------------------------- reconciliation


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    RECREATE = "recreate"  # delete, then create: a binding's roleRef cannot change


@dataclass(frozen=True, slots=True)
class Reconciled:
    action: Action
    object: access_pb2.ClusterRole | access_pb2.ClusterRoleBinding


def _pinned(meta: meta_pb2.ObjectMeta) -> bool:
    return meta.annotations.get(AUTOUPDATE) == "false"


def _merged_meta(existing: meta_pb2.ObjectMeta, expected: meta_pb2.ObjectMeta) -> None:
    """The default's labels and annotations with the stored ones over them, in place."""
    for key, value in expected.labels.items():
        existing.labels.setdefault(key, value)
    for key, value in expected.annotations.items():
        existing.annotations.setdefault(key, value)


def reconcile_cluster_role(
    existing: access_pb2.ClusterRole | None, expected: access_pb2.ClusterRole
) -> Reconciled | None:
    if existing is None:
        return Reconciled(Action.CREATE, expected)
    if _pinned(existing.metadata):
        return None
    result = access_pb2.ClusterRole()
    result.CopyFrom(existing)
    _merged_meta(result.metadata, expected.metadata)
    if expected.HasField("aggregation_rule"):
        have = list(result.aggregation_rule.cluster_role_selectors)
        result.aggregation_rule.cluster_role_selectors.extend(
            s for s in expected.aggregation_rule.cluster_role_selectors if s not in have
        )
    else:
        stored = [policy_rule(r) for r in existing.rules]
        result.rules.extend(r for r in expected.rules if not covers(stored, policy_rule(r)))
    return None if result == existing else Reconciled(Action.UPDATE, result)


def reconcile_cluster_role_binding(
    existing: access_pb2.ClusterRoleBinding | None, expected: access_pb2.ClusterRoleBinding
) -> Reconciled | None:
    if existing is None:
        return Reconciled(Action.CREATE, expected)
    if _pinned(existing.metadata):
        return None
    result = access_pb2.ClusterRoleBinding()
    result.CopyFrom(existing)
    _merged_meta(result.metadata, expected.metadata)
    have = list(result.subjects)
    result.subjects.extend(s for s in expected.subjects if s not in have)
    if existing.role_ref != expected.role_ref:
        result.role_ref.CopyFrom(expected.role_ref)
        return Reconciled(Action.RECREATE, result)
    return None if result == existing else Reconciled(Action.UPDATE, result)
