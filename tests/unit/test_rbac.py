"""The RBAC authorizer: Kubernetes' rule matching, bindings, reasons and 403 messages.

The tables copy the cases of Kubernetes' plugin/pkg/auth/authorizer/rbac/rbac_test.go
(TestRuleMatches, TestAuthorizer) and the rules its RBAC documentation states; the
properties check the index against a plain transcription of Kubernetes' VisitRulesFor.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
from services.apiserver.logic.status_messages import (
    aggregate_errors,
    forbidden_details,
    forbidden_message,
    go_quote,
)

ALICE = UserInfo("alice")
# Roles, ClusterRoles, RoleBindings ("rbs") and ClusterRoleBindings ("crbs") by kind.
Objects = dict[str, list[Any]]


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


# ---------------------------------------------------------------- the index vs Kubernetes


def visit_rules_for(attrs: Attributes, state_objects: Objects) -> Decision:
    """Kubernetes' RBACAuthorizer over DefaultRuleResolver, transcribed without an index."""
    if "system:masters" in attrs.user.groups:
        return Decision(True, "")
    roles: dict[tuple[str, str], Role] = {(r.namespace, r.name): r for r in state_objects["roles"]}
    cluster_roles: dict[str, ClusterRole] = {r.name: r for r in state_objects["cluster_roles"]}
    errors: list[str] = []

    def rules_of(ref: RoleRef, ns: str) -> tuple[PolicyRule, ...] | None:
        if ref.kind == "Role" and (ns, ref.name) in roles:
            return roles[(ns, ref.name)].rules
        if ref.kind == "ClusterRole" and ref.name in cluster_roles:
            return cluster_roles[ref.name].rules
        kinds = {"Role": "role", "ClusterRole": "clusterrole"}
        if ref.kind in kinds:
            errors.append(f'{kinds[ref.kind]}.rbac.authorization.k8s.io "{ref.name}" not found')
        else:
            errors.append(f'unsupported role reference kind: "{ref.kind}"')
        return None

    def applies(s: Subject, ns: str) -> bool:
        if s.kind == "User":
            return attrs.user.name == s.name
        if s.kind == "Group":
            return s.name in attrs.user.groups
        sa_ns = s.namespace or ns
        sa_user = f"system:serviceaccount:{sa_ns}:{s.name}"
        return s.kind == "ServiceAccount" and bool(sa_ns) and attrs.user.name == sa_user

    def describe(s: Subject, ns: str) -> str:
        if s.kind == "ServiceAccount":
            return f'ServiceAccount "{s.name}/{s.namespace or ns}"'
        return f'{s.kind} "{s.name}"'

    scopes = [
        ("ClusterRoleBinding", b, "") for b in sorted(state_objects["crbs"], key=lambda b: b.name)
    ]
    if attrs.namespace:
        local = [b for b in state_objects["rbs"] if b.namespace == attrs.namespace]
        scopes += [("RoleBinding", b, b.namespace) for b in sorted(local, key=lambda b: b.name)]
    for kind, binding, ns in scopes:
        subject = next((s for s in binding.subjects if applies(s, ns)), None)
        if subject is None:
            continue
        rules = rules_of(binding.role_ref, ns)
        for policy in rules or ():
            if rule_allows(attrs, policy):
                shown = f"{binding.name}/{ns}" if ns else binding.name
                source = f'{kind} "{shown}" of {binding.role_ref.kind} "{binding.role_ref.name}"'
                return Decision(True, f"RBAC: allowed by {source} to {describe(subject, ns)}")
    return Decision(False, f"RBAC: {aggregate_errors(errors)}" if errors else "")


