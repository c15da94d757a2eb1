"""`kubectl get` / `kubelab get` of ServiceAccounts and the RBAC kinds: Kubernetes' columns
(printers.go, and the default table's CREATED AT for roles) and cells."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from google.protobuf import json_format

from kubelab.cli import printers
from kubelab.core import kinds
from kubelab.core.kinds import ApiObject, KindInfo
from services.apiserver.rest import tables

NOW = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)
CREATED = "2026-12-07T11:55:00Z"  # five minutes before NOW
SUBJECTS = [
    {"kind": "User", "name": "alice"},
    {"kind": "User", "name": "bob"},
    {"kind": "Group", "name": "devs"},
    {"kind": "ServiceAccount", "name": "ci", "namespace": "default"},
]


def obj(info: KindInfo, body: dict[str, Any]) -> ApiObject:
    meta = {"name": "x", "creationTimestamp": CREATED}
    if info.namespaced:
        meta["namespace"] = "default"
    message = info.message()
    json_format.ParseDict({"metadata": meta, **body}, message)
    return message


def columns(info: KindInfo) -> list[tuple[str, str, int]]:
    table = tables.table(info, [], NOW, resource_version="1")
    return [(c["name"], c["type"], c["priority"]) for c in table["columnDefinitions"]]


def test_service_accounts_show_their_secret_count() -> None:
    account = obj(kinds.SERVICEACCOUNTS, {"secrets": [{"name": "a"}, {"name": "b"}]})
    assert columns(kinds.SERVICEACCOUNTS) == [
        ("Name", "string", 0),
        ("Secrets", "string", 0),
        ("Age", "string", 0),
    ]
    assert tables.row(kinds.SERVICEACCOUNTS, account, NOW)["cells"] == ["x", 2, "5m"]
    fmt = printers.RowFormat()
    assert printers.header(kinds.SERVICEACCOUNTS, fmt) == ["NAME", "SECRETS", "AGE"]
    assert printers.row(kinds.SERVICEACCOUNTS, account, NOW, fmt) == ["x", "2", "5m"]


@pytest.mark.parametrize("info", [kinds.ROLES, kinds.CLUSTERROLES], ids=lambda i: i.resource)
def test_roles_show_when_they_were_created(info: KindInfo) -> None:
    role = obj(info, {"rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]})
    assert columns(info) == [("Name", "string", 0), ("Created At", "date", 0)]
    assert tables.row(info, role, NOW)["cells"] == ["x", CREATED]
    fmt = printers.RowFormat()
    assert printers.header(info, fmt) == ["NAME", "CREATED AT"]
    assert printers.row(info, role, NOW, fmt) == ["x", CREATED]


@pytest.mark.parametrize(
    "info", [kinds.ROLEBINDINGS, kinds.CLUSTERROLEBINDINGS], ids=lambda i: i.resource
)
def test_bindings_show_the_role_and_wide_the_subjects(info: KindInfo) -> None:
    binding = obj(info, {"roleRef": {"kind": "ClusterRole", "name": "view"}, "subjects": SUBJECTS})
    assert columns(info) == [
        ("Name", "string", 0),
        ("Role", "string", 0),
        ("Age", "string", 0),
        ("Users", "string", 1),
        ("Groups", "string", 1),
        ("ServiceAccounts", "string", 1),
    ]
    assert tables.row(info, binding, NOW)["cells"] == [
        "x",
        "ClusterRole/view",
        "5m",
        "alice, bob",
        "devs",
        "default/ci",
    ]
    assert printers.header(info, printers.RowFormat()) == ["NAME", "ROLE", "AGE"]
    assert printers.row(info, binding, NOW, printers.RowFormat()) == [
        "x",
        "ClusterRole/view",
        "5m",
    ]
    wide = printers.RowFormat(wide=True)
    assert printers.header(info, wide) == [
        "NAME",
        "ROLE",
        "AGE",
        "USERS",
        "GROUPS",
        "SERVICEACCOUNTS",
    ]
    assert printers.row(info, binding, NOW, wide)[3:] == ["alice, bob", "devs", "default/ci"]


def test_a_binding_without_subjects_prints_empty_subject_cells() -> None:
    binding = obj(kinds.CLUSTERROLEBINDINGS, {"roleRef": {"kind": "ClusterRole", "name": "n"}})
    assert tables.row(kinds.CLUSTERROLEBINDINGS, binding, NOW)["cells"][3:] == ["", "", ""]
