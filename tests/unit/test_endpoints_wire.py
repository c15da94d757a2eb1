"""The read-only `endpoints` resource on the wire: paths, refusals, pages, Tables, discovery."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from kubelab.core import paging
from kubelab.core.paging import InvalidContinueError
from services.apiserver.k8s import endpoints_mirror as mirror
from services.apiserver.logic.request_keys import InvalidRequestError
from services.apiserver.rest import discovery, endpoints_wire
from services.apiserver.rest.endpoints_wire import Target
from services.apiserver.rest.errors import ApiError
from services.apiserver.rest.options import list_options
from tests.unit.slice_builders import eps, pod

NOW = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("path", "found"),
    [
        pytest.param("/api/v1/endpoints", Target(""), id="every-namespace"),
        pytest.param("/api/v1/namespaces/dev/endpoints", Target("dev"), id="one-namespace"),
        pytest.param("/api/v1/namespaces/dev/endpoints/shop", Target("dev", "shop"), id="one"),
        pytest.param("/api/v1/namespaces/dev/endpoints/a%20b", Target("dev", "a b"), id="quoted"),
        pytest.param("/api/v1/services", None, id="another-resource"),
        pytest.param("/api/v1/namespaces/dev/services/endpoints", None, id="a-service-named-so"),
        pytest.param("/apis/discovery.k8s.io/v1/endpointslices", None, id="slices"),
        pytest.param("/api/v1/namespaces/endpoints", None, id="a-namespace-named-so"),
        pytest.param("/api", None, id="discovery"),
    ],
)
def test_paths(path: str, found: Target | None) -> None:
    assert endpoints_wire.parse(path) == found


@pytest.mark.parametrize(
    "path",
    ["/api/v1/namespaces/dev/endpoints/shop/status", "/api/v1/namespaces//endpoints/shop"],
)
def test_subresources_are_not_served(path: str) -> None:
    with pytest.raises(ApiError) as refused:
        endpoints_wire.parse(path)
    assert refused.value.code == 404


@pytest.mark.parametrize(
    "target", [Target("Not_A_Namespace"), Target("dev", "a/b"), Target("dev", "x" * 300)]
)
def test_names_no_service_can_have_are_bad_requests(target: Target) -> None:
    with pytest.raises(InvalidRequestError):
        endpoints_wire.check(target)


def test_writes_are_refused_saying_why() -> None:
    refused = endpoints_wire.read_only("PATCH", "shop")
    assert (refused.code, refused.reason) == (405, "MethodNotAllowed")
    assert "read-only in kubelab" in refused.message and "EndpointSlices" in refused.message
    assert refused.details == {"name": "shop", "kind": "endpoints"}
    assert endpoints_wire.read_only("POST", "").details == {"kind": "endpoints"}


def _endpoints(*names: str, namespace: str = "default") -> list[mirror.Endpoints]:
    return mirror.mirror_all(
        eps(f"{n}-a", [pod("10.0.0.1")], service=n, namespace=namespace) for n in names
    )


def test_pages_continue_from_the_last_key_at_one_revision() -> None:
    items = _endpoints("c", "a", "b")
    first = endpoints_wire.page(items, "default", 42, start="", limit=2)
    assert [e["metadata"]["name"] for e in first.items] == ["a", "b"]
    token = paging.decode_continue(first.continue_token)
    assert token.revision == 42
    rest = endpoints_wire.page(items, "default", 42, start=token.start, limit=2)
    assert [e["metadata"]["name"] for e in rest.items] == ["c"]
    assert rest.continue_token == ""
    assert endpoints_wire.page(items, "default", 42, start="", limit=0).continue_token == ""


def test_pages_across_namespaces_are_keyed_by_namespace_then_name() -> None:
    items = _endpoints("shop", namespace="b") + _endpoints("shop", "a", namespace="a")
    first = endpoints_wire.page(items, "", 7, start="", limit=2)
    shown = [(e["metadata"]["namespace"], e["metadata"]["name"]) for e in first.items]
    assert shown == [("a", "a"), ("a", "shop")]
    start = paging.decode_continue(first.continue_token).start
    assert start == "a/shop\x00"
    rest = endpoints_wire.page(items, "", 7, start=start, limit=2)
    assert [(e["metadata"]["namespace"]) for e in rest.items] == ["b"]


def test_a_token_kubelab_did_not_make_is_refused() -> None:
    with pytest.raises(InvalidContinueError):
        paging.decode_continue("not-a-token")


def test_selectors_read_the_endpoints_labels_name_and_namespace() -> None:
    (shop,) = mirror.mirror_all([eps("shop-a", labels={"tier": "web"})])
    cases = [
        ("labelSelector", "tier=web", True),
        ("labelSelector", "tier=db", False),
        ("fieldSelector", "metadata.name=shop", True),
        ("fieldSelector", "metadata.namespace=dev", False),
    ]
    for key, value, expected in cases:
        opts = list_options({key: value}, endpoints_wire.OPTIONS_KIND)
        assert endpoints_wire.matches(opts, shop) is expected, (key, value)
    with pytest.raises(ApiError) as refused:
        list_options({"fieldSelector": "subsets=x"}, endpoints_wire.OPTIONS_KIND)
    assert refused.value.message == "field label not supported: subsets"


def test_list_json_is_an_endpoints_list() -> None:
    body = endpoints_wire.list_json(_endpoints("a"), 9, "tok")
    assert (body["kind"], body["apiVersion"]) == ("EndpointsList", "v1")
    assert body["metadata"] == {"resourceVersion": "9", "continue": "tok"}
    assert "kind" not in body["items"][0] and body["items"][0]["metadata"]["name"] == "a"


def test_table_has_kubernetes_columns_and_cells() -> None:
    items = mirror.mirror_all(
        [
            eps(
                "shop-a",
                [pod(f"10.0.0.{i}") for i in range(1, 5)],
                created="2026-12-07T11:55:00Z",
            ),
            eps("cart-a", [], [], service="cart", created="2026-12-07T11:59:30Z"),
        ]
    )
    body: dict[str, Any] = endpoints_wire.table(items, NOW, resource_version="5")
    assert [c["name"] for c in body["columnDefinitions"]] == ["Name", "Endpoints", "Age"]
    assert [r["cells"] for r in body["rows"]] == [
        ["cart", "<none>", "30s"],
        ["shop", "10.0.0.1:8080,10.0.0.2:8080,10.0.0.3:8080 + 1 more...", "5m"],
    ]
    assert body["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert body["rows"][0]["object"]["metadata"]["name"] == "cart"
    whole = endpoints_wire.table(items, NOW, resource_version="5", include="Object")
    assert whole["rows"][1]["object"]["kind"] == "Endpoints"
    bare = endpoints_wire.table(
        items, NOW, resource_version="5", include="None", with_columns=False
    )
    assert "columnDefinitions" not in bare and "object" not in bare["rows"][0]


def test_discovery_lists_endpoints_for_get_list_and_watch_only() -> None:
    core = discovery.aggregated(core=True)["items"][0]["versions"][0]["resources"]
    (entry,) = [r for r in core if r["resource"] == "endpoints"]
    assert entry["verbs"] == ["get", "list", "watch"]
    assert entry["shortNames"] == ["ep"] and entry["scope"] == "Namespaced"
    assert entry["responseKind"] == {"group": "", "version": "v1", "kind": "Endpoints"}
    legacy = discovery.resource_list("v1")
    assert legacy is not None
    (listed,) = [r for r in legacy["resources"] if r["name"] == "endpoints"]
    assert (listed["kind"], listed["namespaced"], listed["verbs"]) == (
        "Endpoints",
        True,
        ["get", "list", "watch"],
    )
    named = discovery.aggregated(core=False)
    assert all(
        r["resource"] != "endpoints"
        for item in named["items"]
        for version in item["versions"]
        for r in version["resources"]
    )


def test_bookmarks_name_the_kind() -> None:
    mark = endpoints_wire.bookmark(12, initial_end=True)
    assert mark == {
        "kind": "Endpoints",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": "12", "annotations": {"k8s.io/initial-events-end": "true"}},
    }
