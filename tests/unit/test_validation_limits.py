"""Issue 13's validation gaps and size limits, one named row per rule.

Each bad object names the one error it must produce in Kubernetes' full text
(`field: Type: value: detail`). The manifest rows go through
`load_manifests`, as the CLI does, because there the user's types still
exist (a YAML string `"12345"` versus a number); the object rows go through
defaults and `validate_object`, as the apiserver does.
"""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.json_format import ParseDict

from kubelab.core import errors, kinds
from kubelab.core.errors import ErrorType, FieldError, InvalidObjectError
from kubelab.core.kinds import KindInfo
from kubelab.core.manifests import ManifestError, load_manifests
from kubelab.core.validation.objects import (
    MAX_OBJECT_BYTES,
    apply_defaults,
    is_non_special_ip,
    parse_int_or_string,
    validate_grace_period,
    validate_key,
    validate_object,
)
from kubelab.core.validation.size import largest_part
from kubelab.v1 import objects_pb2

Manifest = dict[str, Any]
TOO_BIG = (
    f"must have at most {MAX_OBJECT_BYTES} bytes: the whole object is {{}} bytes encoded, "
    "and this field is its largest part"
)
WHITESPACE = "must not have leading or trailing whitespace"
UNSPECIFIED = "may not be unspecified ({})"
LINK_LOCAL = "may not be in the link-local range (169.254.0.0/16, fe80::/10)"
LL_MULTICAST = "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"
NO_LETTER = "must contain at least one letter (a-z)"


def check(info: KindInfo, manifest: Manifest) -> list[str]:
    obj = ParseDict(manifest, info.message())
    apply_defaults(info, obj)
    return [str(e) for e in validate_object(info, obj)]


def pod(image: str = "kubelab/echo:1", env_value: str = "", **spec: Any) -> Manifest:
    container: Manifest = {"name": "web", "image": image}
    if env_value:
        container["env"] = [{"name": "BIG", "value": env_value}]
    return {"metadata": {"name": "web-1"}, "spec": {"containers": [container], **spec}}


def service(**spec: Any) -> Manifest:
    return {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}], **spec}}


def slice_of(*addresses: str, address_type: str = "IPv4") -> Manifest:
    return {
        "metadata": {"name": "web-abc"},
        "addressType": address_type,
        "endpoints": [{"addresses": [a]} for a in addresses],
    }


def node(*cidrs: str) -> Manifest:
    return {"metadata": {"name": "n1"}, "spec": {"podCIDR": cidrs[0], "podCIDRs": list(cidrs)}}


# ---------------------------------------------------------------- objects


