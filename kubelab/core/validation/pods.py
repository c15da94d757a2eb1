"""Pods and Deployments: defaults, static checks, update rules.

A Deployment's pod template gets the same defaults and checks as a Pod's spec,
at its own path (`spec.template.spec.containers[0]...`). The rules, wording
and field paths are Kubernetes' (`pkg/apis/core/validation` ValidatePodSpec,
`pkg/apis/apps/validation` ValidateDeployment, `core/v1` and `apps/v1`
defaults), including its quirk of reporting template label syntax at
`spec.template.labels` while a selector mismatch is at
`spec.template.metadata.labels`.

Kubelab adds one check Kubernetes leaves to the kubelet at run time: a probe
whose port is a name must name one of its container's ports, since such a
probe could never pass. Port names are unique per container, as in
Kubernetes; when two containers share a name, a Service's named targetPort
resolves to the first, as Kubernetes' FindPort does.

Pod updates may change container images and bind an unscheduled pod to a node
(`spec.nodeName` from "" to a name, what Kubernetes' binding subresource
does); everything else in the spec is fixed once created.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from google.protobuf.message import Message

from kubelab.core import errors, selectors
from kubelab.core.errors import FieldError
from kubelab.core.validation.meta import (
    NEGATIVE,
    PROTOCOLS,
    go_int_or_string,
    go_label_selector,
    go_map,
    immutable,
    names,
    nonnegative,
    port_num_or_name,
    validate_annotations,
    validate_label_selector,
    validate_labels,
    validate_object_meta,
)
from kubelab.core.validation.syntax import (
    is_dns1123_label,
    is_dns1123_subdomain,
    is_env_var_name,
    is_http_header_name,
    is_percent,
    is_port_name,
    is_port_num,
    parse_int_or_string,
)
from kubelab.v1 import meta_pb2, objects_pb2

RESTART_POLICIES = ("Always", "OnFailure", "Never")
HTTP_SCHEMES = ("HTTP", "HTTPS")
STRATEGY_TYPES = ("Recreate", "RollingUpdate")

DEFAULT_TERMINATION_GRACE_SECONDS = 30
DEFAULT_MAX_SURGE = "25%"
DEFAULT_MAX_UNAVAILABLE = "25%"
DEFAULT_REVISION_HISTORY_LIMIT = 10

_PROBES = ("liveness_probe", "readiness_probe", "startup_probe")
_PROBE_JSON_NAMES = ("livenessProbe", "readinessProbe", "startupProbe")
_PERCENT_VALUE = re.compile("([0-9]+)%")
_UPDATABLE = (
    "`spec.containers[*].image`,`spec.nodeName` (only from empty, to bind an unscheduled pod)"
)


# ---------------------------------------------------------------- defaults


def default_pod_spec(spec: objects_pb2.PodSpec) -> None:
    """Kubernetes' SetDefaults_PodSpec, _ContainerPort, _Probe and _HTTPGetAction."""
    if not spec.restart_policy:
        spec.restart_policy = "Always"
    if not spec.HasField("termination_grace_period_seconds"):
        spec.termination_grace_period_seconds = DEFAULT_TERMINATION_GRACE_SECONDS
    for container in spec.containers:
        for port in container.ports:
            if not port.protocol:
                port.protocol = "TCP"
        for name in _PROBES:
            if container.HasField(name):
                _default_probe(getattr(container, name))


def _default_probe(probe: objects_pb2.Probe) -> None:
    # proto3 cannot tell 0 from unset; Kubernetes defaults exactly the zero values.
    probe.timeout_seconds = probe.timeout_seconds or 1
    probe.period_seconds = probe.period_seconds or 10
    probe.success_threshold = probe.success_threshold or 1
    probe.failure_threshold = probe.failure_threshold or 3
    if probe.HasField("http_get"):
        probe.http_get.path = probe.http_get.path or "/"
        probe.http_get.scheme = probe.http_get.scheme or "HTTP"


def default_deployment(deployment: objects_pb2.Deployment) -> None:
    """Kubernetes' apps/v1 SetDefaults_Deployment, then the template as a Pod's spec."""
    spec = deployment.spec
    if not spec.HasField("replicas"):
        spec.replicas = 1
    if not spec.strategy.type:
        spec.strategy.type = "RollingUpdate"
    if spec.strategy.type == "RollingUpdate":
        rolling = spec.strategy.rolling_update
        rolling.max_unavailable = rolling.max_unavailable or DEFAULT_MAX_UNAVAILABLE
        rolling.max_surge = rolling.max_surge or DEFAULT_MAX_SURGE
    if not spec.HasField("revision_history_limit"):
        spec.revision_history_limit = DEFAULT_REVISION_HISTORY_LIMIT
    default_pod_spec(spec.template.spec)


