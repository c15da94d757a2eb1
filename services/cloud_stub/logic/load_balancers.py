"""What a cloud load balancer does with its spec (DESIGN §2.5). Pure logic, no I/O.

* `validate_spec`: field errors for a `LoadBalancerSpec`, named by the Service
  fields they come from (`spec.ports[1].protocol`), so a user sees what to fix;
  `normalized` fills the defaults (protocol TCP).
* `listener_keys` / `plan_listeners`: one listener per (ip, protocol, port); an
  Ensure closes the ones no longer wanted and opens the missing ones, and leaves
  the rest bound (a changed nodePort or node set is taken in place).
* `check_keys`: what proves each node healthy — HTTP GET
  `http://node:healthCheckNodePort/healthz` (200 = in rotation; kube-proxy answers
  503 when the node has no local endpoint) or, without one, a TCP connect to the
  nodePort of the first TCP port (a connect says nothing about a UDP port: a
  UDP-only load balancer without a health check port has no check, and its nodes
  count as healthy). Keys are values, so many load balancers share one check.
* `RoundRobin`: the next node for a new connection, among the healthy ones not
  tried yet. When no node is healthy it fails open and uses them all, as cloud
  load balancers do (AWS ELB, GCP) — a health check that is wrong everywhere at
  once is more likely than every node being down.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from kubelab.core import errors
from kubelab.core.endpoint_choice import Target
from kubelab.core.errors import FieldError
from kubelab.core.validation.meta import PROTOCOLS
from kubelab.core.validation.syntax import is_port_num
from kubelab.v1 import cloud_pb2

HEALTHZ_PATH = "/healthz"


def lb_name(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def normalized(spec: cloud_pb2.LoadBalancerSpec) -> cloud_pb2.LoadBalancerSpec:
    """A copy with defaults filled in: protocol "" → TCP."""
    out = cloud_pb2.LoadBalancerSpec()
    out.CopyFrom(spec)
    for port in out.ports:
        port.protocol = port.protocol or "TCP"
    return out


def _port_number(field: str, value: int) -> list[FieldError]:
    return [errors.invalid(field, value, problem) for problem in is_port_num(value)]


def validate_spec(spec: cloud_pb2.LoadBalancerSpec) -> list[FieldError]:
    """Every problem of a spec (defaults not yet applied); requested_ip is the pool's to
    check (`LbPool.check_requested`)."""
    found: list[FieldError] = []
    if not spec.namespace:
        found.append(errors.required("metadata.namespace"))
    if not spec.name:
        found.append(errors.required("metadata.name"))
    seen: set[tuple[str, int]] = set()
    for i, port in enumerate(spec.ports):
        field = f"spec.ports[{i}]"
        protocol = port.protocol or "TCP"
        if protocol not in PROTOCOLS:
            found.append(errors.not_supported(f"{field}.protocol", port.protocol, PROTOCOLS))
        found += _port_number(f"{field}.port", port.port)
        found += _port_number(f"{field}.nodePort", port.node_port)
        if (protocol, port.port) in seen:
            found.append(errors.duplicate(field, f"{port.port}/{protocol}"))
        seen.add((protocol, port.port))
    addresses: set[str] = set()
    for i, node in enumerate(spec.nodes):
        field = f"nodes[{i}].address"
        try:
            ipaddress.IPv4Address(node.address)
        except ValueError:
            found.append(errors.invalid(field, node.address, "must be a valid IPv4 address"))
            continue
        if node.address in addresses:
            found.append(errors.duplicate(field, node.address))
        addresses.add(node.address)
    if spec.health_check_node_port:
        found += _port_number("spec.healthCheckNodePort", spec.health_check_node_port)
    if spec.node_health_port:
        found += _port_number("nodeHealthPort", spec.node_health_port)
    for i, cidr in enumerate(spec.source_ranges):
        try:
            ipaddress.IPv4Network(cidr, strict=False)
        except ValueError:
            found.append(
                errors.invalid(f"spec.loadBalancerSourceRanges[{i}]", cidr, "must be an IPv4 CIDR")
            )
    return found


# ---------------------------------------------------------------------------- listeners


@dataclass(frozen=True, slots=True, order=True)
class ListenerKey:
    ip: str
    protocol: str
    port: int

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}/{self.protocol}"


def listener_keys(ip: str, spec: cloud_pb2.LoadBalancerSpec) -> frozenset[ListenerKey]:
    """The listeners a normalized spec needs at `ip`."""
    return frozenset(ListenerKey(ip, p.protocol, p.port) for p in spec.ports)


@dataclass(frozen=True, slots=True)
class ListenerPlan:
    close: tuple[ListenerKey, ...]
    open: tuple[ListenerKey, ...]

    @property
    def empty(self) -> bool:
        return not (self.close or self.open)


def plan_listeners(
    running: Collection[ListenerKey], desired: Collection[ListenerKey]
) -> ListenerPlan:
    return ListenerPlan(
        close=tuple(sorted(k for k in running if k not in desired)),
        open=tuple(sorted(k for k in desired if k not in running)),
    )


# ---------------------------------------------------------------------------- health


class CheckKind(StrEnum):
    TCP = "tcp"
    HTTP = "http"


@dataclass(frozen=True, slots=True, order=True)
class CheckKey:
    """One health check: a TCP connect to address:port, or an HTTP GET of /healthz."""

    address: str
    kind: CheckKind
    port: int

    def __str__(self) -> str:
        if self.kind == CheckKind.HTTP:
            return f"http://{self.address}:{self.port}{HEALTHZ_PATH}"
        return f"tcp://{self.address}:{self.port}"


def check_keys(spec: cloud_pb2.LoadBalancerSpec) -> dict[str, CheckKey]:
    """Node address → the check that keeps it in rotation (spec normalized). Empty when
    there is nothing to check (no health check port and no TCP port)."""
    tcp = [p.node_port for p in spec.ports if p.protocol == "TCP"]
    if spec.health_check_node_port:
        kind, port = CheckKind.HTTP, spec.health_check_node_port
    elif spec.node_health_port:
        kind, port = CheckKind.HTTP, spec.node_health_port
    elif tcp:
        kind, port = CheckKind.TCP, tcp[0]
    else:
        return {}
    return {node.address: CheckKey(node.address, kind, port) for node in spec.nodes}


# ---------------------------------------------------------------------------- choice


class RoundRobin:
    """The node choice for one listener. Stateful (its cursor) but free of I/O."""

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next = 0

    def pick(
        self,
        candidates: Sequence[Target],
        healthy: Callable[[Target], bool],
        tried: Collection[Target] = (),
    ) -> Target | None:
        """The next healthy candidate not in `tried`; all candidates when none is healthy
        (fail open); None when every one was tried."""
        pool = [t for t in candidates if healthy(t)] or list(candidates)
        pool = [t for t in pool if t not in tried]
        if not pool:
            return None
        target = pool[self._next % len(pool)]
        self._next += 1
        return target


def node_targets(nodes: Sequence[cloud_pb2.LoadBalancerNode], node_port: int) -> tuple[Target, ...]:
    return tuple(Target(node.address, node_port) for node in nodes)


def health_by_target(
    checks: Mapping[str, CheckKey], healthy: Callable[[CheckKey], bool]
) -> Callable[[Target], bool]:
    """A target's health is its node's check; a node with no check counts as healthy."""

    def judge(target: Target) -> bool:
        key = checks.get(target.ip)
        return key is None or healthy(key)

    return judge
