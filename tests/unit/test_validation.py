"""Defaulting and static validation: syntax, metadata, Services, EndpointSlices, Nodes.

Each bad manifest names the one error it must produce, as the full text
Kubernetes prints (`field: Type: value: detail`), so both the field path and
the wording are pinned. Pods and Deployments are in test_validation_pods.py,
update rules in test_validation_updates.py.

Int-or-string fields (targetPort, probe ports, maxSurge) are strings in the
proto; `kubelab.core.manifests` turns YAML `8080` into `"8080"`, so the tables
write them as strings.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict, ParseDict
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubelab.core import kinds
from kubelab.core.errors import FieldError
from kubelab.core.kinds import KindInfo
from kubelab.core.validation.objects import (
    apply_defaults,
    is_cidr,
    is_dns1035_label,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_env_var_name,
    is_ip,
    is_ipv4,
    is_label_value,
    is_percent,
    is_port_name,
    is_qualified_name,
    parse_int_or_string,
    validate_object,
    validate_update,
)
from kubelab.v1 import objects_pb2

Manifest = dict[str, Any]

DNS1035 = (
    "a lowercase RFC 1035 label must consist of lower case alphanumeric characters or '-', "
    "start with an alphabetic character, and end with an alphanumeric character (e.g. "
    "'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
DNS1123_LABEL = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1123_SUBDOMAIN = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
    "regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
NAME_PART = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', "
    "regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
PORT_RANGE = "must be between 1 and 65535, inclusive"
VALID_IP = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
VALID_CIDR = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
GO_PORT_80 = (
    'core.ServicePort{Name:"", Protocol:"TCP", AppProtocol:(*string)(nil), Port:80, '
    'TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}'
)


def merged(base: Manifest, **overrides: Any) -> Manifest:
    """`base` with top-level sections replaced key by key (one level deep)."""
    out = copy.deepcopy(base)
    for section, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(section), dict):
            out[section] = {**out[section], **value}
        else:
            out[section] = value
    return out


def service(**spec: Any) -> Manifest:
    body = {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "8080"}]}
    body.update(spec)
    return {"metadata": {"name": "web"}, "spec": body}


def build(info: KindInfo, manifest: Manifest) -> Message:
    obj = ParseDict(manifest, info.message())
    apply_defaults(info, obj)
    return obj


def check(info: KindInfo, manifest: Manifest) -> list[FieldError]:
    return validate_object(info, build(info, manifest))


def assert_reports(found: list[FieldError], expected: str) -> None:
    rendered = [str(e) for e in found]
    assert expected in rendered, "\n".join(rendered) or "no errors"


# ---------------------------------------------------------------- syntax


@pytest.mark.parametrize(
    ("check_fn", "value", "ok"),
    [
        pytest.param(is_dns1123_label, "web-1", True, id="label-ok"),
        pytest.param(is_dns1123_label, "1web", True, id="label-digit-first-ok"),
        pytest.param(is_dns1123_label, "a" * 63, True, id="label-63"),
        pytest.param(is_dns1123_label, "a" * 64, False, id="label-64"),
        pytest.param(is_dns1123_label, "web.x", False, id="label-dot"),
        pytest.param(is_dns1123_label, "Web", False, id="label-upper"),
        pytest.param(is_dns1123_label, "", False, id="label-empty"),
        pytest.param(is_dns1123_subdomain, "a.b-c.d", True, id="subdomain-ok"),
        pytest.param(is_dns1123_subdomain, "a..b", False, id="subdomain-double-dot"),
        pytest.param(is_dns1123_subdomain, ("a" * 63 + ".") * 4, False, id="subdomain-long"),
        pytest.param(is_dns1035_label, "web", True, id="1035-ok"),
        pytest.param(is_dns1035_label, "1web", False, id="1035-digit-first"),
        pytest.param(is_dns1035_label, "web-", False, id="1035-dash-last"),
        pytest.param(is_qualified_name, "example.com/App_1", True, id="key-prefixed"),
        pytest.param(is_qualified_name, "a/b/c", False, id="key-two-slashes"),
        pytest.param(is_qualified_name, "/app", False, id="key-empty-prefix"),
        pytest.param(is_label_value, "", True, id="value-empty"),
        pytest.param(is_label_value, "v1.2_x", True, id="value-ok"),
        pytest.param(is_label_value, "-x", False, id="value-dash-first"),
        pytest.param(is_port_name, "http", True, id="port-name-ok"),
        pytest.param(is_port_name, "h2c-9", True, id="port-name-digits"),
        pytest.param(is_port_name, "abcdefghijklmnop", False, id="port-name-16"),
        pytest.param(is_port_name, "a--b", False, id="port-name-double-dash"),
        pytest.param(is_port_name, "-ab", False, id="port-name-dash-first"),
        pytest.param(is_port_name, "8080", False, id="port-name-no-letter"),
        pytest.param(is_port_name, "HTTP", False, id="port-name-upper"),
        pytest.param(is_env_var_name, "MY_VAR.x-1", True, id="env-ok"),
        pytest.param(is_env_var_name, "1VAR", False, id="env-digit-first"),
        pytest.param(is_env_var_name, "..x", False, id="env-dotdot"),
        pytest.param(is_percent, "25%", True, id="percent-ok"),
        pytest.param(is_percent, "25", False, id="percent-missing"),
        pytest.param(is_ip, "10.0.0.1", True, id="ip-v4"),
        pytest.param(is_ip, "2001:db8::1", True, id="ip-v6"),
        pytest.param(is_ip, "fe80::1%eth0", False, id="ip-zone"),
        pytest.param(is_ip, "10.0.0.01", False, id="ip-leading-zero"),
        pytest.param(is_ipv4, "::1", False, id="ipv4-given-v6"),
        pytest.param(is_cidr, "10.0.0.1/8", True, id="cidr-host-bits"),
        pytest.param(is_cidr, "10.0.0.0", False, id="cidr-no-prefix"),
        pytest.param(is_cidr, "10.0.0.0/255.0.0.0", False, id="cidr-netmask"),
        pytest.param(is_cidr, "10.0.0.0/33", False, id="cidr-prefix-too-long"),
    ],
)
def test_syntax(check_fn: Any, value: str, ok: bool) -> None:
    problems = check_fn(value)
    assert (problems == []) is ok, problems


def test_int_or_string() -> None:
    assert parse_int_or_string("8080") == 8080
    assert parse_int_or_string("-1") == -1
    assert parse_int_or_string("http") == "http"
    huge = "9" * 5000  # beyond Python's int-parsing digit limit: stays a string, no raise
    assert parse_int_or_string(huge) == huge


# ---------------------------------------------------------------- metadata


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        pytest.param(
            {"name": ""},
            "metadata.name: Required value: name or generateName is required",
            id="no-name",
        ),
        pytest.param(
            {"name": "1web"},
            f'metadata.name: Invalid value: "1web": {DNS1035}',
            id="svc-name-digit",
        ),
        pytest.param(
            {"name": "a" * 64},
            f'metadata.name: Invalid value: "{"a" * 64}": must be no more than 63 characters',
            id="svc-name-too-long",
        ),
        pytest.param(
            {"name": "web", "namespace": "Bad_NS"},
            f'metadata.namespace: Invalid value: "Bad_NS": {DNS1123_LABEL}',
            id="namespace",
        ),
        pytest.param(
            {"name": "web", "generateName": "Web-"},
            f'metadata.generateName: Invalid value: "Web-": {DNS1035}',
            id="generate-name",
        ),
        pytest.param(
            {"name": "web", "labels": {"-bad": "x"}},
            f'metadata.labels: Invalid value: "-bad": {NAME_PART}',
            id="label-key",
        ),
        pytest.param(
            {"name": "web", "labels": {"app": "v" * 64}},
            f'metadata.labels: Invalid value: "{"v" * 64}": must be no more than 63 characters',
            id="label-value-long",
        ),
        pytest.param(
            {"name": "web", "annotations": {"a/b/c": "x"}},
            'metadata.annotations: Invalid value: "a/b/c": a qualified name must consist of '
            "alphanumeric characters, '-', '_' or '.', and must start and end with an "
            "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used "
            "for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional "
            "DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
            id="annotation-key",
        ),
        pytest.param(
            {"name": "web", "annotations": {"big": "x" * (256 * 1024)}},
            "metadata.annotations: Too long: must have at most 262144 bytes",
            id="annotations-size",
        ),
        pytest.param(
            {"name": "web", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment"}]},
            'metadata.ownerReferences.name: Invalid value: "": name must not be empty',
            id="owner-ref-name",
        ),
    ],
)
def test_metadata_errors(meta: Manifest, expected: str) -> None:
    assert_reports(check(kinds.SERVICES, {**service(), "metadata": meta}), expected)


def test_generate_name_may_end_in_dash() -> None:
    manifest = {**service(), "metadata": {"name": "web-x7k2p", "generateName": "web-"}}
    assert check(kinds.SERVICES, manifest) == []


def test_annotation_keys_are_case_insensitive() -> None:
    manifest = {**service(), "metadata": {"name": "web", "annotations": {"Example.COM/Note": "x"}}}
    assert check(kinds.SERVICES, manifest) == []


def test_cluster_scoped_namespace_forbidden_without_defaults() -> None:
    node = ParseDict({"metadata": {"name": "n1", "namespace": "default"}}, objects_pb2.Node())
    assert_reports(
        validate_object(kinds.NODES, node),
        "metadata.namespace: Forbidden: not allowed on this type",
    )


# ---------------------------------------------------------------- Service


@pytest.mark.parametrize(
    "manifest",
    [
        pytest.param(service(), id="cluster-ip"),
        pytest.param(
            service(
                ports=[
                    {"name": "http", "port": 80, "targetPort": "web"},
                    {"name": "prometheus-metrics", "port": 9090, "targetPort": "9090"},
                ]
            ),
            id="named-ports-dns-label-longer-than-15",
        ),
        pytest.param(service(clusterIP="None", ports=[]), id="headless-no-ports"),
        pytest.param(service(clusterIP="None"), id="headless-with-ports"),
        pytest.param(service(selector={}), id="selector-less"),
        pytest.param(
            service(
                ports=[
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                    {"name": "dns-udp", "port": 53, "protocol": "UDP"},
                ]
            ),
            id="same-port-two-protocols",
        ),
        pytest.param(
            service(type="NodePort", ports=[{"port": 80, "targetPort": "8080", "nodePort": 30080}]),
            id="node-port",
        ),
        pytest.param(
            service(
                type="LoadBalancer",
                externalTrafficPolicy="Local",
                loadBalancerIP="127.200.0.7",
                loadBalancerSourceRanges=["10.0.0.0/8", " 192.168.0.0/16 "],
            ),
            id="load-balancer-local",
        ),
        pytest.param(
            {
                "metadata": {"name": "db"},
                "spec": {"type": "ExternalName", "externalName": "db.example.com."},
            },
            id="external-name",
        ),
        pytest.param(
            service(
                sessionAffinity="ClientIP",
                sessionAffinityConfig={"clientIP": {"timeoutSeconds": 86400}},
            ),
            id="client-ip-affinity",
        ),
        pytest.param(
            service(
                clusterIP="10.96.0.9",
                clusterIPs=["10.96.0.9"],
                ipFamilies=["IPv4"],
                ipFamilyPolicy="SingleStack",
                internalTrafficPolicy="Cluster",
                sessionAffinity="None",
                type="ClusterIP",
            ),
            id="kubectl-get-output",
        ),
        pytest.param(
            service(ports=[{"port": 443, "appProtocol": "kubernetes.io/h2c"}]), id="app-protocol"
        ),
        pytest.param(
            service(externalIPs=["127.10.0.1"], externalTrafficPolicy="Local"), id="external-ips"
        ),
    ],
)
def test_good_services(manifest: Manifest) -> None:
    assert check(kinds.SERVICES, manifest) == []


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        pytest.param(service(ports=[]), "spec.ports: Required value", id="no-ports"),
        pytest.param(
            service(ports=[{"port": 0}]),
            f"spec.ports[0].port: Invalid value: 0: {PORT_RANGE}",
            id="port-zero",
        ),
        pytest.param(
            service(ports=[{"name": "a", "port": 80}, {"name": "b", "port": 70000}]),
            f"spec.ports[1].port: Invalid value: 70000: {PORT_RANGE}",
            id="port-too-big",
        ),
        pytest.param(
            service(ports=[{"name": "a", "port": 80}, {"port": 81}]),
            "spec.ports[1].name: Required value",
            id="second-port-unnamed",
        ),
        pytest.param(
            service(ports=[{"name": "http", "port": 80}, {"name": "http", "port": 81}]),
            'spec.ports[1].name: Duplicate value: "http"',
            id="duplicate-port-name",
        ),
        pytest.param(
            service(ports=[{"name": "Http", "port": 80}]),
            f'spec.ports[0].name: Invalid value: "Http": {DNS1123_LABEL}',
            id="port-name-upper",
        ),
        pytest.param(
            service(ports=[{"name": "a", "port": 80}, {"name": "b", "port": 80}]),
            f"spec.ports[1]: Duplicate value: {GO_PORT_80}",
            id="duplicate-port-protocol",
        ),
        pytest.param(
            service(ports=[{"port": 80, "protocol": "SCTP"}]),
            'spec.ports[0].protocol: Unsupported value: "SCTP": supported values: "TCP", "UDP"',
            id="sctp",
        ),
        pytest.param(
            service(ports=[{"port": 80, "targetPort": "70000"}]),
            f"spec.ports[0].targetPort: Invalid value: 70000: {PORT_RANGE}",
            id="target-port-number",
        ),
        pytest.param(
            service(ports=[{"port": 80, "targetPort": "Web_Port"}]),
            'spec.ports[0].targetPort: Invalid value: "Web_Port": must contain only '
            "alpha-numeric characters (a-z, 0-9), and hyphens (-)",
            id="target-port-name-charset",
        ),
        pytest.param(
            service(ports=[{"port": 80, "targetPort": "prometheus-metrics"}]),
            'spec.ports[0].targetPort: Invalid value: "prometheus-metrics": '
            "must be no more than 15 characters",
            id="target-port-name-too-long",
        ),
        pytest.param(
            service(ports=[{"port": 80, "nodePort": 30080}]),
            "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
            id="node-port-on-cluster-ip",
        ),
        pytest.param(
            service(type="NodePort", ports=[{"port": 80, "nodePort": 70000}]),
            f"spec.ports[0].nodePort: Invalid value: 70000: {PORT_RANGE}",
            id="node-port-out-of-range",
        ),
        pytest.param(
            service(
                type="NodePort",
                ports=[
                    {"name": "a", "port": 80, "nodePort": 30080},
                    {"name": "b", "port": 81, "nodePort": 30080},
                ],
            ),
            "spec.ports[1].nodePort: Duplicate value: 30080",
            id="duplicate-node-port",
        ),
        pytest.param(
            service(type="Internal"),
            'spec.type: Unsupported value: "Internal": supported values: '
            '"ClusterIP", "ExternalName", "LoadBalancer", "NodePort"',
            id="type",
        ),
        pytest.param(
            service(clusterIP="10.0.0.256"),
            f'spec.clusterIP: Invalid value: "10.0.0.256": {VALID_IP}',
            id="cluster-ip-invalid",
        ),
        pytest.param(
            service(clusterIP="fd00::10"),
            'spec.clusterIP: Invalid value: "fd00::10": must be an IPv4 address: '
            "kubelab is single-stack IPv4",
            id="cluster-ip-v6",
        ),
        pytest.param(
            service(type="NodePort", clusterIP="None"),
            "spec.clusterIP: Invalid value: \"None\": may not be set to 'None' for "
            "NodePort services",
            id="headless-node-port",
        ),
        pytest.param(
            service(type="LoadBalancer", clusterIP="None"),
            "spec.clusterIP: Invalid value: \"None\": may not be set to 'None' for "
            "LoadBalancer services",
            id="headless-load-balancer",
        ),
        pytest.param(
            service(clusterIP="10.96.0.9", clusterIPs=["10.96.0.10"]),
            'spec.clusterIPs: Invalid value: []string{"10.96.0.10"}: first value must match '
            "`clusterIP`",
            id="cluster-ips-disagree",
        ),
        pytest.param(
            service(ipFamilies=["IPv5"]),
            'spec.ipFamilies[0]: Unsupported value: "IPv5": supported values: "IPv4", "IPv6"',
            id="ip-family",
        ),
        pytest.param(
            {"metadata": {"name": "db"}, "spec": {"type": "ExternalName"}},
            "spec.externalName: Required value",
            id="external-name-missing",
        ),
        pytest.param(
            {
                "metadata": {"name": "db"},
                "spec": {"type": "ExternalName", "externalName": "db_1.example"},
            },
            f'spec.externalName: Invalid value: "db_1.example": {DNS1123_SUBDOMAIN}',
            id="external-name-invalid",
        ),
        pytest.param(
            {
                "metadata": {"name": "db"},
                "spec": {
                    "type": "ExternalName",
                    "externalName": "db.example",
                    "clusterIP": "10.96.0.9",
                },
            },
            "spec.clusterIP: Forbidden: may not be set for ExternalName services",
            id="external-name-with-cluster-ip",
        ),
        pytest.param(
            service(sessionAffinity="Sticky"),
            'spec.sessionAffinity: Unsupported value: "Sticky": supported values: '
            '"ClientIP", "None"',
            id="session-affinity",
        ),
        pytest.param(
            service(
                sessionAffinity="ClientIP",
                sessionAffinityConfig={"clientIP": {"timeoutSeconds": 86401}},
            ),
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 86401: "
            "must be greater than 0 and less than 86400",
            id="affinity-timeout-too-long",
        ),
        pytest.param(
            service(
                sessionAffinity="ClientIP",
                sessionAffinityConfig={"clientIP": {"timeoutSeconds": -5}},
            ),
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: -5: "
            "must be greater than 0 and less than 86400",
            id="affinity-timeout-negative",
        ),
        pytest.param(
            service(sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}),
            "spec.sessionAffinityConfig: Forbidden: must not be set when session affinity is None",
            id="affinity-config-without-client-ip",
        ),
        pytest.param(
            service(externalTrafficPolicy="Local"),
            'spec.externalTrafficPolicy: Invalid value: "Local": may only be set for '
            "externally-accessible services",
            id="local-on-cluster-ip",
        ),
        pytest.param(
            service(type="NodePort", externalTrafficPolicy="Nearest"),
            'spec.externalTrafficPolicy: Unsupported value: "Nearest": supported values: '
            '"Cluster", "Local"',
            id="external-traffic-policy",
        ),
        pytest.param(
            service(internalTrafficPolicy="Nearest"),
            'spec.internalTrafficPolicy: Unsupported value: "Nearest": supported values: '
            '"Cluster", "Local"',
            id="internal-traffic-policy",
        ),
        pytest.param(
            service(healthCheckNodePort=30999),
            "spec.healthCheckNodePort: Invalid value: 30999: may only be set when `type` is "
            "'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            id="health-check-node-port",
        ),
        pytest.param(
            service(type="LoadBalancer", loadBalancerIP="127.200.0"),
            f'spec.loadBalancerIP: Invalid value: "127.200.0": {VALID_IP}',
            id="load-balancer-ip",
        ),
        pytest.param(
            service(type="LoadBalancer", loadBalancerSourceRanges=["10.0.0.0/33"]),
            f'spec.LoadBalancerSourceRanges[0]: Invalid value: "10.0.0.0/33": {VALID_CIDR}',
            id="source-range-invalid",
        ),
        pytest.param(
            service(type="NodePort", loadBalancerSourceRanges=["10.0.0.0/8"]),
            "spec.LoadBalancerSourceRanges: Forbidden: may only be used when `type` is "
            "'LoadBalancer'",
            id="source-range-not-load-balancer",
        ),
        pytest.param(
            service(externalIPs=["10.1.2"]),
            f'spec.externalIPs[0]: Invalid value: "10.1.2": {VALID_IP}',
            id="external-ip",
        ),
        pytest.param(
            service(selector={"app": "web!"}),
            'spec.selector: Invalid value: "web!": a valid label must be an empty string or '
            "consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
            "an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex "
            "used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
            id="selector-value",
        ),
        pytest.param(
            service(ports=[{"port": 80, "appProtocol": "h2c/x/y"}]),
            'spec.ports[0].appProtocol: Invalid value: "h2c/x/y": a qualified name must '
            "consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
            "an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
            "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an "
            "optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
            id="app-protocol",
        ),
    ],
)
def test_bad_services(manifest: Manifest, expected: str) -> None:
    assert_reports(check(kinds.SERVICES, manifest), expected)


def test_every_service_problem_reported_at_once() -> None:
    found = check(
        kinds.SERVICES,
        service(ports=[{"port": 0, "protocol": "SCTP"}], clusterIP="bogus", type="Weird"),
    )
    fields = {e.field for e in found}
    assert {"spec.ports[0].port", "spec.ports[0].protocol", "spec.clusterIP", "spec.type"} <= fields


# ---------------------------------------------------------------- EndpointSlice


def endpoint_slice(**body: Any) -> Manifest:
    base = {
        "metadata": {"name": "web-abc12", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["127.244.1.5"], "conditions": {"ready": True}, "nodeName": "node-1"}
        ],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }
    base.update(body)
    return base


@pytest.mark.parametrize(
    "manifest",
    [
        pytest.param(endpoint_slice(), id="ipv4-loopback-pod-ip"),
        pytest.param(endpoint_slice(endpoints=[], ports=[]), id="empty"),
        pytest.param(
            endpoint_slice(addressType="FQDN", endpoints=[{"addresses": ["db.example.com."]}]),
            id="fqdn",
        ),
        pytest.param(
            endpoint_slice(addressType="IPv6", endpoints=[{"addresses": ["fd00::5"]}]), id="ipv6"
        ),
        pytest.param(endpoint_slice(ports=[{"name": "", "protocol": "UDP"}]), id="all-ports"),
        pytest.param(
            endpoint_slice(endpoints=[{"addresses": ["127.244.1.5"]}] * 1000), id="1000-endpoints"
        ),
    ],
)
def test_good_endpoint_slices(manifest: Manifest) -> None:
    assert check(kinds.ENDPOINTSLICES, manifest) == []


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        pytest.param(endpoint_slice(addressType=""), "addressType: Required value", id="no-type"),
        pytest.param(
            endpoint_slice(addressType="IP"),
            'addressType: Unsupported value: "IP": supported values: "FQDN", "IPv4", "IPv6"',
            id="type",
        ),
        pytest.param(
            endpoint_slice(endpoints=[{"addresses": []}]),
            "endpoints[0].addresses: Required value: must contain at least 1 address",
            id="no-address",
        ),
        pytest.param(
            endpoint_slice(endpoints=[{"addresses": ["127.244.1.5"]}, {"addresses": ["fd00::1"]}]),
            'endpoints[1].addresses[0]: Invalid value: "fd00::1": must be a valid IPv4 address',
            id="v6-in-v4-slice",
        ),
        pytest.param(
            endpoint_slice(addressType="FQDN", endpoints=[{"addresses": ["localhost"]}]),
            'endpoints[0].addresses[0]: Invalid value: "localhost": should be a domain with at '
            "least two segments separated by dots",
            id="fqdn-one-label",
        ),
        pytest.param(
            endpoint_slice(endpoints=[{"addresses": ["127.244.1.5"]}] * 1001),
            "endpoints: Too many: 1001: must have at most 1000 items",
            id="too-many-endpoints",
        ),
        pytest.param(
            endpoint_slice(endpoints=[{"addresses": ["127.244.1.5"] * 101}]),
            "endpoints[0].addresses: Too many: 101: must have at most 100 items",
            id="too-many-addresses",
        ),
        pytest.param(
            endpoint_slice(ports=[{"name": f"p{i}", "port": 80 + i} for i in range(101)]),
            "ports: Too many: 101: must have at most 100 items",
            id="too-many-ports",
        ),
        pytest.param(
            endpoint_slice(ports=[{"name": "http", "port": 0}]),
            f"ports[0].port: Invalid value: 0: {PORT_RANGE}",
            id="port-zero",
        ),
        pytest.param(
            endpoint_slice(ports=[{"port": 80}, {"port": 81}]),
            'ports[1].name: Duplicate value: ""',
            id="two-unnamed-ports",
        ),
        pytest.param(
            endpoint_slice(ports=[{"name": "http", "port": 80, "protocol": "SCTP"}]),
            'ports[0].protocol: Unsupported value: "SCTP": supported values: "TCP", "UDP"',
            id="sctp",
        ),
        pytest.param(
            endpoint_slice(endpoints=[{"addresses": ["127.244.1.5"], "nodeName": "Node_1"}]),
            f'endpoints[0].nodeName: Invalid value: "Node_1": {DNS1123_SUBDOMAIN}',
            id="node-name",
        ),
    ],
)
def test_bad_endpoint_slices(manifest: Manifest, expected: str) -> None:
    assert_reports(check(kinds.ENDPOINTSLICES, manifest), expected)


# ---------------------------------------------------------------- Node


def node(**body: Any) -> Manifest:
    base: Manifest = {
        "metadata": {"name": "node-1"},
        "spec": {"podCIDR": "127.244.1.0/24"},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": "127.10.0.1"},
                {"type": "Hostname", "address": "node-1"},
            ]
        },
    }
    return merged(base, **body)


@pytest.mark.parametrize(
    "manifest",
    [
        pytest.param(node(), id="embedded-node"),
        pytest.param(node(metadata={"namespace": "default"}), id="namespace-cleared"),
        pytest.param(
            node(spec={"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]}), id="cidrs"
        ),
        pytest.param(node(spec={}), id="no-cidr-yet"),
    ],
)
def test_good_nodes(manifest: Manifest) -> None:
    assert check(kinds.NODES, manifest) == []


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        pytest.param(
            node(metadata={"name": "Node_1"}),
            f'metadata.name: Invalid value: "Node_1": {DNS1123_SUBDOMAIN}',
            id="name",
        ),
        pytest.param(
            node(spec={"podCIDR": "127.244.1.0"}),
            f'spec.podCIDR: Invalid value: "127.244.1.0": {VALID_CIDR}',
            id="pod-cidr",
        ),
        pytest.param(
            node(status={"addresses": [{"type": "PublicIP", "address": "1.2.3.4"}]}),
            'status.addresses[0].type: Unsupported value: "PublicIP": supported values: '
            '"ExternalDNS", "ExternalIP", "Hostname", "InternalDNS", "InternalIP"',
            id="address-type",
        ),
        pytest.param(
            node(status={"addresses": [{"type": "InternalIP", "address": "node-1"}]}),
            f'status.addresses[0].address: Invalid value: "node-1": {VALID_IP}',
            id="internal-ip",
        ),
        pytest.param(
            node(
                status={
                    "addresses": [
                        {"type": "InternalIP", "address": "127.10.0.1"},
                        {"type": "InternalIP", "address": "127.10.0.1"},
                    ]
                }
            ),
            'status.addresses[1]: Duplicate value: core.NodeAddress{Type:"InternalIP", '
            'Address:"127.10.0.1"}',
            id="duplicate-address",
        ),
    ],
)
def test_bad_nodes(manifest: Manifest, expected: str) -> None:
    assert_reports(check(kinds.NODES, manifest), expected)


# ---------------------------------------------------------------- defaults


@pytest.mark.parametrize(
    ("info", "manifest", "expected"),
    [
        pytest.param(
            kinds.SERVICES,
            service(ports=[{"port": 80}]),
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"namespace": "default"},
                "spec": {
                    "type": "ClusterIP",
                    "ports": [{"port": 80, "protocol": "TCP", "targetPort": "80"}],
                    "sessionAffinity": "None",
                    "internalTrafficPolicy": "Cluster",
                },
            },
            id="service-cluster-ip",
        ),
        pytest.param(
            kinds.SERVICES,
            service(type="NodePort", sessionAffinity="ClientIP"),
            {
                "spec": {
                    "externalTrafficPolicy": "Cluster",
                    "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
                }
            },
            id="service-node-port-client-ip",
        ),
        pytest.param(
            kinds.SERVICES,
            service(ports=[{"port": 80, "targetPort": "0"}]),
            {"spec": {"ports": [{"port": 80, "targetPort": "80"}]}},
            id="service-target-port-zero-is-unset",
        ),
        pytest.param(
            kinds.SERVICES,
            {"metadata": {"name": "db", "namespace": "shop"}, "spec": {"type": "ExternalName"}},
            {"metadata": {"namespace": "shop"}, "spec": {"sessionAffinity": "None"}},
            id="service-keeps-namespace",
        ),
        pytest.param(
            kinds.PODS,
            {
                "metadata": {"name": "p"},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": "i",
                            "ports": [{"containerPort": 8080}],
                            "readinessProbe": {"httpGet": {"port": "8080"}},
                            "livenessProbe": {"tcpSocket": {"port": "8080"}, "periodSeconds": 3},
                        }
                    ]
                },
            },
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "spec": {
                    "restartPolicy": "Always",
                    "terminationGracePeriodSeconds": "30",
                    "containers": [
                        {
                            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                            "readinessProbe": {
                                "httpGet": {"path": "/", "scheme": "HTTP", "port": "8080"},
                                "periodSeconds": 10,
                                "timeoutSeconds": 1,
                                "successThreshold": 1,
                                "failureThreshold": 3,
                            },
                            "livenessProbe": {"periodSeconds": 3, "timeoutSeconds": 1},
                        }
                    ],
                },
            },
            id="pod",
        ),
        pytest.param(
            kinds.DEPLOYMENTS,
            {
                "metadata": {"name": "d"},
                "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}},
            },
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "spec": {
                    "replicas": 1,
                    "revisionHistoryLimit": 10,
                    "strategy": {
                        "type": "RollingUpdate",
                        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
                    },
                    "template": {"spec": {"restartPolicy": "Always"}},
                },
            },
            id="deployment",
        ),
        pytest.param(
            kinds.DEPLOYMENTS,
            {"metadata": {"name": "d"}, "spec": {"replicas": 0, "strategy": {"type": "Recreate"}}},
            {"spec": {"replicas": 0, "strategy": {"type": "Recreate"}}},
            id="deployment-zero-replicas-recreate",
        ),
        pytest.param(
            kinds.DEPLOYMENTS,
            {"metadata": {"name": "d"}, "spec": {"strategy": {"rollingUpdate": {"maxSurge": "0"}}}},
            {"spec": {"strategy": {"rollingUpdate": {"maxSurge": "0", "maxUnavailable": "25%"}}}},
            id="deployment-explicit-zero-surge-kept",
        ),
        pytest.param(
            kinds.ENDPOINTSLICES,
            {"metadata": {"name": "s"}, "addressType": "IPv4"},
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {"namespace": "default"},
            },
            id="endpoint-slice",
        ),
        pytest.param(
            kinds.NODES,
            {"metadata": {"name": "n", "namespace": "oops"}},
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}},
            id="node-namespace-cleared",
        ),
    ],
)
def test_defaults(info: KindInfo, manifest: Manifest, expected: Manifest) -> None:
    obj = build(info, manifest)
    got = MessageToDict(obj)
    assert_subset(expected, got)
    if info is kinds.NODES:
        assert "namespace" not in got["metadata"]
    if info is kinds.SERVICES and got["spec"]["type"] == "ClusterIP":
        assert "externalTrafficPolicy" not in got["spec"]  # as Kubernetes: only when external


def assert_subset(expected: Any, got: Any, path: str = "") -> None:
    if isinstance(expected, dict):
        assert isinstance(got, dict), path
        for key, value in expected.items():
            assert key in got, f"{path}.{key} missing from {got}"
            assert_subset(value, got[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), path
        for i, (e, g) in enumerate(zip(expected, got, strict=True)):
            assert_subset(e, g, f"{path}[{i}]")
    else:
        assert got == expected, f"{path}: {got!r} != {expected!r}"


def test_defaults_are_idempotent() -> None:
    once = build(kinds.SERVICES, service(type="LoadBalancer", sessionAffinity="ClientIP"))
    twice = copy.deepcopy(once)
    apply_defaults(kinds.SERVICES, twice)
    assert twice == once


def test_wrong_message_type_is_a_programming_error() -> None:
    with pytest.raises(TypeError):
        validate_object(kinds.SERVICES, objects_pb2.Pod())


# ---------------------------------------------------------------- never raises

_INTERESTING_STRINGS = [
    "",
    "None",
    "ClusterIP",
    "NodePort",
    "LoadBalancer",
    "ExternalName",
    "TCP",
    "UDP",
    "SCTP",
    "Cluster",
    "Local",
    "ClientIP",
    "Always",
    "Never",
    "RollingUpdate",
    "Recreate",
    "In",
    "NotIn",
    "Exists",
    "DoesNotExist",
    "IPv4",
    "IPv6",
    "FQDN",
    "InternalIP",
    "http",
    "web",
    "a.b.c",
    "a/b",
    "8080",
    "0",
    "-1",
    "99999999999",
    "9" * 5000,
    "25%",
    "150%",
    "-5%",
    "10.96.0.9",
    "fd00::1",
    "fe80::1%eth0",
    "10.0.0.0/8",
    " 10.0.0.0/8 ",
    "example.com.",
]
_strings = st.one_of(st.sampled_from(_INTERESTING_STRINGS), st.text(max_size=12))
_int32 = st.one_of(
    st.sampled_from([0, 1, -1, 80, 65535, 65536, 30080, 86400, 86401]),
    st.integers(-(2**31), 2**31 - 1),
)
_MAX_DEPTH = 6


@st.composite
def random_message(draw: st.DrawFn, cls: type[Message]) -> Message:
    """Any field of the message may be set, to anything its type allows, recursively."""
    message = cls()
    _fill(draw, message, 0)
    return message


def _fill(draw: st.DrawFn, message: Message, depth: int) -> None:
    for field in message.DESCRIPTOR.fields:
        if not draw(st.booleans()):
            continue
        value = getattr(message, field.name)
        sub = field.message_type
        if sub is not None and sub.GetOptions().map_entry:
            for key in draw(st.lists(_strings, max_size=3)):
                value[key] = draw(_strings)
        elif sub is not None and sub.full_name == "google.protobuf.Timestamp":
            value.seconds = draw(st.integers(0, 2**31))
        elif sub is not None and sub.full_name == "google.protobuf.Struct":
            continue  # managedFields' fieldsV1: free-form JSON, never validated
        elif sub is not None:
            if depth >= _MAX_DEPTH:
                continue
            if field.is_repeated:
                for _ in range(draw(st.integers(0, 2))):
                    _fill(draw, value.add(), depth + 1)
            else:
                value.SetInParent()
                _fill(draw, value, depth + 1)
        elif field.is_repeated:
            value.extend(draw(st.lists(_scalar(field.cpp_type), max_size=3)))
        else:
            setattr(message, field.name, draw(_scalar(field.cpp_type)))


def _scalar(cpp_type: int) -> st.SearchStrategy[Any]:
    from google.protobuf.descriptor import FieldDescriptor as F

    if cpp_type == F.CPPTYPE_STRING:
        return _strings
    if cpp_type == F.CPPTYPE_BOOL:
        return st.booleans()
    if cpp_type == F.CPPTYPE_INT64:
        return st.one_of(_int32, st.integers(-(2**63), 2**63 - 1))
    return _int32


_FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("info", kinds.ALL_KINDS, ids=lambda info: info.kind)
@_FUZZ
@given(data=st.data())
def test_random_objects_never_raise(info: KindInfo, data: st.DataObject) -> None:
    obj = data.draw(random_message(info.message))
    apply_defaults(info, obj)
    found = validate_object(info, obj)
    for error in found:
        assert error.field, error
        assert str(error).startswith(error.field + ": ")
    again = copy.deepcopy(obj)
    apply_defaults(info, again)
    assert again == obj, "apply_defaults is not idempotent"


@pytest.mark.parametrize("info", kinds.ALL_KINDS, ids=lambda info: info.kind)
@_FUZZ
@given(data=st.data())
def test_random_updates_never_raise(info: KindInfo, data: st.DataObject) -> None:
    old = data.draw(random_message(info.message))
    new = data.draw(random_message(info.message))
    for obj in (old, new):
        apply_defaults(info, obj)
    for error in validate_update(info, old, new):
        assert error.field, error
        str(error)
