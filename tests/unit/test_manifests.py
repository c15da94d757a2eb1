from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubelab.core import kinds
from kubelab.core.manifests import (
    LoadedObject,
    ManifestError,
    dump_yaml,
    load_manifest_files,
    load_manifests,
    to_json,
    to_kubernetes_dict,
    to_yaml,
)
from kubelab.core.selectors import from_label_selector, from_match_labels
from kubelab.v1 import objects_pb2

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


M = TypeVar("M", bound=Message)


def load_one(text: str) -> LoadedObject:
    (loaded,) = load_manifests(textwrap.dedent(text), "test.yaml")
    return loaded


def load_as(cls: type[M], text: str) -> M:
    obj = load_one(text).object
    assert isinstance(obj, cls)
    return obj


def kinds_and_names(loaded: list[LoadedObject]) -> list[tuple[str, str]]:
    return [(o.info.kind, to_kubernetes_dict(o.object)["metadata"]["name"]) for o in loaded]


def service(**spec: Any) -> str:
    return json.dumps(
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "shop"}, "spec": spec}
    )


SHOP_SERVICE = objects_pb2.Service(
    api_version="v1",
    kind="Service",
    metadata={"name": "shop", "namespace": "default"},
    spec=objects_pb2.ServiceSpec(
        type="NodePort",
        selector={"env": "prod", "app": "shop"},
        ports=[
            objects_pb2.ServicePort(
                name="http", protocol="TCP", port=80, target_port="8080", node_port=30080
            )
        ],
    ),
)

# ---------------------------------------------------------------- the examples


def test_shop_service_example() -> None:
    (loaded,) = load_manifest_files([str(EXAMPLES / "shop-service.yaml")])
    assert loaded.info is kinds.SERVICES
    assert loaded.object == SHOP_SERVICE
    assert loaded.warnings == ()
    assert loaded.document == 1


def test_shop_example_is_the_seed() -> None:
    loaded = load_manifest_files([str(EXAMPLES / "shop.yaml")])
    assert kinds_and_names(loaded) == [
        ("Deployment", "shop"),
        ("Pod", "shop-dev"),
        ("Pod", "shop-usd"),
        ("Service", "shop"),
    ]
    assert all(o.warnings == () for o in loaded)
    assert [o.document for o in loaded] == [1, 2, 3, 4]
    deployment, dev, usd, svc = (o.object for o in loaded)
    assert isinstance(deployment, objects_pb2.Deployment)
    assert isinstance(dev, objects_pb2.Pod) and isinstance(usd, objects_pb2.Pod)
    assert isinstance(svc, objects_pb2.Service)
    assert svc == SHOP_SERVICE
    assert deployment.spec.replicas == 4
    (container,) = deployment.spec.template.spec.containers
    assert container.image == "kubelab/echo"
    assert container.ports[0].name == "http" and container.ports[0].container_port == 8080
    assert container.readiness_probe.http_get.port == "http"
    assert container.readiness_probe.period_seconds == 1
    assert dev.spec.containers[0] == container == usd.spec.containers[0]
    # The seed's picture: the Service selects the prod pods, with or without extra labels.
    selects = from_match_labels(svc.spec.selector).matches
    assert selects(deployment.spec.template.metadata.labels)
    assert selects(usd.metadata.labels)
    assert not selects(dev.metadata.labels)
    assert from_label_selector(deployment.spec.selector).matches(
        deployment.spec.template.metadata.labels
    )


def test_the_examples_concatenated_are_one_stream_of_documents() -> None:
    """The README pipes `cat examples/shop.yaml examples/shop-lb.yaml` into `apply -f -`:
    every example file starts a document of its own."""
    text = "".join((EXAMPLES / name).read_text() for name in ("shop.yaml", "shop-lb.yaml"))
    assert [name for _, name in kinds_and_names(load_manifests(text))] == [
        "shop",
        "shop-dev",
        "shop-usd",
        "shop",
        "shop-lb",
    ]


# ---------------------------------------------------------------- documents


def test_multi_document_skips_empty_documents() -> None:
    text = """\
        # leading comment
        ---
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: a}
        ---
        # only a comment
        ---
        apiVersion: v1
        kind: Node
        metadata: {name: n1}
        ...
    """
    loaded = load_manifests(textwrap.dedent(text), "multi.yaml")
    assert [(o.info.kind, o.document, o.source) for o in loaded] == [
        ("Pod", 2, "multi.yaml"),
        ("Node", 4, "multi.yaml"),
    ]


