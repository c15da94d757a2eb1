"""OpenAPI v3 documents for kubectl (apply's fieldValidation check, explain) and unknown fields."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given

from services.apiserver.k8s import openapi, schema, schema_tables
from services.apiserver.k8s.kubernetes_fields import KUBERNETES_ONLY
from services.apiserver.rest.subresources_status import STATUS_KINDS
from tests.unit.k8s_values import services

GVS = ["api/v1", "apis/apps/v1", "apis/discovery.k8s.io/v1", "apis/rbac.authorization.k8s.io/v1"]


def test_the_index_points_at_each_document_by_its_hash() -> None:
    index: Any = openapi.openapi_index()
    assert sorted(index["paths"]) == GVS
    for gv, entry in index["paths"].items():
        url = entry["serverRelativeURL"]
        assert re.fullmatch(rf"/openapi/v3/{re.escape(gv)}\?hash=[0-9A-F]{{32}}", url)
        assert url.endswith(openapi.document_hash(gv))
    assert openapi.openapi_document("apis/nope/v1") is None


def _supports_query_param(doc: Any, gvk: dict[str, str], param: str) -> bool:
    """kubectl's supportsQueryParamV3: the first PATCH operation of the GVK decides."""
    for item in doc["paths"].values():
        op = item.get("patch")
        if op is None or op.get("x-kubernetes-group-version-kind") != gvk:
            continue
        return any(p.get("name") == param for p in op["parameters"])
    return False


READ_ONLY = {"Endpoints"}


@pytest.mark.parametrize("kind", sorted(set(schema.all_kinds()) - READ_ONLY))
def test_every_kind_has_a_patch_operation_listing_field_validation(kind: str) -> None:
    info = schema.kind_schema(kind)
    assert info is not None
    doc: Any = openapi.openapi_document("api/v1" if not info.group else f"apis/{info.api_version}")
    gvk = {"group": info.group, "version": info.version, "kind": kind}
    assert _supports_query_param(doc, gvk, "fieldValidation")
    # The kind's schema carries its GVK, which is how `kubectl explain` finds it.
    body = doc["components"]["schemas"][info.root.name]
    assert body["x-kubernetes-group-version-kind"] == [gvk]


def test_endpoints_are_served_for_reading_only() -> None:
    doc: Any = openapi.openapi_document("api/v1")
    gvk = {"group": "", "version": "v1", "kind": "Endpoints"}
    ops = {
        (path, method): op["x-kubernetes-action"]
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method != "parameters" and op["x-kubernetes-group-version-kind"] == gvk
    }
    assert ops == {
        ("/api/v1/namespaces/{namespace}/endpoints", "get"): "list",
        ("/api/v1/namespaces/{namespace}/endpoints/{name}", "get"): "get",
    }
    listing = doc["paths"]["/api/v1/namespaces/{namespace}/endpoints"]["get"]
    assert [p["name"] for p in listing["parameters"]] == ["watch"]
    assert not _supports_query_param(doc, gvk, "fieldValidation")  # nothing to validate
    # `kubectl explain endpoints.subsets.addresses` finds the core types, not discovery's.
    schemas = doc["components"]["schemas"]
    subset = _resolve(
        doc, schemas["io.k8s.api.core.v1.Endpoints"]["properties"]["subsets"]["items"]
    )
    address = _resolve(doc, subset["properties"]["addresses"]["items"])
    assert set(address["properties"]) == {"ip", "hostname", "nodeName", "targetRef"}
    port = _resolve(doc, subset["properties"]["ports"]["items"])
    assert set(port["properties"]) == {"name", "port", "protocol", "appProtocol"}
    assert "io.k8s.api.core.v1.EndpointPort" in schemas


def _resolve(doc: Any, prop: Any) -> Any:
    while "allOf" in prop or "$ref" in prop:
        ref = prop["allOf"][0]["$ref"] if "allOf" in prop else prop["$ref"]
        prop = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return prop


def test_explain_service_spec_ports_finds_described_fields() -> None:
    doc: Any = openapi.openapi_document("api/v1")
    service = doc["components"]["schemas"]["io.k8s.api.core.v1.Service"]
    spec = _resolve(doc, service["properties"]["spec"])
    ports = spec["properties"]["ports"]
    assert ports["description"] == "The list of ports that are exposed by this service."
    assert ports["x-kubernetes-patch-merge-key"] == "port"
    assert ports["x-kubernetes-patch-strategy"] == "merge"
    assert ports["x-kubernetes-list-type"] == "map"
    assert ports["x-kubernetes-list-map-keys"] == ["port", "protocol"]
    port = _resolve(doc, ports["items"])
    assert set(port["properties"]) == {
        "name",
        "protocol",
        "port",
        "targetPort",
        "nodePort",
        "appProtocol",
    }
    assert all(p.get("description") for p in port["properties"].values())
    target = _resolve(doc, port["properties"]["targetPort"])
    assert target["format"] == "int-or-string"


