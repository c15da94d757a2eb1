"""What a node proxy serves for one Service: its frontends and each port's endpoints.

Pure: `service_rules(service, slices, node_ips)` is the whole desired state of one
Service on one node (DESIGN §2.4, STYLE habit 3); the proxy diffs it against what
it runs. Kubernetes' rules, as kube-proxy reads them:

* a ClusterIP frontend per port unless the Service is headless or ExternalName;
  a NodePort frontend per port on each of the node's addresses for NodePort and
  LoadBalancer Services;
* a port's endpoints come from the slice ports of the same name and protocol
  (the slice port carries the target port number, resolved per pod); an
  endpoint's unset `ready` or `serving` counts as true (discovery/v1, and
  kube-proxy's `Serving == nil || *Serving`), unset `terminating` as false;
  an address listed twice (two slices, mid-move) counts once, the ready copy
  winning;
* `sessionAffinity: ClientIP` with `timeoutSeconds` (10800 when unset);
  `externalTrafficPolicy` / `internalTrafficPolicy: Local`;
* a `LoadBalancer` Service with `externalTrafficPolicy: Local` also gets
  kube-proxy's service health server on its healthCheckNodePort
  (`health_check_frontends`), which reports `local_ready_endpoints`.

`NodeAddresses` answers "which node is this client on" from Node objects (its
InternalIP, or its podCIDR for a pod), for `internalTrafficPolicy: Local` in
embedded mode, where every node shares one network namespace.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from kubelab.core.endpoint_choice import Backend, Target
from kubelab.core.validation.services import needs_health_check
from kubelab.v1 import objects_pb2

# kube-proxy's healthz port: 200 while the node's proxy is up and synced. Cloud load
# balancers check it for Cluster-policy Services (KEP-3458); a TCP connect to a nodePort
# would pass on a frozen node, whose kernel still completes the handshake.
NODE_HEALTH_PORT = 10256


CLUSTER_IP = "ClusterIP"
NODE_PORT = "NodePort"
HEALTH_CHECK = "HealthCheckNodePort"
DEFAULT_AFFINITY_TIMEOUT = 10800.0


@dataclass(frozen=True, slots=True)
class Frontend:
    """An address a proxy listens on."""

    protocol: str
    ip: str
    port: int
    scope: str  # CLUSTER_IP, NODE_PORT or HEALTH_CHECK

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}/{self.protocol}"


@dataclass(frozen=True, slots=True)
class PortRules:
    """One Service port as this node's proxy serves it."""

    name: str
    protocol: str
    port: int
    node_port: int
    frontends: tuple[Frontend, ...]
    backends: tuple[Backend, ...]
    affinity_timeout: float | None
    external_local: bool
    internal_local: bool

    @property
    def identity(self) -> tuple[str, str]:
        """What stays the same while a port's number, endpoints or policy change."""
        return (self.name, self.protocol)


def affinity_timeout(service: objects_pb2.Service) -> float | None:
    if service.spec.session_affinity != "ClientIP":
        return None
    seconds = service.spec.session_affinity_config.client_ip.timeout_seconds
    return float(seconds) if seconds > 0 else DEFAULT_AFFINITY_TIMEOUT


def has_cluster_ip(service: objects_pb2.Service) -> bool:
    return service.spec.type != "ExternalName" and service.spec.cluster_ip not in ("", "None")


def has_node_ports(service: objects_pb2.Service) -> bool:
    return service.spec.type in ("NodePort", "LoadBalancer")


def _condition(conditions: objects_pb2.EndpointConditions, field: str, default: bool) -> bool:
    return getattr(conditions, field) if conditions.HasField(field) else default


def port_backends(
    slices: Iterable[objects_pb2.EndpointSlice], name: str, protocol: str
) -> tuple[Backend, ...]:
    """The endpoints of the Service port `name`/`protocol`, in slice order."""
    return _backends([(eps, _port_numbers(eps)) for eps in slices], name, protocol)


_SlicePorts = Mapping[tuple[str, str], int]


def _port_numbers(eps: objects_pb2.EndpointSlice) -> _SlicePorts:
    """A slice's port numbers by (name, protocol), the first of each winning: looked up
    once per Service port, so a Service of 20,000 ports costs 20,000 lookups, not
    20,000 scans of 20,000 slice ports."""
    numbers: dict[tuple[str, str], int] = {}
    for p in eps.ports:
        if p.HasField("port"):
            numbers.setdefault((p.name, p.protocol or "TCP"), p.port)
    return numbers


def _backends(
    slices: Sequence[tuple[objects_pb2.EndpointSlice, _SlicePorts]], name: str, protocol: str
) -> tuple[Backend, ...]:
    found: dict[Target, Backend] = {}
    for eps, numbers in slices:
        if eps.address_type not in ("", "IPv4"):
            continue
        number = numbers.get((name, protocol))
        if number is None:
            continue
        for endpoint in eps.endpoints:
            if not endpoint.addresses:
                continue
            ready = _condition(endpoint.conditions, "ready", True)
            backend = Backend(
                target=Target(endpoint.addresses[0], number),
                node=endpoint.node_name,
                ready=ready,
                serving=_condition(endpoint.conditions, "serving", True),
                terminating=_condition(endpoint.conditions, "terminating", False),
                pod=(
                    f"{endpoint.target_ref.namespace}/{endpoint.target_ref.name}"
                    if endpoint.target_ref.name
                    else ""
                ),
            )
            known = found.get(backend.target)
            if known is None or (backend.ready and not known.ready):
                found[backend.target] = backend
    return tuple(found.values())


def service_rules(
    service: objects_pb2.Service,
    slices: Iterable[objects_pb2.EndpointSlice],
    node_ips: Sequence[str],
) -> tuple[PortRules, ...]:
    """Every port this node serves for `service`; () for a Service it serves nothing for."""
    return tuple(iter_service_rules(service, slices, node_ips))


