"""ClusterIP, NodePort and healthCheckNodePort allocation: pure choice, no I/O.

A *claim* is one allocated thing: a ClusterIP, a NodePort for one protocol, a
LoadBalancer IP. The store writes one etcd key per claim in the same
transaction as the Service (compare `version == 0`), so two apiservers can
never hand out the same address: whoever loses the race learns it from the
failed transaction and picks again. This module only decides *what* to ask
for, given what is already taken:

* `ClusterIPAllocator` / `NodePortAllocator` know their range, check a
  requested value against it (Kubernetes' wording), and pick a free value at
  random (random spreads concurrent pickers across the range, so racing
  apiservers rarely collide; a linear scan from a random start guarantees an
  answer when the range is nearly full).
* `service_claims(svc)` lists the claims a Service holds, and
  `assign_service(...)` fills in the Service's missing clusterIP, nodePorts
  and healthCheckNodePort, returning the claims to make and field errors for
  requested values that are out of range.
* A `LoadBalancer` Service with `externalTrafficPolicy: Local` also holds a
  healthCheckNodePort, which kube-proxy serves over HTTP: Kubernetes takes it
  from the NodePort range, so it is a TCP NodePort claim like any other (it
  can collide with no nodePort of any Service, its own included).

Kubernetes keeps the same allocation state as a bitmap in one key, which
serialises every create; per-claim keys let unrelated creates commit in
parallel.
"""

from __future__ import annotations

import ipaddress
import random
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from kubelab.core import errors
from kubelab.core.errors import FieldError
from kubelab.core.validation.services import needs_health_check
from kubelab.v1 import objects_pb2

# The defaults of the apiserver's flags, and of `kubelab up`: embedded mode keeps Services on
# loopback (127.96.0.0/16; Kubernetes' own default is 10.96.0.0/12), NodePorts as Kubernetes.
DEFAULT_SERVICE_CIDR = "127.96.0.0/16"
DEFAULT_NODE_PORT_RANGE = "30000-32767"
HEALTH_CHECK_FIELD = "spec.healthCheckNodePort"
PORT_TAKEN = "provided port is already allocated"


class ClaimKind(StrEnum):
    CLUSTER_IP = "clusterips"
    NODE_PORT = "nodeports"
    LB_IP = "lbips"


@dataclass(frozen=True, slots=True, order=True)
class Claim:
    kind: ClaimKind
    # "127.96.0.5" for IPs, "TCP/30080" for NodePorts.
    name: str

    @staticmethod
    def cluster_ip(ip: str) -> Claim:
        return Claim(ClaimKind.CLUSTER_IP, ip)

    @staticmethod
    def node_port(protocol: str, port: int) -> Claim:
        return Claim(ClaimKind.NODE_PORT, f"{protocol or 'TCP'}/{port}")

    @staticmethod
    def lb_ip(ip: str) -> Claim:
        return Claim(ClaimKind.LB_IP, ip)


class RangeFullError(Exception):
    """No free value is left in the range (Kubernetes answers `range is full`)."""


_RANDOM_TRIES = 32


@dataclass(frozen=True, slots=True)
class PortRange:
    first: int
    last: int

    @classmethod
    def parse(cls, text: str) -> PortRange:
        try:
            first_text, last_text = text.split("-", 1)
            first, last = int(first_text), int(last_text)
        except ValueError:
            raise ValueError(
                f'invalid port range "{text}": want FIRST-LAST, e.g. 30000-32767'
            ) from None
        if not 1 <= first <= last <= 65535:
            raise ValueError(f'invalid port range "{text}": need 1 <= FIRST <= LAST <= 65535')
        return cls(first, last)

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.first <= port <= self.last

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"

    @property
    def size(self) -> int:
        return self.last - self.first + 1


def _pick(size: int, is_free: Callable[[int], bool], rng: random.Random) -> int:
    """An index in [0, size) for which is_free holds: random tries, then a full scan."""
    for _ in range(min(_RANDOM_TRIES, size)):
        index = rng.randrange(size)
        if is_free(index):
            return index
    start = rng.randrange(size)
    for offset in range(size):
        index = (start + offset) % size
        if is_free(index):
            return index
    raise RangeFullError


class NodePortAllocator:
    def __init__(self, port_range: PortRange) -> None:
        self.range = port_range

    def check_requested(self, field: str, port: int) -> FieldError | None:
        if port in self.range:
            return None
        return errors.invalid(
            field,
            port,
            f"provided port is not in the valid range. The range of valid ports is {self.range}",
        )

    def pick(self, protocol: str, is_taken: Callable[[Claim], bool], rng: random.Random) -> int:
        first = self.range.first
        index = _pick(
            self.range.size,
            lambda i: not is_taken(Claim.node_port(protocol, first + i)),
            rng,
        )
        return first + index


