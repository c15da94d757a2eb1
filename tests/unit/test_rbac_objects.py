"""Stored RBAC objects -> the authorizer's values (services.apiserver.logic.rbac_objects), and
the state the apiserver authorizes with: the bootstrap policy with stored objects over it."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.json_format import ParseDict
from google.protobuf.message import Message
from hypothesis import given
from hypothesis import strategies as st

from kubelab.core.selectors import from_match_labels
from kubelab.v1 import access_pb2
from services.apiserver.logic import rbac_objects
from services.apiserver.logic.rbac import (
    Attributes,
    ClusterRole,
    ClusterRoleBinding,
    PolicyRule,
    Role,
    RoleBinding,
    RoleRef,
    Subject,
    UserInfo,
    authenticated,
    authorize,
)
from services.apiserver.logic.rbac_bootstrap import policy_rule_object
from services.apiserver.logic.rbac_defaults import AGGREGATE_TO_VIEW

ALICE = authenticated(UserInfo("alice"))
GET_PODS = {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "pods/log"]}


def parsed(message: type[Message], body: dict[str, Any]) -> Any:
    out = message()
    ParseDict(body, out)
    return out


@pytest.mark.parametrize(
    ("message", "body", "convert", "expected"),
    [
        pytest.param(
            access_pb2.PolicyRule,
            {**GET_PODS, "resourceNames": ["a"]},
            rbac_objects.policy_rule,
            PolicyRule(("get", "list"), ("",), ("pods", "pods/log"), ("a",)),
            id="resource-rule",
        ),
        pytest.param(
            access_pb2.PolicyRule,
            {"verbs": ["get"], "nonResourceURLs": ["/healthz", "/api/*"]},
            rbac_objects.policy_rule,
            PolicyRule(("get",), non_resource_urls=("/healthz", "/api/*")),
            id="url-rule",
        ),
        pytest.param(
            access_pb2.Role,
            {"metadata": {"name": "r", "namespace": "dev"}, "rules": [GET_PODS]},
            rbac_objects.role,
            Role("r", "dev", (PolicyRule(("get", "list"), ("",), ("pods", "pods/log")),)),
            id="role",
        ),
        pytest.param(
            access_pb2.ClusterRole,
            {"metadata": {"name": "c", "labels": {"a": "b"}}},
            rbac_objects.cluster_role,
            ClusterRole("c", (), None, {"a": "b"}),
            id="cluster-role-own-rules",
        ),
        pytest.param(
            access_pb2.ClusterRole,
            {
                "metadata": {"name": "c"},
                "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"x": "true"}}]},
            },
            rbac_objects.cluster_role,
            ClusterRole("c", (), (from_match_labels({"x": "true"}),)),
            id="aggregated",
        ),
        pytest.param(
            access_pb2.ClusterRole,
            {"metadata": {"name": "c"}, "aggregationRule": {}},
            rbac_objects.cluster_role,
            ClusterRole("c", (), ()),
            id="aggregated-by-nothing",
        ),
        pytest.param(
            access_pb2.RoleBinding,
            {
                "metadata": {"name": "b", "namespace": "dev"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
                "subjects": [
                    {"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"},
                    {"kind": "ServiceAccount", "name": "ci"},
                ],
            },
            rbac_objects.role_binding,
            RoleBinding(
                "b",
                "dev",
                RoleRef("Role", "r"),
                (Subject("User", "alice"), Subject("ServiceAccount", "ci")),
            ),
            id="role-binding",
        ),
        pytest.param(
            access_pb2.ClusterRoleBinding,
            {
                "metadata": {"name": "b"},
                "roleRef": {"kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "ServiceAccount", "name": "ci", "namespace": "dev"}],
            },
            rbac_objects.cluster_role_binding,
            ClusterRoleBinding(
                "b", RoleRef("ClusterRole", "view"), (Subject("ServiceAccount", "ci", "dev"),)
            ),
            id="cluster-role-binding",
        ),
    ],
)
def test_conversion(
    message: type[Message], body: dict[str, Any], convert: Any, expected: Any
) -> None:
    assert convert(parsed(message, body)) == expected


def test_a_selector_that_does_not_parse_selects_nothing() -> None:
    role = parsed(
        access_pb2.ClusterRole,
        {
            "metadata": {"name": "c"},
            "aggregationRule": {
                "clusterRoleSelectors": [
                    {"matchExpressions": [{"key": "a", "operator": "Near"}]},
                    {"matchLabels": {"x": "true"}},
                ]
            },
        },
    )
    assert rbac_objects.cluster_role(role).aggregation_rule == (from_match_labels({"x": "true"}),)


words = st.text(alphabet="abc*/:", max_size=4)


@given(st.builds(PolicyRule, *(st.lists(words, max_size=3).map(tuple) for _ in range(5))))
def test_rules_survive_the_round_trip_through_objects(rule: PolicyRule) -> None:
    assert rbac_objects.policy_rule(policy_rule_object(rule)) == rule


# ---------------------------------------------------------------- state_of


def attrs(verb: str, namespace: str, resource: str = "services") -> Attributes:
    return Attributes(ALICE, verb, namespace, resource=resource)


def alice_views(namespace: str = "default") -> access_pb2.RoleBinding:
    binding: access_pb2.RoleBinding = parsed(
        access_pb2.RoleBinding,
        {
            "metadata": {"name": "alice-view", "namespace": namespace},
            "roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "alice"}],
        },
    )
    return binding


def test_a_stored_binding_of_a_default_role_grants_in_its_namespace_only() -> None:
    state = rbac_objects.state_of(role_bindings=[alice_views()])
    assert authorize(attrs("list", "default"), state).allowed
    assert not authorize(attrs("list", "other"), state).allowed
    assert not authorize(attrs("delete", "default"), state).allowed
    without = rbac_objects.state_of()
    assert not authorize(attrs("list", "default"), without).allowed


def test_the_bootstrap_policy_stands_without_stored_objects() -> None:
    everyone = Attributes(ALICE, "get", resource_request=False, path="/version")
    assert authorize(everyone, rbac_objects.state_of()).allowed


def test_a_stored_role_labelled_aggregate_to_view_extends_view() -> None:
    crontabs = parsed(
        access_pb2.ClusterRole,
        {
            "metadata": {"name": "crontabs-view", "labels": {AGGREGATE_TO_VIEW: "true"}},
            "rules": [
                {"verbs": ["list"], "apiGroups": ["stable.example.com"], "resources": ["ct"]}
            ],
        },
    )
    request = Attributes(ALICE, "list", "default", "stable.example.com", "ct")
    assert not authorize(request, rbac_objects.state_of(role_bindings=[alice_views()])).allowed
    state = rbac_objects.state_of(cluster_roles=[crontabs], role_bindings=[alice_views()])
    assert authorize(request, state).allowed


def test_a_stored_object_replaces_the_default_of_its_name() -> None:
    empty_view = parsed(access_pb2.ClusterRole, {"metadata": {"name": "view"}})
    state = rbac_objects.state_of(cluster_roles=[empty_view], role_bindings=[alice_views()])
    assert not authorize(attrs("list", "default"), state).allowed


def test_a_role_of_the_namespace_is_found_by_its_binding() -> None:
    role = parsed(
        access_pb2.Role,
        {"metadata": {"name": "pods", "namespace": "dev"}, "rules": [GET_PODS]},
    )
    binding = parsed(
        access_pb2.RoleBinding,
        {
            "metadata": {"name": "b", "namespace": "dev"},
            "roleRef": {"kind": "Role", "name": "pods"},
            "subjects": [{"kind": "Group", "name": "system:authenticated"}],
        },
    )
    state = rbac_objects.state_of(roles=[role], role_bindings=[binding])
    assert authorize(attrs("get", "dev", "pods"), state).allowed
    decision = authorize(attrs("get", "dev", "services"), state)
    assert not decision.allowed