def frontend_count(service: objects_pb2.Service, node_ips: Sequence[str]) -> int:
    """How many frontends `service_rules` gives `service` on this node, without building
    them (validation forbids two ports with one port number, or one nodePort, and protocol),
    so a Service too big for the node's file budget costs nothing to refuse."""
    cluster = has_cluster_ip(service)
    node_ports = has_node_ports(service)
    if not cluster and not node_ports:
        return 0
    return sum(
        int(cluster) + (len(node_ips) if node_ports and port.node_port else 0)
        for port in service.spec.ports
        if (port.protocol or "TCP") in ("TCP", "UDP")
    )


def iter_service_rules(
    service: objects_pb2.Service,
    slices: Iterable[objects_pb2.EndpointSlice],
    node_ips: Sequence[str],
) -> Iterator[PortRules]:
    """`service_rules` one port at a time, for a caller that must not hold its event loop
    for the whole of a Service with thousands of ports."""
    cluster = has_cluster_ip(service)
    node_ports = has_node_ports(service)
    if not cluster and not node_ports:
        return
    indexed = [(eps, _port_numbers(eps)) for eps in slices]
    affinity = affinity_timeout(service)
    external_local = service.spec.external_traffic_policy == "Local"
    internal_local = service.spec.internal_traffic_policy == "Local"
    for port in service.spec.ports:
        protocol = port.protocol or "TCP"
        if protocol not in ("TCP", "UDP"):
            continue  # SCTP: validation lets it through; the proxy does not carry it
        frontends = []
        if cluster:
            frontends.append(Frontend(protocol, service.spec.cluster_ip, port.port, CLUSTER_IP))
        if node_ports and port.node_port:
            frontends += [Frontend(protocol, ip, port.node_port, NODE_PORT) for ip in node_ips]
        yield PortRules(
            name=port.name,
            protocol=protocol,
            port=port.port,
            node_port=port.node_port,
            frontends=tuple(frontends),
            backends=_backends(indexed, port.name, protocol),
            affinity_timeout=affinity,
            external_local=external_local,
            internal_local=internal_local,
        )


def has_local_endpoint(backends: Iterable[Backend], node: str) -> bool:
    """Whether a Local-policy frontend on `node` has anything to send to."""
    return any(b.node == node and (b.ready or (b.serving and b.terminating)) for b in backends)


def health_check_frontends(
    service: objects_pb2.Service, node_ips: Sequence[str]
) -> tuple[Frontend, ...]:
    """Where this node answers `service`'s health checks: its healthCheckNodePort on each
    node address (kube-proxy listens on its nodePortAddresses), HTTP over TCP."""
    port = service.spec.health_check_node_port
    if not port or not needs_health_check(service):
        return ()
    return tuple(Frontend("TCP", ip, port, HEALTH_CHECK) for ip in node_ips)


def local_ready_endpoints(rules: Iterable[PortRules], node: str) -> int:
    """The `localEndpoints` a health check on `node` reports: the Service's ready endpoints
    there, counted by address over all its ports (kube-proxy's LocalReadyEndpoints: a pod
    serving 80 and 443 is one). Serving-but-terminating ones do not count, so a load
    balancer moves away from a node whose pods are all going."""
    return len({b.target.ip for r in rules for b in r.backends if b.node == node and b.ready})


class NodeAddresses:
    """Which node an address belongs to: a node's own addresses and its pod CIDR."""

    def __init__(self, nodes: Iterable[objects_pb2.Node] = ()) -> None:
        self._ips: dict[str, str] = {}
        self._cidrs: list[tuple[ipaddress.IPv4Network, str]] = []
        for node in nodes:
            for address in node.status.addresses:
                if address.type in ("InternalIP", "ExternalIP"):
                    self._ips[address.address] = node.metadata.name
            for cidr in node.spec.pod_cidrs or [node.spec.pod_cidr]:
                try:
                    network = ipaddress.ip_network(cidr, strict=False)
                except ValueError:
                    continue
                if isinstance(network, ipaddress.IPv4Network):
                    self._cidrs.append((network, node.metadata.name))

    def node_of(self, ip: str) -> str | None:
        name = self._ips.get(ip)
        if name is not None:
            return name
        try:
            address = ipaddress.IPv4Address(ip)
        except ValueError:
            return None
        return next((node for net, node in self._cidrs if address in net), None)


def served_at(
    service: objects_pb2.Service,
    slices: Iterable[objects_pb2.EndpointSlice],
    nodes: Mapping[str, Sequence[str]],
) -> list[tuple[objects_pb2.ServicePort, list[str]]]:
    """Where each port of `service` answers, for `get -o wide` and `describe`:
    `nodes` maps each live node to its addresses. A Local external policy answers
    only on nodes with a local endpoint."""
    indexed = [(eps, _port_numbers(eps)) for eps in slices]
    answer = []
    for port in service.spec.ports:
        places: list[str] = []
        protocol = port.protocol or "TCP"
        if protocol not in ("TCP", "UDP"):
            answer.append((port, places))  # no proxy carries SCTP
            continue
        if has_cluster_ip(service):
            places.append(f"{service.spec.cluster_ip}:{port.port}/{protocol}")
        if has_node_ports(service) and port.node_port:
            backends = _backends(indexed, port.name, protocol)
            for node, addresses in sorted(nodes.items()):
                local_only = service.spec.external_traffic_policy == "Local"
                if local_only and not has_local_endpoint(backends, node):
                    continue
                places += [f"{ip}:{port.node_port}/{protocol}" for ip in addresses]
        answer.append((port, places))
    return answer
