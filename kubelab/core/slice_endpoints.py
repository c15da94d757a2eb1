"""What a Service's EndpointSlices should list: its pods as endpoints, grouped by ports.

The first half of the EndpointSlice reconcile (`kubelab.core.endpointslices`
packs these into slices). Pure; the rules are Kubernetes'
(`staging/src/k8s.io/endpointslice/utils.go`, `pkg/api/v1/pod`):

* Selected pods (`ShouldPodBeInEndpoints` with terminating pods included, as
  since EndpointSliceTerminatingCondition went GA): in the Service's
  namespace, labels matched by `spec.selector` (extra labels do not matter),
  an IPv4 `status.podIP`, phase not Succeeded/Failed. A pod whose node died has
  no status here (its status key went with the node's lease), so no IP, so it
  is not listed: no timer of ours (DESIGN §2.2).
* One endpoint per pod (`podToEndpoint`): addresses `[podIP]`; targetRef
  `Pod` namespace/name/uid; nodeName; hostname only when the pod sets
  `spec.hostname` and its `spec.subdomain` is the Service's name (headless
  DNS, `ShouldSetHostname`). Conditions:

  | pod                      | ready | serving | terminating |
  |--------------------------|-------|---------|-------------|
  | Ready                    | True  | True    | False       |
  | not Ready                | False | False   | False       |
  | Ready, terminating       | False | True    | True        |
  | not Ready, terminating   | False | False   | True        |
  | publishNotReadyAddresses | True  | True    | as above    |

  Kubernetes leaves `serving` at the pod's readiness under
  publishNotReadyAddresses (ready True, serving False for an unready pod).
  kubelab sets it True: published addresses are meant to be used, and ready
  always implies serving, which is what proxies rely on (DESIGN §8 invariant 3).
* Ports (`getEndpointPorts`, `FindPort`): each Service port becomes an
  EndpointPort named as the Service port, with its protocol and appProtocol,
  on the target port: a number is taken as is, a name is looked up among the
  pod's container ports with that name AND protocol. A name the pod does not
  have leaves that port out for that pod, so pods whose ports resolve
  differently fall into different groups (a pod resolving none is in the
  group with no ports), each with its own slices.

IPv6 pod IPs are not listed: kubelab writes IPv4 slices only. Endpoints carry
no zone (kubelab's nodes have no topology labels).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

from kubelab.core import kinds
from kubelab.core.pods import TERMINAL_PHASES, is_ready, is_terminating
from kubelab.core.selectors import Selector, from_match_labels
from kubelab.core.validation.services import EXTERNAL_NAME
from kubelab.core.validation.syntax import is_ipv4, parse_int_or_string
from kubelab.v1 import objects_pb2

__all__ = [
    "ADDRESS_TYPE",
    "EndpointKey",
    "PortSpec",
    "desired_endpoints",
    "endpoint_key",
    "endpoint_ports",
    "pod_endpoint",
    "selects",
]

ADDRESS_TYPE = "IPv4"
_DEFAULT_PROTOCOL = "TCP"

# Who an endpoint stands for: ("Pod", namespace, name), or ("", *addresses) without a pod.
EndpointKey: TypeAlias = tuple[str, ...]


@dataclass(frozen=True, slots=True, order=True)
class PortSpec:
    """An EndpointPort as a value; `port` 0 means unset (never valid on a slice)."""

    name: str
    protocol: str
    port: int
    app_protocol: str = ""

    @classmethod
    def from_proto(cls, port: objects_pb2.EndpointPort) -> PortSpec:
        return cls(
            port.name,
            port.protocol or _DEFAULT_PROTOCOL,
            port.port if port.HasField("port") else 0,
            port.app_protocol,
        )

    def to_proto(self) -> objects_pb2.EndpointPort:
        return objects_pb2.EndpointPort(
            name=self.name, protocol=self.protocol, port=self.port, app_protocol=self.app_protocol
        )


def endpoint_key(endpoint: objects_pb2.Endpoint) -> EndpointKey:
    ref = endpoint.target_ref
    if ref.kind == kinds.PODS.kind and ref.name:
        return (ref.kind, ref.namespace, ref.name)
    return ("", *sorted(endpoint.addresses))


def selects(service: objects_pb2.Service, pod: objects_pb2.Pod, selector: Selector) -> bool:
    """`pod` belongs in the slices of `service`, whose selector is `selector`."""
    return (
        pod.metadata.namespace == service.metadata.namespace
        and selector.matches(pod.metadata.labels)
        and bool(pod.status.pod_ip)
        and not is_ipv4(pod.status.pod_ip)
        and pod.status.phase not in TERMINAL_PHASES
    )


def pod_endpoint(service: objects_pb2.Service, pod: objects_pb2.Pod) -> objects_pb2.Endpoint:
    """The endpoint a selected pod becomes (`podToEndpoint`)."""
    publish = service.spec.publish_not_ready_addresses
    terminating = is_terminating(pod)
    serving = publish or is_ready(pod)
    ready = publish or (serving and not terminating)
    endpoint = objects_pb2.Endpoint(addresses=[pod.status.pod_ip], node_name=pod.spec.node_name)
    endpoint.conditions.ready = ready
    endpoint.conditions.serving = serving
    endpoint.conditions.terminating = terminating
    endpoint.target_ref.kind = kinds.PODS.kind
    endpoint.target_ref.namespace = pod.metadata.namespace
    endpoint.target_ref.name = pod.metadata.name
    endpoint.target_ref.uid = pod.metadata.uid
    if (
        pod.spec.hostname
        and pod.spec.subdomain == service.metadata.name
        and pod.metadata.namespace == service.metadata.namespace
    ):
        endpoint.hostname = pod.spec.hostname
    return endpoint


def _target_port(pod: objects_pb2.Pod, port: objects_pb2.ServicePort) -> int | None:
    """The pod's number for a Service port's targetPort; None when the pod has no such port."""
    target = parse_int_or_string(port.target_port) if port.target_port else 0
    if isinstance(target, int):
        # Unset ("" or 0) means the Service port itself, as the apiserver defaults it.
        return target or port.port
    protocol = port.protocol or _DEFAULT_PROTOCOL
    for container in pod.spec.containers:
        for container_port in container.ports:
            if (
                container_port.name == target
                and (container_port.protocol or _DEFAULT_PROTOCOL) == protocol
            ):
                return container_port.container_port
    return None


def endpoint_ports(service: objects_pb2.Service, pod: objects_pb2.Pod) -> tuple[PortSpec, ...]:
    """The Service's ports as `pod` serves them, in the Service's order (`getEndpointPorts`)."""
    ports = []
    for port in service.spec.ports:
        number = _target_port(pod, port)
        if number is not None:
            ports.append(
                PortSpec(port.name, port.protocol or _DEFAULT_PROTOCOL, number, port.app_protocol)
            )
    return tuple(ports)


def desired_endpoints(
    service: objects_pb2.Service, pods: Sequence[objects_pb2.Pod]
) -> dict[tuple[PortSpec, ...], list[objects_pb2.Endpoint]]:
    """Every selected pod's endpoint, once, grouped by its ports; sorted by pod name.

    Empty for a Service without a selector or of type ExternalName: its
    endpoints are not ours to compute. A pod listed twice counts once (the last).
    """
    if service.spec.type == EXTERNAL_NAME or not service.spec.selector:
        return {}
    selector = from_match_labels(service.spec.selector)
    found: dict[EndpointKey, tuple[tuple[PortSpec, ...], objects_pb2.Endpoint]] = {}
    for pod in pods:
        if selects(service, pod, selector):
            endpoint = pod_endpoint(service, pod)
            found[endpoint_key(endpoint)] = (endpoint_ports(service, pod), endpoint)
    groups: dict[tuple[PortSpec, ...], list[objects_pb2.Endpoint]] = {}
    for key in sorted(found):
        ports, endpoint = found[key]
        groups.setdefault(ports, []).append(endpoint)
    return groups