@pytest.mark.parametrize("gv", GVS)
def test_every_reference_resolves_and_the_document_is_json(gv: str) -> None:
    raw = openapi.document_bytes(gv)
    assert raw is not None
    doc = json.loads(raw)
    refs = re.findall(r'"\$ref":"#/components/schemas/([^"]+)"', raw.decode())
    assert refs
    assert set(refs) <= set(doc["components"]["schemas"])


def test_list_extensions_agree_with_the_merge_schema() -> None:
    seen = 0
    for gv in GVS:
        doc: Any = openapi.openapi_document(gv)
        for name, body in doc["components"]["schemas"].items():
            struct = schema.definitions().get(name)
            if struct is None:
                continue
            for field_name, field in struct.fields.items():
                node = field.node
                if isinstance(node, schema.ListOf) and node.merge_key:
                    prop = body["properties"][field_name]
                    assert prop["x-kubernetes-patch-merge-key"] == node.merge_key
                    seen += 1
    assert seen >= 8  # ports, containers, env, conditions x4, podIPs, addresses, ...


@pytest.mark.parametrize(
    ("obj", "unknown"),
    [
        pytest.param(
            {"apiVersion": "v1", "kind": "Service", "spec": {"portz": [1]}},
            [".spec.portz"],
            id="typo-in-spec",
        ),
        pytest.param(
            {"spec": {"ports": [{"port": 80}, {"port": 81, "nam": "x", "targetport": 1}]}},
            [".spec.ports[1].nam", ".spec.ports[1].targetport"],
            id="in-a-list-item",
        ),
        pytest.param({"metadata": {"lables": {"a": "b"}}}, [".metadata.lables"], id="metadata"),
        pytest.param(
            {"extra": 1, "status": {"x": 2}}, [".extra", ".status.x"], id="top-and-status"
        ),
        pytest.param(
            {
                "metadata": {
                    "labels": {"any.key/at-all": "v"},
                    "annotations": {"k": "v"},
                    "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {"f:x": {}}}}],
                    "finalizers": ["x"],
                    "creationTimestamp": None,
                },
                "spec": {"selector": {"app": "x"}, "sessionAffinityConfig": {"clientIP": {}}},
                "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}},
            },
            [],
            id="maps-and-known-fields",
        ),
    ],
)
def test_unknown_fields(obj: Any, unknown: list[str]) -> None:
    assert openapi.unknown_fields(obj, "Service") == unknown


def test_unknown_fields_of_other_kinds() -> None:
    pod: Any = {"spec": {"containers": [{"name": "c", "env": [{"name": "A", "valu": "1"}]}]}}
    assert openapi.unknown_fields(pod, "Pod") == [".spec.containers[0].env[0].valu"]
    event: Any = {
        "involvedObject": {"kind": "Pod", "nme": "p"},
        "count": 2,
        "reportingComponent": "x",
    }
    assert openapi.unknown_fields(event, "Event") == [".involvedObject.nme"]
    assert openapi.unknown_fields({"spec": {"finalizers": ["kubernetes"]}}, "Namespace") == []


def test_strict_and_warn_wording() -> None:
    paths = [".spec.portz", ".spec.ports[0].nam"]
    assert openapi.strict_decoding_message(paths) == (
        'strict decoding error: unknown field "spec.portz", unknown field "spec.ports[0].nam"'
    )
    assert openapi.warning_text(".spec.portz") == 'unknown field "spec.portz"'


@given(services())
def test_a_well_formed_service_has_no_unknown_fields(service: dict[str, Any]) -> None:
    assert openapi.unknown_fields(service, "Service") == []


@pytest.mark.parametrize(
    "table",
    ["LISTS", "ATOMIC_MAPS", "FIELD_STRATEGIES", "FIELD_DESCRIPTIONS"],
)
def test_every_table_entry_names_a_real_field(table: str) -> None:
    # A misspelt key would silently drop a merge key or a description.
    fields = {
        f"{name.rsplit('.', 1)[1]}.{field}"
        for name, struct in schema.definitions().items()
        for field in struct.fields
    }
    assert set(getattr(schema_tables, table)) <= fields
    assert set(schema_tables.TYPE_DESCRIPTIONS) <= {
        name.rsplit(".", 1)[1] for name in schema.definitions()
    }


