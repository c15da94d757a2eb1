"""Requests as the authorizer reads them (Kubernetes' RequestInfo), for both fronts."""

from __future__ import annotations

import pytest

from kubelab.core import kinds
from services.apiserver.logic.rbac import Attributes, UserInfo
from services.apiserver.logic.request_attributes import (
    field_terms,
    grpc_attributes,
    path_attributes,
    path_request,
    rest_attributes,
)

ALICE = UserInfo("alice", ("system:authenticated",))


@pytest.mark.parametrize(
    ("method", "name", "query", "verb", "named"),
    [
        ("GET", "shop", {}, "get", "shop"),
        ("GET", "", {}, "list", ""),
        ("GET", "", {"watch": "true"}, "watch", ""),
        ("GET", "", {"watch": "1"}, "watch", ""),
        ("GET", "", {"watch": "false"}, "list", ""),
        ("GET", "", {"fieldSelector": "metadata.name=shop"}, "list", "shop"),
        ("GET", "", {"watch": "true", "fieldSelector": "metadata.name==shop"}, "watch", "shop"),
        ("GET", "", {"fieldSelector": "metadata.name!=shop"}, "list", ""),
        ("POST", "", {}, "create", ""),
        ("PUT", "shop", {}, "update", "shop"),
        ("PATCH", "shop", {}, "patch", "shop"),
        ("DELETE", "shop", {}, "delete", "shop"),
        ("DELETE", "", {}, "deletecollection", ""),
        ("HEAD", "shop", {}, "get", "shop"),
    ],
)
def test_http_verbs_as_kubernetes_names_them(
    method: str, name: str, query: dict[str, str], verb: str, named: str
) -> None:
    attrs = rest_attributes(
        ALICE, method, resource="services", group="", namespace="default", name=name,
        subresource="", query=query,
    )  # fmt: skip
    assert (attrs.verb, attrs.name, attrs.resource, attrs.namespace) == (
        verb, named, "services", "default",
    )  # fmt: skip
    assert attrs.resource_request


def test_a_subresource_and_a_group_are_kept() -> None:
    attrs = rest_attributes(
        ALICE, "PUT", resource="deployments", group="apps", namespace="shop", name="web",
        subresource="scale", query={},
    )  # fmt: skip
    assert attrs == Attributes(
        ALICE, "update", namespace="shop", api_group="apps", resource="deployments",
        subresource="scale", name="web",
    )  # fmt: skip


def test_a_path_is_a_non_resource_request() -> None:
    assert path_attributes(ALICE, "GET", "/version") == Attributes(
        ALICE, "get", resource_request=False, path="/version"
    )


@pytest.mark.parametrize(
    ("method", "verb"),
    [
        ("Get", "get"),
        ("List", "list"),
        ("Watch", "watch"),
        ("Create", "create"),
        ("Update", "update"),
        ("Delete", "delete"),
        ("Apply", "patch"),
        ("ApplyStream", "patch"),
    ],
)
def test_grpc_methods_are_kubernetes_verbs(method: str, verb: str) -> None:
    attrs = grpc_attributes(ALICE, method, kinds.DEPLOYMENTS, "shop", "web")
    assert (attrs.verb, attrs.api_group, attrs.resource, attrs.namespace) == (
        verb, "apps", "deployments", "shop",
    )  # fmt: skip


def test_a_cluster_scoped_kind_has_no_namespace_and_a_list_can_name_one_object() -> None:
    attrs = grpc_attributes(ALICE, "List", kinds.NODES, "default", "", "metadata.name=node-1")
    assert (attrs.namespace, attrs.name, attrs.field_selector) == (
        "", "node-1", (("metadata.name", "node-1"),),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("selector", "terms"),
    [
        ("", ()),
        ("spec.nodeName=n1", (("spec.nodeName", "n1"),)),
        ("a==b, c=d", (("a", "b"), ("c", "d"))),
        ("a!=b,c=d", (("c", "d"),)),
        ("novalue", ()),
    ],
)
def test_field_selector_terms(selector: str, terms: tuple[tuple[str, str], ...]) -> None:
    assert field_terms(selector) == terms


@pytest.mark.parametrize(
    ("path", "wanted"),
    [
        ("/api/v1/widgets", Attributes(ALICE, "list", resource="widgets")),
        (
            "/api/v1/namespaces/shop/widgets/w/x",
            Attributes(
                ALICE, "get", namespace="shop", resource="widgets", name="w", subresource="x"
            ),
        ),
        (
            "/apis/example.com/v1/namespaces/shop/things",
            Attributes(ALICE, "list", namespace="shop", api_group="example.com", resource="things"),
        ),
        (
            "/api/v1/namespaces/shop",
            Attributes(ALICE, "get", namespace="shop", resource="namespaces", name="shop"),
        ),
        (
            "/apis/example.com",
            Attributes(ALICE, "get", resource_request=False, path="/apis/example.com"),
        ),
        ("/metrics", Attributes(ALICE, "get", resource_request=False, path="/metrics")),
    ],
)  # fmt: skip
def test_any_path_as_kubernetes_request_info_reads_it(path: str, wanted: Attributes) -> None:
    assert path_request(ALICE, "GET", path, {}) == wanted