@pytest.mark.parametrize(
    "text",
    [pytest.param("", id="empty"), pytest.param("---\n# nothing\n---\n", id="only-separators")],
)
def test_nothing_in_text(text: str) -> None:
    assert load_manifests(text) == []


def test_plain_json() -> None:
    loaded = load_manifests(to_json(SHOP_SERVICE), "svc.json")
    assert [o.object for o in loaded] == [SHOP_SERVICE]


def test_list_kind() -> None:
    text = """\
        apiVersion: v1
        kind: List
        items:
          - apiVersion: v1
            kind: Pod
            metadata: {name: a}
          - apiVersion: apps/v1
            kind: Deployment
            metadata: {name: b}
    """
    loaded = load_manifests(textwrap.dedent(text))
    assert kinds_and_names(loaded) == [
        ("Pod", "a"),
        ("Deployment", "b"),
    ]


def test_typed_list_items_take_its_kind() -> None:
    text = json.dumps(
        {"apiVersion": "v1", "kind": "ServiceList", "items": [{"metadata": {"name": "x"}}]}
    )
    (loaded,) = load_manifests(text)
    assert loaded.info is kinds.SERVICES
    assert loaded.object == objects_pb2.Service(
        api_version="v1", kind="Service", metadata={"name": "x"}
    )


def test_list_item_errors_name_the_item() -> None:
    text = json.dumps({"apiVersion": "v1", "kind": "List", "items": [{"kind": "Pod"}]})
    with pytest.raises(ManifestError, match=r"^list.json: document 1: items\[0\]: 'apiVersion'"):
        load_manifests(text, "list.json")


# ---------------------------------------------------------------- unknown fields


def test_unknown_fields_are_warned_with_paths() -> None:
    loaded = load_one(
        """\
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: shop
          finalizers: []
        spec:
          progressDeadlineSeconds: 600
          template:
            spec:
              containers:
                - name: shop
                  image: kubelab/echo
                  resources: {limits: {cpu: 1}}
                  readinessProbe:
                    grpc: {port: 9000}
                    periodSeconds: 1
              affinity: {}
        status:
          replicas: 3
          whatever: 1
        """
    )
    assert loaded.warnings == (
        "metadata.finalizers: unknown field, ignored",
        "spec.progressDeadlineSeconds: unknown field, ignored",
        "spec.template.spec.containers[0].resources: unknown field, ignored",
        "spec.template.spec.containers[0].readinessProbe.grpc: unknown field, ignored",
        "spec.template.spec.affinity: unknown field, ignored",
    )
    deployment = loaded.object
    assert isinstance(deployment, objects_pb2.Deployment)
    assert deployment.spec.template.spec.containers[0].readiness_probe.period_seconds == 1
    assert not deployment.HasField("status")


def test_proto_names_are_accepted_too() -> None:
    spec = load_as(
        objects_pb2.Service, service(cluster_ip="None", ports=[{"port": 80, "target_port": 80}])
    ).spec
    assert (spec.cluster_ip, spec.ports[0].target_port) == ("None", "80")


def test_null_means_unset() -> None:
    loaded = load_one(
        """\
        apiVersion: v1
        kind: Pod
        metadata: {name: a, creationTimestamp: null, labels: null}
        spec: null
        """
    )
    assert loaded.object == objects_pb2.Pod(api_version="v1", kind="Pod", metadata={"name": "a"})


# ---------------------------------------------------------------- YAML dialect


def test_yaml_11_booleans_stay_strings() -> None:
    words = ["on", "off", "yes", "no", "y", "n", "Y", "N", "YES", "On", "Off"]
    labels = "\n".join(f"    k{i}: {w}" for i, w in enumerate(words))
    pod = load_as(objects_pb2.Pod, f"apiVersion: v1\nkind: Pod\nmetadata:\n  labels:\n{labels}\n")
    assert dict(pod.metadata.labels) == {f"k{i}": w for i, w in enumerate(words)}


