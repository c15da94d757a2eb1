"""The Kubernetes HTTP API's wire rules: paths, query parameters, watch events, discovery
negotiation and the Status each error becomes."""

from __future__ import annotations

import pytest

from kubelab.core import errors, kinds
from kubelab.core.allocators import RangeFullError
from kubelab.core.errors import InvalidObjectError
from kubelab.store import (
    AlreadyExistsError,
    CompactedError,
    ConflictError,
    EventType,
    NotFoundError,
    StoreUnavailableError,
)
from services.apiserver.rest import discovery, options, routing
from services.apiserver.rest.errors import ApiError, api_error_of, delete_answer, status_body
from services.apiserver.rest.routing import Discovery, Target

# ---------------------------------------------------------------- paths


@pytest.mark.parametrize(
    ("path", "found"),
    [
        pytest.param("/version", Discovery("version"), id="version"),
        pytest.param("/api", Discovery("api"), id="api"),
        pytest.param("/apis/", Discovery("apis"), id="apis"),
        pytest.param("/apis/apps", Discovery("group", group="apps"), id="group"),
        pytest.param("/api/v1", Discovery("resources", group_version="v1"), id="core-resources"),
        pytest.param(
            "/apis/discovery.k8s.io/v1",
            Discovery("resources", group_version="discovery.k8s.io/v1"),
            id="group-resources",
        ),
        pytest.param("/api/v1/services", Target(kinds.SERVICES, ""), id="all-namespaces"),
        pytest.param(
            "/api/v1/namespaces/default/services/shop",
            Target(kinds.SERVICES, "default", "shop"),
            id="object",
        ),
        pytest.param(
            "/apis/apps/v1/namespaces/team/deployments",
            Target(kinds.DEPLOYMENTS, "team"),
            id="grouped-collection",
        ),
        pytest.param("/api/v1/nodes/node-1", Target(kinds.NODES, "", "node-1"), id="cluster-obj"),
        pytest.param(
            "/api/v1/namespaces/dev", Target(kinds.NAMESPACES, "", "dev"), id="namespace-object"
        ),
        pytest.param(
            "/api/v1/namespaces/dev/events", Target(kinds.EVENTS, "dev"), id="namespaced-events"
        ),
        pytest.param(
            "/api/v1/namespaces/default/pods/p/status",
            Target(kinds.PODS, "default", "p", "status"),
            id="subresource",
        ),
        pytest.param(
            "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/shop-abc",
            Target(kinds.ENDPOINTSLICES, "default", "shop-abc"),
            id="slice",
        ),
    ],
)
def test_paths(path: str, found: Target | Discovery) -> None:
    assert routing.parse(path) == found


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/", id="root"),
        pytest.param("/healthz", id="other"),
        pytest.param("/api/v2/services", id="core-version"),
        pytest.param("/apis/apps/v1beta1/deployments", id="group-version"),
        pytest.param("/api/v1/deployments", id="wrong-group"),
        pytest.param("/api/v1/namespaces/default/nodes", id="namespaced-cluster-kind"),
        pytest.param("/api/v1/services/shop", id="name-without-namespace"),
        pytest.param("/api/v1/namespaces/default/pods/p/status/x", id="too-deep"),
        pytest.param("/api/v1/namespaces//services", id="empty-namespace"),
    ],
)
def test_paths_not_served(path: str) -> None:
    with pytest.raises(ApiError) as missing:
        routing.parse(path)
    assert missing.value.code == 404


# ---------------------------------------------------------------- query parameters


def test_list_options_read_every_parameter() -> None:
    opts = options.list_options(
        {
            "labelSelector": "app=shop",
            "fieldSelector": "metadata.name=shop",
            "limit": "500",
            "continue": "abc",
            "resourceVersion": "42",
            "watch": "true",
            "allowWatchBookmarks": "true",
            "sendInitialEvents": "true",
            "timeoutSeconds": "30",
        },
        kinds.SERVICES,
    )
    assert (opts.limit, opts.continue_token, opts.resource_version) == (500, "abc", "42")
    assert opts.watch and opts.bookmarks and opts.send_initial_events is True
    assert opts.timeout_seconds == 30
    assert str(opts.labels) == "app=shop"
    assert [(t.field, t.value, t.equal) for t in opts.fields.terms] == [
        ("metadata.name", "shop", True)
    ]


