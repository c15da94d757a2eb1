"""ServiceAccounts and the RBAC kinds: their defaults and static rules, in Kubernetes' words.

Kubernetes' counterparts are pkg/apis/rbac/validation (`ValidateRole`,
`ValidateClusterRole`, `ValidateRoleBinding`, ...), pkg/apis/rbac/v1's defaults and
pkg/apis/core/validation's `ValidateServiceAccount`:

* RBAC names are path segments only (`IsValidPathSegmentName`): anything but `.`,
  `..` and names holding `/` or `%`, so `system:aggregate-to-view` is a name; a
  ServiceAccount's name is a DNS subdomain;
* a rule names at least one verb, and either resources (with at least one API group
  and one resource, resourceNames only for a single resource) or non-resource URLs,
  never both; a Role's rules cannot name URLs;
* a ClusterRole's aggregationRule, when given, has at least one valid selector;
* a binding refers to a role of the RBAC group (`roleRef.apiGroup`, defaulted), a
  Role or ClusterRole from a RoleBinding, a ClusterRole from a ClusterRoleBinding; its
  roleRef never changes (`roleRef: Invalid value: rbac.RoleRef{...}: cannot change
  roleRef`: delete the binding and create it again, as kubectl's message says);
* subjects are Users and Groups of the RBAC group (the default) or ServiceAccounts of
  the core group, whose namespace a ClusterRoleBinding must give.

Every function returns `FieldError`s and never raises.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from kubelab.core import errors
from kubelab.core.errors import FieldError
from kubelab.core.kinds import RBAC_GROUP
from kubelab.core.validation.meta import (
    GoLiteral,
    names,
    validate_label_selector,
    validate_object_meta,
)
from kubelab.core.validation.syntax import is_dns1123_subdomain
from kubelab.v1 import access_pb2

USER, GROUP, SERVICE_ACCOUNT = "User", "Group", "ServiceAccount"
ROLE, CLUSTER_ROLE = "Role", "ClusterRole"


def is_path_segment_name(name: str) -> list[str]:
    """apimachinery's IsValidPathSegmentName: what an RBAC object may be called."""
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{bad}'" for bad in ("/", "%") if bad in name]


# ---------------------------------------------------------------- defaults


def default_role_ref(ref: access_pb2.RoleRef) -> None:
    if not ref.api_group:
        ref.api_group = RBAC_GROUP


def default_subjects(subjects: Sequence[access_pb2.Subject]) -> None:
    """rbac/v1 SetDefaults_Subject: Users and Groups are of the RBAC group."""
    for subject in subjects:
        if not subject.api_group and subject.kind in (USER, GROUP):
            subject.api_group = RBAC_GROUP


def default_binding(binding: access_pb2.RoleBinding | access_pb2.ClusterRoleBinding) -> None:
    default_role_ref(binding.role_ref)
    default_subjects(binding.subjects)


# ---------------------------------------------------------------- rules and roles


def _go_strings(values: Sequence[str]) -> GoLiteral:
    return GoLiteral("[]string{" + ", ".join(json.dumps(v) for v in values) + "}")


def validate_policy_rule(
    rule: access_pb2.PolicyRule, *, namespaced: bool, path: str
) -> list[FieldError]:
    found: list[FieldError] = []
    if not rule.verbs:
        found.append(errors.required(f"{path}.verbs", "verbs must contain at least one value"))
    if rule.non_resource_urls:
        urls = _go_strings(rule.non_resource_urls)
        if namespaced:
            found.append(
                errors.invalid(
                    f"{path}.nonResourceURLs",
                    urls,
                    "namespaced rules cannot apply to non-resource URLs",
                )
            )
        if rule.api_groups or rule.resources or rule.resource_names:
            found.append(
                errors.invalid(
                    f"{path}.nonResourceURLs",
                    urls,
                    "rules cannot apply to both regular resources and non-resource URLs",
                )
            )
        return found
    if not rule.api_groups:
        found.append(
            errors.required(
                f"{path}.apiGroups", "resource rules must supply at least one api group"
            )
        )
    if not rule.resources:
        found.append(
            errors.required(f"{path}.resources", "resource rules must supply at least one resource")
        )
    if rule.resource_names and len(rule.resources) > 1:
        found.append(
            errors.required(
                f"{path}.resourceNames", "resource names cannot apply to multiple resources"
            )
        )
    return found


def _rules(rules: Sequence[access_pb2.PolicyRule], *, namespaced: bool) -> list[FieldError]:
    found: list[FieldError] = []
    for i, rule in enumerate(rules):
        found += validate_policy_rule(rule, namespaced=namespaced, path=f"rules[{i}]")
    return found


