"""Services: defaults, static checks, update rules.

The rules are Kubernetes' (`pkg/apis/core/validation` ValidateService,
`core/v1` SetDefaults_Service), with their wording and field paths, including
two historical quirks kept on purpose so messages match what users search for:
source-range errors are at `spec.LoadBalancerSourceRanges[i]` (capital L), and
a duplicate port prints the Go struct Kubernetes compares.

Where kubelab differs, it is because kubelab is smaller:

* Single-stack IPv4. `spec.clusterIP` is the authority and errors name it, as
  Kubernetes did before dual-stack (1.19); `clusterIPs` is accepted when it
  agrees (`kubectl get -o yaml` output applies as is). An IPv6 clusterIP or
  loadBalancerIP is refused here rather than by an allocator.
* Protocols are TCP and UDP; SCTP gets `Unsupported value`.
* externalIPs are not refused for being loopback (Kubernetes'
  ValidateNonSpecialIP refuses them): embedded mode puts everything on
  127.0.0.0/8. Unspecified and link-local addresses are refused as there.
* Only what can be decided from the object alone is checked here. Ranges
  (service CIDR, NodePort range), conflicts and the healthCheckNodePort a
  `LoadBalancer` + `Local` Service needs belong to the allocator.
"""

from __future__ import annotations

import ipaddress
import json

from kubelab.core import errors
from kubelab.core.errors import FieldError
from kubelab.core.validation.meta import (
    IMMUTABLE,
    PROTOCOLS,
    GoLiteral,
    immutable,
    names,
    port_num_or_name,
    validate_labels,
    validate_object_meta,
)
from kubelab.core.validation.syntax import (
    PORT_RANGE_MSG,
    is_cidr,
    is_dns1035_label,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_ip,
    is_non_special_ip,
    is_port_num,
    is_qualified_name,
    parse_ip,
)
from kubelab.v1 import objects_pb2

CLUSTER_IP = "ClusterIP"
NODE_PORT = "NodePort"
LOAD_BALANCER = "LoadBalancer"
EXTERNAL_NAME = "ExternalName"
HEADLESS = "None"

# Supported-value lists are sorted, as Kubernetes prints them (sets.List).
SERVICE_TYPES = (CLUSTER_IP, EXTERNAL_NAME, LOAD_BALANCER, NODE_PORT)
SESSION_AFFINITIES = ("ClientIP", "None")
TRAFFIC_POLICIES = ("Cluster", "Local")
IP_FAMILIES = ("IPv4", "IPv6")
IP_FAMILY_POLICIES = ("PreferDualStack", "RequireDualStack", "SingleStack")

DEFAULT_CLIENT_IP_TIMEOUT = 10800
MAX_CLIENT_IP_TIMEOUT = 86400

_IPV4_ONLY = "must be an IPv4 address: kubelab is single-stack IPv4"


def externally_accessible(svc: objects_pb2.Service) -> bool:
    """Kubernetes' ExternallyAccessible: reachable from outside the cluster."""
    spec = svc.spec
    return spec.type in (LOAD_BALANCER, NODE_PORT) or (
        spec.type == CLUSTER_IP and len(spec.external_ips) > 0
    )


def needs_health_check(svc: objects_pb2.Service) -> bool:
    return svc.spec.type == LOAD_BALANCER and svc.spec.external_traffic_policy == "Local"


# ---------------------------------------------------------------- defaults


def default_service(svc: objects_pb2.Service) -> None:
    """Kubernetes' SetDefaults_Service (core/v1)."""
    spec = svc.spec
    if not spec.type:
        spec.type = CLUSTER_IP
    for port in spec.ports:
        if not port.protocol:
            port.protocol = "TCP"
        # targetPort 0 and "" both mean "unset" in Kubernetes: the port itself.
        if port.target_port in ("", "0"):
            port.target_port = str(port.port)
    if not spec.session_affinity:
        spec.session_affinity = "None"
    client_ip = spec.session_affinity_config.client_ip
    if spec.session_affinity == "ClientIP" and client_ip.timeout_seconds == 0:
        client_ip.timeout_seconds = DEFAULT_CLIENT_IP_TIMEOUT
    if not spec.external_traffic_policy and externally_accessible(svc):
        spec.external_traffic_policy = "Cluster"
    if not spec.internal_traffic_policy and spec.type != EXTERNAL_NAME:
        spec.internal_traffic_policy = "Cluster"


