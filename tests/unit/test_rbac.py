"""The RBAC authorizer: Kubernetes' rule matching, bindings, subjects and reasons.

The tables copy the cases of Kubernetes' plugin/pkg/auth/authorizer/rbac/rbac_test.go
(TestRuleMatches, TestAuthorizer) and the rules its RBAC documentation states.
"""

from __future__ import annotations

import pytest

from services.apiserver.logic.rbac import (
    ANONYMOUS_USER,
    Attributes,
    ClusterRole,
    ClusterRoleBinding,
    Decision,
    PolicyRule,
    RbacState,
    Role,
    RoleBinding,
    RoleRef,
    Subject,
    UserInfo,
    applies_to,
    authenticated,
    authorize,
    rule_allows,
    service_account_user,
)

ALICE = UserInfo("alice")


def res(
    verb: str, group: str = "", resource: str = "r", sub: str = "", name: str = ""
) -> Attributes:
    return Attributes(ALICE, verb, "", group, resource, sub, name)


def url(verb: str, path: str) -> Attributes:
    return Attributes(ALICE, verb, resource_request=False, path=path)


def rule(
    verbs: str, groups: str = "", resources: str = "", names: str = "", urls: str = ""
) -> PolicyRule:
    """Comma-separated lists, as Kubernetes' test builds rules; the group `core` is ""."""

    def split(text: str) -> tuple[str, ...]:
        return tuple(text.split(",")) if text else ()

    core = tuple("" if g == "core" else g for g in split(groups))
    return PolicyRule(split(verbs), core, split(resources), split(names), split(urls))


STAR_VERB = rule("*", "group1", "resource1")
STAR_GROUP = rule("verb1", "*", "resource1")
STAR_RESOURCE = rule("verb1", "group1", "*")
TUPLES = rule("verb1,verb2", "group1,group2", "resource1,resource2")
SUBRESOURCE = rule("*", "*", "resource1/subresource1")
STAR_SUBRESOURCE = rule("*", "*", "*/status")
NAMED = rule("get,list,create,update", "core", "pods", names="web,db")
STAR_URL = rule("verb1", urls="*")
URL_PREFIX = rule("verb1", urls="/foo/*")
EXACT_URLS = rule("*", urls="/foo,/foo/bar/one")


@pytest.mark.parametrize(
    ("policy", "attrs", "allowed"),
    [
        pytest.param(STAR_VERB, res("verb1", "group1", "resource1"), True, id="star-verb"),
        pytest.param(STAR_VERB, res("verb2", "group1", "resource1"), True, id="star-verb-other"),
        pytest.param(STAR_VERB, res("verb1", "group2", "resource1"), False, id="star-verb-group"),
        pytest.param(STAR_VERB, res("verb1", "group1", "resource2"), False, id="star-verb-res"),
        pytest.param(STAR_GROUP, res("verb1", "group2", "resource1"), True, id="star-group"),
        pytest.param(STAR_GROUP, res("verb2", "group1", "resource1"), False, id="star-group-verb"),
        pytest.param(STAR_GROUP, res("verb1", "group1", "resource2"), False, id="star-group-res"),
        pytest.param(STAR_RESOURCE, res("verb1", "group1", "resource2"), True, id="star-res"),
        pytest.param(STAR_RESOURCE, res("verb1", "group2", "resource1"), False, id="star-res-grp"),
        pytest.param(STAR_RESOURCE, res("verb1", "group1", "r", "status"), True, id="star-res-sub"),
        pytest.param(TUPLES, res("verb2", "group2", "resource1"), True, id="tuple-expansion"),
        pytest.param(TUPLES, res("verb3", "group2", "resource1"), False, id="tuple-other-verb"),
        pytest.param(SUBRESOURCE, res("v", "g", "resource1", "subresource1"), True, id="sub"),
        pytest.param(SUBRESOURCE, res("v", "g", "resource1", "subresource2"), False, id="sub-2"),
        pytest.param(SUBRESOURCE, res("v", "g", "resource2", "subresource1"), False, id="sub-res"),
        pytest.param(SUBRESOURCE, res("v", "g", "resource1"), False, id="sub-not-parent"),
        pytest.param(rule("*", "*", "pods"), res("get", "", "pods", "status"), False, id="parent"),
        pytest.param(STAR_SUBRESOURCE, res("get", "", "pods", "status"), True, id="star-sub"),
        pytest.param(STAR_SUBRESOURCE, res("get", "apps", "x", "status"), True, id="star-sub-2"),
        pytest.param(STAR_SUBRESOURCE, res("get", "", "pods", "log"), False, id="star-sub-log"),
        pytest.param(STAR_SUBRESOURCE, res("get", "", "status"), False, id="star-sub-top"),
        pytest.param(NAMED, res("get", "", "pods", name="web"), True, id="named-get"),
        pytest.param(NAMED, res("update", "", "pods", name="db"), True, id="named-update"),
        pytest.param(NAMED, res("get", "", "pods", name="cache"), False, id="other-name"),
        pytest.param(NAMED, res("list", "", "pods"), False, id="names-never-list"),
        pytest.param(NAMED, res("create", "", "pods"), False, id="names-never-create"),
        pytest.param(NAMED, res("list", "", "pods", name="web"), True, id="list-by-name"),
        pytest.param(rule("GET", "*", "*"), res("get"), False, id="case-sensitive"),
        pytest.param(STAR_URL, url("verb1", "/foo/bar/one"), True, id="star-url"),
        pytest.param(STAR_URL, url("verb2", "/foo"), False, id="star-url-verb"),
        pytest.param(URL_PREFIX, url("verb1", "/foo"), False, id="prefix-not-itself"),
        pytest.param(URL_PREFIX, url("verb1", "/foo/bar/one"), True, id="prefix-deep"),
        pytest.param(URL_PREFIX, url("verb1", "/notfoo/bar"), False, id="prefix-other"),
        pytest.param(EXACT_URLS, url("verb2", "/foo/bar/one"), True, id="exact-url"),
        pytest.param(EXACT_URLS, url("verb1", "/foo/bar"), False, id="exact-url-not-prefix"),
        pytest.param(STAR_RESOURCE, url("verb1", "/foo"), False, id="resource-rule-no-url"),
        pytest.param(STAR_URL, res("verb1", "group1", "r"), False, id="url-rule-no-resource"),
    ],
)
def test_rule_matches(policy: PolicyRule, attrs: Attributes, allowed: bool) -> None:
    assert rule_allows(attrs, policy) is allowed