def test_kubernetes_fields_kubelab_ignores_are_not_unknown() -> None:
    # What a real manifest carries that kubelab does not implement.
    deployment: Any = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "shop"},
        "spec": {
            "progressDeadlineSeconds": 600,
            "template": {
                "spec": {
                    "dnsPolicy": "ClusterFirst",
                    "containers": [
                        {
                            "name": "shop",
                            "imagePullPolicy": "IfNotPresent",
                            "resources": {"limits": {"cpu": "1"}},
                            "imagePullPolicyy": "typo",
                        }
                    ],
                }
            },
        },
    }
    report = openapi.check_fields(deployment, "Deployment")
    assert report.unknown == [".spec.template.spec.containers[0].imagePullPolicyy"]
    assert report.ignored == [
        ".spec.progressDeadlineSeconds",
        ".spec.template.spec.dnsPolicy",
        ".spec.template.spec.containers[0].imagePullPolicy",
        ".spec.template.spec.containers[0].resources",
    ]
    assert openapi.ignored_text(report.ignored[0]) == (
        "spec.progressDeadlineSeconds: kubelab does not implement this field; it is ignored"
    )


def test_the_kubernetes_only_table_names_real_definitions_and_no_kubelab_field() -> None:
    by_short = {name.rsplit(".", 1)[1]: s for name, s in schema.definitions().items()}
    for short, names in KUBERNETES_ONLY.items():
        assert short in by_short
        assert not set(names) & set(by_short[short].fields)


def test_known_fields_only_drops_what_check_fields_reports() -> None:
    pod: Any = {
        "kind": "Pod",
        "metadata": {"name": "p", "labels": {"a": "b"}, "lables": {}},
        "spec": {"containers": [{"name": "c", "resources": {}, "ports": [{"containerPort": 1}]}]},
    }
    before = json.dumps(pod)
    assert openapi.known_fields_only(pod, "Pod") == {
        "kind": "Pod",
        "metadata": {"name": "p", "labels": {"a": "b"}},
        "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 1}]}]},
    }
    assert json.dumps(pod) == before


@given(services())
def test_known_fields_only_keeps_a_well_formed_service(service: dict[str, Any]) -> None:
    assert openapi.known_fields_only(service, "Service") == service


@pytest.mark.parametrize(
    ("definition", "required"),
    [
        pytest.param("io.k8s.api.core.v1.ServicePort", ["port"], id="service-port"),
        # Kubernetes' schema leaves a container's image optional (its validation requires it).
        pytest.param("io.k8s.api.core.v1.Container", ["name"], id="container-name-only"),
        pytest.param("io.k8s.api.core.v1.ContainerPort", ["containerPort"], id="container-port"),
        pytest.param("io.k8s.api.core.v1.PodSpec", ["containers"], id="pod-spec"),
        pytest.param("io.k8s.api.apps.v1.DeploymentSpec", ["selector", "template"], id="deploy"),
        pytest.param("io.k8s.api.discovery.v1.EndpointSlice", ["addressType"], id="slice"),
        pytest.param("io.k8s.api.core.v1.NodeAddress", ["type", "address"], id="node-address"),
        pytest.param("io.k8s.api.core.v1.Event", ["metadata", "involvedObject"], id="event"),
        pytest.param("io.k8s.api.core.v1.ServiceSpec", None, id="service-spec-none"),
    ],
)
def test_required_fields_are_kubernetes(definition: str, required: list[str] | None) -> None:
    found = {}
    for gv in GVS:
        doc: Any = openapi.openapi_document(gv)
        found.update(doc["components"]["schemas"])
    assert found[definition].get("required") == required


@pytest.mark.parametrize("gv", GVS)
def test_every_required_field_is_a_property(gv: str) -> None:
    doc: Any = openapi.openapi_document(gv)
    seen = 0
    for body in doc["components"]["schemas"].values():
        for name in body.get("required", ()):
            assert name in body["properties"]
            seen += 1
    assert seen


def test_the_required_table_names_real_fields() -> None:
    """A typo in the table would silently mark nothing; the one name kubelab lacks is
    ContainerStatus.imageID (its documents leave it out)."""
    by_short = {name.rsplit(".", 1)[1]: s for name, s in schema.definitions().items()}
    missing = {
        (short, field)
        for short, fields in schema_tables.REQUIRED.items()
        for field in fields
        if field not in by_short[short].fields
    }
    assert missing == {("ContainerStatus", "imageID")}


def test_status_paths_are_those_the_front_serves() -> None:
    """The documents list a `/status` path exactly for the kinds whose /status is served."""
    documented = set()
    for gv in GVS:
        doc: Any = openapi.openapi_document(gv)
        for path in doc["paths"]:
            if path.endswith("/{name}/status"):
                documented.add(path.rsplit("/", 3)[1])
    assert documented == STATUS_KINDS