# ---------------------------------------------------------------- Pod spec


def validate_pod(pod: objects_pb2.Pod) -> list[FieldError]:
    found = validate_object_meta(pod.metadata, namespaced=True, name_check=is_dns1123_subdomain)
    return found + validate_pod_spec(pod.spec, "spec")


def validate_pod_spec(spec: objects_pb2.PodSpec, path: str) -> list[FieldError]:
    found: list[FieldError] = []
    if not spec.containers:
        found.append(errors.required(f"{path}.containers"))
    seen: set[str] = set()
    for i, container in enumerate(spec.containers):
        at = f"{path}.containers[{i}]"
        found += _container(container, at)
        if container.name in seen:
            found.append(errors.duplicate(f"{at}.name", container.name))
        seen.add(container.name)
    found += _host_port_conflicts(spec, path)
    if not spec.restart_policy:
        found.append(errors.required(f"{path}.restartPolicy"))
    elif spec.restart_policy not in RESTART_POLICIES:
        found.append(
            errors.not_supported(f"{path}.restartPolicy", spec.restart_policy, RESTART_POLICIES)
        )
    found += validate_labels(spec.node_selector, f"{path}.nodeSelector")
    if spec.node_name:
        found += names(f"{path}.nodeName", spec.node_name, is_dns1123_subdomain)
    if spec.hostname:
        found += names(f"{path}.hostname", spec.hostname, is_dns1123_label)
    if spec.subdomain:
        found += names(f"{path}.subdomain", spec.subdomain, is_dns1123_label)
    if spec.HasField("termination_grace_period_seconds"):
        found += nonnegative(
            f"{path}.terminationGracePeriodSeconds", spec.termination_grace_period_seconds
        )
    return found


def validate_grace_period(seconds: int) -> list[FieldError]:
    """A delete's gracePeriodSeconds, which becomes the pod's terminationGracePeriodSeconds."""
    return nonnegative("gracePeriodSeconds", seconds)


def _container(container: objects_pb2.Container, path: str) -> list[FieldError]:
    found: list[FieldError] = []
    if not container.name:
        found.append(errors.required(f"{path}.name"))
    else:
        found += names(f"{path}.name", container.name, is_dns1123_label)
    if not container.image:
        found.append(errors.required(f"{path}.image"))
    elif container.image != container.image.strip():
        # Kubernetes' validateContainerCommon: `" "` is no image, and never runs.
        found.append(
            errors.invalid(
                f"{path}.image", container.image, "must not have leading or trailing whitespace"
            )
        )
    port_names: set[str] = set()
    for j, port in enumerate(container.ports):
        at = f"{path}.ports[{j}]"
        if port.name:
            problems = is_port_name(port.name)
            found += [errors.invalid(f"{at}.name", port.name, p) for p in problems]
            if not problems and port.name in port_names:
                found.append(errors.duplicate(f"{at}.name", port.name))
            port_names.add(port.name)
        if port.container_port == 0:
            found.append(errors.required(f"{at}.containerPort"))
        else:
            found += [
                errors.invalid(f"{at}.containerPort", port.container_port, p)
                for p in is_port_num(port.container_port)
            ]
        if port.host_port:
            found += [
                errors.invalid(f"{at}.hostPort", port.host_port, p)
                for p in is_port_num(port.host_port)
            ]
        if not port.protocol:
            found.append(errors.required(f"{at}.protocol"))
        elif port.protocol not in PROTOCOLS:
            found.append(errors.not_supported(f"{at}.protocol", port.protocol, PROTOCOLS))
    for j, env in enumerate(container.env):
        if not env.name:
            found.append(errors.required(f"{path}.env[{j}].name"))
        else:
            found += names(f"{path}.env[{j}].name", env.name, is_env_var_name)
    for name, json_name in zip(_PROBES, _PROBE_JSON_NAMES, strict=True):
        if container.HasField(name):
            probe: objects_pb2.Probe = getattr(container, name)
            found += _probe(probe, f"{path}.{json_name}", port_names)
            # Liveness and startup probes stop at the first success (Kubernetes).
            if name != "readiness_probe" and probe.success_threshold != 1:
                found.append(
                    errors.invalid(
                        f"{path}.{json_name}.successThreshold", probe.success_threshold, "must be 1"
                    )
                )
    return found


