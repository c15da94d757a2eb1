"""RBAC's escalation prevention: nobody grants, through a role or a binding, what they do
not hold themselves (Kubernetes' pkg/registry/rbac: `ConfirmNoEscalation`, the roles'
`escalate` and the bindings' `bind` verbs).

- Writing a Role or ClusterRole: every rule it holds must be one its author is allowed
  (in the Role's namespace; cluster-wide for a ClusterRole), unless the author may
  `escalate` that role.
- Writing a RoleBinding or ClusterRoleBinding: the author must hold every rule of the
  role it references (in the binding's namespace; cluster-wide for a ClusterRoleBinding),
  unless the author may `bind` that role.
- `system:masters` is exempt (Kubernetes' `EscalationAllowed`).

A rule is held when each of its atomic requests (one verb, group, resource, name or URL)
is allowed to the author, so a `*` is held only by a `*`, as Kubernetes' `Covers` reads
rules. The refusal is Kubernetes' 403: `roles.rbac.authorization.k8s.io "x" is forbidden:
user "alice" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not
currently held:` and the missing rules, one per line in Kubernetes' compact form.

Pure: the caller passes how one request is decided.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from services.apiserver.logic.rbac import (
    SYSTEM_MASTERS,
    Attributes,
    PolicyRule,
    RoleRef,
    UserInfo,
)
from services.apiserver.logic.status_messages import go_quote

RBAC = "rbac.authorization.k8s.io"
Allowed = Callable[[Attributes], bool]


def _atoms(
    user: UserInfo, namespace: str, rule: PolicyRule
) -> Iterator[tuple[Attributes, PolicyRule]]:
    """Each request the rule allows, with the one-verb rule that names it."""
    for verb in rule.verbs:
        for url in rule.non_resource_urls:
            yield (
                Attributes(user, verb, resource_request=False, path=url),
                PolicyRule((verb,), non_resource_urls=(url,)),
            )
        for group in rule.api_groups:
            for combined in rule.resources:
                resource, _, subresource = combined.partition("/")
                for name in rule.resource_names or ("",):
                    yield (
                        Attributes(
                            user, verb, namespace=namespace, api_group=group, resource=resource,
                            subresource=subresource, name=name,
                        ),
                        PolicyRule(
                            (verb,), (group,), (combined,), (name,) if name else (),
                        ),
                    )  # fmt: skip


def missing_rules(
    user: UserInfo, namespace: str, rules: Sequence[PolicyRule], allowed: Allowed
) -> list[PolicyRule]:
    """The rules of `rules`, one verb each, that `user` does not hold in `namespace`."""
    missing: list[PolicyRule] = []
    for rule in rules:
        for attrs, atom in _atoms(user, namespace, rule):
            if not allowed(attrs) and atom not in missing:
                missing.append(atom)
    return missing


def _compact(rules: list[PolicyRule]) -> list[PolicyRule]:
    """One rule per group, resource and name (or URL) with their verbs together, as
    Kubernetes' CompactRules merges simple resource rules."""
    merged: dict[tuple[tuple[str, ...], ...], list[str]] = {}
    for rule in rules:
        key = (rule.api_groups, rule.resources, rule.resource_names, rule.non_resource_urls)
        merged.setdefault(key, []).extend(v for v in rule.verbs if v not in merged.get(key, []))
    return [PolicyRule(tuple(verbs), *key) for key, verbs in merged.items()]


def _go_strings(values: Sequence[str]) -> str:
    return "[" + " ".join(go_quote(v) for v in values) + "]"


def compact_string(rule: PolicyRule) -> str:
    """Kubernetes' `CompactString` of a rule:
    `{APIGroups:[""], Resources:["pods"], Verbs:["get"]}`."""
    parts = []
    for label, values in (
        ("APIGroups", rule.api_groups),
        ("Resources", rule.resources),
        ("ResourceNames", rule.resource_names),
        ("NonResourceURLs", rule.non_resource_urls),
        ("Verbs", rule.verbs),
    ):
        if values:
            parts.append(f"{label}:{_go_strings(values)}")
    return "{" + ", ".join(parts) + "}"


def _refusal(user: UserInfo, missing: list[PolicyRule]) -> str:
    lines = sorted(compact_string(rule) for rule in _compact(missing))
    groups = _go_strings(user.groups)
    return (
        f"user {go_quote(user.name)} (groups={groups}) is attempting to grant RBAC "
        f"permissions not currently held:\n" + "\n".join(lines)
    )


def role_refusal(
    user: UserInfo,
    resource: str,
    namespace: str,
    name: str,
    rules: Sequence[PolicyRule],
    allowed: Allowed,
) -> str | None:
    """Why `user` may not write role `name` (`resource` roles or clusterroles) with
    `rules`; None when they may. The message is the part after `is forbidden: `."""
    if SYSTEM_MASTERS in user.groups:
        return None
    escalate = Attributes(
        user, "escalate", namespace=namespace, api_group=RBAC, resource=resource, name=name
    )
    if allowed(escalate):
        return None
    missing = missing_rules(user, namespace, rules, allowed)
    return _refusal(user, missing) if missing else None


def binding_refusal(
    user: UserInfo,
    namespace: str,
    ref: RoleRef,
    referenced: Sequence[PolicyRule] | None,
    allowed: Allowed,
) -> str | None:
    """Why `user` may not write a binding of `ref` in `namespace` ("" for a
    ClusterRoleBinding); None when they may. `referenced`: the role's rules (None: no
    such role, which grants nothing and so escalates nothing)."""
    if SYSTEM_MASTERS in user.groups:
        return None
    resource = "roles" if ref.kind == "Role" else "clusterroles"
    bind = Attributes(
        user, "bind", namespace=namespace, api_group=RBAC, resource=resource, name=ref.name
    )
    if allowed(bind):
        return None
    missing = missing_rules(user, namespace, referenced or (), allowed)
    return _refusal(user, missing) if missing else None
