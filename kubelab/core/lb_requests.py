"""What the controller asks the cloud for a `type: LoadBalancer` Service, and what status it
writes back (DESIGN §2.5). Pure, no I/O: the controller's load balancer reconciler
(`services/controller/load_balancers.py`) does the calls.

* `load_balancer_spec`: a Service and the cluster's Nodes → the `LoadBalancerSpec`
  for `CloudProvider.EnsureLoadBalancer`: every port with its nodePort; the Ready
  nodes (a live lease) at their InternalIP, minus those labelled
  `node.kubernetes.io/exclude-from-external-load-balancers` (Kubernetes' service
  controller leaves them out too); `spec.healthCheckNodePort` passed through (set
  for `externalTrafficPolicy: Local`, so the cloud sends only to nodes whose proxy
  says they have a local endpoint); the requested address and source ranges, from
  the spec or from the annotations users bring from other clouds:
  - `metallb.universe.tf/loadBalancerIPs` (MetalLB): a comma-separated list, one
    address per IP family; kubelab is IPv4 only, so the FIRST address is the one
    requested. Set together with a different `spec.loadBalancerIP` it is refused,
    as MetalLB refuses it, rather than one silently winning;
  - `service.beta.kubernetes.io/load-balancer-source-ranges`: comma-separated
    CIDRs, used only when `spec.loadBalancerSourceRanges` is empty (Kubernetes'
    `GetLoadBalancerSourceRanges`).
  Annotation values are checked here (the apiserver does not look into
  annotations): a bad one is an `InvalidRequestError` naming the annotation.
* `Outcome`: how one sync ended — provisioned at an IP, or why not — and
  `cloud_failure` turns the cloud's gRPC status (code name and message) into one,
  with a reason a user can act on; `Outcome.retry` says when to try again.
* `desired_status`: the Service status to write for an outcome: ingress
  `[{ip}]` and the condition `LoadBalancerProvisioned` (True/False, reason,
  message, observedGeneration; lastTransitionTime moves only when the status
  flips). Conditions of other types are kept. The caller writes only when it
  differs from what is stored, so a sync that changes nothing writes nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Container, Iterable
from dataclasses import dataclass
from enum import StrEnum

from kubelab.core import errors
from kubelab.core.node_routes import internal_ip
from kubelab.core.proxy_rules import NODE_HEALTH_PORT
from kubelab.core.validation.services import LOAD_BALANCER
from kubelab.v1 import cloud_pb2, meta_pb2, objects_pb2

CONDITION_TYPE = "LoadBalancerProvisioned"
IP_ANNOTATION = "metallb.universe.tf/loadBalancerIPs"
SOURCE_RANGES_ANNOTATION = "service.beta.kubernetes.io/load-balancer-source-ranges"
EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"

_IP_FIELD = "spec.loadBalancerIP"
_SOURCE_RANGES_FIELD = "spec.loadBalancerSourceRanges"
# The cloud-stub's words for a listener it could not bind (services/cloud_stub/forwarding.py).
_BIND_FAILURE = "cannot listen on"
_FIRST_UNPRIVILEGED_PORT = 1024


class Reason(StrEnum):
    PROVISIONED = "Provisioned"
    # No free address in the cloud's pool: waits for one to be released.
    POOL_EXHAUSTED = "PoolExhausted"
    # The requested address is another Service's: waits for it to be released.
    ADDRESS_UNAVAILABLE = "AddressUnavailable"
    # The cloud refused the request (an address outside its pool, a bad annotation).
    INVALID_SPEC = "InvalidLoadBalancerSpec"
    # A listener below port 1024 and a cloud-stub without the privilege for it.
    PRIVILEGED_PORT = "PrivilegedPort"
    # A listener could not be bound for another reason (the address:port is in use).
    LISTENER_UNAVAILABLE = "ListenerUnavailable"
    # The cloud does not answer (down, restarting, or its etcd is away).
    CLOUD_UNAVAILABLE = "CloudProviderUnavailable"
    # The controller runs without --cloud.
    NO_CLOUD = "NoCloudProvider"
    # Anything else the cloud answered (Kubernetes' event reason for a failed Ensure).
    SYNC_FAILED = "SyncLoadBalancerFailed"


class Retry(StrEnum):
    NEVER = "never"  # until the Service (or the node set) changes
    # Periodically, and at once when any load balancer is released: the address or
    # privilege it waits for may appear without the Service changing.
    PENDING = "pending"
    BACKOFF = "backoff"  # the work queue's exponential back-off


_RETRY = {
    Reason.PROVISIONED: Retry.NEVER,
    Reason.POOL_EXHAUSTED: Retry.PENDING,
    Reason.ADDRESS_UNAVAILABLE: Retry.PENDING,
    Reason.INVALID_SPEC: Retry.NEVER,
    Reason.PRIVILEGED_PORT: Retry.PENDING,
    Reason.LISTENER_UNAVAILABLE: Retry.PENDING,
    Reason.CLOUD_UNAVAILABLE: Retry.BACKOFF,
    Reason.NO_CLOUD: Retry.NEVER,
    Reason.SYNC_FAILED: Retry.BACKOFF,
}


class InvalidRequestError(Exception):
    """The Service cannot become a valid request (a bad annotation); nothing is asked."""


def wants_load_balancer(svc: objects_pb2.Service | None) -> bool:
    return svc is not None and svc.spec.type == LOAD_BALANCER


def shows_load_balancer(svc: objects_pb2.Service) -> bool:
    """The status carries something of ours (an ingress or our condition)."""
    return bool(svc.status.load_balancer.ingress) or any(
        c.type == CONDITION_TYPE for c in svc.status.conditions
    )


def _annotation_field(name: str) -> str:
    return f"metadata.annotations[{name}]"


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def requested_ip(svc: objects_pb2.Service) -> str:
    """The address asked for ("" for any). Raises InvalidRequestError."""
    from_spec = svc.spec.load_balancer_ip.strip()
    annotation = svc.metadata.annotations.get(IP_ANNOTATION, "")
    if not annotation.strip():
        return from_spec
    field = _annotation_field(IP_ANNOTATION)
    first = _split(annotation)[0] if _split(annotation) else ""
    try:
        ipaddress.IPv4Address(first)
    except ValueError:
        problem = errors.invalid(field, annotation, "must start with an IPv4 address")
        raise InvalidRequestError(str(problem)) from None
    if from_spec and from_spec != first:
        detail = f'conflicts with {_IP_FIELD} "{from_spec}": set only one of them'
        raise InvalidRequestError(str(errors.invalid(field, annotation, detail)))
    return first


def source_ranges(svc: objects_pb2.Service) -> tuple[str, ...]:
    """The CIDRs allowed in (empty: everyone). Raises InvalidRequestError."""
    if svc.spec.load_balancer_source_ranges:
        return tuple(r.strip() for r in svc.spec.load_balancer_source_ranges)
    annotation = svc.metadata.annotations.get(SOURCE_RANGES_ANNOTATION, "")
    ranges = _split(annotation)
    for cidr in ranges:
        try:
            ipaddress.IPv4Network(cidr, strict=False)
        except ValueError:
            detail = f'"{cidr}" is not an IPv4 CIDR (e.g. 127.0.0.0/8)'
            problem = errors.invalid(
                _annotation_field(SOURCE_RANGES_ANNOTATION), annotation, detail
            )
            raise InvalidRequestError(str(problem)) from None
    return tuple(ranges)


def lb_nodes(
    nodes: Iterable[objects_pb2.Node], live: Container[str]
) -> tuple[cloud_pb2.LoadBalancerNode, ...]:
    """The nodes a load balancer forwards to, by name: Ready (`live`: names whose lease
    lives), not excluded by label, with an InternalIP."""
    chosen = []
    for node in sorted(nodes, key=lambda n: n.metadata.name):
        name = node.metadata.name
        address = internal_ip(node)
        if name in live and EXCLUDE_LABEL not in node.metadata.labels and address:
            chosen.append(cloud_pb2.LoadBalancerNode(name=name, address=address))
    return tuple(chosen)


def load_balancer_spec(
    svc: objects_pb2.Service,
    nodes: Iterable[cloud_pb2.LoadBalancerNode],
    *,
    node_health_port: int = NODE_HEALTH_PORT,
) -> cloud_pb2.LoadBalancerSpec:
    """The Ensure request for `svc` in front of `nodes` (see `lb_nodes`). A port without a
    nodePort yet (never, once the apiserver stored the Service) is left out. Nodes are
    checked on the Service's healthCheckNodePort when it has one (Local), else on their
    proxy's own health port (`node_health_port`, 0: a TCP connect to the nodePort)."""
    return cloud_pb2.LoadBalancerSpec(
        namespace=svc.metadata.namespace,
        name=svc.metadata.name,
        uid=svc.metadata.uid,
        requested_ip=requested_ip(svc),
        ports=[
            cloud_pb2.LoadBalancerPort(
                name=p.name, protocol=p.protocol or "TCP", port=p.port, node_port=p.node_port
            )
            for p in svc.spec.ports
            if p.node_port
        ],
        nodes=list(nodes),
        health_check_node_port=svc.spec.health_check_node_port,
        source_ranges=source_ranges(svc),
        node_health_port=node_health_port,
    )