@pytest.mark.parametrize(
    ("info", "manifest", "expected"),
    [
        pytest.param(
            kinds.PODS,
            pod(image=" "),
            f'spec.containers[0].image: Invalid value: " ": {WHITESPACE}',
            id="image-space",
        ),
        pytest.param(
            kinds.PODS,
            pod(image="nginx\t"),
            f'spec.containers[0].image: Invalid value: "nginx\\t": {WHITESPACE}',
            id="image-trailing-tab",
        ),
        pytest.param(
            kinds.ENDPOINTSLICES,
            slice_of("10.244.1.5", "0.0.0.0"),
            f'endpoints[1].addresses[0]: Invalid value: "0.0.0.0": {UNSPECIFIED.format("0.0.0.0")}',
            id="slice-unspecified",
        ),
        pytest.param(
            kinds.ENDPOINTSLICES,
            slice_of("224.0.0.1"),
            f'endpoints[0].addresses[0]: Invalid value: "224.0.0.1": {LL_MULTICAST}',
            id="slice-link-local-multicast",
        ),
        pytest.param(
            kinds.ENDPOINTSLICES,
            slice_of("169.254.169.254"),
            f'endpoints[0].addresses[0]: Invalid value: "169.254.169.254": {LINK_LOCAL}',
            id="slice-link-local",
        ),
        pytest.param(
            kinds.ENDPOINTSLICES,
            slice_of("fe80::1", address_type="IPv6"),
            f'endpoints[0].addresses[0]: Invalid value: "fe80::1": {LINK_LOCAL}',
            id="slice-ipv6-link-local",
        ),
        pytest.param(
            kinds.ENDPOINTSLICES,
            slice_of("::", address_type="IPv6"),
            f'endpoints[0].addresses[0]: Invalid value: "::": {UNSPECIFIED.format("::")}',
            id="slice-ipv6-unspecified",
        ),
        pytest.param(
            kinds.SERVICES,
            service(externalIPs=["0.0.0.0"]),
            f'spec.externalIPs[0]: Invalid value: "0.0.0.0": {UNSPECIFIED.format("0.0.0.0")}',
            id="external-ip-unspecified",
        ),
        pytest.param(
            kinds.SERVICES,
            service(externalIPs=["::ffff:224.0.0.9"]),
            f'spec.externalIPs[0]: Invalid value: "::ffff:224.0.0.9": {LL_MULTICAST}',
            id="external-ip-mapped-multicast",
        ),
        pytest.param(
            kinds.NODES,
            node("10.244.1.0/24", "10.244.2.0/24"),
            'spec.podCIDRs: Invalid value: []string{"10.244.1.0/24", "10.244.2.0/24"}: '
            "may specify no more than one CIDR for each IP family",
            id="node-two-ipv4-pod-cidrs",
        ),
        pytest.param(
            kinds.NODES,
            node("10.244.1.0/24", "fd00::/64", "fd01::/64"),
            'spec.podCIDRs: Invalid value: []string{"10.244.1.0/24", "fd00::/64", '
            '"fd01::/64"}: may specify no more than one CIDR for each IP family',
            id="node-three-pod-cidrs",
        ),
        pytest.param(
            kinds.SERVICES,
            service(ports=[{"port": 80, "targetPort": "0080"}]),
            f'spec.ports[0].targetPort: Invalid value: "0080": {NO_LETTER}',
            id="target-port-leading-zero-string",
        ),
        pytest.param(
            kinds.PODS,
            pod(terminationGracePeriodSeconds=-(2**63)),
            "spec.terminationGracePeriodSeconds: Invalid value: -9223372036854775808: "
            "must be greater than or equal to 0",
            id="grace-int64-min",
        ),
        pytest.param(
            kinds.PODS,
            pod(env_value="x" * 1_700_000),
            "spec.containers[0].env[0].value: Too long: " + TOO_BIG.format(1_700_079),
            id="object-too-big-env",
        ),
        pytest.param(
            kinds.SERVICES,
            {"metadata": {"name": "web", "annotations": {"a": "x" * 262_144}}},
            "metadata.annotations: Too long: must have at most 262144 bytes",
            id="annotations-over-256k",
        ),
    ],
)
def test_refused(info: KindInfo, manifest: Manifest, expected: str) -> None:
    found = check(info, manifest)
    assert expected in found, "\n".join(found) or "no errors"


@pytest.mark.parametrize(
    ("info", "manifest"),
    [
        pytest.param(kinds.PODS, pod(image="registry:5000/web@sha256:abc"), id="image-ok"),
        pytest.param(kinds.ENDPOINTSLICES, slice_of("127.244.1.5"), id="slice-loopback-ok"),
        pytest.param(kinds.ENDPOINTSLICES, slice_of("239.1.1.1"), id="slice-multicast-ok"),
        pytest.param(kinds.SERVICES, service(externalIPs=["127.200.0.7"]), id="ext-loopback-ok"),
        pytest.param(kinds.NODES, node("10.244.1.0/24", "fd00::/64"), id="node-dual-stack-ok"),
        pytest.param(kinds.NODES, node("10.244.1.0/24"), id="node-one-cidr-ok"),
        pytest.param(
            kinds.PODS, pod(terminationGracePeriodSeconds=2**63 - 1), id="grace-int64-max-ok"
        ),
        pytest.param(
            kinds.SERVICES,
            {**service(), "metadata": {"name": "web", "annotations": {"a": "x" * 262_143}}},
            id="annotations-at-256k-ok",
        ),
        pytest.param(kinds.PODS, pod(env_value="x" * 1_000_000), id="object-under-1mib-ok"),
    ],
)
def test_accepted(info: KindInfo, manifest: Manifest) -> None:
    assert check(info, manifest) == []


