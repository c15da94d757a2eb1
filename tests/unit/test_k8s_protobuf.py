"""Kubernetes protobuf bodies decoded to the JSON object the same client would send:
kubectl's own bytes (recorded, `data/kubectl-protobuf/`), the field rules (zero values,
pointer fields, int-or-string, maps, unknown and undecoded fields), and hostile bytes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.apiserver.k8s import k8s_protobuf, openapi, protowire
from services.apiserver.k8s.k8s_protobuf import (
    NOT_DECODED,
    SCHEMA,
    ProtobufError,
    UndecodedKindError,
)

BODIES = Path(__file__).parent / "data" / "kubectl-protobuf"


def decode(raw: bytes) -> Any:
    """`k8s_protobuf.decode`, its answer indexed freely by the assertions."""
    return k8s_protobuf.decode(raw)


# ---------------------------------------------------------------- an encoder, for the tests


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, value: int | bytes | str) -> bytes:
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    data = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(data)) + data


def message(*fields: bytes) -> bytes:
    return b"".join(fields)


def body(api_version: str, kind: str, raw: bytes, encoding: str = "") -> bytes:
    type_meta = field(1, message(field(1, api_version), field(2, kind)))
    return protowire.MAGIC + type_meta + field(2, raw) + field(3, encoding) + field(4, "")


def service(*spec: bytes, meta: bytes = field(1, "shop")) -> bytes:
    return body("v1", "Service", message(field(1, meta), field(2, message(*spec))))


# ---------------------------------------------------------------- kubectl's bytes

LABELS = {"app": "web"}
RECORDED: list[Any] = [
    pytest.param(
        "namespace", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}
    ),
    pytest.param(
        "deployment",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": LABELS},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": LABELS},
                "template": {
                    "metadata": {"labels": LABELS},
                    "spec": {
                        "containers": [
                            {"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80}]}
                        ]
                    },
                },
            },
        },
    ),
    pytest.param(
        "service-clusterip",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "shop", "labels": {"app": "shop"}},
            "spec": {
                "ports": [
                    {"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080},
                    {"name": "443-https", "protocol": "TCP", "port": 443, "targetPort": "https"},
                ],
                "selector": {"app": "shop"},
                "type": "ClusterIP",
            },
        },
    ),
]


@pytest.mark.parametrize(("name", "expected"), RECORDED)
def test_kubectls_bodies_decode_to_what_its_json_would_say(
    name: str, expected: dict[str, Any]
) -> None:
    assert decode((BODIES / f"{name}.bin").read_bytes()) == expected


@pytest.mark.parametrize(
    "path", sorted(BODIES.glob("*.bin")), ids=lambda p: p.stem if isinstance(p, Path) else ""
)
def test_every_recorded_body_passes_strict_field_validation(path: Path) -> None:
    document = decode(path.read_bytes())
    assert openapi.unknown_fields(document, str(document["kind"])) == []


def test_the_recorded_details_survive() -> None:
    nodeport = decode((BODIES / "service-nodeport.bin").read_bytes())
    assert nodeport["spec"]["ports"][0]["nodePort"] == 30080
    assert nodeport["spec"]["type"] == "NodePort"
    headless = decode((BODIES / "service-headless.bin").read_bytes())
    assert headless["spec"]["clusterIP"] == "None"
    assert "ports" not in headless["spec"]
    command = decode((BODIES / "deployment-command.bin").read_bytes())
    container = command["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["sleep", "60"]
    two = decode((BODIES / "deployment-two-images.bin").read_bytes())
    names = [c["name"] for c in two["spec"]["template"]["spec"]["containers"]]
    assert names == ["busybox", "nginx"]


# ---------------------------------------------------------------- the field rules


def test_zero_values_are_dropped_but_set_pointer_fields_are_kept() -> None:
    deployment = body(
        "apps/v1",
        "Deployment",
        message(
            field(1, message(field(1, "d"), field(2, ""), field(7, 0))),
            field(2, message(field(1, 0), field(5, 0), field(7, 0), field(4, b""))),
        ),
    )
    assert decode(deployment) == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {"replicas": 0},  # *int32 set to 0: scale to zero, not "unset"
    }


def test_negative_numbers_are_sign_extended() -> None:
    grace = body("v1", "Pod", message(field(1, field(1, "p")), field(2, message(field(4, -1)))))
    assert decode(grace)["spec"] == {"terminationGracePeriodSeconds": -1}


def test_int_or_string_and_probes_inline_their_handler() -> None:
    probe = message(
        field(
            1,
            field(
                2, message(field(1, "/healthz"), field(2, message(field(1, 1), field(3, "http"))))
            ),
        ),
        field(4, 2),
    )
    container = message(field(1, "c"), field(2, "img"), field(11, probe))
    pod = body("v1", "Pod", message(field(1, field(1, "p")), field(2, field(2, container))))
    assert decode(pod)["spec"]["containers"][0]["readinessProbe"] == {
        "httpGet": {"path": "/healthz", "port": "http"},
        "periodSeconds": 2,
    }


def test_maps_times_and_repeated_fields() -> None:
    meta = message(
        field(1, "shop"),
        field(8, message(field(1, 1_700_000_000))),
        field(11, message(field(1, "a"), field(2, "1"))),
        field(11, message(field(1, "b"), field(2, "2"))),
        field(14, "kubernetes"),
    )
    decoded = decode(service(field(18, "10.0.0.1"), field(18, "fd00::1"), meta=meta))
    assert decoded["metadata"] == {
        "name": "shop",
        "creationTimestamp": "2023-11-14T22:13:20Z",
        "labels": {"a": "1", "b": "2"},
        "finalizers": ["kubernetes"],
    }
    assert decoded["spec"] == {"clusterIPs": ["10.0.0.1", "fd00::1"]}


def test_status_and_managed_fields_are_not_decoded() -> None:
    meta = message(field(1, "shop"), field(17, message(field(1, "someone"))))
    raw = message(field(1, meta), field(3, message(field(1, message(field(1, "1.2.3.4"))))))
    assert decode(body("v1", "Service", raw)) == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "shop"},
    }


def test_undecoded_and_unknown_fields_are_named_for_field_validation() -> None:
    affinity = message(field(1, b"\x0a\x00"))
    spec = message(field(2, field(1, "c")), field(18, affinity), field(14, b""), field(99, 7))
    decoded = decode(body("v1", "Pod", message(field(1, field(1, "p")), field(2, spec))))
    assert decoded["spec"] == {
        "containers": [{"name": "c"}],
        "affinity": NOT_DECODED,  # on the wire with content: field validation sees it
        "<protobuf field 99>": NOT_DECODED,
    }  # the empty securityContext is gone, as Go's JSON leaves it out
    # As the JSON field would be: Kubernetes' affinity is ignored (a warning), field 99
    # is nobody's (a strict decoding error).
    report = openapi.check_fields(decoded, "Pod")
    assert report.ignored == [".spec.affinity"]
    assert report.unknown == [".spec.<protobuf field 99>"]


def test_every_message_the_schema_names_is_in_it() -> None:
    scalars = {"string", "int", "bool", "time", "int-or-string", "string-map", "opaque", "drop"}
    for name, fields in SCHEMA.items():
        for spec in fields.values():
            assert spec.type in scalars or spec.type in SCHEMA, f"{name}.{spec.name}"
    for message_name in k8s_protobuf.KINDS.values():
        assert message_name in SCHEMA


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        pytest.param(b'{"kind":"Namespace"}', "magic", id="json-labelled-protobuf"),
        pytest.param(protowire.MAGIC + b"\x0a\x05ab", "claims 5 bytes", id="truncated"),
        pytest.param(protowire.MAGIC + b"\x08" + b"\xff" * 11, "varint", id="endless-varint"),
        pytest.param(protowire.MAGIC + b"\x0b", "wire type 3", id="group"),
        pytest.param(body("v1", "", b""), "typeMeta.kind: Required value", id="no-kind"),
        pytest.param(body("v1", "Service", b"", "gzip"), 'contentEncoding "gzip"', id="gzip"),
        pytest.param(
            service(field(1, message(field(3, "eighty")))),
            "spec.ports[0].port: expected a varint",
            id="wrong-wire-type-named-by-path",
        ),
        pytest.param(service(meta=field(1, b"\xff\xfe")), "metadata.name: not UTF-8", id="utf8"),
    ],
)
def test_bad_bodies_are_refused_naming_the_problem(raw: bytes, words: str) -> None:
    with pytest.raises(ProtobufError) as caught:
        decode(raw)
    assert words in str(caught.value)
    assert not isinstance(caught.value, UndecodedKindError)


def test_a_kind_not_decoded_says_so() -> None:
    with pytest.raises(UndecodedKindError, match=r"discovery\.k8s\.io/v1 EndpointSlice"):
        decode(body("discovery.k8s.io/v1", "EndpointSlice", b""))


@given(st.binary(max_size=300), st.integers(min_value=0, max_value=300))
def test_any_bytes_decode_or_are_refused_never_crash(noise: bytes, cut: int) -> None:
    recorded = (BODIES / "deployment.bin").read_bytes()
    for raw in (protowire.MAGIC + noise, recorded[:cut], recorded[:cut] + noise):
        try:
            decoded = decode(raw)
        except ProtobufError:
            continue
        assert isinstance(decoded, dict) and "kind" in decoded