def _ipv4_text(value: int) -> str:
    # ~10x cheaper than str(IPv4Address(value)); this is on every create's path.
    return socket.inet_ntoa(value.to_bytes(4, "big"))


class ClusterIPAllocator:
    """Addresses from a CIDR, minus the network and broadcast addresses and any reserved
    ones (the cluster DNS address, which Kubernetes reserves by giving kube-dns a fixed IP)."""

    def __init__(self, cidr: str, reserved: Iterable[str] = ()) -> None:
        self.network = ipaddress.IPv4Network(cidr, strict=False)
        self.reserved = frozenset(str(ipaddress.IPv4Address(ip)) for ip in reserved)
        if self.network.num_addresses < 4:
            raise ValueError(f"service CIDR {cidr} is too small")
        self._first = int(self.network.network_address) + 1
        self._size = self.network.num_addresses - 2

    def check_requested(self, field: str, ip: str) -> FieldError | None:
        try:
            address = ipaddress.IPv4Address(ip)
        except ValueError:
            return errors.invalid(field, ip, "must be a valid IP address, (e.g. 10.9.8.7)")
        usable = self._first <= int(address) < self._first + self._size
        if not usable or address not in self.network:
            return errors.invalid(
                field,
                ip,
                f"provided IP is not in the valid range. The range of valid IPs is {self.network}",
            )
        if ip in self.reserved:
            return errors.invalid(field, ip, "provided IP is reserved for cluster DNS")
        return None

    def pick(self, is_taken: Callable[[Claim], bool], rng: random.Random) -> str:
        def free(index: int) -> bool:
            ip = _ipv4_text(self._first + index)
            return ip not in self.reserved and not is_taken(Claim.cluster_ip(ip))

        return _ipv4_text(self._first + _pick(self._size, free, rng))


def needs_cluster_ip(svc: objects_pb2.Service) -> bool:
    return svc.spec.type != "ExternalName" and svc.spec.cluster_ip != "None"


def needs_node_ports(svc: objects_pb2.Service) -> bool:
    return svc.spec.type in ("NodePort", "LoadBalancer")


def health_check_claim(svc: objects_pb2.Service) -> Claim | None:
    """The claim of `svc`'s healthCheckNodePort, None when it has none. TCP: the port
    answers HTTP (kube-proxy's service health server)."""
    if needs_health_check(svc) and svc.spec.health_check_node_port:
        return Claim.node_port("TCP", svc.spec.health_check_node_port)
    return None


def service_claims(svc: objects_pb2.Service) -> frozenset[Claim]:
    """The claims a stored (fully allocated) Service holds."""
    claims: set[Claim] = set()
    if needs_cluster_ip(svc) and svc.spec.cluster_ip:
        claims.add(Claim.cluster_ip(svc.spec.cluster_ip))
    if needs_node_ports(svc):
        for port in svc.spec.ports:
            if port.node_port:
                claims.add(Claim.node_port(port.protocol, port.node_port))
    health = health_check_claim(svc)
    if health is not None:
        claims.add(health)
    return frozenset(claims)


@dataclass(frozen=True, slots=True)
class Assignment:
    claims: frozenset[Claim]
    errors: tuple[FieldError, ...]


def assign_service(
    svc: objects_pb2.Service,
    *,
    ips: ClusterIPAllocator,
    ports: NodePortAllocator,
    is_taken: Callable[[Claim], bool],
    held: frozenset[Claim] = frozenset(),
    rng: random.Random,
) -> Assignment:
    """Fill in `svc`'s missing clusterIP, nodePorts and healthCheckNodePort in place.

    `held` are the claims the Service already owns (on update): they count as
    free for it. Requested values out of range give field errors; a requested
    value that is taken is left to the store's transaction to refuse, so the
    answer is right even when the caller's view of `is_taken` is stale.
    Automatic picks go around every value the Service requests or already
    chose, held or not. As in Kubernetes, the healthCheckNodePort comes after
    the nodePorts; asking for one of the Service's own nodePorts is refused.
    Raises RangeFullError when an automatic pick finds nothing free.
    """
    found: list[FieldError] = []
    # What the Service asks for itself (a requested clusterIP only matters when none
    # is picked, so it does no harm here).
    requested = service_claims(svc)

    def taken(claim: Claim) -> bool:
        if claim in chosen or claim in requested:
            return True
        return claim not in held and is_taken(claim)

    chosen: set[Claim] = set()
    if needs_cluster_ip(svc):
        if svc.spec.cluster_ip:
            problem = ips.check_requested("spec.clusterIP", svc.spec.cluster_ip)
            if problem:
                found.append(problem)
        else:
            svc.spec.cluster_ip = ips.pick(taken, rng)
        if not found:
            chosen.add(Claim.cluster_ip(svc.spec.cluster_ip))
            del svc.spec.cluster_ips[:]
            svc.spec.cluster_ips.append(svc.spec.cluster_ip)
    else:
        del svc.spec.cluster_ips[:]
        if svc.spec.cluster_ip == "None":
            svc.spec.cluster_ips.append("None")

    if needs_node_ports(svc):
        for index, port in enumerate(svc.spec.ports):
            field = f"spec.ports[{index}].nodePort"
            if port.node_port:
                problem = ports.check_requested(field, port.node_port)
                if problem:
                    found.append(problem)
                    continue
            else:
                port.node_port = ports.pick(port.protocol, taken, rng)
            chosen.add(Claim.node_port(port.protocol, port.node_port))
    else:
        for port in svc.spec.ports:
            port.node_port = 0

    if needs_health_check(svc):
        problem = _assign_health_check_port(svc, ports, taken, chosen, rng)
        if problem:
            found.append(problem)
        else:
            chosen.add(Claim.node_port("TCP", svc.spec.health_check_node_port))
    else:
        svc.spec.health_check_node_port = 0
    return Assignment(frozenset(chosen), tuple(found))