# ---------------------------------------------------------------------------- outcomes


@dataclass(frozen=True, slots=True)
class Outcome:
    reason: Reason
    message: str
    # The address the load balancer answers on; "" none; None unknown (the status keeps
    # the address it shows: a refused change leaves the load balancer where it was).
    ip: str | None = None

    @property
    def provisioned(self) -> bool:
        return self.reason is Reason.PROVISIONED

    @property
    def retry(self) -> Retry:
        return _RETRY[self.reason]


def provisioned(ip: str, spec: cloud_pb2.LoadBalancerSpec) -> Outcome:
    count = len(spec.nodes)
    where = (
        f"forwarding to the NodePorts of {count} node{'s' if count != 1 else ''}"
        if count
        else "no Ready node to forward to yet"
    )
    return Outcome(Reason.PROVISIONED, f"load balancer on {ip}, {where}", ip)


def no_cloud() -> Outcome:
    return Outcome(
        Reason.NO_CLOUD,
        "no cloud provider: the controller runs without --cloud, so nothing hands out "
        "external IPs (`kubelab up` starts the cloud-stub and passes it)",
        "",
    )


def invalid_request(err: InvalidRequestError) -> Outcome:
    return Outcome(Reason.INVALID_SPEC, str(err))


def is_bind_failure(code: str, message: str) -> bool:
    """The cloud's answer that the load balancer exists but a listener is not bound (as
    opposed to the cloud not answering at all)."""
    return code == "UNAVAILABLE" and message.startswith(_BIND_FAILURE)


