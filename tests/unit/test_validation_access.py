"""ServiceAccount and RBAC validation: Kubernetes' rules, paths and words
(pkg/apis/rbac/validation, ValidateServiceAccount), and the rbac/v1 defaults."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.json_format import ParseDict

from kubelab.core import kinds
from kubelab.core.kinds import KindInfo
from kubelab.core.validation import objects as validation
from kubelab.v1 import access_pb2

RBAC = "rbac.authorization.k8s.io"


def make(info: KindInfo, body: dict[str, Any], name: str = "x", ns: str = "dev") -> Any:
    metadata = {"name": name, **({"namespace": ns} if info.namespaced else {})}
    obj = info.message()
    ParseDict({"metadata": metadata, **body}, obj)
    validation.apply_defaults(info, obj)
    return obj


def errors_of(info: KindInfo, body: dict[str, Any], name: str = "x") -> list[str]:
    return [str(e) for e in validation.validate_object(info, make(info, body, name))]


def rule(**fields: Any) -> dict[str, Any]:
    return {"rules": [fields]}


@pytest.mark.parametrize(
    ("info", "body", "errors"),
    [
        pytest.param(
            kinds.ROLES, rule(verbs=["get"], apiGroups=[""], resources=["pods"]), [], id="ok"
        ),
        pytest.param(
            kinds.ROLES,
            rule(apiGroups=[""], resources=["pods"]),
            ["rules[0].verbs: Required value: verbs must contain at least one value"],
            id="no-verbs",
        ),
        pytest.param(
            kinds.ROLES,
            rule(verbs=["get"], resources=["pods"]),
            [
                "rules[0].apiGroups: Required value: resource rules must supply at least one "
                "api group"
            ],
            id="no-group",
        ),
        pytest.param(
            kinds.CLUSTERROLES,
            rule(verbs=["get"], apiGroups=[""]),
            [
                "rules[0].resources: Required value: resource rules must supply at least one "
                "resource"
            ],
            id="no-resource",
        ),
        pytest.param(
            kinds.ROLES,
            rule(
                verbs=["get"], apiGroups=[""], resources=["pods", "services"], resourceNames=["a"]
            ),
            [
                "rules[0].resourceNames: Required value: resource names cannot apply to "
                "multiple resources"
            ],
            id="names-of-two-resources",
        ),
        pytest.param(
            kinds.ROLES,
            rule(verbs=["get"], nonResourceURLs=["/healthz"]),
            [
                'rules[0].nonResourceURLs: Invalid value: []string{"/healthz"}: namespaced '
                "rules cannot apply to non-resource URLs"
            ],
            id="urls-in-a-role",
        ),
        pytest.param(
            kinds.CLUSTERROLES, rule(verbs=["get"], nonResourceURLs=["/healthz"]), [], id="urls"
        ),
        pytest.param(
            kinds.CLUSTERROLES,
            rule(verbs=["get"], nonResourceURLs=["/x"], resources=["pods"]),
            [
                'rules[0].nonResourceURLs: Invalid value: []string{"/x"}: rules cannot apply '
                "to both regular resources and non-resource URLs"
            ],
            id="urls-and-resources",
        ),
        pytest.param(
            kinds.CLUSTERROLES,
            {"aggregationRule": {}},
            [
                "aggregationRule.clusterRoleSelectors: Required value: at least one "
                "clusterRoleSelector required if aggregationRule is non-nil"
            ],
            id="aggregation-without-selectors",
        ),
        pytest.param(
            kinds.CLUSTERROLES,
            {"aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"a/b": "true"}}]}},
            [],
            id="aggregation",
        ),
        pytest.param(
            kinds.CLUSTERROLES,
            {
                "aggregationRule": {
                    "clusterRoleSelectors": [
                        {"matchExpressions": [{"key": "a", "operator": "Near"}]}
                    ]
                }
            },
            [
                "aggregationRule.clusterRoleSelectors[0].matchExpressions[0].operator: "
                'Invalid value: "Near": not a valid selector operator'
            ],
            id="bad-selector",
        ),
    ],
)
def test_role_rules(info: KindInfo, body: dict[str, Any], errors: list[str]) -> None:
    assert errors_of(info, body) == errors


@pytest.mark.parametrize(
    ("name", "errors"),
    [
        pytest.param("system:aggregate-to-view", [], id="colons"),
        pytest.param("..", ["metadata.name: Invalid value: \"..\": may not be '..'"], id="dotdot"),
        pytest.param(
            "a/b%c",
            [
                "metadata.name: Invalid value: \"a/b%c\": may not contain '/'",
                "metadata.name: Invalid value: \"a/b%c\": may not contain '%'",
            ],
            id="slash-percent",
        ),
    ],
)
def test_rbac_names_are_path_segments(name: str, errors: list[str]) -> None:
    assert errors_of(kinds.CLUSTERROLES, {}, name) == errors
    assert [str(e) for e in validation.validate_key(kinds.ROLEBINDINGS, "dev", name)] == errors


def binding(ref: dict[str, str], *subjects: dict[str, str]) -> dict[str, Any]:
    return {"roleRef": ref, "subjects": list(subjects)}


VIEW = {"kind": "ClusterRole", "name": "view"}


@pytest.mark.parametrize(
    ("info", "body", "errors"),
    [
        pytest.param(
            kinds.ROLEBINDINGS,
            binding(
                VIEW, {"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "name": "ci"}
            ),
            [],
            id="ok",
        ),
        pytest.param(
            kinds.ROLEBINDINGS,
            binding({"kind": "Role", "name": "r", "apiGroup": "rbac.example.com"}),
            [
                'roleRef.apiGroup: Unsupported value: "rbac.example.com": supported values: '
                f'"{RBAC}"'
            ],
            id="foreign-group",
        ),
        pytest.param(
            kinds.ROLEBINDINGS,
            binding({"kind": "Secret", "name": "r"}),
            ['roleRef.kind: Unsupported value: "Secret": supported values: "Role", "ClusterRole"'],
            id="role-kind",
        ),
        pytest.param(
            kinds.CLUSTERROLEBINDINGS,
            binding({"kind": "Role", "name": "r"}),
            ['roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"'],
            id="cluster-binding-of-a-role",
        ),
        pytest.param(
            kinds.ROLEBINDINGS,
            binding({"kind": "Role"}),
            ["roleRef.name: Required value"],
            id="no-role-name",
        ),
        pytest.param(
            kinds.ROLEBINDINGS,
            binding(VIEW, {"kind": "Robot", "name": "r2"}),
            [
                'subjects[0].kind: Unsupported value: "Robot": supported values: '
                '"ServiceAccount", "User", "Group"'
            ],
            id="subject-kind",
        ),
        pytest.param(
            kinds.CLUSTERROLEBINDINGS,
            binding(VIEW, {"kind": "ServiceAccount", "name": "ci"}),
            ["subjects[0].namespace: Required value"],
            id="sa-without-namespace",
        ),
        pytest.param(
            kinds.ROLEBINDINGS,
            binding(VIEW, {"kind": "ServiceAccount", "name": "CI", "apiGroup": RBAC}),
            [
                'subjects[0].name: Invalid value: "CI": a lowercase RFC 1123 subdomain must '
                "consist of lower case alphanumeric characters, '-' or '.', and must start and "
                "end with an alphanumeric character (e.g. 'example.com', regex used for "
                "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                f'subjects[0].apiGroup: Unsupported value: "{RBAC}": supported values: ""',
            ],
            id="sa-name-and-group",
        ),
        pytest.param(
            kinds.ROLEBINDINGS,
            binding(VIEW, {"kind": "Group", "name": ""}),
            [
                "subjects[0].name: Required value",
                'subjects[0].name: Invalid value: "": group name cannot be empty',
            ],
            id="empty-group",
        ),
        pytest.param(
            kinds.ROLEBINDINGS,
            binding(VIEW, {"kind": "User", "name": "bob", "apiGroup": "v1"}),
            [f'subjects[0].apiGroup: Unsupported value: "v1": supported values: "{RBAC}"'],
            id="user-group",
        ),
    ],
)
def test_bindings(info: KindInfo, body: dict[str, Any], errors: list[str]) -> None:
    assert errors_of(info, body) == errors


def test_binding_defaults_fill_the_rbac_group() -> None:
    made = make(
        kinds.ROLEBINDINGS,
        binding(VIEW, {"kind": "User", "name": "a"}, {"kind": "ServiceAccount", "name": "ci"}),
    )
    assert made.role_ref.api_group == RBAC
    assert [s.api_group for s in made.subjects] == [RBAC, ""]
    assert (made.api_version, made.kind) == (f"{RBAC}/v1", "RoleBinding")


def test_role_ref_cannot_change() -> None:
    old = make(kinds.ROLEBINDINGS, binding(VIEW))
    new = make(kinds.ROLEBINDINGS, binding({"kind": "ClusterRole", "name": "edit"}))
    assert [str(e) for e in validation.validate_update(kinds.ROLEBINDINGS, old, new)] == [
        f'roleRef: Invalid value: rbac.RoleRef{{APIGroup:"{RBAC}", Kind:"ClusterRole", '
        'Name:"edit"}: cannot change roleRef'
    ]
    same = make(kinds.ROLEBINDINGS, {**binding(VIEW), "subjects": [{"kind": "Group", "name": "g"}]})
    assert validation.validate_update(kinds.ROLEBINDINGS, old, same) == []


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        pytest.param("default", True, id="default"),
        pytest.param("ci.bot", True, id="subdomain"),
        pytest.param("CI", False, id="upper"),
    ],
)
def test_service_account_names_are_subdomains(name: str, ok: bool) -> None:
    account = make(kinds.SERVICEACCOUNTS, {"automountServiceAccountToken": False}, name)
    assert account.HasField("automount_service_account_token")
    found = validation.validate_object(kinds.SERVICEACCOUNTS, account)
    assert (found == []) is ok, found
    assert isinstance(account, access_pb2.ServiceAccount)