EVERYTHING = ClusterRole("admin", (rule("*", "*", "*", urls="*"),))


def allowed(state: RbacState, user: UserInfo, verb: str, resource: str, ns: str = "") -> bool:
    return authorize(Attributes(user, verb, ns, "", resource), state).allowed


def test_role_binding_to_cluster_role_grants_only_its_namespace() -> None:
    binding = RoleBinding(
        "b",
        "ns1",
        RoleRef("ClusterRole", "admin"),
        (Subject("User", "admin"), Subject("Group", "admins")),
    )
    state = RbacState.build(cluster_roles=[EVERYTHING], role_bindings=[binding])
    admin, joe = UserInfo("admin"), UserInfo("joe", ("group1", "admins"))
    assert allowed(state, admin, "get", "Pods", "ns1")
    assert allowed(state, joe, "watch", "Foobar", "ns1")
    assert not allowed(state, admin, "get", "Pods", "ns2")
    assert not allowed(state, admin, "get", "Nodes")
    assert not allowed(state, joe, "get", "Pods", "ns2")
    assert not allowed(state, UserInfo("joe", ("group1",)), "get", "Pods", "ns1")


def test_cluster_role_binding_grants_everywhere_and_non_resource_urls() -> None:
    state = RbacState.build(
        cluster_roles=[
            ClusterRole("getter", (rule("get", urls="/apis"),)),
            ClusterRole("prefixed", (rule("get", urls="/apis/*"),)),
        ],
        cluster_role_bindings=[
            ClusterRoleBinding("g", RoleRef("ClusterRole", "getter"), (Subject("Group", "bar"),)),
            ClusterRoleBinding("p", RoleRef("ClusterRole", "prefixed"), (Subject("User", "pre"),)),
        ],
    )
    bar, pre = UserInfo("", ("bar",)), UserInfo("pre")
    assert authorize(Attributes(bar, "get", resource_request=False, path="/apis"), state).allowed
    assert not authorize(
        Attributes(bar, "watch", resource_request=False, path="/apis"), state
    ).allowed
    assert not authorize(
        Attributes(bar, "get", resource_request=False, path="/api/v1"), state
    ).allowed
    assert authorize(
        Attributes(pre, "get", resource_request=False, path="/apis/v1/x"), state
    ).allowed
    assert not authorize(
        Attributes(pre, "get", resource_request=False, path="/api/v1"), state
    ).allowed


def test_role_binding_to_a_role_uses_the_role_of_its_own_namespace() -> None:
    reader = (rule("get", "core", "pods"),)
    state = RbacState.build(
        roles=[Role("reader", "ns2", reader)],
        role_bindings=[
            RoleBinding("here", "ns2", RoleRef("Role", "reader"), (Subject("User", "alice"),)),
            RoleBinding("there", "ns1", RoleRef("Role", "reader"), (Subject("User", "alice"),)),
        ],
    )
    assert allowed(state, ALICE, "get", "pods", "ns2")
    decision = authorize(Attributes(ALICE, "get", "ns1", "", "pods"), state)
    assert decision == Decision(False, 'RBAC: role.rbac.authorization.k8s.io "reader" not found')


SA = service_account_user("ns1", "ci")