@pytest.mark.parametrize(
    ("address", "problems"),
    [
        pytest.param("10.0.0.1", [], id="plain"),
        pytest.param("0.0.0.0", [UNSPECIFIED.format("0.0.0.0")], id="unspecified"),
        pytest.param("169.254.0.1", [LINK_LOCAL], id="link-local"),
        pytest.param("224.0.0.255", [LL_MULTICAST], id="ll-multicast-edge"),
        pytest.param("224.0.1.0", [], id="multicast-beyond-link-local"),
        pytest.param("ff02::1", [LL_MULTICAST], id="ipv6-ll-multicast"),
        pytest.param("ff12::1", [LL_MULTICAST], id="ipv6-ll-multicast-transient"),
        pytest.param("ff05::1", [], id="ipv6-site-multicast"),
        pytest.param("not-an-ip", [], id="malformed-left-to-is-ip"),
    ],
)
def test_is_non_special_ip(address: str, problems: list[str]) -> None:
    assert is_non_special_ip(address) == problems


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        pytest.param("8080", 8080, id="canonical"),
        pytest.param("0", 0, id="zero"),
        pytest.param("-5", -5, id="negative"),
        pytest.param("0080", "0080", id="leading-zero-is-text"),
        pytest.param("-0", "-0", id="minus-zero-is-text"),
        pytest.param("9" * 5000, "9" * 5000, id="past-digit-limit-is-text"),
    ],
)
def test_parse_int_or_string(text: str, parsed: int | str) -> None:
    assert parse_int_or_string(text) == parsed


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        pytest.param(0, [], id="zero"),
        pytest.param(30, [], id="thirty"),
        pytest.param(
            -1,
            ["gracePeriodSeconds: Invalid value: -1: must be greater than or equal to 0"],
            id="negative",
        ),
    ],
)
def test_delete_grace_period(seconds: int, expected: list[str]) -> None:
    assert [str(e) for e in validate_grace_period(seconds)] == expected


@pytest.mark.parametrize(
    ("info", "namespace", "name", "field"),
    [
        pytest.param(kinds.SERVICES, "default", "a" * 5_000_000, "metadata.name", id="svc-5mb"),
        pytest.param(kinds.PODS, "default", "p" * 254, "metadata.name", id="pod-254"),
        pytest.param(kinds.SERVICES, "n" * 64, "web", "metadata.namespace", id="namespace-64"),
        pytest.param(kinds.NODES, "", "N1", "metadata.name", id="node-uppercase"),
    ],
)
def test_validate_key_refuses_before_the_store(
    info: KindInfo, namespace: str, name: str, field: str
) -> None:
    found = validate_key(info, namespace, name)
    assert [e.field for e in found][:1] == [field]


def test_validate_key_accepts_generate_name_placeholder() -> None:
    assert validate_key(kinds.PODS, "default", "") == []


def test_largest_part_descends_to_the_field_to_shrink() -> None:
    svc = ParseDict(
        {
            "metadata": {"name": "web", "labels": {"app": "x"}, "annotations": {"k": "v" * 500}},
            "spec": {"selector": {"app": "x" * 20}, "ports": [{"port": 80, "name": "http"}]},
        },
        objects_pb2.Service(),
    )
    assert largest_part(svc) == "metadata.annotations[k]"


# ---------------------------------------------------------------- manifests


