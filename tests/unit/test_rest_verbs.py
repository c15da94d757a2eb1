"""The HTTP front's verbs as Kubernetes names and reads them: the qualified resource in
NotFound/AlreadyExists/Conflict messages, deletecollection in discovery and OpenAPI, and
DeleteOptions from a body or a query."""

from __future__ import annotations

from typing import Any

import pytest
from multidict import MultiDict

from kubelab.core import kinds
from kubelab.core.kinds import KindInfo
from kubelab.store import AlreadyExistsError, ConflictError, NotFoundError
from kubelab.testing.fakes import FakeStore
from kubelab.v1 import objects_pb2
from services.apiserver.k8s import openapi
from services.apiserver.rest import delete_options, discovery
from services.apiserver.rest.delete_options import DeleteOptions
from services.apiserver.rest.errors import ApiError, api_error_of

# ---------------------------------------------------------------- qualified resources


@pytest.mark.parametrize(
    ("info", "qualified"),
    [
        pytest.param(kinds.SERVICES, "services", id="core-stays-bare"),
        pytest.param(kinds.PODS, "pods", id="pods"),
        pytest.param(kinds.NODES, "nodes", id="cluster-scoped-core"),
        pytest.param(kinds.NAMESPACES, "namespaces", id="namespaces"),
        pytest.param(kinds.EVENTS, "events", id="core-events"),
        pytest.param(kinds.DEPLOYMENTS, "deployments.apps", id="apps"),
        pytest.param(kinds.ENDPOINTSLICES, "endpointslices.discovery.k8s.io", id="discovery"),
    ],
)
def test_qualified_resource_is_kubernetes_group_resource(info: KindInfo, qualified: str) -> None:
    assert info.qualified_resource == qualified


async def test_store_errors_name_the_qualified_resource_and_map_to_its_status() -> None:
    store = FakeStore()
    with pytest.raises(NotFoundError) as missing:
        await store.get(kinds.DEPLOYMENTS, "default", "missing")
    mapped = api_error_of(missing.value, kinds.DEPLOYMENTS, "missing")
    assert mapped == ApiError(
        404,
        "NotFound",
        'deployments.apps "missing" not found',
        {"kind": "deployments", "group": "apps", "name": "missing"},
    )

    slice_ = objects_pb2.EndpointSlice(address_type="IPv4")
    slice_.metadata.name, slice_.metadata.namespace = "y", "default"
    await store.create(slice_)
    with pytest.raises(AlreadyExistsError, match=r'^endpointslices\.discovery\.k8s\.io "y" alr'):
        await store.create(slice_)
    stale = await store.get(kinds.ENDPOINTSLICES, "default", "y")
    fresh = await store.get(kinds.ENDPOINTSLICES, "default", "y")
    await store.update(fresh, expected_revision=int(fresh.metadata.resource_version))
    with pytest.raises(ConflictError, match=r"^Operation cannot be fulfilled on endpointslices\."):
        await store.update(stale, expected_revision=int(stale.metadata.resource_version))

    with pytest.raises(NotFoundError, match=r'^services "gone" not found$'):
        await store.get(kinds.SERVICES, "default", "gone")


# ---------------------------------------------------------------- deletecollection advertised


def _aggregated_verbs(core: bool) -> dict[str, list[str]]:
    out = {}
    for group in discovery.aggregated(core)["items"]:
        for version in group["versions"]:
            for resource in version["resources"]:
                out[resource["resource"]] = resource["verbs"]
    return out


def _legacy_verbs() -> dict[str, list[str]]:
    out = {}
    for gv in {i.api_version for i in kinds.ALL_KINDS}:
        listed = discovery.resource_list(gv)
        assert listed is not None
        for resource in listed["resources"]:
            out[resource["name"]] = resource["verbs"]
    return out


@pytest.mark.parametrize("info", kinds.ALL_KINDS, ids=lambda i: i.resource)
def test_discovery_lists_deletecollection_where_it_is_served(info: KindInfo) -> None:
    served = info is not kinds.NAMESPACES
    verbs = {**_aggregated_verbs(True), **_aggregated_verbs(False)}[info.resource]
    assert ("deletecollection" in verbs) is served
    assert ("deletecollection" in _legacy_verbs()[info.resource]) is served
    assert verbs == sorted(verbs), "Kubernetes lists verbs sorted"
    assert {"create", "delete", "get", "list", "update", "watch"} <= set(verbs)


