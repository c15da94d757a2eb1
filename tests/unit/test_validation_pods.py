"""Validation of Pods and Deployments (a Deployment's template is checked as a Pod spec).

Each bad manifest names the one error it must produce, as the full text
Kubernetes prints, pinning field path and wording. Int-or-string fields (probe
ports, maxSurge, maxUnavailable) are strings in the proto, as
`kubelab.core.manifests` stores them.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from google.protobuf.json_format import ParseDict

from kubelab.core import kinds
from kubelab.core.errors import FieldError
from kubelab.core.kinds import KindInfo
from kubelab.core.validation.objects import apply_defaults, validate_object
from kubelab.v1 import objects_pb2

Manifest = dict[str, Any]

PORT_RANGE = "must be between 1 and 65535, inclusive"
NEGATIVE = "must be greater than or equal to 0"
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
PERCENT = (
    "a valid percent string must be a numeric string followed by an ending '%' "
    "(e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"
)
C0 = "spec.containers[0]"
TC0 = "spec.template.spec.containers[0]"


def container(**fields: Any) -> Manifest:
    body: Manifest = {
        "name": "web",
        "image": "kubelab/echo:1",
        "ports": [{"name": "http", "containerPort": 8080}],
    }
    body.update(fields)
    return body


def pod(*containers: Manifest, **spec: Any) -> Manifest:
    return {
        "metadata": {"name": "web-1", "labels": {"app": "web"}},
        "spec": {"containers": list(containers) or [container()], **spec},
    }


def deployment(**spec: Any) -> Manifest:
    body: Manifest = {
        "replicas": 3,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [container()]}},
    }
    body.update(spec)
    return {"metadata": {"name": "web"}, "spec": body}


def check(info: KindInfo, manifest: Manifest) -> list[FieldError]:
    obj = ParseDict(manifest, info.message())
    apply_defaults(info, obj)
    return validate_object(info, obj)


def assert_reports(found: list[FieldError], expected: str) -> None:
    rendered = [str(e) for e in found]
    assert expected in rendered, "\n".join(rendered) or "no errors"


# ---------------------------------------------------------------- Pod


@pytest.mark.parametrize(
    "manifest",
    [
        pytest.param(pod(), id="minimal"),
        pytest.param(
            pod(
                container(
                    env=[{"name": "MY_VAR.x-1", "value": "1"}],
                    readinessProbe={"httpGet": {"port": "http", "path": "/healthz"}},
                    livenessProbe={"tcpSocket": {"port": "8080"}, "failureThreshold": 5},
                    startupProbe={"exec": {"command": ["true"]}, "initialDelaySeconds": 2},
                ),
                nodeSelector={"kubernetes.io/hostname": "node-1"},
                nodeName="node-1",
                hostname="web-1",
                subdomain="web",
                restartPolicy="OnFailure",
                terminationGracePeriodSeconds=0,
            ),
            id="full",
        ),
        pytest.param(
            pod(
                container(),
                container(name="sidecar", ports=[{"name": "http", "containerPort": 9090}]),
            ),
            id="port-names-unique-per-container-only",
        ),
        pytest.param(
            pod(container(readinessProbe={"httpGet": {"port": "9999"}})),
            id="probe-numeric-port-not-declared",
        ),
        pytest.param(
            pod(container(readinessProbe={"tcpSocket": {"port": "8080"}, "successThreshold": 3})),
            id="readiness-success-threshold-may-exceed-1",
        ),
        pytest.param(
            pod(container(ports=[{"containerPort": 53, "protocol": "UDP", "hostPort": 5353}])),
            id="udp-host-port",
        ),
    ],
)
def test_good_pods(manifest: Manifest) -> None:
    assert check(kinds.PODS, manifest) == []


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        pytest.param(
            {"metadata": {"name": "p"}, "spec": {}},
            "spec.containers: Required value",
            id="no-containers",
        ),
        pytest.param(
            {**pod(), "metadata": {"name": "Web_1"}},
            f'metadata.name: Invalid value: "Web_1": {DNS1123_SUBDOMAIN}',
            id="pod-name",
        ),
        pytest.param(
            {**pod(), "metadata": {"name": "a" * 254}},
            f'metadata.name: Invalid value: "{"a" * 254}": must be no more than 253 characters',
            id="pod-name-too-long",
        ),
        pytest.param(pod(container(name="")), f"{C0}.name: Required value", id="container-no-name"),
        pytest.param(
            pod(container(name="Web_1")),
            f'{C0}.name: Invalid value: "Web_1": {DNS1123_LABEL}',
            id="container-name",
        ),
        pytest.param(
            pod(container(), container(ports=[])),
            'spec.containers[1].name: Duplicate value: "web"',
            id="duplicate-container-name",
        ),
        pytest.param(pod(container(image="")), f"{C0}.image: Required value", id="no-image"),
        pytest.param(
            pod(container(ports=[{"containerPort": 0}])),
            f"{C0}.ports[0].containerPort: Required value",
            id="container-port-missing",
        ),
        pytest.param(
            pod(container(ports=[{"containerPort": 70000}])),
            f"{C0}.ports[0].containerPort: Invalid value: 70000: {PORT_RANGE}",
            id="container-port-range",
        ),
        pytest.param(
            pod(container(ports=[{"name": "HTTP", "containerPort": 80}])),
            f'{C0}.ports[0].name: Invalid value: "HTTP": must contain only alpha-numeric '
            "characters (a-z, 0-9), and hyphens (-)",
            id="port-name-upper",
        ),
        pytest.param(
            pod(container(ports=[{"name": "prometheus-metrics", "containerPort": 80}])),
            f'{C0}.ports[0].name: Invalid value: "prometheus-metrics": must be no more than '
            "15 characters",
            id="port-name-too-long",
        ),
        pytest.param(
            pod(container(ports=[{"name": "8080", "containerPort": 80}])),
            f'{C0}.ports[0].name: Invalid value: "8080": must contain at least one letter (a-z)',
            id="port-name-no-letter",
        ),
        pytest.param(
            pod(
                container(
                    ports=[
                        {"name": "http", "containerPort": 80},
                        {"name": "http", "containerPort": 81},
                    ]
                )
            ),
            f'{C0}.ports[1].name: Duplicate value: "http"',
            id="duplicate-port-name",
        ),
        pytest.param(
            pod(container(ports=[{"containerPort": 80, "protocol": "SCTP"}])),
            f'{C0}.ports[0].protocol: Unsupported value: "SCTP": supported values: "TCP", "UDP"',
            id="sctp",
        ),
        pytest.param(
            pod(
                container(ports=[{"containerPort": 80, "hostPort": 8080}]),
                container(name="b", ports=[{"containerPort": 81, "hostPort": 8080}]),
            ),
            'spec.containers[1].ports[0].hostPort: Duplicate value: "TCP//8080"',
            id="host-port-conflict",
        ),
        pytest.param(
            pod(container(readinessProbe={"periodSeconds": 5})),
            f"{C0}.readinessProbe: Required value: must specify a handler type",
            id="probe-no-handler",
        ),
        pytest.param(
            pod(
                container(readinessProbe={"exec": {"command": ["true"]}, "httpGet": {"port": "80"}})
            ),
            f"{C0}.readinessProbe.httpGet: Forbidden: may not specify more than 1 handler type",
            id="probe-two-handlers",
        ),
        pytest.param(
            pod(container(readinessProbe={"httpGet": {"port": "0"}})),
            f"{C0}.readinessProbe.httpGet.port: Invalid value: 0: {PORT_RANGE}",
            id="probe-port-zero",
        ),
        pytest.param(
            pod(container(livenessProbe={"tcpSocket": {}})),
            f"{C0}.livenessProbe.tcpSocket.port: Invalid value: 0: {PORT_RANGE}",
            id="probe-port-missing",
        ),
        pytest.param(
            pod(container(readinessProbe={"httpGet": {"port": "admin"}})),
            f'{C0}.readinessProbe.httpGet.port: Invalid value: "admin": must be the name of '
            "one of the container's ports",
            id="probe-port-name-unknown",
        ),
        pytest.param(
            pod(
                container(readinessProbe={"tcpSocket": {"port": "metrics"}}),
                container(name="sidecar", ports=[{"name": "metrics", "containerPort": 9090}]),
            ),
            f'{C0}.readinessProbe.tcpSocket.port: Invalid value: "metrics": must be the name of '
            "one of the container's ports",
            id="probe-port-name-of-other-container",
        ),
        pytest.param(
            pod(container(readinessProbe={"httpGet": {"port": "Admin_Port"}})),
            f'{C0}.readinessProbe.httpGet.port: Invalid value: "Admin_Port": must contain only '
            "alpha-numeric characters (a-z, 0-9), and hyphens (-)",
            id="probe-port-name-syntax",
        ),
        pytest.param(
            pod(container(startupProbe={"exec": {}})),
            f"{C0}.startupProbe.exec.command: Required value",
            id="exec-no-command",
        ),
        pytest.param(
            pod(container(readinessProbe={"httpGet": {"port": "http", "scheme": "FTP"}})),
            f'{C0}.readinessProbe.httpGet.scheme: Unsupported value: "FTP": supported values: '
            '"HTTP", "HTTPS"',
            id="probe-scheme",
        ),
        pytest.param(
            pod(
                container(
                    readinessProbe={
                        "httpGet": {
                            "port": "http",
                            "httpHeaders": [{"name": "X Bad", "value": "1"}],
                        }
                    }
                )
            ),
            f'{C0}.readinessProbe.httpGet.httpHeaders: Invalid value: "X Bad": a valid HTTP '
            "header must consist of alphanumeric characters or '-' (e.g. 'X-Header-Name', "
            "regex used for validation is '[-A-Za-z0-9]+')",
            id="probe-header",
        ),
        pytest.param(
            pod(container(readinessProbe={"httpGet": {"port": "http"}, "periodSeconds": -1})),
            f"{C0}.readinessProbe.periodSeconds: Invalid value: -1: {NEGATIVE}",
            id="probe-negative-period",
        ),
        pytest.param(
            pod(container(readinessProbe={"httpGet": {"port": "http"}, "initialDelaySeconds": -3})),
            f"{C0}.readinessProbe.initialDelaySeconds: Invalid value: -3: {NEGATIVE}",
            id="probe-negative-delay",
        ),
        pytest.param(
            pod(container(livenessProbe={"httpGet": {"port": "http"}, "successThreshold": 2})),
            f"{C0}.livenessProbe.successThreshold: Invalid value: 2: must be 1",
            id="liveness-success-threshold",
        ),
        pytest.param(
            pod(container(startupProbe={"httpGet": {"port": "http"}, "successThreshold": 3})),
            f"{C0}.startupProbe.successThreshold: Invalid value: 3: must be 1",
            id="startup-success-threshold",
        ),
        pytest.param(
            pod(restartPolicy="Sometimes"),
            'spec.restartPolicy: Unsupported value: "Sometimes": supported values: '
            '"Always", "OnFailure", "Never"',
            id="restart-policy",
        ),
        pytest.param(
            pod(container(env=[{"name": "1VAR"}])),
            f'{C0}.env[0].name: Invalid value: "1VAR": a valid environment variable name must '
            "consist of alphabetic characters, digits, '_', '-', or '.', and must not start "
            "with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex "
            "used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')",
            id="env-name",
        ),
        pytest.param(
            pod(container(env=[{"value": "x"}])),
            f"{C0}.env[0].name: Required value",
            id="env-no-name",
        ),
        pytest.param(
            pod(nodeSelector={"disk/type/x": "ssd"}),
            'spec.nodeSelector: Invalid value: "disk/type/x": a qualified name must consist of '
            "alphanumeric characters, '-', '_' or '.', and must start and end with an "
            "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used "
            "for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional "
            "DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
            id="node-selector-key",
        ),
        pytest.param(
            pod(nodeName="Node_1"),
            f'spec.nodeName: Invalid value: "Node_1": {DNS1123_SUBDOMAIN}',
            id="node-name",
        ),
        pytest.param(
            pod(hostname="web.1"),
            'spec.hostname: Invalid value: "web.1": must not contain dots',
            id="hostname",
        ),
        pytest.param(
            pod(terminationGracePeriodSeconds=-1),
            f"spec.terminationGracePeriodSeconds: Invalid value: -1: {NEGATIVE}",
            id="grace-period",
        ),
    ],
)
def test_bad_pods(manifest: Manifest, expected: str) -> None:
    assert_reports(check(kinds.PODS, manifest), expected)


def test_undefaulted_probe_zeros_are_reported() -> None:
    obj = ParseDict(pod(container(readinessProbe={"httpGet": {"port": "http"}})), objects_pb2.Pod())
    obj.spec.restart_policy = "Always"
    assert_reports(
        validate_object(kinds.PODS, obj),
        f"{C0}.readinessProbe.periodSeconds: Invalid value: 0: must be greater than or equal to 1",
    )


# ---------------------------------------------------------------- Deployment


@pytest.mark.parametrize(
    "manifest",
    [
        pytest.param(deployment(), id="standard"),
        pytest.param(deployment(replicas=0), id="zero-replicas"),
        pytest.param(
            deployment(
                selector={
                    "matchLabels": {"app": "web"},
                    "matchExpressions": [
                        {"key": "tier", "operator": "In", "values": ["front", "back"]},
                        {"key": "canary", "operator": "DoesNotExist"},
                    ],
                },
                template={
                    "metadata": {"labels": {"app": "web", "tier": "front", "version": "2"}},
                    "spec": {"containers": [container()]},
                },
            ),
            id="match-expressions",
        ),
        pytest.param(deployment(strategy={"type": "Recreate"}), id="recreate"),
        pytest.param(
            deployment(strategy={"rollingUpdate": {"maxSurge": "200%", "maxUnavailable": "100%"}}),
            id="surge-may-exceed-100-percent",
        ),
        pytest.param(
            deployment(strategy={"rollingUpdate": {"maxSurge": "0", "maxUnavailable": "1"}}),
            id="no-surge",
        ),
    ],
)
def test_good_deployments(manifest: Manifest) -> None:
    assert check(kinds.DEPLOYMENTS, manifest) == []


def with_template(**changes: Any) -> Manifest:
    manifest = deployment()
    template = copy.deepcopy(manifest["spec"]["template"])
    template.update(changes)
    manifest["spec"]["template"] = template
    return manifest


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        pytest.param(
            deployment(replicas=-1),
            f"spec.replicas: Invalid value: -1: {NEGATIVE}",
            id="negative-replicas",
        ),
        pytest.param(
            {"metadata": {"name": "web"}, "spec": {"template": deployment()["spec"]["template"]}},
            "spec.selector: Required value",
            id="no-selector",
        ),
        pytest.param(
            deployment(selector={}),
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
            "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid "
            "for deployment",
            id="empty-selector",
        ),
        pytest.param(
            with_template(metadata={"labels": {"app": "api"}}),
            'spec.template.metadata.labels: Invalid value: map[string]string{"app":"api"}: '
            "`selector` does not match template `labels`",
            id="selector-does-not-match",
        ),
        pytest.param(
            deployment(selector={"matchExpressions": [{"key": "app", "operator": "In"}]}),
            "spec.selector.matchExpressions[0].values: Required value: must be specified when "
            "`operator` is 'In' or 'NotIn'",
            id="in-without-values",
        ),
        pytest.param(
            deployment(
                selector={
                    "matchExpressions": [{"key": "app", "operator": "Exists", "values": ["x"]}]
                }
            ),
            "spec.selector.matchExpressions[0].values: Forbidden: may not be specified when "
            "`operator` is 'Exists' or 'DoesNotExist'",
            id="exists-with-values",
        ),
        pytest.param(
            deployment(
                selector={
                    "matchExpressions": [{"key": "app", "operator": "Contains", "values": ["w"]}]
                }
            ),
            'spec.selector.matchExpressions[0].operator: Invalid value: "Contains": not a valid '
            "selector operator",
            id="bad-operator",
        ),
        pytest.param(
            deployment(selector={"matchLabels": {"app": "web", "x/y/z": "1"}}),
            'spec.selector.matchLabels: Invalid value: "x/y/z": a qualified name must consist of '
            "alphanumeric characters, '-', '_' or '.', and must start and end with an "
            "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used "
            "for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional "
            "DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
            id="match-labels-key",
        ),
        pytest.param(
            with_template(metadata={"labels": {"app": "web", "tier": "-front"}}),
            'spec.template.labels: Invalid value: "-front": a valid label must be an empty '
            "string or consist of alphanumeric characters, '-', '_' or '.', and must start and "
            "end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
            "regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
            id="template-label-value",
        ),
        pytest.param(
            with_template(spec={"containers": [container(ports=[{"containerPort": 70000}])]}),
            f"{TC0}.ports[0].containerPort: Invalid value: 70000: {PORT_RANGE}",
            id="template-container-port",
        ),
        pytest.param(
            with_template(
                spec={"containers": [container(readinessProbe={"tcpSocket": {"port": "x"}})]}
            ),
            f'{TC0}.readinessProbe.tcpSocket.port: Invalid value: "x": must be the name of one '
            "of the container's ports",
            id="template-probe-port",
        ),
        pytest.param(
            with_template(spec={"containers": [container()], "restartPolicy": "Never"}),
            'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: '
            '"Always"',
            id="template-restart-policy",
        ),
        pytest.param(
            with_template(spec={}),
            "spec.template.spec.containers: Required value",
            id="template-no-containers",
        ),
        pytest.param(
            deployment(strategy={"type": "BlueGreen"}),
            'spec.strategy.type: Unsupported value: "BlueGreen": supported values: "Recreate", '
            '"RollingUpdate"',
            id="strategy-type",
        ),
        pytest.param(
            deployment(strategy={"type": "Recreate", "rollingUpdate": {"maxSurge": "1"}}),
            "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` "
            "is 'Recreate'",
            id="recreate-with-rolling-update",
        ),
        pytest.param(
            deployment(strategy={"rollingUpdate": {"maxSurge": "20Percent"}}),
            f"spec.strategy.rollingUpdate.maxSurge: Invalid value: 20Percent: {PERCENT}",
            id="surge-not-percent",
        ),
        pytest.param(
            deployment(strategy={"rollingUpdate": {"maxSurge": "0", "maxUnavailable": "0"}}),
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when "
            "`maxSurge` is 0",
            id="both-zero",
        ),
        pytest.param(
            deployment(strategy={"rollingUpdate": {"maxSurge": "0%", "maxUnavailable": "0%"}}),
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0%: may not be 0 when "
            "`maxSurge` is 0",
            id="both-zero-percent",
        ),
        pytest.param(
            deployment(strategy={"rollingUpdate": {"maxUnavailable": "110%"}}),
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 110%: must not be "
            "greater than 100%",
            id="unavailable-over-100",
        ),
        pytest.param(
            deployment(strategy={"rollingUpdate": {"maxSurge": "-1"}}),
            f"spec.strategy.rollingUpdate.maxSurge: Invalid value: -1: {NEGATIVE}",
            id="negative-surge",
        ),
        pytest.param(
            deployment(minReadySeconds=-5),
            f"spec.minReadySeconds: Invalid value: -5: {NEGATIVE}",
            id="min-ready-seconds",
        ),
        pytest.param(
            deployment(revisionHistoryLimit=-1),
            f"spec.revisionHistoryLimit: Invalid value: -1: {NEGATIVE}",
            id="revision-history-limit",
        ),
        pytest.param(
            {**deployment(), "metadata": {"name": "Web"}},
            f'metadata.name: Invalid value: "Web": {DNS1123_SUBDOMAIN}',
            id="name",
        ),
    ],
)
def test_bad_deployments(manifest: Manifest, expected: str) -> None:
    assert_reports(check(kinds.DEPLOYMENTS, manifest), expected)


def test_bad_selector_is_not_also_reported_as_mismatch() -> None:
    found = check(
        kinds.DEPLOYMENTS,
        deployment(selector={"matchExpressions": [{"key": "app", "operator": "Contains"}]}),
    )
    assert "spec.template.metadata.labels" not in {e.field for e in found}