def _privileged_hint(message: str, svc: objects_pb2.Service) -> str:
    low = sorted(p.port for p in svc.spec.ports if 0 < p.port < _FIRST_UNPRIVILEGED_PORT)
    first = low[0] if low else _FIRST_UNPRIVILEGED_PORT - 1
    return (
        f"{message}: ports below {_FIRST_UNPRIVILEGED_PORT} need privileges the cloud-stub "
        "does not have; allow them with `sudo sysctl -w "
        f"net.ipv4.ip_unprivileged_port_start={first}` (or give the cloud-stub "
        f"CAP_NET_BIND_SERVICE), or use a port >= {_FIRST_UNPRIVILEGED_PORT}"
    )


def cloud_failure(
    code: str, message: str, svc: objects_pb2.Service, *, ip: str | None = None
) -> Outcome:
    """How an Ensure that answered gRPC status `code` (its name, e.g. "UNAVAILABLE") with
    `message` reads to a user. `ip`: where the load balancer answers, when known."""
    if IP_ANNOTATION in svc.metadata.annotations and not svc.spec.load_balancer_ip:
        # The cloud names the request's field; the user wrote the annotation.
        message = message.replace(_IP_FIELD, _annotation_field(IP_ANNOTATION))
    if not svc.spec.load_balancer_source_ranges:
        message = message.replace(_SOURCE_RANGES_FIELD, _annotation_field(SOURCE_RANGES_ANNOTATION))
    match code:
        case "RESOURCE_EXHAUSTED":
            return Outcome(Reason.POOL_EXHAUSTED, message, "")
        case "ALREADY_EXISTS":
            return Outcome(Reason.ADDRESS_UNAVAILABLE, message, ip)
        case "INVALID_ARGUMENT":
            return Outcome(Reason.INVALID_SPEC, message, ip)
        case "UNAVAILABLE" if is_bind_failure(code, message):
            if "Permission denied" in message:
                return Outcome(Reason.PRIVILEGED_PORT, _privileged_hint(message, svc), ip)
            return Outcome(Reason.LISTENER_UNAVAILABLE, message, ip)
        case "UNAVAILABLE" | "DEADLINE_EXCEEDED" | "CANCELLED":
            return Outcome(
                Reason.CLOUD_UNAVAILABLE, f"the cloud provider does not answer: {message}"
            )
    return Outcome(Reason.SYNC_FAILED, f"{code}: {message}", ip)


# ---------------------------------------------------------------------------- status


def desired_status(
    svc: objects_pb2.Service, outcome: Outcome | None, *, now: float
) -> objects_pb2.ServiceStatus:
    """The status `svc` should have after `outcome`; None: `svc` is no load balancer (any
    ingress and our condition go). `now` (seconds) stamps a condition that flips."""
    status = objects_pb2.ServiceStatus()
    status.CopyFrom(svc.status)
    previous = next((c for c in status.conditions if c.type == CONDITION_TYPE), None)
    if outcome is None:
        status.ClearField("load_balancer")
        kept = [c for c in status.conditions if c.type != CONDITION_TYPE]
        del status.conditions[:]
        status.conditions.extend(kept)
        return status
    if outcome.ip is not None:
        status.ClearField("load_balancer")
        if outcome.ip:
            status.load_balancer.ingress.add(ip=outcome.ip)
    condition = meta_pb2.Condition(
        type=CONDITION_TYPE,
        status="True" if outcome.provisioned else "False",
        reason=outcome.reason.value,
        message=outcome.message,
        observed_generation=svc.metadata.generation,
    )
    if previous is not None and previous.status == condition.status:
        condition.last_transition_time.CopyFrom(previous.last_transition_time)
    else:
        condition.last_transition_time.seconds = int(now)
    if previous is not None:
        previous.CopyFrom(condition)  # in place: the order of conditions stays
    else:
        status.conditions.append(condition)
    return status
