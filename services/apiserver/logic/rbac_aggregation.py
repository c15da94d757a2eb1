"""Aggregated ClusterRoles: `admin`, `edit` and `view` collect the rules of the roles
their labels select.

Kubernetes' counterpart is the clusterrole-aggregation controller
(pkg/controller/clusterroleaggregation). A ClusterRole with an `aggregationRule` owns no
rules of its own: its rules are the union of the rules of every other ClusterRole one
of its `clusterRoleSelectors` selects, taken selector by selector, the selected roles in
name order, each rule once (first seen first). The controller writes that union back
and, since an aggregated role may itself be selected (`view` carries
`aggregate-to-edit`, `edit` carries `aggregate-to-admin`), runs again until nothing
changes; `aggregate` computes that settled state in one call, visiting roles in name
order as one controller worker would. A role never aggregates itself.

Pure: no I/O. Selectors are `kubelab.core.selectors.Selector`s (matchLabels and
matchExpressions, as Kubernetes' LabelSelectorAsSelector reads them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from services.apiserver.logic.rbac import ClusterRole, PolicyRule


def _union(role: ClusterRole, roles: dict[str, ClusterRole]) -> tuple[PolicyRule, ...]:
    rules: dict[PolicyRule, None] = {}
    for selector in role.aggregation_rule or ():
        for name in sorted(roles):
            other = roles[name]
            if name != role.name and selector.matches(other.labels):
                rules.update(dict.fromkeys(other.rules))
    return tuple(rules)


def aggregate(cluster_roles: Iterable[ClusterRole]) -> tuple[ClusterRole, ...]:
    """Every ClusterRole, aggregated ones with their rules recomputed; in name order.

    Cycles (two roles selecting each other) settle as the controller leaves them; the
    passes are bounded by the number of roles, as a chain of aggregations is at most
    that long.
    """
    roles = {role.name: role for role in cluster_roles}
    aggregated = sorted(name for name, role in roles.items() if role.aggregation_rule is not None)
    for _ in range(len(roles) + 1):
        changed = False
        for name in aggregated:
            rules = _union(roles[name], roles)
            if rules != roles[name].rules:
                roles[name] = replace(roles[name], rules=rules)
                changed = True
        if not changed:
            break
    return tuple(roles[name] for name in sorted(roles))