def _host_port_conflicts(spec: objects_pb2.PodSpec, path: str) -> list[FieldError]:
    found: list[FieldError] = []
    taken: set[str] = set()
    for i, container in enumerate(spec.containers):
        for j, port in enumerate(container.ports):
            if not port.host_port:
                continue
            # Kubernetes' key is protocol/hostIP/port; kubelab has no hostIP field.
            key = f"{port.protocol}//{port.host_port}"
            if key in taken:
                found.append(errors.duplicate(f"{path}.containers[{i}].ports[{j}].hostPort", key))
            taken.add(key)
    return found


def _probe(probe: objects_pb2.Probe, path: str, port_names: set[str]) -> list[FieldError]:
    found: list[FieldError] = []
    handlers = [h for h in ("exec", "http_get", "tcp_socket") if probe.HasField(h)]
    for extra in handlers[1:]:
        found.append(
            errors.forbidden(f"{path}.{_json(extra)}", "may not specify more than 1 handler type")
        )
    if not handlers:
        found.append(errors.required(path, "must specify a handler type"))
    elif handlers[0] == "exec":
        if not probe.exec.command:
            found.append(errors.required(f"{path}.exec.command"))
    elif handlers[0] == "http_get":
        http = probe.http_get
        if not http.path:
            found.append(errors.required(f"{path}.httpGet.path"))
        found += _probe_port(f"{path}.httpGet.port", http.port, port_names)
        if http.scheme not in HTTP_SCHEMES:
            found.append(errors.not_supported(f"{path}.httpGet.scheme", http.scheme, HTTP_SCHEMES))
        for header in http.http_headers:
            found += names(f"{path}.httpGet.httpHeaders", header.name, is_http_header_name)
    else:
        found += _probe_port(f"{path}.tcpSocket.port", probe.tcp_socket.port, port_names)

    found += nonnegative(f"{path}.initialDelaySeconds", probe.initial_delay_seconds)
    for field, value in (
        ("timeoutSeconds", probe.timeout_seconds),
        ("periodSeconds", probe.period_seconds),
        ("successThreshold", probe.success_threshold),
        ("failureThreshold", probe.failure_threshold),
    ):
        if value < 0:
            found.append(errors.invalid(f"{path}.{field}", value, NEGATIVE))
        elif value == 0:
            # Defaulting turns 0 into 1, 10, 1 or 3; a 0 here skipped defaulting.
            found.append(errors.invalid(f"{path}.{field}", 0, "must be greater than or equal to 1"))
    return found


def _json(field: str) -> str:
    head, *rest = field.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _probe_port(path: str, value: str, port_names: set[str]) -> list[FieldError]:
    found = port_num_or_name(path, value)
    parsed = parse_int_or_string(value)
    if not found and isinstance(parsed, str) and parsed not in port_names:
        found.append(
            errors.invalid(path, parsed, "must be the name of one of the container's ports")
        )
    return found


# ---------------------------------------------------------------- Deployment


def validate_deployment(deployment: objects_pb2.Deployment) -> list[FieldError]:
    found = validate_object_meta(
        deployment.metadata, namespaced=True, name_check=is_dns1123_subdomain
    )
    spec = deployment.spec
    if spec.HasField("replicas"):
        found += nonnegative("spec.replicas", spec.replicas)
    selector_errors: list[FieldError] = []
    if not spec.HasField("selector"):
        selector_errors.append(errors.required("spec.selector"))
    else:
        selector_errors += validate_label_selector(spec.selector, "spec.selector")
        if not spec.selector.match_labels and not spec.selector.match_expressions:
            selector_errors.append(
                errors.invalid(
                    "spec.selector",
                    go_label_selector(spec.selector),
                    "empty selector is invalid for deployment",
                )
            )
    found += selector_errors
    template = spec.template
    if not selector_errors and not _selector_matches(spec.selector, template.metadata.labels):
        found.append(
            errors.invalid(
                "spec.template.metadata.labels",
                go_map(template.metadata.labels),
                "`selector` does not match template `labels`",
            )
        )
    # Kubernetes' ValidatePodTemplateSpec reports these at `template.labels`.
    found += validate_labels(template.metadata.labels, "spec.template.labels")
    found += validate_annotations(template.metadata.annotations, "spec.template.annotations")
    found += validate_pod_spec(template.spec, "spec.template.spec")
    if template.spec.restart_policy != "Always":
        # A Deployment replaces pods that exit; only Always makes sense (Kubernetes).
        found.append(
            errors.not_supported(
                "spec.template.spec.restartPolicy", template.spec.restart_policy, ["Always"]
            )
        )
    found += _strategy(spec.strategy)
    found += nonnegative("spec.minReadySeconds", spec.min_ready_seconds)
    if spec.HasField("revision_history_limit"):
        found += nonnegative("spec.revisionHistoryLimit", spec.revision_history_limit)
    return found


