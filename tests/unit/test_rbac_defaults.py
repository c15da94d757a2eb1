"""The default ClusterRoles: aggregation, what Kubernetes documents each default role
grants, and that kubelab's actors can do what their code does and nothing more."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubelab.core.selectors import Operator, Requirement, Selector, from_match_labels
from services.apiserver.logic import rbac_actor_roles, rbac_defaults
from services.apiserver.logic.rbac import (
    ANONYMOUS_USER,
    Attributes,
    ClusterRole,
    PolicyRule,
    RbacState,
    RoleBinding,
    RoleRef,
    Subject,
    UserInfo,
    authenticated,
    authorize,
    service_account_user,
)
from services.apiserver.logic.rbac_aggregation import aggregate

ROLES = {role.name: role for role in rbac_defaults.default_cluster_roles()}
ALICE = authenticated(UserInfo("alice"))


def test_admin_aggregates_edit_which_aggregates_view() -> None:
    view, edit, admin = ROLES["view"].rules, ROLES["edit"].rules, ROLES["admin"].rules
    # Selected roles in name order, each rule once: edit = system:aggregate-to-edit + view.
    assert view == ROLES["system:aggregate-to-view"].rules
    assert edit == ROLES["system:aggregate-to-edit"].rules + view
    assert admin == edit + ROLES["system:aggregate-to-admin"].rules


def test_a_role_labelled_aggregate_to_view_reaches_view_edit_and_admin() -> None:
    # Kubernetes' documented example: extend the default roles to a new resource.
    crontabs = ClusterRole(
        "aggregate-cron-tabs-view",
        (PolicyRule(("get", "list", "watch"), ("stable.example.com",), ("crontabs",)),),
        labels={rbac_defaults.AGGREGATE_TO_VIEW: "true"},
    )
    roles = {r.name: r for r in aggregate([*ROLES.values(), crontabs])}
    for name in ("view", "edit", "admin"):
        assert crontabs.rules[0] in roles[name].rules
    assert crontabs.rules[0] not in roles["cluster-admin"].rules


def test_aggregation_matches_expressions_and_never_itself() -> None:
    rule = PolicyRule(("get",), ("",), ("pods",))
    selector = Selector((Requirement("tier", Operator.IN, frozenset({"a", "b"})),))
    roles = {
        r.name: r
        for r in aggregate(
            [
                # Its own rule would survive if it selected itself.
                ClusterRole(
                    "picker", (PolicyRule(("delete",)),), (selector,), labels={"tier": "a"}
                ),
                ClusterRole("one", (rule,), labels={"tier": "b"}),
                ClusterRole("other", (PolicyRule(("list",)),), labels={"tier": "c"}),
            ]
        )
    }
    assert roles["picker"].rules == (rule,)


def test_aggregation_settles_a_cycle() -> None:
    rule = PolicyRule(("get",), ("",), ("pods",))
    a = ClusterRole("a", (), (from_match_labels({"to": "a"}),), labels={"to": "b"})
    b = ClusterRole("b", (rule,), (from_match_labels({"to": "b"}),), labels={"to": "a"})
    settled = aggregate([a, b])
    assert [r.rules for r in settled] == [(rule,), (rule,)]
    assert aggregate(settled) == settled


labels = st.dictionaries(st.sampled_from(["x", "y"]), st.just("true"), max_size=2)
cluster_roles = st.lists(
    st.builds(
        ClusterRole,
        st.sampled_from(["r1", "r2", "r3", "r4"]),
        st.lists(
            st.builds(
                PolicyRule, st.lists(st.sampled_from(["get", "list"]), min_size=1).map(tuple)
            ),
            max_size=2,
        ).map(tuple),
        st.one_of(
            st.none(),
            st.lists(
                st.sampled_from(["x", "y"]).map(lambda k: from_match_labels({k: "true"})),
                max_size=2,
            ).map(tuple),
        ),
        labels,
    ),
    max_size=4,
    unique_by=lambda r: r.name,
)


@given(cluster_roles)
def test_aggregation_is_settled_and_covers_what_it_selects(roles: list[ClusterRole]) -> None:
    settled = {r.name: r for r in aggregate(roles)}
    assert aggregate(settled.values()) == tuple(settled[n] for n in sorted(settled))
    for role in settled.values():
        for selector in role.aggregation_rule or ():
            for other in settled.values():
                if other.name != role.name and selector.matches(other.labels):
                    assert set(other.rules) <= set(role.rules) or other.aggregation_rule is not None
        if role.aggregation_rule is None:
            assert role.rules == next(r for r in roles if r.name == role.name).rules


def test_every_default_binding_names_a_role_that_exists() -> None:
    for binding in rbac_defaults.default_cluster_role_bindings():
        assert binding.role_ref.name in ROLES, binding.name


def in_namespace(role: str, user: UserInfo = ALICE, namespace: str = "dev") -> RbacState:
    binding = RoleBinding(
        "grant", namespace, RoleRef("ClusterRole", role), (Subject("User", user.name),)
    )
    return RbacState.build(
        cluster_roles=ROLES.values(),
        cluster_role_bindings=rbac_defaults.default_cluster_role_bindings(),
        role_bindings=[binding],
    )


def ask(
    verb: str, resource: str, sub: str = "", group: str = "", namespace: str = "dev", name: str = ""
) -> Attributes:
    return Attributes(ALICE, verb, namespace, group, resource, sub, name)


# What Kubernetes' RBAC documentation says the user-facing roles grant in a namespace,
# for the resources kubelab serves.
@pytest.mark.parametrize(
    ("role", "attrs", "allowed"),
    [
        pytest.param("view", ask("list", "pods"), True, id="view-lists-pods"),
        pytest.param("view", ask("get", "pods", "log", name="web"), True, id="view-reads-logs"),
        pytest.param(
            "view", ask("watch", "endpointslices", group="discovery.k8s.io"), True, id="view-slices"
        ),
        pytest.param(
            "view", ask("get", "deployments", "scale", "apps", name="w"), True, id="view-scale"
        ),
        pytest.param(
            "view", ask("get", "namespaces", namespace="dev", name="dev"), True, id="view-own-ns"
        ),
        pytest.param(
            "view", ask("get", "services", "status", name="s"), True, id="view-svc-status"
        ),
        pytest.param("view", ask("create", "pods"), False, id="view-cannot-create"),
        pytest.param(
            "view",
            ask("patch", "deployments", "scale", "apps", name="w"),
            False,
            id="view-no-scale",
        ),
        pytest.param(
            "view",
            ask("list", "roles", group="rbac.authorization.k8s.io"),
            False,
            id="view-no-rbac",
        ),
        pytest.param("view", ask("list", "pods", namespace="prod"), False, id="view-only-its-ns"),
        pytest.param("edit", ask("delete", "pods", name="web"), True, id="edit-deletes-pods"),
        pytest.param("edit", ask("create", "services"), True, id="edit-creates-services"),
        pytest.param(
            "edit", ask("patch", "deployments", "scale", "apps", name="w"), True, id="edit-scales"
        ),
        pytest.param("edit", ask("deletecollection", "events"), True, id="edit-events"),
        pytest.param("edit", ask("get", "pods", name="web"), True, id="edit-includes-view"),
        pytest.param(
            "edit", ask("update", "pods", "status", name="web"), False, id="edit-no-status"
        ),
        pytest.param("edit", ask("create", "endpoints"), False, id="edit-no-endpoints-since-1.22"),
        pytest.param(
            "edit",
            ask("create", "endpointslices", group="discovery.k8s.io"),
            False,
            id="edit-no-slices",
        ),
        pytest.param(
            "edit",
            ask("create", "rolebindings", group="rbac.authorization.k8s.io"),
            False,
            id="edit-no-grant",
        ),
        pytest.param(
            "admin",
            ask("create", "rolebindings", group="rbac.authorization.k8s.io"),
            True,
            id="admin-grants",
        ),
        pytest.param(
            "admin", ask("delete", "deployments", group="apps", name="w"), True, id="admin-edits"
        ),
        pytest.param(
            "admin",
            ask("update", "deployments", "status", "apps", name="w"),
            False,
            id="admin-no-status",
        ),
        pytest.param(
            "admin", ask("get", "nodes", namespace="", name="n"), False, id="admin-no-cluster-scope"
        ),
        pytest.param(
            "cluster-admin",
            ask("escalate", "clusterroles", group="rbac.authorization.k8s.io"),
            True,
            id="ca",
        ),
    ],
)
def test_user_facing_roles(role: str, attrs: Attributes, allowed: bool) -> None:
    assert authorize(attrs, in_namespace(role)).allowed is allowed


STATE = rbac_defaults.bootstrap_state()


def path(user: UserInfo, url: str, verb: str = "get") -> Attributes:
    return Attributes(user, verb, resource_request=False, path=url)


@pytest.mark.parametrize(
    ("attrs", "allowed"),
    [
        pytest.param(path(ALICE, "/apis"), True, id="api-resources"),
        pytest.param(path(ALICE, "/api/v1"), True, id="core-discovery"),
        pytest.param(path(ALICE, "/openapi/v3/apis/apps/v1"), True, id="openapi"),
        pytest.param(path(ALICE, "/version"), True, id="version"),
        pytest.param(path(ALICE, "/apis", "post"), False, id="discovery-is-get-only"),
        pytest.param(path(ALICE, "/metrics"), False, id="no-metrics"),
        pytest.param(
            Attributes(ALICE, "create", "", "authorization.k8s.io", "selfsubjectaccessreviews"),
            True,
            id="can-i",
        ),
        pytest.param(
            Attributes(ALICE, "create", "", "authentication.k8s.io", "selfsubjectreviews"),
            True,
            id="whoami",
        ),
        pytest.param(Attributes(ALICE, "list", "default", "", "pods"), False, id="nothing-else"),
        pytest.param(path(ANONYMOUS_USER, "/healthz"), True, id="anonymous-health"),
        pytest.param(path(ANONYMOUS_USER, "/version"), True, id="anonymous-version"),
        pytest.param(path(ANONYMOUS_USER, "/apis"), False, id="anonymous-no-discovery"),
        pytest.param(
            Attributes(
                UserInfo("system:kube-proxy"), "list", "", "discovery.k8s.io", "endpointslices"
            ),
            True,
            id="kube-proxy",
        ),
    ],
)
def test_what_every_user_may_do(attrs: Attributes, allowed: bool) -> None:
    assert authorize(attrs, STATE).allowed is allowed


CONTROLLER = authenticated(UserInfo(rbac_actor_roles.CONTROLLER_USER))
DNS = service_account_user("kube-system", "kube-dns")
CLOUD = authenticated(UserInfo(rbac_actor_roles.CLOUD_STUB_USER))


def act(
    user: UserInfo, verb: str, resource: str, sub: str = "", group: str = "", ns: str = "ns"
) -> Attributes:
    return Attributes(
        user, verb, ns, group, resource, sub, "x" if verb in ("get", "update", "delete") else ""
    )


# Each call the actor's code makes on the store today (grep: store.<verb>, informers).
@pytest.mark.parametrize(
    "attrs",
    [
        pytest.param(act(CONTROLLER, verb, "pods"), id=f"controller-{verb}-pods")
        for verb in ("list", "watch", "create", "update", "delete")
    ]
    + [
        pytest.param(act(CONTROLLER, "get", "nodes", ns=""), id="pod-gc-rereads-node"),
        pytest.param(act(CONTROLLER, "watch", "nodes", ns=""), id="controller-watches-nodes"),
        pytest.param(act(CONTROLLER, "list", "services", ns=""), id="repair-lists-services"),
        pytest.param(act(CONTROLLER, "update", "services", "status"), id="lb-status"),
        pytest.param(act(CONTROLLER, "delete", "services"), id="ns-deleter-services"),
        pytest.param(act(CONTROLLER, "update", "namespaces", ns=""), id="ns-finalizer"),
        pytest.param(act(CONTROLLER, "delete", "namespaces", ns=""), id="ns-delete"),
        pytest.param(act(CONTROLLER, "get", "events"), id="event-repeat"),
        pytest.param(act(CONTROLLER, "create", "events"), id="event-create"),
        pytest.param(act(CONTROLLER, "get", "deployments", group="apps"), id="adopt-recheck"),
        pytest.param(
            act(CONTROLLER, "update", "deployments", "status", "apps"), id="deploy-status"
        ),
        pytest.param(
            act(CONTROLLER, "create", "endpointslices", group="discovery.k8s.io"), id="slices"
        ),
        pytest.param(act(CONTROLLER, "create", "serviceaccounts"), id="default-sa"),
        pytest.param(act(CONTROLLER, "watch", "serviceaccounts", ns=""), id="sa-informer"),
        pytest.param(
            act(CONTROLLER, "delete", "rolebindings", group="rbac.authorization.k8s.io"),
            id="ns-deleter-rolebindings",
        ),
        pytest.param(act(DNS, "watch", "services", ns=""), id="dns-services"),
        pytest.param(
            act(DNS, "list", "endpointslices", group="discovery.k8s.io", ns=""), id="dns-slices"
        ),
        pytest.param(act(CLOUD, "watch", "nodes", ns=""), id="cloud-nodes"),
        pytest.param(act(CLOUD, "list", "services", ns=""), id="cloud-node-ports"),
    ],
)
def test_actors_may_do_what_their_code_does(attrs: Attributes) -> None:
    decision = authorize(attrs, STATE)
    assert decision.allowed, decision
    assert "ClusterRoleBinding" in decision.reason


@pytest.mark.parametrize(
    "attrs",
    [
        pytest.param(act(CONTROLLER, "create", "services"), id="controller-creates-no-services"),
        pytest.param(act(CONTROLLER, "update", "services"), id="controller-changes-no-spec"),
        pytest.param(act(CONTROLLER, "update", "nodes", ns=""), id="controller-writes-no-nodes"),
        pytest.param(act(CONTROLLER, "update", "pods", "status"), id="controller-no-pod-status"),
        pytest.param(
            act(CONTROLLER, "update", "deployments", group="apps"), id="controller-no-spec"
        ),
        pytest.param(
            act(CONTROLLER, "create", "roles", group="rbac.authorization.k8s.io"),
            id="controller-grants-nothing",
        ),
        pytest.param(
            act(CONTROLLER, "delete", "clusterroles", group="rbac.authorization.k8s.io", ns=""),
            id="controller-no-cluster-roles",
        ),
        pytest.param(act(DNS, "get", "services"), id="dns-only-lists"),
        pytest.param(act(DNS, "list", "pods"), id="dns-no-pods"),
        pytest.param(act(DNS, "update", "services"), id="dns-writes-nothing"),
        pytest.param(act(CLOUD, "list", "pods"), id="cloud-no-pods"),
        pytest.param(act(CLOUD, "update", "services", "status"), id="cloud-no-status"),
        pytest.param(act(CLOUD, "update", "nodes", ns=""), id="cloud-no-node-writes"),
    ],
)
def test_actors_may_do_nothing_more(attrs: Attributes) -> None:
    assert not authorize(attrs, STATE).allowed