# Small pools, so that generated bindings name generated users and roles, and rules
# match generated requests, often enough for both answers to be common.
NAMESPACES = st.sampled_from(["", "ns1", "ns1", "ns2"])
policies = st.builds(
    PolicyRule,
    st.lists(st.sampled_from(["get", "list", "*"]), min_size=1, max_size=2).map(tuple),
    st.lists(st.sampled_from(["", "apps", "*"]), min_size=1, max_size=2).map(tuple),
    st.lists(st.sampled_from(["pods", "pods/status", "*/status", "*"]), min_size=1, max_size=2).map(
        tuple
    ),
    st.sampled_from([(), (), ("x",)]),
    st.lists(st.sampled_from(["/api", "/api/*", "*"]), max_size=1).map(tuple),
)
role_refs = st.builds(
    RoleRef,
    st.sampled_from(["Role", "ClusterRole", "ClusterRole", "ClusterRole", "Other"]),
    st.sampled_from(["r1", "r1", "r1", "r2", "r3"]),
)
SA_USER = "system:serviceaccount:ns1:sa"
subjects = st.one_of(
    st.builds(Subject, st.just("User"), st.sampled_from(["alice", "bob", SA_USER])),
    st.builds(Subject, st.just("Group"), st.sampled_from(["devs", "ops"])),
    st.builds(Subject, st.just("ServiceAccount"), st.just("sa"), st.sampled_from(["", "ns1"])),
    st.builds(Subject, st.just("Robot"), st.just("alice")),
)
subject_lists = st.lists(subjects, min_size=1, max_size=3).map(tuple)
binding_names = st.sampled_from(["b1", "b2", "b3"])
rule_lists = st.lists(policies, min_size=1, max_size=3).map(tuple)
state_objects = st.fixed_dictionaries(
    {
        "roles": st.lists(
            st.builds(Role, st.sampled_from(["r1", "r2"]), NAMESPACES.filter(bool), rule_lists),
            max_size=3,
            unique_by=lambda r: (r.namespace, r.name),
        ),
        "cluster_roles": st.lists(
            st.builds(ClusterRole, st.sampled_from(["r1", "r2"]), rule_lists),
            min_size=1,
            max_size=2,
            unique_by=lambda r: r.name,
        ),
        "rbs": st.lists(
            st.builds(
                RoleBinding, binding_names, NAMESPACES.filter(bool), role_refs, subject_lists
            ),
            max_size=3,
            unique_by=lambda b: (b.namespace, b.name),
        ),
        "crbs": st.lists(
            st.builds(ClusterRoleBinding, binding_names, role_refs, subject_lists),
            max_size=3,
            unique_by=lambda b: b.name,
        ),
    }
)
users = st.builds(
    UserInfo,
    st.sampled_from(["alice", "alice", "bob", SA_USER, "system:serviceaccount:ns2:sa"]),
    st.lists(st.sampled_from(["devs", "ops"]), max_size=2, unique=True).map(tuple),
)
requests = st.builds(
    Attributes,
    users,
    st.sampled_from(["get", "list"]),
    NAMESPACES,
    st.sampled_from(["", "apps"]),
    st.just("pods"),
    st.sampled_from(["", "status"]),
    st.sampled_from(["", "x"]),
    st.sampled_from([True, True, False]),
    st.sampled_from(["/api", "/api/v1", "/apis"]),
)


def build(objects: Objects) -> RbacState:
    return RbacState.build(
        roles=objects["roles"],
        cluster_roles=objects["cluster_roles"],
        role_bindings=objects["rbs"],
        cluster_role_bindings=objects["crbs"],
    )


@settings(max_examples=400)  # cheap, and about one in fourteen is allowed
@given(state_objects, requests)
def test_the_index_decides_as_kubernetes_visits(objects: Objects, attrs: Attributes) -> None:
    assert authorize(attrs, build(objects)) == visit_rules_for(attrs, objects)


@given(
    state_objects,
    requests,
    st.builds(RoleBinding, st.just("extra"), NAMESPACES.filter(bool), role_refs, subject_lists),
    st.builds(ClusterRoleBinding, st.just("extra"), role_refs, subject_lists),
)
def test_another_binding_never_takes_a_permission_away(
    objects: Objects, attrs: Attributes, rb: RoleBinding, crb: ClusterRoleBinding
) -> None:
    before = authorize(attrs, build(objects)).allowed
    with_rb = {**objects, "rbs": [*objects["rbs"], rb]}
    with_crb = {**objects, "crbs": [*objects["crbs"], crb]}
    assert authorize(attrs, build(with_rb)).allowed >= before
    assert authorize(attrs, build(with_crb)).allowed >= before


@given(state_objects, requests, policies, st.integers(min_value=0, max_value=4))
def test_another_rule_never_takes_a_permission_away(
    objects: Objects, attrs: Attributes, extra: PolicyRule, which: int
) -> None:
    before = authorize(attrs, build(objects)).allowed
    roles, cluster_roles = list(objects["roles"]), list(objects["cluster_roles"])
    if which < len(roles):
        role = roles[which]
        roles[which] = Role(role.name, role.namespace, (*role.rules, extra))
    elif cluster_roles:
        role = cluster_roles[which % len(cluster_roles)]
        cluster_roles[which % len(cluster_roles)] = ClusterRole(role.name, (*role.rules, extra))
    grown = {**objects, "roles": roles, "cluster_roles": cluster_roles}
    assert authorize(attrs, build(grown)).allowed >= before


@given(state_objects, requests, NAMESPACES.filter(bool))
def test_role_bindings_never_allow_outside_their_namespace(
    objects: Objects,
    attrs: Attributes,
    namespace: str,
) -> None:
    only_here = {
        **objects,
        "crbs": [],
        "rbs": [b for b in objects["rbs"] if b.namespace == namespace],
    }
    if attrs.namespace != namespace:
        assert not authorize(attrs, build(only_here)).allowed


