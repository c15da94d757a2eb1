"""EndpointSlices and Nodes, the objects kubelab's own actors write.

The controller writes EndpointSlices, each node agent its Node; users rarely
do. Validating them anyway keeps invariant 5 (bad input is refused, naming the
field) true for every writer, and catches a buggy actor at the apiserver
instead of in every proxy. The rules are Kubernetes'
(`pkg/apis/discovery/validation`, ValidateNode / ValidateNodeUpdate), with
their wording and paths (an EndpointSlice has no `spec`: `endpoints[0]...`).

Where kubelab differs:

* Addresses are not refused for being loopback (Kubernetes' ValidateEndpointIP
  refuses them): embedded mode runs pods on 127.244.0.0/16. Unspecified,
  link-local and link-local multicast addresses are refused as there.
* An EndpointSlice port's empty protocol is read as TCP rather than defaulted:
  slices get no defaults here.
* A Node's address types are checked (Kubernetes only refuses duplicates), and
  the IP kinds must hold IPs.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence

from kubelab.core import errors
from kubelab.core.errors import FieldError
from kubelab.core.validation.meta import (
    PROTOCOLS,
    GoLiteral,
    immutable,
    names,
    too_many,
    validate_object_meta,
)
from kubelab.core.validation.syntax import (
    is_cidr,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_ip,
    is_ipv4,
    is_ipv6,
    is_non_special_ip,
    is_port_num,
    is_qualified_name,
)
from kubelab.v1 import objects_pb2

ADDRESS_TYPES = ("FQDN", "IPv4", "IPv6")
NODE_ADDRESS_TYPES = ("ExternalDNS", "ExternalIP", "Hostname", "InternalDNS", "InternalIP")
MAX_ENDPOINTS = 1000
MAX_ADDRESSES = 100
MAX_SLICE_PORTS = 100


# ---------------------------------------------------------------- EndpointSlice


def _fqdn(path: str, name: str) -> list[FieldError]:
    # Kubernetes' IsFullyQualifiedDomainName.
    name = name.removesuffix(".")
    problems = is_dns1123_subdomain(name)
    if problems:
        return [errors.invalid(path, name, ",".join(problems))]
    labels = name.split(".")
    if len(labels) < 2:
        return [
            errors.invalid(
                path, name, "should be a domain with at least two segments separated by dots"
            )
        ]
    for label in labels:
        problems = is_dns1123_label(label)
        if problems:
            return [errors.invalid(path, label, ",".join(problems))]
    return []


def validate_endpoint_slice(eps: objects_pb2.EndpointSlice) -> list[FieldError]:
    found = validate_object_meta(eps.metadata, namespaced=True, name_check=is_dns1123_subdomain)
    if not eps.address_type:
        found.append(errors.required("addressType"))
    elif eps.address_type not in ADDRESS_TYPES:
        found.append(errors.not_supported("addressType", eps.address_type, ADDRESS_TYPES))

    if len(eps.endpoints) > MAX_ENDPOINTS:
        found.append(too_many("endpoints", len(eps.endpoints), MAX_ENDPOINTS))
    else:
        for i, endpoint in enumerate(eps.endpoints):
            found += _endpoint(endpoint, eps.address_type, f"endpoints[{i}]")

    if len(eps.ports) > MAX_SLICE_PORTS:
        found.append(too_many("ports", len(eps.ports), MAX_SLICE_PORTS))
        return found
    seen: set[str] = set()
    for i, port in enumerate(eps.ports):
        path = f"ports[{i}]"
        if port.name:
            found += names(f"{path}.name", port.name, is_dns1123_label)
        # Two unnamed ports collide too: "" is a name here (Kubernetes).
        if port.name in seen:
            found.append(errors.duplicate(f"{path}.name", port.name))
        seen.add(port.name)
        # Empty reads as TCP: slices are not defaulted (Kubernetes defaults it to TCP).
        if port.protocol and port.protocol not in PROTOCOLS:
            found.append(errors.not_supported(f"{path}.protocol", port.protocol, PROTOCOLS))
        if port.HasField("port"):
            found += [errors.invalid(f"{path}.port", port.port, p) for p in is_port_num(port.port)]
        if port.app_protocol:
            found += names(f"{path}.appProtocol", port.app_protocol, is_qualified_name)
    return found


def _endpoint(endpoint: objects_pb2.Endpoint, address_type: str, path: str) -> list[FieldError]:
    found: list[FieldError] = []
    if not endpoint.addresses:
        found.append(errors.required(f"{path}.addresses", "must contain at least 1 address"))
    elif len(endpoint.addresses) > MAX_ADDRESSES:
        found.append(too_many(f"{path}.addresses", len(endpoint.addresses), MAX_ADDRESSES))
    for i, address in enumerate(endpoint.addresses):
        at = f"{path}.addresses[{i}]"
        # Unknown address types were reported above; their addresses are not checked.
        if address_type == "IPv4":
            found += names(at, address, is_ipv4) or names(at, address, is_non_special_ip)
        elif address_type == "IPv6":
            found += names(at, address, is_ipv6) or names(at, address, is_non_special_ip)
        elif address_type == "FQDN":
            found += _fqdn(at, address)
    if endpoint.node_name:
        found += names(f"{path}.nodeName", endpoint.node_name, is_dns1123_subdomain)
    if endpoint.hostname:
        found += names(f"{path}.hostname", endpoint.hostname, is_dns1123_label)
    return found


def validate_endpoint_slice_update(
    old: objects_pb2.EndpointSlice, new: objects_pb2.EndpointSlice
) -> list[FieldError]:
    if new.address_type != old.address_type:
        return [immutable("addressType", new.address_type)]
    return []


# ---------------------------------------------------------------- Node


def validate_node(node: objects_pb2.Node) -> list[FieldError]:
    found = validate_object_meta(node.metadata, namespaced=False, name_check=is_dns1123_subdomain)
    spec = node.spec
    if spec.pod_cidr:
        found += names("spec.podCIDR", spec.pod_cidr, is_cidr)
    for i, cidr in enumerate(spec.pod_cidrs):
        found += names(f"spec.podCIDRs[{i}]", cidr, is_cidr)
    if len(spec.pod_cidrs) > 1 and not _dual_stack_pair(spec.pod_cidrs):
        listed = GoLiteral("[]string{" + ", ".join(json.dumps(c) for c in spec.pod_cidrs) + "}")
        found.append(
            errors.invalid(
                "spec.podCIDRs", listed, "may specify no more than one CIDR for each IP family"
            )
        )
    if spec.pod_cidr and spec.pod_cidrs and spec.pod_cidrs[0] != spec.pod_cidr:
        found.append(
            errors.invalid("spec.podCIDRs", spec.pod_cidrs[0], "first value must match `podCIDR`")
        )
    seen: set[tuple[str, str]] = set()
    for i, address in enumerate(node.status.addresses):
        path = f"status.addresses[{i}]"
        if not address.type:
            found.append(errors.required(f"{path}.type"))
        elif address.type not in NODE_ADDRESS_TYPES:
            found.append(errors.not_supported(f"{path}.type", address.type, NODE_ADDRESS_TYPES))
        if not address.address:
            found.append(errors.required(f"{path}.address"))
        elif address.type in ("InternalIP", "ExternalIP"):
            found += names(f"{path}.address", address.address, is_ip)
        key = (address.type, address.address)
        if key in seen:
            literal = (
                f"core.NodeAddress{{Type:{json.dumps(address.type)}, "
                f"Address:{json.dumps(address.address)}}}"
            )
            found.append(errors.duplicate(path, GoLiteral(literal)))
        seen.add(key)
    return found


def _dual_stack_pair(cidrs: Sequence[str]) -> bool:
    """Kubernetes' IsDualStackCIDRStrings, for at most two: one IPv4 and one IPv6."""
    if len(cidrs) != 2 or any(is_cidr(c) for c in cidrs):
        return False
    versions = {ipaddress.ip_network(c, strict=False).version for c in cidrs}
    return versions == {4, 6}


def validate_node_update(old: objects_pb2.Node, new: objects_pb2.Node) -> list[FieldError]:
    """A node's podCIDR may go from "" to a value, never change (Kubernetes)."""
    found: list[FieldError] = []
    detail = 'node updates may not change podCIDR except from "" to valid'
    if old.spec.pod_cidr and new.spec.pod_cidr != old.spec.pod_cidr:
        found.append(errors.forbidden("spec.podCIDR", detail))
    if old.spec.pod_cidrs and list(new.spec.pod_cidrs) != list(old.spec.pod_cidrs):
        found.append(errors.forbidden("spec.podCIDRs", detail))
    return found
