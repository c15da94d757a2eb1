"""The HTTP front's write rules without a server: fieldValidation, dryRun, the apply body,
patch preconditions, /status decoding, patch errors as Status objects, OpenAPI caching,
and the registry's per-attempt hooks (on the in-memory store)."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import make_mocked_request
from google.protobuf import json_format
from hypothesis import given
from hypothesis import strategies as st
from multidict import MultiDict

from kubelab.core import kinds
from kubelab.core.allocators import ClusterIPAllocator, NodePortAllocator, PortRange
from kubelab.store import ConflictError
from kubelab.testing.fakes import FakeStore
from kubelab.v1 import objects_pb2
from services.apiserver.allocation_view import AllocationView
from services.apiserver.k8s import openapi, schema
from services.apiserver.k8s.jsonvalue import BadPatchError, JsonObject, PatchError
from services.apiserver.k8s.kubernetes_fields import KUBERNETES_ONLY
from services.apiserver.k8s.managed_fields import ApplyConflict, Conflict
from services.apiserver.k8s.patches import UnsupportedPatchType
from services.apiserver.registry import AllocationConfig, Registry
from services.apiserver.rest import field_managers, field_validation, openapi_routes
from services.apiserver.rest.errors import ApiError, api_error_of
from services.apiserver.rest.patch import _apply_body, _precondition
from services.apiserver.rest.subresources_status import check_target, decode_for

# ---------------------------------------------------------------- fieldValidation


@pytest.mark.parametrize(
    ("query", "wanted"),
    [
        pytest.param({}, "Warn", id="absent-is-warn"),
        pytest.param({"fieldValidation": ""}, "Warn", id="empty-is-warn"),
        pytest.param({"fieldValidation": "Strict"}, "Strict", id="strict"),
        pytest.param({"fieldValidation": "Ignore"}, "Ignore", id="ignore"),
    ],
)
def test_directive(query: dict[str, str], wanted: str) -> None:
    assert field_validation.directive(MultiDict(query), "CreateOptions") == wanted


def test_an_unknown_directive_is_invalid_options() -> None:
    with pytest.raises(ApiError) as caught:
        field_validation.directive(MultiDict({"fieldValidation": "strict"}), "PatchOptions")
    assert caught.value.code == 422
    assert caught.value.message.startswith('PatchOptions.meta.k8s.io "" is invalid: ')
    assert caught.value.details["causes"][0]["field"] == "fieldValidation"


_BAD: JsonObject = {
    "metadata": {"name": "x"},
    "spec": {"portz": 1, "ports": [{"port": 80, "nam": "a"}]},
}


@pytest.mark.parametrize(
    ("mode", "warnings"),
    [
        pytest.param(
            "Warn",
            ('unknown field "spec.portz"', 'unknown field "spec.ports[0].nam"'),
            id="warn-names-each",
        ),
        pytest.param("Ignore", (), id="ignore-is-silent"),
    ],
)
def test_unknown_fields(mode: field_validation.Directive, warnings: tuple[str, ...]) -> None:
    assert field_validation.check(_BAD, "Service", mode).warnings == warnings


def test_strict_refuses_naming_every_unknown_field() -> None:
    with pytest.raises(ApiError) as caught:
        field_validation.check(_BAD, "Service", "Strict", prefix="P: ")
    assert caught.value.code == 400
    assert caught.value.message == (
        'P: strict decoding error: unknown field "spec.portz", unknown field "spec.ports[0].nam"'
    )


@pytest.mark.parametrize("mode", ["Strict", "Warn"])
def test_fields_kubelab_ignores_are_a_warning_never_an_error(
    mode: field_validation.Directive,
) -> None:
    pod: JsonObject = {"spec": {"containers": [{"name": "c", "resources": {}}], "affinity": {}}}
    checked = field_validation.check(
        pod, "Pod", mode, dropped=["metadata.finalizers: unknown field, ignored"]
    )
    assert checked.warnings == (
        "spec.containers[0].resources: kubelab does not implement this field; it is ignored",
        "spec.affinity: kubelab does not implement this field; it is ignored",
        "metadata.finalizers: kubelab does not implement this field; it is ignored",
    )


_NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)


_SPEC = schema.kind_schema("Service").root.fields["spec"].node  # type: ignore[union-attr]
_SPEC_KNOWN = set(_SPEC.fields) | set(KUBERNETES_ONLY["ServiceSpec"])  # type: ignore[union-attr]


@given(
    extra=st.dictionaries(_NAMES.filter(lambda k: k not in _SPEC_KNOWN), st.integers(), max_size=5)
)
def test_warn_names_each_unknown_key(extra: dict[str, int]) -> None:
    spec: JsonObject = {**extra}
    checked = field_validation.check({"spec": spec}, "Service", "Warn")
    assert sorted(checked.warnings) == sorted(f'unknown field "spec.{k}"' for k in extra)


@pytest.mark.parametrize(
    ("raw", "duplicates"),
    [
        pytest.param(b'{"a": 1}', [], id="none"),
        pytest.param(b'{"metadata": {"name": "a", "name": "b"}}', [".metadata.name"], id="nested"),
        pytest.param(
            b'{"spec": {"ports": [{"port": 1, "port": 2}]}, "x": [{"y": 1, "y": 2}], "x": 1}',
            [".spec.ports[0].port", ".x"],
            id="in-a-list-and-top",
        ),
    ],
)
def test_parse_finds_duplicate_fields(raw: bytes, duplicates: list[str]) -> None:
    document, found = field_validation.parse(raw)
    assert sorted(found) == sorted(duplicates)
    assert isinstance(document, dict)


def test_duplicates_fail_strict_and_warn_otherwise() -> None:
    document, duplicates = field_validation.parse(b'{"metadata": {"name": "a", "name": "b"}}')
    with pytest.raises(ApiError) as caught:
        field_validation.check(document, "Service", "Strict", duplicates=duplicates)
    assert caught.value.message == 'strict decoding error: duplicate field "metadata.name"'
    warned = field_validation.check(document, "Service", "Warn", duplicates=duplicates)
    assert warned.warnings == ('duplicate field "metadata.name"',)
    assert document["metadata"]["name"] == "b"


@pytest.mark.parametrize(
    ("query", "dry"),
    [
        pytest.param({}, False, id="absent"),
        pytest.param({"dryRun": "All"}, True, id="all"),
    ],
)
def test_dry_run(query: dict[str, str], dry: bool) -> None:
    assert field_validation.dry_run(MultiDict(query), "CreateOptions") is dry


def test_dry_run_has_one_value() -> None:
    with pytest.raises(ApiError) as caught:
        field_validation.dry_run(MultiDict({"dryRun": "Some"}), "UpdateOptions")
    assert caught.value.code == 422 and 'supported values: "All"' in caught.value.message


def test_field_manager_defaults_to_the_user_agent_product() -> None:
    agent = "OpenAPI-Generator/37.0.3/python"
    assert field_managers.manager_of(MultiDict(), agent, "PatchOptions") == "OpenAPI-Generator"
    query = MultiDict({"fieldManager": "me"})
    assert field_managers.manager_of(query, agent, "PatchOptions") == "me"
    with pytest.raises(ApiError) as caught:
        field_managers.manager_of(MultiDict({"fieldManager": "x" * 129}), "", "PatchOptions")
    assert caught.value.code == 422


# ---------------------------------------------------------------- patch bodies


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        pytest.param(b'{"kind": "Service"}', {"kind": "Service"}, id="json"),
        pytest.param(b"kind: Service\nspec:\n  x: on\n", {"kind": "Service", "spec": {"x": "on"}},
                     id="yaml-1.2"),
    ],
)  # fmt: skip
def test_apply_body(raw: bytes, parsed: dict[str, object]) -> None:
    assert _apply_body(raw) == parsed


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"[1, 2]", id="a-list"),
        pytest.param(b"a: 1\n---\nb: 2\n", id="two-documents"),
        pytest.param(b"\xff", id="not-utf8"),
        pytest.param(b"a: [", id="bad-yaml"),
        pytest.param(b"[" * 100_000, id="too-deep"),
    ],
)
def test_bad_apply_bodies_are_400(raw: bytes) -> None:
    with pytest.raises(ApiError) as caught:
        _apply_body(raw)
    assert caught.value.code == 400


def _service(rv: str = "7") -> objects_pb2.Service:
    svc = objects_pb2.Service()
    svc.metadata.name, svc.metadata.namespace, svc.metadata.resource_version = "s", "default", rv
    return svc


def test_a_resource_version_in_a_patch_is_a_precondition() -> None:
    _precondition({"metadata": {"resourceVersion": "7"}}, _service(), kinds.SERVICES)
    _precondition({"metadata": {}}, _service(), kinds.SERVICES)
    with pytest.raises(ConflictError):
        _precondition({"metadata": {"resourceVersion": "3"}}, _service(), kinds.SERVICES)


@pytest.mark.parametrize(
    ("err", "code", "reason"),
    [
        pytest.param(BadPatchError("not a patch"), 400, "BadRequest", id="bad-patch"),
        pytest.param(UnsupportedPatchType("no"), 415, "UnsupportedMediaType", id="patch-type"),
        pytest.param(PatchError("no such path", path="/x"), 422, "Invalid", id="does-not-fit"),
        pytest.param(ApplyConflict([Conflict('"a"', ".spec.x")]), 409, "Conflict", id="conflict"),
    ],
)
def test_patch_errors_become_status(err: Exception, code: int, reason: str) -> None:
    mapped = api_error_of(err, kinds.SERVICES, "s")
    assert mapped is not None and (mapped.code, mapped.reason) == (code, reason)


# ---------------------------------------------------------------- /status


def test_status_is_decoded_only_for_the_status_subresource() -> None:
    document = {
        "metadata": {"name": "s"},
        "spec": {"ports": [{"port": 80}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}},
    }
    main = decode_for(dict(document), kinds.SERVICES, namespace="default", name="s")
    assert not main.object.HasField("status")
    status = decode_for(
        dict(document), kinds.SERVICES, namespace="default", name="s", subresource="status"
    )
    assert isinstance(status.object, objects_pb2.Service)
    assert status.object.status.load_balancer.ingress[0].ip == "192.0.2.1"
    with pytest.raises(ApiError) as caught:
        decode_for(
            {"metadata": {"name": "s"}, "status": {"loadBalancer": 5}},
            kinds.SERVICES, namespace="default", name="s", subresource="status",
        )  # fmt: skip
    assert caught.value.code == 400


@pytest.mark.parametrize(
    ("info", "sub", "served"),
    [
        pytest.param(kinds.SERVICES, "status", True, id="services"),
        pytest.param(kinds.PODS, "status", True, id="pods"),
        pytest.param(kinds.DEPLOYMENTS, "status", True, id="deployments"),
        pytest.param(kinds.NODES, "status", False, id="nodes"),
        pytest.param(kinds.SERVICES, "proxy", False, id="other"),
    ],
)
def test_status_targets(info: kinds.KindInfo, sub: str, served: bool) -> None:
    if served:
        check_target(info, sub)
    else:
        with pytest.raises(ApiError):
            check_target(info, sub)


# ---------------------------------------------------------------- OpenAPI caching


def test_openapi_answers_as_kube_openapi() -> None:
    index = openapi_routes.serve(make_mocked_request("GET", "/openapi/v3"))
    assert index.status == 200 and "Cache-Control" not in index.headers
    current = openapi.document_hash("api/v1")
    hashed = openapi_routes.serve(make_mocked_request("GET", f"/openapi/v3/api/v1?hash={current}"))
    assert hashed.headers["Cache-Control"] == "public, immutable"
    assert hashed.headers["Etag"] == f'"{current}"'
    stale = openapi_routes.serve(make_mocked_request("GET", "/openapi/v3/api/v1?hash=AB"))
    assert stale.status == 301
    assert stale.headers["Location"] == f"/openapi/v3/api/v1?hash={current}"
    cached = openapi_routes.serve(
        make_mocked_request("GET", "/openapi/v3/api/v1", headers={"If-None-Match": f'"{current}"'})
    )
    assert cached.status == 304
    with pytest.raises(ApiError) as refused:
        openapi_routes.serve(
            make_mocked_request(
                "GET", "/openapi/v3/api/v1",
                headers={"Accept": "application/com.github.proto-openapi.spec.v3@v1.0+protobuf"},
            )
        )  # fmt: skip
    assert refused.value.code == 406


# ---------------------------------------------------------------- the registry's hooks


def _registry(store: FakeStore) -> Registry:
    allocation = AllocationConfig(
        ips=ClusterIPAllocator("10.96.0.0/16"),
        ports=NodePortAllocator(PortRange.parse("30000-32767")),
    )
    return Registry(store, AllocationView(store), allocation)  # type: ignore[arg-type]


def _svc(name: str = "s", labels: dict[str, str] | None = None) -> objects_pb2.Service:
    svc = objects_pb2.Service()
    svc.metadata.name, svc.metadata.namespace = name, "default"
    svc.metadata.labels.update(labels or {})
    svc.spec.ports.add(port=80)
    return svc


def test_a_change_is_reapplied_after_a_lost_compare_and_swap() -> None:
    async def scenario() -> None:
        store = FakeStore()
        registry = _registry(store)
        await registry.create(_svc())
        seen: list[str] = []

        def change(current: kinds.ApiObject) -> kinds.ApiObject:
            seen.append(current.metadata.resource_version)
            new = objects_pb2.Service()
            new.CopyFrom(current)  # type: ignore[arg-type]
            new.metadata.labels["n"] = str(len(seen))
            new.metadata.resource_version = ""
            return new

        # Someone else writes between this update's read and its write, once.
        store.fail_next("update", ConflictError("lost", 0))
        written, changed = await registry.update(_svc(), change=change)
        assert changed and len(seen) == 2
        assert dict(written.metadata.labels) == {"n": "2"}

    asyncio.run(scenario())


def test_managed_fields_are_kept_without_a_hook_and_set_with_one() -> None:
    async def scenario() -> None:
        registry = _registry(FakeStore())
        hook = field_managers.update_hook(kinds.SERVICES, "me")
        created = await registry.create(_svc(labels={"a": "1"}), fields=hook)
        assert [e.manager for e in created.metadata.managed_fields] == ["me"]
        # A gRPC-style write (no hook) keeps them.
        written, _ = await registry.update(_svc(labels={"a": "2"}))
        assert [e.manager for e in written.metadata.managed_fields] == ["me"]
        other = field_managers.update_hook(kinds.SERVICES, "other")
        written, _ = await registry.update(_svc(labels={"a": "3"}), fields=other)
        managers = {e.manager: e for e in written.metadata.managed_fields}
        assert set(managers) == {"me", "other"}
        owned = json_format.MessageToDict(managers["other"].fields_v1)
        assert "f:a" in owned["f:metadata"]["f:labels"]

    asyncio.run(scenario())


def test_status_writes_change_only_status_and_dry_runs_nothing() -> None:
    async def scenario() -> None:
        store = FakeStore()
        registry = _registry(store)
        await registry.create(_svc())
        sent = _svc(labels={"ignored": "yes"})
        sent.spec.ports[0].port = 99
        sent.status.load_balancer.ingress.add(ip="192.0.2.9")
        written, changed = await registry.update(sent, subresource="status")
        assert changed and isinstance(written, objects_pb2.Service)
        assert written.status.load_balancer.ingress[0].ip == "192.0.2.9"
        assert written.spec.ports[0].port == 80 and not written.metadata.labels
        # The main resource keeps status.
        main, _ = await registry.update(_svc(labels={"a": "b"}))
        assert isinstance(main, objects_pb2.Service) and main.status.load_balancer.ingress
        writes = store.writes
        dry, _ = await registry.update(_svc(labels={"dry": "run"}), dry_run=True)
        assert dict(dry.metadata.labels) == {"dry": "run"}
        assert store.writes == writes
        stored = await store.get(kinds.SERVICES, "default", "s")
        assert dict(stored.metadata.labels) == {"a": "b"}

    asyncio.run(scenario())