# ---------------------------------------------------------------- Service


def _ipv4(path: str, value: str) -> list[FieldError]:
    problems = is_ip(value)
    if not problems and not isinstance(parse_ip(value), ipaddress.IPv4Address):
        problems = [_IPV4_ONLY]
    return [errors.invalid(path, value, p) for p in problems]


def validate_service(svc: objects_pb2.Service) -> list[FieldError]:
    spec = svc.spec
    found = validate_object_meta(svc.metadata, namespaced=True, name_check=is_dns1035_label)
    headless = spec.cluster_ip == HEADLESS
    if not spec.ports and not headless and spec.type != EXTERNAL_NAME:
        found.append(errors.required("spec.ports"))
    if spec.type in (LOAD_BALANCER, NODE_PORT) and headless:
        found.append(
            errors.invalid(
                "spec.clusterIP", HEADLESS, f"may not be set to 'None' for {spec.type} services"
            )
        )
    if spec.type == EXTERNAL_NAME:
        found += _external_name_fields(spec)
    else:
        found += _cluster_ip_fields(spec)

    port_names: set[str] = set()
    for i, port in enumerate(spec.ports):
        found += _service_port(port, len(spec.ports) > 1, port_names, f"spec.ports[{i}]")
    found += validate_labels(spec.selector, "spec.selector")
    found += _session_affinity(spec)
    for i, ip in enumerate(spec.external_ips):
        found += names(f"spec.externalIPs[{i}]", ip, is_ip)
        found += names(f"spec.externalIPs[{i}]", ip, is_non_special_ip)

    if not spec.type:
        found.append(errors.required("spec.type"))
    elif spec.type not in SERVICE_TYPES:
        found.append(errors.not_supported("spec.type", spec.type, SERVICE_TYPES))
    found += _port_pairs(spec)

    if spec.load_balancer_source_ranges:
        # Kubernetes' own path, capital L included.
        path = "spec.LoadBalancerSourceRanges"
        if spec.type != LOAD_BALANCER:
            found.append(errors.forbidden(path, "may only be used when `type` is 'LoadBalancer'"))
        for i, value in enumerate(spec.load_balancer_source_ranges):
            # Space padding is tolerated, a leftover of the annotation it replaced.
            found += names(f"{path}[{i}]", value.strip(), is_cidr)
    if spec.load_balancer_ip:
        found += _ipv4("spec.loadBalancerIP", spec.load_balancer_ip)
    found += _traffic_policies(svc)
    return found


def _external_name_fields(spec: objects_pb2.ServiceSpec) -> list[FieldError]:
    found: list[FieldError] = []
    if spec.cluster_ip:
        found.append(errors.forbidden("spec.clusterIP", "may not be set for ExternalName services"))
    elif spec.cluster_ips:
        found.append(
            errors.forbidden("spec.clusterIPs", "may not be set for ExternalName services")
        )
    if spec.ip_families:
        found.append(
            errors.forbidden("spec.ipFamilies", "may not be set for ExternalName services")
        )
    if spec.ip_family_policy:
        found.append(
            errors.forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services")
        )
    # The value is a CNAME, which may end in a dot to say it is fully qualified.
    cname = spec.external_name.removesuffix(".")
    if cname:
        found += names("spec.externalName", cname, is_dns1123_subdomain)
    else:
        found.append(errors.required("spec.externalName"))
    return found