@pytest.mark.parametrize(
    ("scalar", "expected"),
    [
        pytest.param("1:30", "1:30", id="sexagesimal-stays-string"),
        pytest.param("2024-01-01", "2024-01-01", id="date-stays-string"),
        pytest.param("0b101", "0b101", id="binary-stays-string"),
        pytest.param("1_000", "1_000", id="underscore-stays-string"),
        pytest.param("=", "=", id="equals-sign"),
    ],
)
def test_yaml_12_strings(scalar: str, expected: str) -> None:
    pod = load_as(
        objects_pb2.Pod, f"apiVersion: v1\nkind: Pod\nmetadata: {{labels: {{k: {scalar}}}}}"
    )
    assert pod.metadata.labels["k"] == expected


@pytest.mark.parametrize(
    ("scalar", "port"),
    [
        pytest.param("80", 80, id="decimal"),
        pytest.param("080", 80, id="leading-zero-is-decimal"),
        pytest.param("0o120", 80, id="octal"),
        pytest.param("0x50", 80, id="hex"),
        pytest.param("80.0", 80, id="integral-float"),
    ],
)
def test_yaml_12_integers(scalar: str, port: int) -> None:
    text = f"apiVersion: v1\nkind: Service\nspec:\n  ports: [{{port: {scalar}}}]\n"
    assert load_as(objects_pb2.Service, text).spec.ports[0].port == port


def test_unquoted_timestamp_is_read_as_text() -> None:
    pod = load_as(
        objects_pb2.Pod,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: a, creationTimestamp: 2024-05-01T10:00:00Z}",
    )
    assert pod.metadata.creation_timestamp.seconds == 1714557600


# ---------------------------------------------------------------- int-or-string


@pytest.mark.parametrize(
    ("yaml_value", "stored", "printed"),
    [
        pytest.param("8080", "8080", 8080, id="int"),
        pytest.param("http", "http", "http", id="name"),
        pytest.param('"0080"', "0080", "0080", id="leading-zero-string-kept"),
        pytest.param("8080.0", "8080", 8080, id="integral-float"),
    ],
)
def test_int_or_string_target_port(yaml_value: str, stored: str, printed: object) -> None:
    text = (
        f"apiVersion: v1\nkind: Service\nspec:\n  ports: [{{port: 80, targetPort: {yaml_value}}}]\n"
    )
    (loaded,) = load_manifests(text)
    svc = loaded.object
    assert isinstance(svc, objects_pb2.Service)
    assert svc.spec.ports[0].target_port == stored
    assert to_kubernetes_dict(svc)["spec"]["ports"][0]["targetPort"] == printed


