"""The default policy as stored objects, rule coverage and Kubernetes' reconciliation of the
defaults (services.apiserver.logic.rbac_bootstrap)."""

from __future__ import annotations

import pytest

from kubelab.core import kinds
from kubelab.core.validation import objects as validation
from kubelab.v1 import access_pb2
from services.apiserver.logic import rbac_bootstrap as bootstrap
from services.apiserver.logic.rbac import PolicyRule
from services.apiserver.logic.rbac_bootstrap import AUTOUPDATE, Action

ROLES, BINDINGS = bootstrap.default_objects()
BY_NAME = {r.metadata.name: r for r in ROLES}
BINDING = {b.metadata.name: b for b in BINDINGS}


def copy(obj: access_pb2.ClusterRole) -> access_pb2.ClusterRole:
    out = access_pb2.ClusterRole()
    out.CopyFrom(obj)
    return out


def test_every_default_is_valid_and_labelled_as_kubernetes_labels_them() -> None:
    for info, objects in ((kinds.CLUSTERROLES, ROLES), (kinds.CLUSTERROLEBINDINGS, BINDINGS)):
        for obj in objects:
            assert validation.validate_object(info, obj) == [], obj.metadata.name
            assert obj.metadata.labels["kubernetes.io/bootstrapping"] == "rbac-defaults"
            assert obj.metadata.annotations[AUTOUPDATE] == "true"
    assert {"cluster-admin", "admin", "edit", "view", "system:discovery"} <= set(BY_NAME)
    view = BY_NAME["view"]
    assert view.HasField("aggregation_rule") and view.rules  # aggregated when written
    assert BINDING["cluster-admin"].subjects[0].api_group == kinds.RBAC_GROUP


@pytest.mark.parametrize(
    ("owner", "rule", "covered"),
    [
        pytest.param(
            [PolicyRule(("*",), ("*",), ("*",))],
            PolicyRule(("get",), ("",), ("pods",)),
            True,
            id="star",
        ),
        pytest.param(
            [PolicyRule(("get", "list"), ("",), ("pods",))],
            PolicyRule(("get",), ("",), ("pods", "services")),
            False,
            id="one-resource-missing",
        ),
        pytest.param(
            [PolicyRule(("get",), ("",), ("pods",)), PolicyRule(("get",), ("",), ("services",))],
            PolicyRule(("get",), ("",), ("pods", "services")),
            True,
            id="split-over-rules",
        ),
        pytest.param(
            [PolicyRule(("get",), ("",), ("pods",), ("a",))],
            PolicyRule(("get",), ("",), ("pods",)),
            False,
            id="names-narrow",
        ),
        pytest.param(
            [PolicyRule(("get",), ("",), ("*/status",))],
            PolicyRule(("get",), ("",), ("pods/status",)),
            True,
            id="subresource-wildcard",
        ),
        pytest.param(
            [PolicyRule(("get",), ("",), ("pods",))],
            PolicyRule(("*",), ("",), ("pods",)),
            False,
            id="star-is-not-covered-by-a-verb",
        ),
        pytest.param(
            [PolicyRule(("get",), non_resource_urls=("/api/*",))],
            PolicyRule(("get",), non_resource_urls=("/api/v1", "/api/*")),
            True,
            id="url-prefix",
        ),
    ],
)
def test_covers(owner: list[PolicyRule], rule: PolicyRule, covered: bool) -> None:
    assert bootstrap.covers(owner, rule) is covered


def test_a_missing_default_is_created() -> None:
    planned = bootstrap.reconcile_cluster_role(None, BY_NAME["edit"])
    assert planned is not None and planned.action is Action.CREATE


def test_a_current_default_is_left_alone() -> None:
    assert bootstrap.reconcile_cluster_role(copy(BY_NAME["edit"]), BY_NAME["edit"]) is None
    assert (
        bootstrap.reconcile_cluster_role_binding(BINDING["cluster-admin"], BINDING["cluster-admin"])
        is None
    )


def test_a_default_role_keeps_what_was_added_and_regains_what_was_removed() -> None:
    stored = copy(BY_NAME["system:discovery"])
    stored.rules[0].non_resource_urls.remove("/version")
    stored.rules.add(verbs=["get"], non_resource_urls=["/metrics"])
    stored.metadata.labels["team"] = "ops"
    stored.metadata.labels["kubernetes.io/bootstrapping"] = "mine"
    planned = bootstrap.reconcile_cluster_role(stored, BY_NAME["system:discovery"])
    assert planned is not None and planned.action is Action.UPDATE
    result = planned.object
    assert isinstance(result, access_pb2.ClusterRole)
    assert len(result.rules) == 3  # the edited rule, the added one, the default again
    assert list(result.rules[1].non_resource_urls) == ["/metrics"]
    assert dict(result.metadata.labels) == {"team": "ops", "kubernetes.io/bootstrapping": "mine"}


def test_an_aggregated_default_regains_its_selectors_not_rules() -> None:
    stored = copy(BY_NAME["view"])
    stored.aggregation_rule.ClearField("cluster_role_selectors")
    stored.aggregation_rule.cluster_role_selectors.add(match_labels={"mine": "true"})
    stored.ClearField("rules")
    planned = bootstrap.reconcile_cluster_role(stored, BY_NAME["view"])
    assert planned is not None
    result = planned.object
    assert isinstance(result, access_pb2.ClusterRole)
    assert [dict(s.match_labels) for s in result.aggregation_rule.cluster_role_selectors] == [
        {"mine": "true"},
        {"rbac.authorization.k8s.io/aggregate-to-view": "true"},
    ]
    assert not result.rules  # the aggregation's, not reconciliation's


def test_autoupdate_false_pins_a_default() -> None:
    stored = copy(BY_NAME["view"])
    stored.ClearField("aggregation_rule")
    stored.metadata.annotations[AUTOUPDATE] = "false"
    assert bootstrap.reconcile_cluster_role(stored, BY_NAME["view"]) is None


def test_a_binding_regains_subjects_and_is_recreated_for_another_role() -> None:
    stored = access_pb2.ClusterRoleBinding()
    stored.CopyFrom(BINDING["system:basic-user"])
    stored.ClearField("subjects")
    stored.subjects.add(kind="User", api_group=kinds.RBAC_GROUP, name="carol")
    planned = bootstrap.reconcile_cluster_role_binding(stored, BINDING["system:basic-user"])
    assert planned is not None and planned.action is Action.UPDATE
    assert isinstance(planned.object, access_pb2.ClusterRoleBinding)
    assert [s.name for s in planned.object.subjects] == ["carol", "system:authenticated"]
    stored.role_ref.name = "view"
    planned = bootstrap.reconcile_cluster_role_binding(stored, BINDING["system:basic-user"])
    assert planned is not None and planned.action is Action.RECREATE
    assert isinstance(planned.object, access_pb2.ClusterRoleBinding)
    assert planned.object.role_ref.name == "system:basic-user"