def _cluster_ip_fields(spec: objects_pb2.ServiceSpec) -> list[FieldError]:
    found: list[FieldError] = []
    if spec.cluster_ip not in ("", HEADLESS):
        found += _ipv4("spec.clusterIP", spec.cluster_ip)
    # clusterIPs follows clusterIP (the allocator writes both); empty means "the same".
    ips = list(spec.cluster_ips)
    listed = GoLiteral("[]string{" + ", ".join(json.dumps(ip) for ip in ips) + "}")
    if ips and not spec.cluster_ip:
        found.append(
            errors.invalid(
                "spec.clusterIPs", listed, "must be empty when `clusterIP` is not specified"
            )
        )
    elif ips and ips[0] != spec.cluster_ip:
        found.append(
            errors.invalid("spec.clusterIPs", listed, "first value must match `clusterIP`")
        )
    if ips and ips[0] == HEADLESS and len(ips) > 1:
        found.append(
            errors.invalid("spec.clusterIPs", listed, "'None' must be the first and only value")
        )
    for i, ip in enumerate(ips[1:], start=1):
        found += names(f"spec.clusterIPs[{i}]", ip, is_ip)
    seen: set[str] = set()
    for i, family in enumerate(spec.ip_families):
        if family not in IP_FAMILIES:
            found.append(errors.not_supported(f"spec.ipFamilies[{i}]", family, IP_FAMILIES))
        if family in seen:
            found.append(errors.duplicate(f"spec.ipFamilies[{i}]", family))
        seen.add(family)
    if spec.ip_family_policy and spec.ip_family_policy not in IP_FAMILY_POLICIES:
        found.append(
            errors.not_supported("spec.ipFamilyPolicy", spec.ip_family_policy, IP_FAMILY_POLICIES)
        )
    return found


def _service_port(
    port: objects_pb2.ServicePort, require_name: bool, seen: set[str], path: str
) -> list[FieldError]:
    found: list[FieldError] = []
    # Service port names are DNS-1123 labels (not IANA_SVC_NAMEs like container
    # ports): Kubernetes' validateServicePort; they name EndpointSlice ports and SRV records.
    if require_name and not port.name:
        found.append(errors.required(f"{path}.name"))
    elif port.name:
        found += names(f"{path}.name", port.name, is_dns1123_label)
        if port.name in seen:
            found.append(errors.duplicate(f"{path}.name", port.name))
        seen.add(port.name)
    found += [errors.invalid(f"{path}.port", port.port, p) for p in is_port_num(port.port)]
    if not port.protocol:
        found.append(errors.required(f"{path}.protocol"))
    elif port.protocol not in PROTOCOLS:
        found.append(errors.not_supported(f"{path}.protocol", port.protocol, PROTOCOLS))
    found += port_num_or_name(f"{path}.targetPort", port.target_port)
    if port.node_port and is_port_num(port.node_port):
        # Only the static bound; the NodePort range is the allocator's to enforce.
        found.append(errors.invalid(f"{path}.nodePort", port.node_port, PORT_RANGE_MSG))
    if port.app_protocol:
        found += names(f"{path}.appProtocol", port.app_protocol, is_qualified_name)
    return found


def _go_service_port(protocol: str, port: int) -> GoLiteral:
    # The key struct Kubernetes compares and prints with %#v.
    return GoLiteral(
        f'core.ServicePort{{Name:"", Protocol:{json.dumps(protocol)}, AppProtocol:(*string)(nil), '
        f'Port:{port}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:""}}, NodePort:0}}'
    )


def _port_pairs(spec: objects_pb2.ServiceSpec) -> list[FieldError]:
    found: list[FieldError] = []
    node_ports: set[tuple[str, int]] = set()
    ports: set[tuple[str, int]] = set()
    for i, port in enumerate(spec.ports):
        path = f"spec.ports[{i}]"
        if spec.type == CLUSTER_IP and port.node_port:
            found.append(
                errors.forbidden(f"{path}.nodePort", "may not be used when `type` is 'ClusterIP'")
            )
        if port.node_port:
            if (port.protocol, port.node_port) in node_ports:
                found.append(errors.duplicate(f"{path}.nodePort", port.node_port))
            node_ports.add((port.protocol, port.node_port))
        if (port.protocol, port.port) in ports:
            found.append(errors.duplicate(path, _go_service_port(port.protocol, port.port)))
        ports.add((port.protocol, port.port))
    return found