@pytest.mark.parametrize(
    ("query", "words"),
    [
        pytest.param({"limit": "ten"}, "limit: Invalid value", id="limit"),
        pytest.param({"limit": "-1"}, "greater than or equal to 0", id="negative"),
        pytest.param({"timeoutSeconds": "x"}, "timeoutSeconds", id="timeout"),
        pytest.param({"sendInitialEvents": "true"}, "only for watch", id="initial-no-watch"),
    ],
)
def test_bad_parameters_are_400(query: dict[str, str], words: str) -> None:
    with pytest.raises(ApiError) as refused:
        options.list_options(query, kinds.SERVICES)
    assert refused.value.code == 400
    assert words in refused.value.message


@pytest.mark.parametrize(
    ("query", "initial"),
    [
        pytest.param({}, True, id="no-version"),
        pytest.param({"resourceVersion": "0"}, True, id="any-version"),
        pytest.param({"resourceVersion": "7"}, False, id="from-a-version"),
        pytest.param({"resourceVersion": "7", "sendInitialEvents": "true"}, True, id="asked"),
        pytest.param({"sendInitialEvents": "false"}, False, id="refused"),
    ],
)
def test_which_watches_start_with_the_current_state(query: dict[str, str], initial: bool) -> None:
    opts = options.list_options({"watch": "1", **query}, kinds.SERVICES)
    assert opts.initial_events is initial


ADDED, MODIFIED, DELETED = EventType.ADDED, EventType.MODIFIED, EventType.DELETED


@pytest.mark.parametrize(
    ("event", "now", "before", "previous_known", "sent"),
    [
        pytest.param(ADDED, True, False, False, "ADDED", id="created-matching"),
        pytest.param(ADDED, False, False, False, None, id="created-elsewhere"),
        pytest.param(MODIFIED, True, True, True, "MODIFIED", id="changed-still-matching"),
        pytest.param(MODIFIED, True, False, True, "ADDED", id="starts-matching"),
        pytest.param(MODIFIED, False, True, True, "DELETED", id="stops-matching"),
        pytest.param(MODIFIED, False, False, True, None, id="never-matching"),
        pytest.param(MODIFIED, True, False, False, "MODIFIED", id="history-compacted"),
        pytest.param(DELETED, True, True, True, "DELETED", id="deleted-matching"),
        pytest.param(DELETED, False, False, True, None, id="deleted-elsewhere"),
    ],
)
def test_watch_type(
    event: EventType, now: bool, before: bool, previous_known: bool, sent: str | None
) -> None:
    assert options.watch_type(event, now, before, previous_known) == sent


def test_initial_events_end_bookmark() -> None:
    mark = options.bookmark(kinds.DEPLOYMENTS, "88", initial_end=True)
    assert mark == {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {
            "resourceVersion": "88",
            "annotations": {"k8s.io/initial-events-end": "true"},
        },
    }


# ---------------------------------------------------------------- discovery

KUBECTL_DISCOVERY = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
)
KUBECTL_GET = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,"
    "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
)


@pytest.mark.parametrize(
    ("accept", "table", "aggregated"),
    [
        pytest.param(KUBECTL_DISCOVERY, False, True, id="kubectl-discovery"),
        pytest.param(KUBECTL_GET, True, False, id="kubectl-get"),
        pytest.param("application/json", False, False, id="plain-json"),
        pytest.param("", False, False, id="none"),
        pytest.param("*/*", False, False, id="anything"),
        pytest.param(
            "application/json,application/json;as=Table;v=v1;g=meta.k8s.io",
            False,
            False,
            id="json-preferred",
        ),
    ],
)
def test_negotiation(accept: str, table: bool, aggregated: bool) -> None:
    media = discovery.parse_accept(accept)
    assert discovery.wants(media, group="meta.k8s.io", version="v1", kind="Table") is table
    found = discovery.wants(
        media, group="apidiscovery.k8s.io", version="v2", kind="APIGroupDiscoveryList"
    )
    assert found is aggregated


def test_aggregated_discovery_lists_every_kind_once() -> None:
    core = discovery.aggregated(core=True)
    groups = discovery.aggregated(core=False)
    served = [
        (item["metadata"].get("name", ""), version["version"], resource["resource"])
        for document in (core, groups)
        for item in document["items"]
        for version in item["versions"]
        for resource in version["resources"]
    ]
    assert sorted(served) == sorted(
        [(discovery.group_of(i), discovery.version_of(i), i.resource) for i in kinds.ALL_KINDS]
        + [("", "v1", "endpoints")]  # no stored kind: derived from EndpointSlices
    )
    services = core["items"][0]["versions"][0]["resources"]
    shop = next(r for r in services if r["resource"] == "services")
    assert shop["responseKind"] == {"group": "", "version": "v1", "kind": "Service"}
    assert shop["scope"] == "Namespaced" and shop["shortNames"] == ["svc"]
    # Every verb the HTTP front serves, sorted as Kubernetes lists them.
    assert shop["verbs"] == sorted(shop["verbs"]) and "patch" in shop["verbs"]