def yaml_service(target_port: str, extra: str = "") -> str:
    return (
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
        f"spec:\n  ports: [{{port: 80, targetPort: {target_port}}}]\n{extra}"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            yaml_service('"12345"'),
            f'spec.ports[0].targetPort: Invalid value: "12345": {NO_LETTER}',
            id="target-port-digit-string",
        ),
        pytest.param(
            yaml_service("9" * 5000),
            "spec.ports[0].targetPort: Invalid value: " + "9" * 61 + "... (5000 characters): "
            "must fit in a 32-bit integer",
            id="target-port-5000-digits",
        ),
        pytest.param(
            yaml_service("2147483648"),
            "spec.ports[0].targetPort: Invalid value: 2147483648: must fit in a 32-bit integer",
            id="target-port-past-int32",
        ),
        pytest.param(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n"
            f"  terminationGracePeriodSeconds: {'9' * 5000}\n",
            "spec.terminationGracePeriodSeconds: Invalid value: "
            + "9" * 61
            + "... (5000 characters): must fit in a 64-bit integer",
            id="grace-5000-digits",
        ),
        pytest.param(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n"
            "  terminationGracePeriodSeconds: 9223372036854775808\n",
            "spec.terminationGracePeriodSeconds: Invalid value: 9223372036854775808: "
            "must fit in a 64-bit integer",
            id="grace-past-int64",
        ),
        pytest.param(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n"
            f"  labels: {{a: {'7' * 5000}}}\n",
            "metadata.labels.a: Invalid value: " + "7" * 61 + "... (5000 characters): "
            "must be a string",
            id="label-value-5000-digits",
        ),
        pytest.param(
            '{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, '
            f'"spec": {{"ports": [{{"port": {"1" * 4400}}}]}}}}',
            "spec.ports[0].port: Invalid value: " + "1" * 61 + "... (4400 characters): "
            "must fit in a 32-bit integer",
            id="json-4400-digits",
        ),
        pytest.param(
            yaml_service("80", "  sessionAffinityConfig: {clientIP: {timeoutSeconds: .nan}}\n"),
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: nan: "
            "must be an integer",
            id="nan",
        ),
        pytest.param(
            yaml_service("80", "  type: [ClusterIP]\n"),
            "spec.type: Invalid value: [...]: must be a string",
            id="list-for-scalar",
        ),
        pytest.param(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n"
            "  strategy: {rollingUpdate: {maxSurge: '5'}}\n",
            'spec.strategy.rollingUpdate.maxSurge: Invalid value: "5": a valid percent string '
            "must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex "
            "used for validation is '[0-9]+%')",
            id="max-surge-digit-string",
        ),
    ],
)
def test_manifest_refused_naming_the_field(text: str, expected: str) -> None:
    with pytest.raises(ManifestError) as caught:
        load_manifests(text)
    rendered = [str(e) for e in caught.value.field_errors]
    assert expected in rendered, str(caught.value)


def test_manifest_too_big_is_refused_with_every_problem() -> None:
    text = f"apiVersion: v1\nkind: Service\nmetadata: {{name: {'a' * 5_000_000}}}\n"
    with pytest.raises(ManifestError) as caught:
        load_manifests(text)
    problems = {(e.field, e.type) for e in caught.value.field_errors}
    assert ("metadata.name", ErrorType.INVALID) in problems  # must be no more than 63 characters
    assert ("metadata.name", ErrorType.TOO_LONG) in problems
    assert len(str(caught.value)) < 2 * errors.MAX_MESSAGE_CHARS


# ---------------------------------------------------------------- bounded messages


def test_error_message_is_bounded_whatever_the_input() -> None:
    many = [errors.invalid(f"spec.ports[{i}].port", 10**5000, "must be small") for i in range(500)]
    err = InvalidObjectError("Service", "x" * 5_000_000, many)
    text = str(err)
    assert len(text) < errors.MAX_MESSAGE_CHARS + 2 * errors.MAX_SHOWN_CHARS + 100
    assert text.endswith("more errors]")
    assert 0 < len(err.errors) < len(many)  # the trailer carries what the message shows


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        pytest.param("short", '"short"', id="string"),
        pytest.param("a" * 300, '"' + "a" * 256 + '..." (300 characters)', id="long-string"),
        pytest.param(-(10**5000), "-<an integer of about 5001 digits>", id="huge-negative-int"),
        pytest.param(2**64, "18446744073709551616", id="big-int"),
    ],
)
def test_values_are_shown_abbreviated(value: object, shown: str) -> None:
    assert str(FieldError("f", ErrorType.INVALID, "d", value)) == f"f: Invalid value: {shown}: d"
