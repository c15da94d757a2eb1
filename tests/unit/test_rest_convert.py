"""kubelab's protobuf objects <-> the Kubernetes JSON of the HTTP API."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import given
from hypothesis import strategies as st

from kubelab.core import kinds
from kubelab.v1 import objects_pb2
from services.apiserver.rest import convert
from services.apiserver.rest.errors import ApiError


def service(**spec: Any) -> objects_pb2.Service:
    svc = objects_pb2.Service()
    json_format.ParseDict(
        {
            "metadata": {
                "name": "shop",
                "namespace": "default",
                "resourceVersion": "12",
                "generation": "3",
                "creationTimestamp": "2026-12-07T07:00:00Z",
            },
            "spec": spec,
        },
        svc,
    )
    return svc


def test_service_json_has_kubernetes_types() -> None:
    shown = convert.to_json(service(ports=[{"port": 80, "targetPort": "8080"}]))
    assert list(shown)[:4] == ["apiVersion", "kind", "metadata", "spec"]
    assert shown["apiVersion"] == "v1" and shown["kind"] == "Service"
    assert shown["metadata"]["generation"] == 3  # int64: a number, not proto JSON's string
    assert shown["metadata"]["resourceVersion"] == "12"  # a string in Kubernetes too
    assert shown["metadata"]["creationTimestamp"] == "2026-12-07T07:00:00Z"
    assert shown["spec"]["ports"] == [{"port": 80, "targetPort": 8080}]


@pytest.mark.parametrize(
    ("info", "body", "path", "value"),
    [
        pytest.param(
            kinds.PODS,
            {"status": {"containerStatuses": [{"name": "c"}]}},
            ("status", "containerStatuses", 0),
            {"name": "c", "ready": False, "restartCount": 0, "image": "", "imageID": ""},
            id="container-status-zero-values",
        ),
        pytest.param(
            kinds.PODS,
            {"status": {"containerStatuses": [{"name": "c", "state": {"terminated": {}}}]}},
            ("status", "containerStatuses", 0, "state", "terminated"),
            {"exitCode": 0},
            id="exit-code-zero",
        ),
        pytest.param(
            kinds.ENDPOINTSLICES,
            {"addressType": "IPv4"},
            ("endpoints",),
            [],
            id="slice-without-endpoints",
        ),
        pytest.param(
            kinds.NODES,
            {"status": {"daemonEndpoints": {"kubeletEndpoint": {}}}},
            ("status", "daemonEndpoints", "kubeletEndpoint"),
            {"Port": 0},
            id="kubelet-port",
        ),
    ],
)
def test_required_fields_are_always_written(
    info: kinds.KindInfo, body: dict[str, Any], path: tuple[Any, ...], value: Any
) -> None:
    message = info.message()
    json_format.ParseDict({"metadata": {"name": "x"}, **body}, message)
    shown: Any = convert.to_json(message)
    for step in path:
        shown = shown[step]
    assert shown == value


def test_list_drops_item_types_and_keeps_empty_items() -> None:
    listed = convert.list_json(kinds.SERVICES, [], "5", "")
    assert listed == {
        "kind": "ServiceList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": "5"},
        "items": [],
    }
    items = [convert.to_json(service())]
    listed = convert.list_json(kinds.SERVICES, items, "5", "next")
    assert listed["metadata"]["continue"] == "next"
    assert "kind" not in listed["items"][0] and "apiVersion" not in listed["items"][0]


def encode(body: Any) -> bytes:
    return json.dumps(body).encode()


def test_body_without_type_takes_the_urls() -> None:
    decoded = convert.from_body(
        encode({"metadata": {"name": "d1"}, "spec": {"ports": [{"port": 80}]}}),
        kinds.SERVICES,
        namespace="team",
    )
    assert isinstance(decoded.object, objects_pb2.Service)
    assert decoded.object.metadata.namespace == "team"
    assert decoded.object.spec.ports[0].port == 80
    assert decoded.warnings == ()


def test_unimplemented_fields_become_warnings() -> None:
    decoded = convert.from_body(
        encode({"metadata": {"name": "d1"}, "spec": {"ports": [{"port": 80}], "futureField": 1}}),
        kinds.SERVICES,
        namespace="default",
    )
    assert decoded.warnings == ("spec.futureField: unknown field, ignored",)


@pytest.mark.parametrize(
    ("raw", "name", "words"),
    [
        pytest.param(b"{not json", "", "json parse error", id="malformed"),
        pytest.param(b"[1, 2]", "", "must be a JSON object", id="not-an-object"),
        pytest.param(b'{"metadata": 5}', "", "metadata: must be an object", id="metadata-type"),
        pytest.param(
            encode({"apiVersion": "apps/v1", "kind": "Service"}),
            "",
            "the API version in the data (apps/v1) does not match",
            id="api-version",
        ),
        pytest.param(
            encode({"apiVersion": "v1", "kind": "Pod"}),
            "",
            "the kind in the data (Pod) does not match the expected kind (Service)",
            id="kind",
        ),
        pytest.param(
            encode({"metadata": {"name": "a", "namespace": "other"}}),
            "",
            "does not match the namespace sent on the request",
            id="namespace",
        ),
        pytest.param(
            encode({"metadata": {"name": "a"}}),
            "b",
            "the name of the object (a) does not match the name on the URL (b)",
            id="name",
        ),
        pytest.param(
            encode({"metadata": {"name": "a"}, "spec": {"ports": [{"port": "http"}]}}),
            "",
            "spec.ports[0].port",
            id="type-error-names-its-field",
        ),
        pytest.param(b"[" * 100000 + b"]" * 100000, "", "", id="deeply-nested"),
        pytest.param(b'{"a": 1' + b"0" * 5000 + b"}", "", "", id="huge-number"),
        pytest.param(b"\xff\xfe", "", "", id="not-utf8"),
    ],
)
def test_bad_bodies_are_400(raw: bytes, name: str, words: str) -> None:
    with pytest.raises(ApiError) as refused:
        convert.from_body(raw, kinds.SERVICES, namespace="default", name=name)
    assert refused.value.code == 400
    assert refused.value.reason == "BadRequest"
    assert words in refused.value.message


PORTS = st.lists(
    st.fixed_dictionaries(
        {
            "port": st.integers(min_value=1, max_value=65535),
            "protocol": st.sampled_from(["TCP", "UDP"]),
            "targetPort": st.one_of(
                st.integers(min_value=1, max_value=65535), st.sampled_from(["http", "dns"])
            ),
        }
    ),
    min_size=1,
    max_size=4,
)
LABELS = st.dictionaries(
    st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True),
    st.from_regex(r"[a-z0-9]{0,8}", fullmatch=True),
    max_size=4,
)


@given(PORTS, LABELS)
def test_a_service_reads_back_as_sent(ports: list[dict[str, Any]], labels: dict[str, str]) -> None:
    sent = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "shop", "namespace": "default", "labels": labels},
        "spec": {"type": "ClusterIP", "ports": ports, "selector": labels},
    }
    decoded = convert.from_body(encode(sent), kinds.SERVICES, namespace="default")
    shown = convert.to_json(decoded.object)
    assert shown["spec"]["ports"] == ports
    assert shown["metadata"].get("labels", {}) == labels
    assert shown["spec"].get("selector", {}) == labels
    # What the server answers parses back to the same object.
    again = convert.from_body(encode(shown), kinds.SERVICES, namespace="default")
    assert again.object == decoded.object