def _session_affinity(spec: objects_pb2.ServiceSpec) -> list[FieldError]:
    path = "spec.sessionAffinityConfig"
    if not spec.session_affinity:
        return [errors.required("spec.sessionAffinity")]
    if spec.session_affinity not in SESSION_AFFINITIES:
        return [
            errors.not_supported("spec.sessionAffinity", spec.session_affinity, SESSION_AFFINITIES)
        ]
    if spec.session_affinity == "None":
        if spec.HasField("session_affinity_config"):
            return [errors.forbidden(path, "must not be set when session affinity is None")]
        return []
    when = "when session affinity type is ClientIP"
    if not spec.HasField("session_affinity_config"):
        return [errors.required(path, when)]
    if not spec.session_affinity_config.HasField("client_ip"):
        return [errors.required(f"{path}.clientIP", when)]
    timeout = spec.session_affinity_config.client_ip.timeout_seconds
    # proto3 cannot tell an unset timeout from 0; defaulting turns both into 10800.
    if timeout == 0:
        return [errors.required(f"{path}.clientIP.timeoutSeconds", when)]
    if not 0 < timeout <= MAX_CLIENT_IP_TIMEOUT:
        return [
            errors.invalid(
                f"{path}.clientIP.timeoutSeconds",
                timeout,
                f"must be greater than 0 and less than {MAX_CLIENT_IP_TIMEOUT}",
            )
        ]
    return []


def _traffic_policies(svc: objects_pb2.Service) -> list[FieldError]:
    spec = svc.spec
    found: list[FieldError] = []
    etp = spec.external_traffic_policy
    if not externally_accessible(svc):
        if etp:
            found.append(
                errors.invalid(
                    "spec.externalTrafficPolicy",
                    etp,
                    "may only be set for externally-accessible services",
                )
            )
    elif not etp:
        found.append(errors.required("spec.externalTrafficPolicy"))
    elif etp not in TRAFFIC_POLICIES:
        found.append(errors.not_supported("spec.externalTrafficPolicy", etp, TRAFFIC_POLICIES))

    hc = spec.health_check_node_port
    if hc and not needs_health_check(svc):
        found.append(
            errors.invalid(
                "spec.healthCheckNodePort",
                hc,
                "may only be set when `type` is 'LoadBalancer' and "
                "`externalTrafficPolicy` is 'Local'",
            )
        )
    elif hc:
        found += [errors.invalid("spec.healthCheckNodePort", hc, p) for p in is_port_num(hc)]

    itp = spec.internal_traffic_policy
    if not itp and spec.type in (CLUSTER_IP, NODE_PORT, LOAD_BALANCER):
        found.append(errors.required("spec.internalTrafficPolicy"))
    elif itp and itp not in TRAFFIC_POLICIES:
        found.append(errors.not_supported("spec.internalTrafficPolicy", itp, TRAFFIC_POLICIES))
    return found


def validate_service_update(old: objects_pb2.Service, new: objects_pb2.Service) -> list[FieldError]:
    """A clusterIP, once set, stays, unless the type moves to or from ExternalName.

    An empty clusterIP in `new` means "keep the old one": the apiserver carries
    allocated values into a manifest that leaves them out
    (`allocators.keep_allocated_values`, Kubernetes' patchAllocatedValues).
    """
    found: list[FieldError] = []
    old_ip, new_ip = old.spec.cluster_ip, new.spec.cluster_ip
    external_name = EXTERNAL_NAME in (old.spec.type, new.spec.type)
    if not external_name and old_ip and new_ip and new_ip != old_ip:
        found.append(immutable("spec.clusterIP", new_ip))
    old_hc, new_hc = old.spec.health_check_node_port, new.spec.health_check_node_port
    if needs_health_check(old) and needs_health_check(new) and new_hc and new_hc != old_hc:
        found.append(errors.forbidden("spec.healthCheckNodePort", IMMUTABLE))
    return found
