"""RBAC properties: the indexed authorizer decides, and explains, exactly as a plain
transcription of Kubernetes' VisitRulesFor does, and grants only ever add permissions."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.apiserver.logic.rbac import (
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
    authorize,
    rule_allows,
)
from services.apiserver.logic.status_messages import aggregate_errors

# Roles, ClusterRoles, RoleBindings ("rbs") and ClusterRoleBindings ("crbs") by kind.
Objects = dict[str, list[Any]]


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
    everything = (PolicyRule(("*",), ("*",), ("*",), non_resource_urls=("*",)),)
    state = RbacState.build(
        cluster_roles=[ClusterRole("all", everything)],
        cluster_role_bindings=[
            ClusterRoleBinding(
                "all", RoleRef("ClusterRole", "all"), (Subject("User", attrs.user.name),)
            )
        ],
    )
    assert authorize(replace(attrs, verb=verb), state).allowed