def test_int_or_string_everywhere() -> None:
    loaded = load_one(
        """\
        apiVersion: apps/v1
        kind: Deployment
        spec:
          strategy:
            rollingUpdate: {maxSurge: 1, maxUnavailable: 25%}
          template:
            spec:
              containers:
                - readinessProbe: {tcpSocket: {port: 8080}}
                  livenessProbe: {httpGet: {port: http}}
        """
    )
    deployment = loaded.object
    assert isinstance(deployment, objects_pb2.Deployment)
    rolling = deployment.spec.strategy.rolling_update
    assert (rolling.max_surge, rolling.max_unavailable) == ("1", "25%")
    container = deployment.spec.template.spec.containers[0]
    assert container.readiness_probe.tcp_socket.port == "8080"
    assert container.liveness_probe.http_get.port == "http"
    printed = to_kubernetes_dict(deployment)
    assert printed["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": "25%", "maxSurge": 1}
    probe = printed["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert probe == {"tcpSocket": {"port": 8080}}


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {enabled: true}}\n",
            'Pod "p" is invalid: metadata.labels.enabled: Invalid value: true: must be a string',
            id="bool-label",
        ),
        pytest.param(
            service(ports=[{"port": "eighty"}]),
            'spec.ports[0].port: Invalid value: "eighty": must be an integer',
            id="port-word",
        ),
        pytest.param(
            service(ports=[{"port": "80"}]),
            'spec.ports[0].port: Invalid value: "80": must be an integer',
            id="port-quoted",
        ),
        pytest.param(
            service(ports={"port": 80}),
            "spec.ports: Invalid value: {...}: must be a list",
            id="ports-object",
        ),
        pytest.param(
            service(ports=["http"]),
            'spec.ports[0]: Invalid value: "http": must be an object',
            id="port-item-string",
        ),
        pytest.param(
            service(ports=[{"port": 2**40}]),
            "spec.ports[0].port: Invalid value: 1099511627776: must fit in a 32-bit integer",
            id="port-too-big",
        ),
        pytest.param(
            service(ports=[{"port": 80, "targetPort": True}]),
            "spec.ports[0].targetPort: Invalid value: true: must be an integer or a string",
            id="target-port-bool",
        ),
        pytest.param(
            service(publishNotReadyAddresses="yes"),
            'spec.publishNotReadyAddresses: Invalid value: "yes": must be a boolean',
            id="bool-field-word",
        ),
        pytest.param(
            service(selector={"app": None}),
            "spec.selector.app: Invalid value: null: must be a string",
            id="null-in-map",
        ),
        pytest.param(
            service(selector={"app.kubernetes.io/name": 1}),
            "spec.selector[app.kubernetes.io/name]: Invalid value: 1: must be a string",
            id="dotted-map-key",
        ),
        pytest.param(
            service(clusterIP="None", cluster_ip="None"),
            'spec.cluster_ip: Invalid value: "None": the same field as spec.clusterIP',
            id="both-names",
        ),
        pytest.param(
            json.dumps({"apiVersion": "v1", "kind": "Service", "spec": []}),
            "spec: Invalid value: [...]: must be an object",
            id="spec-list",
        ),
        pytest.param(
            json.dumps({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 2.5}}),
            "spec.replicas: Invalid value: 2.5: must be an integer",
            id="fractional-replicas",
        ),
        pytest.param(
            "apiVersion: v1\nkind: Pod\nmetadata: {creationTimestamp: yesterday}\n",
            'metadata.creationTimestamp: Invalid value: "yesterday": must be an RFC 3339 time',
            id="bad-timestamp",
        ),
        pytest.param(
            "apiVersion: v1\nkind: Pod\n"
            "spec: {containers: [{name: 7, ports: [{containerPort: x}]}]}",
            'Pod "" is invalid: [spec.containers[0].name: Invalid value: 7: must be a string, '
            'spec.containers[0].ports[0].containerPort: Invalid value: "x": must be an integer]',
            id="all-errors-collected",
        ),
        pytest.param(
            "apiVersion: v1\nkind: ConfigMap\n---\napiVersion: v1\nkind: ConfigMap\n",
            'document 1: kind "ConfigMap" (apiVersion v1) is not supported by kubelab; '
            "supported: Service (v1), Pod (v1), Deployment (apps/v1), "
            "EndpointSlice (discovery.k8s.io/v1), Node (v1)",
            id="unsupported-kind",
        ),
        pytest.param(
            "apiVersion: extensions/v1beta1\nkind: Deployment\n",
            'kind "Deployment" (apiVersion extensions/v1beta1) is not supported',
            id="old-api-version",
        ),
        pytest.param("kind: Pod\n", "'apiVersion' is missing", id="no-api-version"),
        pytest.param("apiVersion: v1\n", "'kind' is missing", id="no-kind"),
        pytest.param(
            "apiVersion: 1\nkind: Pod\n",
            "apiVersion: Invalid value: 1: must be a string",
            id="api-version-number",
        ),
        pytest.param(
            "- a\n- b\n", "expected an object with apiVersion and kind, got a list", id="list"
        ),
        pytest.param("just text\n", "got a string", id="scalar"),
        pytest.param("a: [1\n", "invalid YAML: line 2, column 1:", id="yaml-syntax"),
        pytest.param(
            "apiVersion: v1\nkind: Pod\nkind: Service\n",
            "invalid YAML: line 3, column 1: found duplicate key 'kind'",
            id="yaml-duplicate-key",
        ),
        pytest.param(
            '{"apiVersion": "v1", "kind": "Pod", "kind": "Service"}',
            "invalid JSON: found duplicate key 'kind'",
            id="json-duplicate-key",
        ),
        pytest.param(
            "apiVersion: v1\nkind: List\nitems: {a: 1}\n", "items: must be a list", id="list-items"
        ),
    ],
)
def test_errors_name_the_field(text: str, message: str) -> None:
    with pytest.raises(ManifestError) as caught:
        load_manifests(text, "bad.yaml")
    assert str(caught.value).startswith("bad.yaml: ")
    assert message in str(caught.value)