@pytest.mark.parametrize(
    ("document", "collection", "served"),
    [
        pytest.param("api/v1", "/api/v1/namespaces/{namespace}/services", True, id="services"),
        pytest.param("api/v1", "/api/v1/nodes", True, id="nodes"),
        pytest.param("api/v1", "/api/v1/namespaces", False, id="namespaces"),
        pytest.param(
            "apis/apps/v1", "/apis/apps/v1/namespaces/{namespace}/deployments", True, id="apps"
        ),
    ],
)
def test_openapi_has_a_deletecollection_operation_where_it_is_served(
    document: str, collection: str, served: bool
) -> None:
    doc: Any = openapi.openapi_document(document)
    assert ("delete" in doc["paths"][collection]) is served


# ---------------------------------------------------------------- DeleteOptions


@pytest.mark.parametrize(
    ("body", "query", "expected"),
    [
        pytest.param(b"", {}, DeleteOptions(), id="nothing"),
        pytest.param(
            b'{"propagationPolicy":"Background"}',
            {},
            DeleteOptions(propagation_policy="Background"),
            id="kubectl",
        ),
        pytest.param(
            b"",
            {"gracePeriodSeconds": "0", "propagationPolicy": "Foreground"},
            DeleteOptions(grace_period_seconds=0, propagation_policy="Foreground"),
            id="python-client-query",
        ),
        pytest.param(
            b'{"gracePeriodSeconds":5}',
            {"gracePeriodSeconds": "0"},
            DeleteOptions(grace_period_seconds=5),
            id="a-body-wins-over-the-query",
        ),
        pytest.param(
            b'{"dryRun":["All"],"preconditions":{"uid":"u","resourceVersion":"7"}}',
            {},
            DeleteOptions(dry_run=True, uid="u", resource_version="7"),
            id="dry-run-and-preconditions",
        ),
        pytest.param(b"", {"dryRun": "All"}, DeleteOptions(dry_run=True), id="dry-run-query"),
    ],
)
def test_delete_options_from_a_body_or_a_query(
    body: bytes, query: dict[str, str], expected: DeleteOptions
) -> None:
    assert delete_options.parse(body, MultiDict(query)) == expected


@pytest.mark.parametrize(
    ("body", "query", "code", "names"),
    [
        pytest.param(b"", {"gracePeriodSeconds": "soon"}, 400, "gracePeriodSeconds", id="grace"),
        pytest.param(b'{"gracePeriodSeconds":"5"}', {}, 400, "gracePeriodSeconds", id="grace-s"),
        pytest.param(b"", {"propagationPolicy": "Sideways"}, 400, "propagationPolicy", id="pol"),
        pytest.param(
            b'{"propagationPolicy":"Orphan","orphanDependents":true}',
            {},
            400,
            "orphanDependents and deletionPropagation cannot be both set",
            id="both-switches",
        ),
        pytest.param(b"", {"orphanDependents": "maybe"}, 400, "orphanDependents", id="orphan"),
        pytest.param(b"", {"dryRun": "Some"}, 422, "dryRun", id="dry-run-query"),
        pytest.param(b'{"dryRun":["Some"]}', {}, 422, "dryRun", id="dry-run-body"),
        pytest.param(b'{"dryRun":"All"}', {}, 400, "dryRun", id="dry-run-not-a-list"),
        pytest.param(b'{"preconditions":[]}', {}, 400, "preconditions", id="preconditions"),
        pytest.param(b'{"preconditions":{"uid":1}}', {}, 400, "preconditions.uid", id="uid"),
        pytest.param(b"[]", {}, 400, "DeleteOptions", id="not-an-object"),
    ],
)
def test_bad_delete_options_are_refused_naming_the_option(
    body: bytes, query: dict[str, str], code: int, names: str
) -> None:
    with pytest.raises(ApiError) as caught:
        delete_options.parse(body, MultiDict(query))
    assert caught.value.code == code
    assert names in caught.value.message