@given(
    requests,
    st.sampled_from(["get", "list", "watch", "create", "update", "patch", "delete", "escalate"]),
)
def test_a_star_rule_allows_every_verb(attrs: Attributes, verb: str) -> None:
    everything = (rule("*", "*", "*", urls="*"),)
    state = RbacState.build(
        cluster_roles=[ClusterRole("all", everything)],
        cluster_role_bindings=[
            ClusterRoleBinding(
                "all", RoleRef("ClusterRole", "all"), (Subject("User", attrs.user.name),)
            )
        ],
    )
    assert authorize(
        Attributes(
            attrs.user,
            verb,
            attrs.namespace,
            attrs.api_group,
            attrs.resource,
            attrs.subresource,
            attrs.name,
            attrs.resource_request,
            attrs.path,
        ),
        state,
    ).allowed


# ---------------------------------------------------------------- the 403 message

CI = service_account_user("default", "ci")


@pytest.mark.parametrize(
    ("attrs", "reason", "message"),
    [
        pytest.param(
            Attributes(CI, "delete", "default", "", "services", name="shop"),
            "",
            'services "shop" is forbidden: User "system:serviceaccount:default:ci" cannot '
            'delete resource "services" in API group "" in the namespace "default"',
            id="named",
        ),
        pytest.param(
            Attributes(CI, "list", "default", "", "pods"),
            "",
            'pods is forbidden: User "system:serviceaccount:default:ci" cannot list resource '
            '"pods" in API group "" in the namespace "default"',
            id="no-name",
        ),
        pytest.param(
            Attributes(CI, "list", "", "", "pods"),
            "",
            'pods is forbidden: User "system:serviceaccount:default:ci" cannot list resource '
            '"pods" in API group "" at the cluster scope',
            id="all-namespaces",
        ),
        pytest.param(
            Attributes(ALICE, "get", "", "", "nodes", name="node-1"),
            "",
            'nodes "node-1" is forbidden: User "alice" cannot get resource "nodes" in API '
            'group "" at the cluster scope',
            id="cluster-scoped",
        ),
        pytest.param(
            Attributes(ALICE, "patch", "prod", "apps", "deployments", "scale", "web"),
            "",
            'deployments.apps "web" is forbidden: User "alice" cannot patch resource '
            '"deployments/scale" in API group "apps" in the namespace "prod"',
            id="group-and-subresource",
        ),
        pytest.param(
            Attributes(ALICE, "get", resource_request=False, path="/metrics"),
            "",
            'forbidden: User "alice" cannot get path "/metrics"',
            id="path",
        ),
        pytest.param(
            Attributes(ALICE, "get", "", "", "nodes"),
            'RBAC: clusterrole.rbac.authorization.k8s.io "view" not found',
            'nodes is forbidden: User "alice" cannot get resource "nodes" in API group "" at '
            'the cluster scope: RBAC: clusterrole.rbac.authorization.k8s.io "view" not found',
            id="with-reason",
        ),
        pytest.param(
            Attributes(UserInfo('<b>"x"\n'), "get", "", "", "nodes", name="a<b"),
            "",
            'nodes "a<b" is forbidden: User "&lt;b&gt;\\"x\\"\\n" cannot get resource "nodes" in '
            'API group "" at the cluster scope',
            id="escaped",
        ),
    ],
)
def test_forbidden_message(attrs: Attributes, reason: str, message: str) -> None:
    assert forbidden_message(attrs, reason) == message


def test_forbidden_details() -> None:
    attrs = Attributes(ALICE, "get", "prod", "apps", "deployments", "scale", "web")
    assert forbidden_details(attrs) == {"group": "apps", "kind": "deployments", "name": "web"}
    assert forbidden_details(Attributes(ALICE, "list", "", "", "pods")) == {"kind": "pods"}


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        pytest.param("plain", '"plain"', id="plain"),
        pytest.param('a"b\\c', '"a\\"b\\\\c"', id="quote-backslash"),
        pytest.param("\t\x00\x7f", '"\\t\\x00\\x7f"', id="control"),
        pytest.param("é✓", '"é✓"', id="printable-unicode"),
        pytest.param("\u00a0\u200b", '"\\u00a0\\u200b"', id="unicode-space"),
    ],
)
def test_go_quote(text: str, quoted: str) -> None:
    assert go_quote(text) == quoted


@given(st.lists(st.sampled_from(["a", "b", "c"]), max_size=4))
def test_aggregate_errors(messages: list[str]) -> None:
    text = aggregate_errors(messages)
    unique = list(dict.fromkeys(messages))
    assert text == (
        "" if not unique else unique[0] if len(unique) == 1 else f"[{', '.join(unique)}]"
    )