def test_error_names_document_and_object() -> None:
    text = to_yaml(SHOP_SERVICE) + "---\n" + service(ports=[{"port": "eighty"}])
    with pytest.raises(ManifestError) as caught:
        load_manifests(text, "shop.yaml")
    assert str(caught.value) == (
        'shop.yaml: document 2: Service "shop" is invalid: '
        'spec.ports[0].port: Invalid value: "eighty": must be an integer'
    )
    assert caught.value.document == 2
    assert [e.field for e in caught.value.field_errors] == ["spec.ports[0].port"]


# ---------------------------------------------------------------- printing


def test_kubernetes_dict_shape() -> None:
    pod = objects_pb2.Pod(
        metadata={"name": "p", "generation": 3, "labels": {"a": "b"}},
        spec=objects_pb2.PodSpec(containers=[objects_pb2.Container(name="c")]),
        status=objects_pb2.PodStatus(phase="Running", pod_ip="127.244.1.2"),
    )
    printed = to_kubernetes_dict(pod)
    assert list(printed) == ["apiVersion", "kind", "metadata", "spec", "status"]
    assert (printed["apiVersion"], printed["kind"]) == ("v1", "Pod")
    assert printed["metadata"]["generation"] == 3
    assert printed["status"] == {"phase": "Running", "podIP": "127.244.1.2"}
    assert json.loads(to_json(pod)) == printed
    assert to_json(pod).startswith('{\n    "apiVersion": "v1",\n    "kind": "Pod",\n')
    assert yaml.safe_load(to_yaml(pod)) == printed


def test_yaml_output_quotes_what_readers_would_retype() -> None:
    pod = objects_pb2.Pod(
        api_version="v1",
        kind="Pod",
        metadata={"labels": {w: w for w in ["yes", "on", "0o17", "1e3", "1:30", "true", "~", ""]}},
    )
    text = to_yaml(pod)
    for word in ("yes", "on", "0o17", "1e3", "1:30", "true", "~"):
        assert f"'{word}': '{word}'" in text
    # Both a YAML 1.1 reader (PyYAML, kubectl) and ours read strings back as strings.
    assert yaml.safe_load(text)["metadata"]["labels"] == dict(pod.metadata.labels)
    assert load_manifests(text)[0].object == pod


def test_dump_yaml_list_reads_back() -> None:
    text = dump_yaml(
        {"apiVersion": "v1", "kind": "List", "items": [to_kubernetes_dict(SHOP_SERVICE)] * 2}
    )
    assert [o.object for o in load_manifests(text)] == [SHOP_SERVICE, SHOP_SERVICE]


@pytest.mark.parametrize(
    "obj",
    [
        pytest.param(SHOP_SERVICE, id="service"),
        pytest.param(
            objects_pb2.Deployment(
                api_version="apps/v1",
                kind="Deployment",
                metadata={"name": "d", "generation": 2, "creation_timestamp": {"seconds": 1}},
                spec=objects_pb2.DeploymentSpec(replicas=0, revision_history_limit=0),
            ),
            id="deployment-zero-presence",
        ),
        pytest.param(
            objects_pb2.EndpointSlice(
                api_version="discovery.k8s.io/v1",
                kind="EndpointSlice",
                metadata={"name": "shop-abc", "namespace": "default"},
                address_type="IPv4",
                endpoints=[
                    objects_pb2.Endpoint(
                        addresses=["127.244.1.2"],
                        conditions=objects_pb2.EndpointConditions(ready=False, serving=True),
                        node_name="node-1",
                    )
                ],
                ports=[objects_pb2.EndpointPort(name="http", port=8080, protocol="TCP")],
            ),
            id="endpointslice",
        ),
    ],
)
def test_round_trip(obj: Message) -> None:
    assert [o.object for o in load_manifests(to_yaml(obj))] == [obj]
    assert [o.object for o in load_manifests(to_json(obj))] == [obj]


# ---------------------------------------------------------------- files