def _selector_matches(selector: meta_pb2.LabelSelector, labels: Mapping[str, str]) -> bool:
    try:
        return selectors.from_label_selector(selector).matches(labels)
    except selectors.SelectorError:
        return True  # already reported, field by field, by validate_label_selector


def _strategy(strategy: objects_pb2.DeploymentStrategy) -> list[FieldError]:
    path = "spec.strategy"
    if strategy.type == "Recreate":
        if strategy.HasField("rolling_update"):
            return [
                errors.forbidden(
                    f"{path}.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                )
            ]
        return []
    if strategy.type != "RollingUpdate":
        return [errors.not_supported(f"{path}.type", strategy.type, STRATEGY_TYPES)]
    if not strategy.HasField("rolling_update"):
        return [
            errors.required(f"{path}.rollingUpdate", "this should be defaulted and never be nil")
        ]
    rolling = strategy.rolling_update
    found: list[FieldError] = []
    for field, value in (
        ("maxUnavailable", rolling.max_unavailable),
        ("maxSurge", rolling.max_surge),
    ):
        parsed = parse_int_or_string(value) if value else 0
        if isinstance(parsed, str):
            found += [
                errors.invalid(f"{path}.rollingUpdate.{field}", go_int_or_string(value), p)
                for p in is_percent(parsed)
            ]
        else:
            found += nonnegative(f"{path}.rollingUpdate.{field}", parsed)
    unavailable_path = f"{path}.rollingUpdate.maxUnavailable"
    if _amount(rolling.max_unavailable) == 0 and _amount(rolling.max_surge) == 0:
        found.append(
            errors.invalid(
                unavailable_path,
                go_int_or_string(rolling.max_unavailable or "0"),
                "may not be 0 when `maxSurge` is 0",
            )
        )
    # Only maxUnavailable is capped: a surge of 200% is allowed (Kubernetes).
    percent = _PERCENT_VALUE.fullmatch(rolling.max_unavailable)
    if percent and int(percent.group(1)) > 100:
        found.append(
            errors.invalid(
                unavailable_path,
                go_int_or_string(rolling.max_unavailable),
                "must not be greater than 100%",
            )
        )
    return found


def _amount(value: str) -> int:
    """Kubernetes' getIntOrPercentValue: the number, with or without '%'; junk is 0."""
    percent = _PERCENT_VALUE.fullmatch(value)
    parsed = int(percent.group(1)) if percent else parse_int_or_string(value)
    return parsed if isinstance(parsed, int) else 0


# ---------------------------------------------------------------- updates


def validate_pod_update(old: objects_pb2.Pod, new: objects_pb2.Pod) -> list[FieldError]:
    if len(new.spec.containers) != len(old.spec.containers):
        return [errors.forbidden("spec.containers", "pod updates may not add or remove containers")]
    munged = objects_pb2.PodSpec()
    munged.CopyFrom(new.spec)
    for container, before in zip(munged.containers, old.spec.containers, strict=True):
        container.image = before.image
    if not old.spec.node_name:
        munged.node_name = old.spec.node_name
    if munged == old.spec:
        return []
    changed = ", ".join(_changed(old.spec, munged, "spec")) or "spec"
    detail = f"pod updates may not change fields other than {_UPDATABLE}\nchanged: {changed}"
    return [errors.forbidden("spec", detail)]


def _changed(old: Message, new: Message, path: str) -> list[str]:
    """The paths of the fields that differ, descending into messages and same-length lists
    (a short stand-in for the diff Kubernetes appends)."""
    found: list[str] = []
    for field in old.DESCRIPTOR.fields:
        before, after = getattr(old, field.name), getattr(new, field.name)
        presence = field.has_presence and not field.is_repeated
        if before == after and not (
            presence and old.HasField(field.name) != new.HasField(field.name)
        ):
            continue
        at = f"{path}.{field.json_name}"
        message = field.message_type is not None and not field.message_type.GetOptions().map_entry
        if message and not field.is_repeated:
            found += _changed(before, after, at) or [at]
        elif message and len(before) == len(after):
            for i, (b, a) in enumerate(zip(before, after, strict=True)):
                if b != a:
                    found += _changed(b, a, f"{at}[{i}]") or [f"{at}[{i}]"]
        else:
            found.append(at)
    return found


def validate_deployment_update(
    old: objects_pb2.Deployment, new: objects_pb2.Deployment
) -> list[FieldError]:
    """apps/v1: a Deployment's selector is fixed at creation."""
    if new.spec.selector != old.spec.selector:
        return [immutable("spec.selector", go_label_selector(new.spec.selector))]
    return []