def validate_role(role: access_pb2.Role) -> list[FieldError]:
    found = validate_object_meta(role.metadata, namespaced=True, name_check=is_path_segment_name)
    return found + _rules(role.rules, namespaced=True)


def validate_cluster_role(role: access_pb2.ClusterRole) -> list[FieldError]:
    found = validate_object_meta(role.metadata, namespaced=False, name_check=is_path_segment_name)
    found += _rules(role.rules, namespaced=False)
    if role.HasField("aggregation_rule"):
        selectors = role.aggregation_rule.cluster_role_selectors
        path = "aggregationRule.clusterRoleSelectors"
        if not selectors:
            found.append(
                errors.required(
                    path, "at least one clusterRoleSelector required if aggregationRule is non-nil"
                )
            )
        for i, selector in enumerate(selectors):
            found += validate_label_selector(selector, f"{path}[{i}]")
    return found


# ---------------------------------------------------------------- bindings


def _subject(subject: access_pb2.Subject, *, namespaced: bool, path: str) -> list[FieldError]:
    found: list[FieldError] = []
    if not subject.name:
        found.append(errors.required(f"{path}.name"))
    if subject.kind == SERVICE_ACCOUNT:
        if subject.name:
            found += names(f"{path}.name", subject.name, is_dns1123_subdomain)
        if subject.api_group:
            found.append(errors.not_supported(f"{path}.apiGroup", subject.api_group, ("",)))
        if not namespaced and not subject.namespace:
            found.append(errors.required(f"{path}.namespace"))
    elif subject.kind in (USER, GROUP):
        if not subject.name:
            what = "user" if subject.kind == USER else "group"
            found.append(
                errors.invalid(f"{path}.name", subject.name, f"{what} name cannot be empty")
            )
        if subject.api_group != RBAC_GROUP:
            found.append(errors.not_supported(f"{path}.apiGroup", subject.api_group, (RBAC_GROUP,)))
    else:
        found.append(
            errors.not_supported(f"{path}.kind", subject.kind, (SERVICE_ACCOUNT, USER, GROUP))
        )
    return found


def _binding(
    binding: access_pb2.RoleBinding | access_pb2.ClusterRoleBinding, *, namespaced: bool
) -> list[FieldError]:
    found = validate_object_meta(
        binding.metadata, namespaced=namespaced, name_check=is_path_segment_name
    )
    ref = binding.role_ref
    if ref.api_group != RBAC_GROUP:
        found.append(errors.not_supported("roleRef.apiGroup", ref.api_group, (RBAC_GROUP,)))
    kinds = (ROLE, CLUSTER_ROLE) if namespaced else (CLUSTER_ROLE,)
    if ref.kind not in kinds:
        found.append(errors.not_supported("roleRef.kind", ref.kind, kinds))
    if not ref.name:
        found.append(errors.required("roleRef.name"))
    else:
        found += names("roleRef.name", ref.name, is_path_segment_name)
    for i, subject in enumerate(binding.subjects):
        found += _subject(subject, namespaced=namespaced, path=f"subjects[{i}]")
    return found


def validate_role_binding(binding: access_pb2.RoleBinding) -> list[FieldError]:
    return _binding(binding, namespaced=True)


def validate_cluster_role_binding(binding: access_pb2.ClusterRoleBinding) -> list[FieldError]:
    return _binding(binding, namespaced=False)


def go_role_ref(ref: access_pb2.RoleRef) -> GoLiteral:
    """A RoleRef as Kubernetes prints it in the roleRef error (Go's %#v)."""
    return GoLiteral(
        f"rbac.RoleRef{{APIGroup:{json.dumps(ref.api_group)}, Kind:{json.dumps(ref.kind)}, "
        f"Name:{json.dumps(ref.name)}}}"
    )


def validate_binding_update(
    old: access_pb2.RoleBinding | access_pb2.ClusterRoleBinding,
    new: access_pb2.RoleBinding | access_pb2.ClusterRoleBinding,
) -> list[FieldError]:
    if old.role_ref != new.role_ref:
        return [errors.invalid("roleRef", go_role_ref(new.role_ref), "cannot change roleRef")]
    return []


# ---------------------------------------------------------------- ServiceAccount


def validate_service_account(account: access_pb2.ServiceAccount) -> list[FieldError]:
    return validate_object_meta(account.metadata, namespaced=True, name_check=is_dns1123_subdomain)