def _assign_health_check_port(
    svc: objects_pb2.Service,
    ports: NodePortAllocator,
    taken: Callable[[Claim], bool],
    chosen: set[Claim],
    rng: random.Random,
) -> FieldError | None:
    """Kubernetes' allocHealthCheckNodePort, with the apiserver's field and wording;
    `chosen`: the Service's other claims, its nodePorts among them."""
    port = svc.spec.health_check_node_port
    if not port:
        svc.spec.health_check_node_port = ports.pick("TCP", taken, rng)
        return None
    problem = ports.check_requested(HEALTH_CHECK_FIELD, port)
    if problem:
        return problem
    if Claim.node_port("TCP", port) in chosen:
        return errors.invalid(HEALTH_CHECK_FIELD, port, PORT_TAKEN)
    return None


def keep_allocated_values(old: objects_pb2.Service, new: objects_pb2.Service) -> None:
    """On update, reconcile a manifest with what the server allocated, as Kubernetes does.

    A manifest that leaves out clusterIP, nodePorts or healthCheckNodePort
    keeps the allocated ones (`kubectl apply` of the same file twice changes
    nothing). When the type (or external policy) changes, values that only the
    old spec uses and that the user left as they were are dropped (Kubernetes'
    `dropTypeDependentFields`), so re-applying `get -o yaml` output with a new
    type works.
    """
    if needs_cluster_ip(new) and needs_cluster_ip(old) and not new.spec.cluster_ip:
        new.spec.cluster_ip = old.spec.cluster_ip
    if new.spec.cluster_ip == old.spec.cluster_ip and not new.spec.cluster_ips:
        new.spec.cluster_ips.extend(old.spec.cluster_ips)
    if not needs_cluster_ip(new) and needs_cluster_ip(old):
        if new.spec.cluster_ip == old.spec.cluster_ip:
            new.spec.cluster_ip = ""
        if list(new.spec.cluster_ips) == list(old.spec.cluster_ips):
            del new.spec.cluster_ips[:]
    old_ports = {p.node_port for p in old.spec.ports if p.node_port}
    if needs_node_ports(new) and needs_node_ports(old):
        by_port = {(p.port, p.protocol): p.node_port for p in old.spec.ports if p.node_port}
        by_name = {p.name: p.node_port for p in old.spec.ports if p.node_port and p.name}
        used = {p.node_port for p in new.spec.ports if p.node_port}
        for port in new.spec.ports:
            if port.node_port:
                continue
            kept = by_port.get((port.port, port.protocol)) or by_name.get(port.name)
            if kept and kept not in used:
                port.node_port = kept
                used.add(kept)
    elif not needs_node_ports(new):
        for port in new.spec.ports:
            if port.node_port in old_ports:
                port.node_port = 0
        external = ("NodePort", "LoadBalancer")
        if old.spec.type in external and not new.spec.external_ips:
            if new.spec.external_traffic_policy == old.spec.external_traffic_policy:
                new.spec.external_traffic_policy = ""
    # Kubernetes' patchAllocatedValues and dropTypeDependentFields for the health check
    # port: kept while both need one; dropped (so released) when the new spec needs none
    # and the user left the old value in it, e.g. re-applying `get -o yaml` output.
    old_health = old.spec.health_check_node_port
    if needs_health_check(new):
        if needs_health_check(old) and not new.spec.health_check_node_port:
            new.spec.health_check_node_port = old_health
    elif new.spec.health_check_node_port == old_health:
        new.spec.health_check_node_port = 0
