"""Kubernetes' RBAC authorizer: request attributes + RBAC objects -> allowed, and why.

Kubernetes' counterpart is plugin/pkg/auth/authorizer/rbac (`RuleAllows`) with the rule
resolver of pkg/registry/rbac/validation (`VisitRulesFor`, `appliesTo`). The semantics
are theirs, exactly:

* a rule matches when its verbs, apiGroups, resources and resourceNames all do (for a
  resource request) or its verbs and nonResourceURLs do (for a path). `*` matches any
  verb, group, resource or URL; `pods/status` names a subresource and `*/status` that
  subresource of every resource, while `pods` alone never matches `pods/status`.
  resourceNames are compared with the request's name, so a rule listing names never
  allows a create, a list or a watch, which name nothing (Kubernetes' request info names
  a list or watch only when its field selector is `metadata.name=<x>`); a nonResourceURL
  ending in `*` matches every path with that prefix;
* a ClusterRoleBinding grants its role everywhere, a RoleBinding only in its own
  namespace, also when it binds a ClusterRole; a request for all namespaces or a
  cluster-scoped object consults only ClusterRoleBindings;
* a User subject matches the user's name, a Group one any of its groups, a
  ServiceAccount one the user `system:serviceaccount:<namespace>:<name>`, its namespace
  defaulting to the RoleBinding's (in a ClusterRoleBinding it must be given);
* `system:masters` is allowed everything, before RBAC is asked (Kubernetes' privileged
  group authorizer, whose reason is empty).

ClusterRoleBindings are consulted first, then the namespace's RoleBindings, each in
name order (Kubernetes' listers promise no order; a stable one makes reasons
reproducible); the first rule that allows wins and names its source in the reason
(`RBAC: allowed by ClusterRoleBinding "x" of ClusterRole "y" to User "z"`). A binding
whose role is missing is skipped; if nothing allows, its error becomes the reason
(`RBAC: clusterrole.rbac.authorization.k8s.io "y" not found`), as Kubernetes reports it.

The apiserver authorizes every request, so `RbacState` resolves each binding's role once
and indexes bindings by the users and groups they name: a decision costs one dict lookup
per group of the user, not a scan of every binding. Aggregated ClusterRoles are
resolved by `rbac_aggregation.aggregate` before they reach a state; the 403 message of a
refusal is `status_messages.forbidden_message`. Pure: no I/O.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from kubelab.core.selectors import Selector
from services.apiserver.logic.status_messages import aggregate_errors, go_quote

ALL = "*"  # Kubernetes' VerbAll, APIGroupAll, ResourceAll and NonResourceAll
SYSTEM_MASTERS = "system:masters"
ALL_AUTHENTICATED = "system:authenticated"
ALL_UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS = "system:anonymous"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
SERVICE_ACCOUNTS_GROUP = "system:serviceaccounts"

USER, GROUP, SERVICE_ACCOUNT = "User", "Group", "ServiceAccount"
ROLE, CLUSTER_ROLE = "Role", "ClusterRole"


@dataclass(frozen=True, slots=True)
class UserInfo:
    """Who asks (apiserver's user.Info). `extra` pairs a key with its values."""

    name: str
    groups: tuple[str, ...] = ()
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()


def service_account_username(namespace: str, name: str) -> str:
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


def service_account_user(namespace: str, name: str) -> UserInfo:
    """A service account as Kubernetes' token authenticator presents it."""
    return UserInfo(
        service_account_username(namespace, name),
        (SERVICE_ACCOUNTS_GROUP, f"{SERVICE_ACCOUNTS_GROUP}:{namespace}", ALL_AUTHENTICATED),
    )


def authenticated(user: UserInfo) -> UserInfo:
    """`user` with `system:authenticated`, which Kubernetes adds to every user an
    authenticator recognised (`AuthenticatedGroupAdder`), the anonymous user excepted."""
    if user.name == ANONYMOUS or ALL_AUTHENTICATED in user.groups:
        return user
    return UserInfo(user.name, (*user.groups, ALL_AUTHENTICATED), user.extra)


ANONYMOUS_USER = UserInfo(ANONYMOUS, (ALL_UNAUTHENTICATED,))


@dataclass(frozen=True, slots=True)
class Attributes:
    """What a request asks (apiserver's authorizer.Attributes).

    A resource request names `verb` (get, list, watch, create, update, patch, delete,
    deletecollection), `api_group` ("" for core), `resource`, `subresource`, `namespace`
    ("" for cluster scope or all namespaces) and `name` ("" for create, list, watch,
    deletecollection). Otherwise `resource_request` is False and `path` is the URL path,
    `verb` the lowercased HTTP method. `field_selector` holds the request's field
    selector terms of the form `field=value` (the Node authorizer scopes a node's list
    of pods with them); `!=` terms are left out.
    """

    user: UserInfo
    verb: str
    namespace: str = ""
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    resource_request: bool = True
    path: str = ""
    field_selector: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class PolicyRule:
    verbs: tuple[str, ...]
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    namespace: str
    rules: tuple[PolicyRule, ...] = ()


@dataclass(frozen=True, slots=True)
class ClusterRole:
    """`aggregation_rule` None: the role's own rules; otherwise its clusterRoleSelectors,
    and `rules` are whatever aggregation last computed (`rbac_aggregation.aggregate`)."""

    name: str
    rules: tuple[PolicyRule, ...] = ()
    aggregation_rule: tuple[Selector, ...] | None = None
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True)
class Subject:
    kind: str  # User, Group or ServiceAccount; any other kind matches nobody
    name: str
    namespace: str = ""  # ServiceAccounts only