def test_legacy_resource_list() -> None:
    listed = discovery.resource_list("discovery.k8s.io/v1")
    assert listed is not None
    assert [(r["name"], r["kind"]) for r in listed["resources"]] == [
        ("endpointslices", "EndpointSlice")
    ]
    assert discovery.resource_list("batch/v1") is None


# ---------------------------------------------------------------- errors

INVALID = InvalidObjectError(
    "Service",
    "shop",
    [
        errors.invalid("spec.ports[0].nodePort", 30080, "provided port is already allocated"),
        errors.required("spec.ports[1].port"),
    ],
)


@pytest.mark.parametrize(
    ("err", "code", "reason"),
    [
        pytest.param(INVALID, 422, "Invalid", id="invalid"),
        pytest.param(NotFoundError('services "x" not found'), 404, "NotFound", id="not-found"),
        pytest.param(AlreadyExistsError("exists"), 409, "AlreadyExists", id="exists"),
        pytest.param(ConflictError.modified("services", "x", 3), 409, "Conflict", id="stale"),
        pytest.param(CompactedError(40), 410, "Expired", id="compacted"),
        pytest.param(StoreUnavailableError("down"), 503, "ServiceUnavailable", id="store"),
        pytest.param(RangeFullError("range is full"), 500, "InternalError", id="range-full"),
        pytest.param(kinds.UnknownKindError("what"), 400, "BadRequest", id="unknown-kind"),
    ],
)
def test_error_status(err: Exception, code: int, reason: str) -> None:
    mapped = api_error_of(err, kinds.SERVICES, "x")
    assert mapped is not None
    body = status_body(mapped)
    assert (body["kind"], body["status"], body["code"], body["reason"]) == (
        "Status",
        "Failure",
        code,
        reason,
    )


def test_invalid_names_each_field_in_its_causes() -> None:
    mapped = api_error_of(INVALID, kinds.SERVICES, "shop")
    assert mapped is not None
    assert mapped.message.startswith('Service "shop" is invalid: [spec.ports[0].nodePort')
    assert mapped.details == {
        "kind": "Service",
        "name": "shop",
        "causes": [
            {
                "reason": "FieldValueInvalid",
                "message": "Invalid value: 30080: provided port is already allocated",
                "field": "spec.ports[0].nodePort",
            },
            {
                "reason": "FieldValueRequired",
                "message": "Required value",
                "field": "spec.ports[1].port",
            },
        ],
    }


def test_not_found_details_name_the_resource_and_group() -> None:
    mapped = api_error_of(NotFoundError('deployments "x" not found'), kinds.DEPLOYMENTS, "x")
    assert mapped is not None
    assert mapped.details == {"kind": "deployments", "group": "apps", "name": "x"}


def test_a_bug_is_not_mapped() -> None:
    assert api_error_of(KeyError("oops"), kinds.SERVICES, "x") is None


@pytest.mark.parametrize(
    ("info", "answers_the_object"),
    [
        pytest.param(kinds.SERVICES, True, id="services"),
        pytest.param(kinds.PODS, True, id="pods"),
        pytest.param(kinds.NAMESPACES, True, id="namespaces"),
        pytest.param(kinds.DEPLOYMENTS, False, id="deployments"),
        pytest.param(kinds.NODES, False, id="nodes"),
        pytest.param(kinds.EVENTS, False, id="events"),
        pytest.param(kinds.ENDPOINTSLICES, False, id="endpointslices"),
    ],
)
def test_a_delete_answers_what_kubernetes_answers_for_the_kind(
    info: kinds.KindInfo, answers_the_object: bool
) -> None:
    """The object where Kubernetes' registry returns it, else a success Status naming the
    resource: the Python client parses one or the other, by kind."""
    deleted = {"kind": info.kind, "metadata": {"name": "x", "uid": "u-1"}, "spec": {}}
    answer = delete_answer(info, deleted)
    if answers_the_object:
        assert answer is deleted
        return
    group = discovery.group_of(info)
    assert answer == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {
            "name": "x",
            **({"group": group} if group else {}),
            "kind": info.resource,
            "uid": "u-1",
        },
    }
