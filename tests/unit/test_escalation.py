"""RBAC's escalation prevention (`logic/escalation.py`), as Kubernetes' RBAC registry
applies it: a role may hold only what its author holds, a binding may reference only a
role whose rules its author holds, unless `escalate` / `bind`; masters are exempt."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from services.apiserver.logic.escalation import (
    binding_refusal,
    compact_string,
    missing_rules,
    role_refusal,
)
from services.apiserver.logic.rbac import (
    Attributes,
    PolicyRule,
    RoleRef,
    UserInfo,
    rules_allow,
)

ALICE = UserInfo("alice", ("system:authenticated",))
HELD = (
    PolicyRule(("get", "list"), ("",), ("pods", "services")),
    PolicyRule(("get",), ("apps",), ("deployments",), ("web",)),
    PolicyRule(("get",), non_resource_urls=("/healthz",)),
)


def holds(extra: tuple[PolicyRule, ...] = ()) -> Callable[[Attributes], bool]:
    def allowed(attrs: Attributes) -> bool:
        return attrs.namespace in ("team", "") and rules_allow(attrs, (*HELD, *extra))

    return allowed


@pytest.mark.parametrize(
    ("rules", "missing"),
    [
        ((PolicyRule(("get",), ("",), ("pods",)),), []),
        ((PolicyRule(("get",), ("apps",), ("deployments",), ("web",)),), []),
        (
            (PolicyRule(("get", "delete"), ("",), ("pods",)),),
            [PolicyRule(("delete",), ("",), ("pods",))],
        ),
        # A name held is not the whole resource.
        (
            (PolicyRule(("get",), ("apps",), ("deployments",)),),
            [PolicyRule(("get",), ("apps",), ("deployments",))],
        ),
        # A `*` is held only by a `*`.
        ((PolicyRule(("*",), ("",), ("pods",)),), [PolicyRule(("*",), ("",), ("pods",))]),
        ((PolicyRule(("get",), non_resource_urls=("/healthz",)),), []),
        (
            (PolicyRule(("get",), non_resource_urls=("/metrics",)),),
            [PolicyRule(("get",), non_resource_urls=("/metrics",))],
        ),
    ],
)
def test_what_is_not_held(rules: tuple[PolicyRule, ...], missing: list[PolicyRule]) -> None:
    assert missing_rules(ALICE, "team", rules, holds()) == missing


def test_a_role_refusal_is_kubernetes_message() -> None:
    rules = [PolicyRule(("get", "delete", "create"), ("",), ("pods", "secrets"))]
    refusal = role_refusal(ALICE, "roles", "team", "x", rules, holds())
    assert refusal == (
        'user "alice" (groups=["system:authenticated"]) is attempting to grant RBAC permissions '
        "not currently held:\n"
        '{APIGroups:[""], Resources:["pods"], Verbs:["delete" "create"]}\n'
        '{APIGroups:[""], Resources:["secrets"], Verbs:["get" "delete" "create"]}'
    )


def test_escalate_and_masters_are_exempt() -> None:
    rules = [PolicyRule(("*",), ("*",), ("*",))]
    may_escalate = holds((PolicyRule(("escalate",), ("rbac.authorization.k8s.io",), ("roles",)),))
    assert role_refusal(ALICE, "roles", "team", "x", rules, may_escalate) is None
    master = UserInfo("root", ("system:masters",))
    assert role_refusal(master, "clusterroles", "", "x", rules, holds()) is None


def test_a_binding_needs_the_roles_rules_or_bind() -> None:
    admin_ref = RoleRef("ClusterRole", "admin")
    everything = (PolicyRule(("*",), ("*",), ("*",)),)
    refused = binding_refusal(ALICE, "team", admin_ref, everything, holds())
    assert refused is not None and '{APIGroups:["*"], Resources:["*"], Verbs:["*"]}' in refused
    viewing = (PolicyRule(("get",), ("",), ("pods",)),)
    assert binding_refusal(ALICE, "team", RoleRef("ClusterRole", "v"), viewing, holds()) is None
    may_bind = holds(
        (PolicyRule(("bind",), ("rbac.authorization.k8s.io",), ("clusterroles",), ("admin",)),)
    )
    assert binding_refusal(ALICE, "team", admin_ref, everything, may_bind) is None
    # A missing role grants nothing: nothing to escalate.
    assert binding_refusal(ALICE, "team", RoleRef("Role", "gone"), None, holds()) is None


def test_compact_string_leaves_out_what_is_empty() -> None:
    assert compact_string(PolicyRule(("get",), non_resource_urls=("/x",))) == (
        '{NonResourceURLs:["/x"], Verbs:["get"]}'
    )