@dataclass(frozen=True, slots=True)
class RoleRef:
    kind: str  # Role or ClusterRole
    name: str


@dataclass(frozen=True, slots=True)
class RoleBinding:
    name: str
    namespace: str
    role_ref: RoleRef
    subjects: tuple[Subject, ...] = ()


@dataclass(frozen=True, slots=True)
class ClusterRoleBinding:
    name: str
    role_ref: RoleRef
    subjects: tuple[Subject, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str


# ---------------------------------------------------------------- rule matching


def verb_matches(rule: PolicyRule, verb: str) -> bool:
    return ALL in rule.verbs or verb in rule.verbs


def api_group_matches(rule: PolicyRule, group: str) -> bool:
    return ALL in rule.api_groups or group in rule.api_groups


def resource_matches(rule: PolicyRule, combined: str, subresource: str) -> bool:
    """`combined` is `resource` or `resource/subresource`."""
    for resource in rule.resources:
        if resource in (ALL, combined):
            return True
        if subresource and resource == f"*/{subresource}":
            return True
    return False


def resource_name_matches(rule: PolicyRule, name: str) -> bool:
    return not rule.resource_names or name in rule.resource_names


def non_resource_url_matches(rule: PolicyRule, path: str) -> bool:
    for url in rule.non_resource_urls:
        if url in (ALL, path):
            return True
        if url.endswith("*") and path.startswith(url.rstrip("*")):
            return True
    return False


def rule_allows(attrs: Attributes, rule: PolicyRule) -> bool:
    if not attrs.resource_request:
        return verb_matches(rule, attrs.verb) and non_resource_url_matches(rule, attrs.path)
    combined = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    return (
        verb_matches(rule, attrs.verb)
        and api_group_matches(rule, attrs.api_group)
        and resource_matches(rule, combined, attrs.subresource)
        and resource_name_matches(rule, attrs.name)
    )


def rules_allow(attrs: Attributes, rules: Iterable[PolicyRule]) -> bool:
    return any(rule_allows(attrs, rule) for rule in rules)


# ---------------------------------------------------------------- the snapshot

_Key = tuple[str, str]  # ("user", name) or ("group", name)


@dataclass(frozen=True, slots=True)
class _Grant:
    """One binding with its role resolved: what it grants, or why it cannot."""

    order: int
    kind: str  # ClusterRoleBinding or RoleBinding
    shown_name: str  # `name`, or `name/namespace` for a RoleBinding
    namespace: str  # "" for a ClusterRoleBinding
    role_ref: RoleRef
    subjects: tuple[Subject, ...]
    rules: tuple[PolicyRule, ...]
    error: str


def _subject_key(subject: Subject, binding_namespace: str) -> _Key | None:
    if subject.kind == USER:
        return ("user", subject.name)
    if subject.kind == GROUP:
        return ("group", subject.name)
    if subject.kind == SERVICE_ACCOUNT:
        namespace = subject.namespace or binding_namespace
        return ("user", service_account_username(namespace, subject.name)) if namespace else None
    return None


def applies_to(user: UserInfo, subject: Subject, binding_namespace: str) -> bool:
    """Kubernetes' appliesToUser."""
    key = _subject_key(subject, binding_namespace)
    if key is None:
        return False
    return key[1] == user.name if key[0] == "user" else key[1] in user.groups


def _user_keys(user: UserInfo) -> list[_Key]:
    return [("user", user.name), *(("group", g) for g in user.groups)]


@dataclass(frozen=True, slots=True)
class RbacState:
    """The RBAC objects at one moment, resolved and indexed. Build with `build`."""

    _cluster: Mapping[_Key, tuple[_Grant, ...]]
    _namespaced: Mapping[tuple[str, _Key], tuple[_Grant, ...]]
    # The roles themselves, for what a binding would grant (escalation checks).
    _role_rules: Mapping[tuple[str, str], tuple[PolicyRule, ...]] = field(default_factory=dict)
    _cluster_rules: Mapping[str, tuple[PolicyRule, ...]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        *,
        roles: Iterable[Role] = (),
        cluster_roles: Iterable[ClusterRole] = (),
        role_bindings: Iterable[RoleBinding] = (),
        cluster_role_bindings: Iterable[ClusterRoleBinding] = (),
    ) -> RbacState:
        role_rules = {(r.namespace, r.name): r.rules for r in roles}
        cluster_rules = {r.name: r.rules for r in cluster_roles}

        def resolve(ref: RoleRef, namespace: str) -> tuple[tuple[PolicyRule, ...], str]:
            if ref.kind == ROLE:
                found = role_rules.get((namespace, ref.name))
                missing = f"role.rbac.authorization.k8s.io {go_quote(ref.name)} not found"
            elif ref.kind == CLUSTER_ROLE:
                found = cluster_rules.get(ref.name)
                missing = f"clusterrole.rbac.authorization.k8s.io {go_quote(ref.name)} not found"
            else:
                return (), f"unsupported role reference kind: {go_quote(ref.kind)}"
            return (found, "") if found is not None else ((), missing)

        cluster: defaultdict[_Key, list[_Grant]] = defaultdict(list)
        crbs = sorted(cluster_role_bindings, key=lambda b: b.name)
        for order, crb in enumerate(crbs):
            rules, error = resolve(crb.role_ref, "")
            grant = _Grant(
                order, "ClusterRoleBinding", crb.name, "", crb.role_ref, crb.subjects, rules, error
            )
            for key in {k for s in crb.subjects if (k := _subject_key(s, "")) is not None}:
                cluster[key].append(grant)

        namespaced: defaultdict[tuple[str, _Key], list[_Grant]] = defaultdict(list)
        rbs = sorted(role_bindings, key=lambda b: (b.namespace, b.name))
        for order, rb in enumerate(rbs):
            rules, error = resolve(rb.role_ref, rb.namespace)
            shown = f"{rb.name}/{rb.namespace}"
            grant = _Grant(
                order, "RoleBinding", shown, rb.namespace, rb.role_ref, rb.subjects, rules, error
            )
            keys = {k for s in rb.subjects if (k := _subject_key(s, rb.namespace)) is not None}
            for key in keys:
                namespaced[(rb.namespace, key)].append(grant)

        return cls(
            {k: tuple(v) for k, v in cluster.items()},
            {k: tuple(v) for k, v in namespaced.items()},
            role_rules,
            cluster_rules,
        )

    def referenced_rules(self, ref: RoleRef, namespace: str) -> tuple[PolicyRule, ...] | None:
        """The rules of the role `ref` names (a Role in `namespace`), None when missing."""
        if ref.kind == ROLE:
            return self._role_rules.get((namespace, ref.name))
        if ref.kind == CLUSTER_ROLE:
            return self._cluster_rules.get(ref.name)
        return None

    def _grants_for(self, user: UserInfo, namespace: str) -> Iterator[_Grant]:
        """The bindings naming `user` that count in `namespace`, lazily, in the order
        Kubernetes visits them: ClusterRoleBindings, then the namespace's RoleBindings."""
        keys = _user_keys(user)
        yield from _merged([self._cluster.get(key, ()) for key in keys])
        if namespace:
            yield from _merged([self._namespaced.get((namespace, key), ()) for key in keys])


def _merged(lists: list[tuple[_Grant, ...]]) -> Iterator[_Grant]:
    """Grant lists, each in binding order, as one list in that order; a binding naming
    the user more than once (by name and by group) comes once."""
    last = -1
    for grant in heapq.merge(*(grants for grants in lists if grants), key=lambda g: g.order):
        if grant.order != last:
            last = grant.order
            yield grant


def _describe_subject(subject: Subject, binding_namespace: str) -> str:
    if subject.kind == SERVICE_ACCOUNT:
        namespace = subject.namespace or binding_namespace
        return f"{subject.kind} {go_quote(f'{subject.name}/{namespace}')}"
    return f"{subject.kind} {go_quote(subject.name)}"


def _source(grant: _Grant, user: UserInfo) -> str:
    subject = next(s for s in grant.subjects if applies_to(user, s, grant.namespace))
    return (
        f"{grant.kind} {go_quote(grant.shown_name)} of {grant.role_ref.kind} "
        f"{go_quote(grant.role_ref.name)} to {_describe_subject(subject, grant.namespace)}"
    )


def authorize(attrs: Attributes, state: RbacState) -> Decision:
    """Kubernetes' privileged-group authorizer, then its RBAC authorizer."""
    if SYSTEM_MASTERS in attrs.user.groups:
        return Decision(True, "")
    errors: list[str] = []
    for grant in state._grants_for(attrs.user, attrs.namespace):
        if grant.error:
            errors.append(grant.error)
            continue
        for rule in grant.rules:
            if rule_allows(attrs, rule):
                return Decision(True, f"RBAC: allowed by {_source(grant, attrs.user)}")
    return Decision(False, f"RBAC: {aggregate_errors(errors)}" if errors else "")
