"""Kubernetes' words for refusals: the 403 Status message, Go's %q, error lists."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.apiserver.logic.rbac import Attributes, UserInfo, service_account_user
from services.apiserver.logic.status_messages import (
    aggregate_errors,
    forbidden_details,
    forbidden_message,
    go_quote,
)

ALICE = UserInfo("alice")

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