def test_load_manifest_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "b.yaml").write_text(to_yaml(SHOP_SERVICE))
    (tmp_path / "a.json").write_text("\ufeff" + to_json(SHOP_SERVICE))  # A BOM is tolerated.
    (tmp_path / "c.yml").write_text("")
    (tmp_path / "notes.txt").write_text("not a manifest")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.yaml").write_text(to_yaml(SHOP_SERVICE))
    monkeypatch.setattr("sys.stdin", io.StringIO(to_yaml(SHOP_SERVICE)))
    loaded = load_manifest_files([str(tmp_path), "-"])
    assert [Path(o.source).name for o in loaded] == ["a.json", "b.yaml", "STDIN"]
    assert all(o.object == SHOP_SERVICE for o in loaded)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(None, "No such file or directory", id="missing"),
        pytest.param(b"\xff\xfe\x00", "not UTF-8 text", id="binary"),
    ],
)
def test_load_manifest_files_errors(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "x.yaml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ManifestError, match=message):
        load_manifest_files([str(path)])


# ---------------------------------------------------------------- properties

FIELD_NAMES = [
    "metadata", "spec", "status", "name", "namespace", "labels", "annotations", "selector",
    "ports", "port", "targetPort", "nodePort", "protocol", "type", "clusterIP", "clusterIPs",
    "sessionAffinityConfig", "clientIP", "timeoutSeconds", "containers", "image", "command",
    "readinessProbe", "httpGet", "tcpSocket", "periodSeconds", "httpHeaders", "env", "value",
    "terminationGracePeriodSeconds", "creationTimestamp", "generation", "ownerReferences",
    "publishNotReadyAddresses", "items", "kind", "apiVersion",
]  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=10),
    st.sampled_from(["http", "8080", "2024-01-01T00:00:00Z", "yes", "None", "25%"]),
)
TREES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(
            st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=5)), children, max_size=4
        ),
    ),
    max_leaves=20,
)
SKELETONS = st.sampled_from(
    [("v1", "Service"), ("v1", "Pod"), ("apps/v1", "Deployment"), ("v1", "List"), ("v1", "Node")]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SKELETONS, st.dictionaries(st.sampled_from(FIELD_NAMES), TREES, max_size=5))
def test_random_documents_only_raise_manifest_error(
    skeleton: tuple[str, str], body: dict[str, Any]
) -> None:
    document = {**body, "apiVersion": skeleton[0], "kind": skeleton[1]}
    for text in (json.dumps(document), yaml.safe_dump(document)):
        try:
            loaded = load_manifests(text)
        except ManifestError:
            continue
        for item in loaded:
            again = load_manifests(to_yaml(item.object))
            assert [o.object for o in again] == [item.object]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("{}[]:,-#'\"!&*?|>%@` \n\tabk0.=~")), max_size=40))
def test_random_text_only_raises_manifest_error(text: str) -> None:
    try:
        load_manifests(text)
    except ManifestError:
        pass


STRINGS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["yes", "no", "on", "0o17", "0x1F", "1e3", "1:30", "~", "null", "", "08"]),
)


@settings(max_examples=150, deadline=None)
@given(
    name=STRINGS,
    labels=st.dictionaries(STRINGS, STRINGS, max_size=4),
    target_port=st.one_of(STRINGS, st.integers(0, 70000).map(str)),
    port=st.integers(-(2**31), 2**31 - 1),
    generation=st.integers(-(2**63), 2**63 - 1),
)
def test_round_trip_any_strings(
    name: str, labels: dict[str, str], target_port: str, port: int, generation: int
) -> None:
    svc = objects_pb2.Service(
        api_version="v1",
        kind="Service",
        metadata={"name": name, "labels": labels, "generation": generation},
        spec=objects_pb2.ServiceSpec(
            selector=labels,
            ports=[objects_pb2.ServicePort(port=port, target_port=target_port)],
        ),
    )
    assert [o.object for o in load_manifests(to_yaml(svc))] == [svc]
    assert [o.object for o in load_manifests(to_json(svc))] == [svc]


_DIGITS = "9" * 5000


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            '{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"}, '
            '"spec": {"ports": [{"port": ' + _DIGITS + "}]}}",
            id="json",
        ),
        pytest.param(
            "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n"
            "spec: {ports: [{port: " + _DIGITS + "}]}\n",
            id="yaml",
        ),
    ],
)
def test_a_number_with_too_many_digits_is_a_field_error(text: str) -> None:
    # Python refuses int() past 4,300 digits; the CLI called that ValueError a kubelab bug.
    with pytest.raises(ManifestError, match=r"spec\.ports\[0\]\.port: Invalid value: 9+\.\.\. "):
        load_manifests(text)


def test_a_number_with_too_many_digits_in_an_unknown_field_is_ignored_with_a_warning() -> None:
    (loaded,) = load_manifests("apiVersion: v1\nkind: Service\nmetadata: {name: a}\nx: " + _DIGITS)
    assert loaded.warnings == ("x: unknown field, ignored",)