@pytest.mark.parametrize(
    ("subject", "binding_ns", "user", "applies"),
    [
        pytest.param(Subject("User", "alice"), "", ALICE, True, id="user"),
        pytest.param(Subject("User", "Alice"), "", ALICE, False, id="user-case"),
        pytest.param(Subject("Group", "devs"), "", UserInfo("x", ("devs",)), True, id="group"),
        pytest.param(Subject("Group", "alice"), "", ALICE, False, id="group-not-user"),
        pytest.param(Subject("ServiceAccount", "ci", "ns1"), "", SA, True, id="sa"),
        pytest.param(Subject("ServiceAccount", "ci"), "ns1", SA, True, id="sa-binding-ns"),
        pytest.param(Subject("ServiceAccount", "ci"), "ns2", SA, False, id="sa-other-ns"),
        pytest.param(Subject("ServiceAccount", "ci"), "", SA, False, id="sa-no-ns-in-crb"),
        pytest.param(Subject("User", SA.name), "", SA, True, id="sa-name-as-user"),
        pytest.param(Subject("Robot", "alice"), "", ALICE, False, id="unknown-kind"),
    ],
)
def test_subjects(subject: Subject, binding_ns: str, user: UserInfo, applies: bool) -> None:
    assert applies_to(user, subject, binding_ns) is applies
    if binding_ns:
        binding = RoleBinding("b", binding_ns, RoleRef("ClusterRole", "admin"), (subject,))
        state = RbacState.build(cluster_roles=[EVERYTHING], role_bindings=[binding])
    else:
        crb = ClusterRoleBinding("b", RoleRef("ClusterRole", "admin"), (subject,))
        state = RbacState.build(cluster_roles=[EVERYTHING], cluster_role_bindings=[crb])
    assert allowed(state, user, "get", "pods", binding_ns or "any") is applies


def test_the_reason_names_the_binding_role_and_first_matching_subject() -> None:
    subjects = (Subject("User", "bob"), Subject("Group", "devs"), Subject("User", "alice"))
    state = RbacState.build(
        cluster_roles=[EVERYTHING, ClusterRole("view", (rule("get", "core", "pods"),))],
        roles=[Role("deployer", "prod", (rule("create", "apps", "deployments"),))],
        cluster_role_bindings=[
            ClusterRoleBinding("z-admins", RoleRef("ClusterRole", "admin"), subjects),
            ClusterRoleBinding("a-viewers", RoleRef("ClusterRole", "view"), subjects),
        ],
        role_bindings=[
            RoleBinding(
                "ci", "prod", RoleRef("Role", "deployer"), (Subject("ServiceAccount", "ci"),)
            )
        ],
    )
    alice = UserInfo("alice", ("devs",))
    assert authorize(Attributes(alice, "get", "prod", "", "pods"), state).reason == (
        'RBAC: allowed by ClusterRoleBinding "a-viewers" of ClusterRole "view" to Group "devs"'
    )
    assert authorize(Attributes(alice, "delete", "prod", "", "pods"), state).reason == (
        'RBAC: allowed by ClusterRoleBinding "z-admins" of ClusterRole "admin" to Group "devs"'
    )
    ci = service_account_user("prod", "ci")
    assert authorize(Attributes(ci, "create", "prod", "apps", "deployments"), state).reason == (
        'RBAC: allowed by RoleBinding "ci/prod" of Role "deployer" to ServiceAccount "ci/prod"'
    )


def test_unresolvable_bindings_become_the_reason_only_when_nothing_allows() -> None:
    to_alice = (Subject("User", "alice"),)
    crbs = [
        ClusterRoleBinding("a", RoleRef("ClusterRole", "gone"), to_alice),
        ClusterRoleBinding("b", RoleRef("ClusterRole", "gone"), to_alice),
        ClusterRoleBinding("c", RoleRef("Policy", "x"), to_alice),
    ]
    state = RbacState.build(cluster_role_bindings=crbs)
    assert authorize(Attributes(ALICE, "get", "", "", "pods"), state).reason == (
        'RBAC: [clusterrole.rbac.authorization.k8s.io "gone" not found, '
        'unsupported role reference kind: "Policy"]'
    )
    granted = RbacState.build(
        cluster_roles=[EVERYTHING],
        cluster_role_bindings=[
            *crbs,
            ClusterRoleBinding("d", RoleRef("ClusterRole", "admin"), to_alice),
        ],
    )
    assert authorize(Attributes(ALICE, "get", "", "", "pods"), granted).allowed
    assert authorize(Attributes(UserInfo("bob"), "get", "", "", "pods"), state) == Decision(
        False, ""
    )


def test_system_masters_is_allowed_everything_before_rbac() -> None:
    root = UserInfo("root", ("system:masters",))
    decision = authorize(
        Attributes(root, "escalate", "", "rbac.authorization.k8s.io", "x"), RbacState.build()
    )
    assert decision == Decision(True, "")


def test_users_as_authenticators_present_them() -> None:
    assert SA.groups == (
        "system:serviceaccounts",
        "system:serviceaccounts:ns1",
        "system:authenticated",
    )
    assert authenticated(ALICE).groups == ("system:authenticated",)
    assert authenticated(authenticated(ALICE)) == authenticated(ALICE)
    assert authenticated(ANONYMOUS_USER) == ANONYMOUS_USER
    assert ANONYMOUS_USER.groups == ("system:unauthenticated",)
