"""Lab mode's host-gw routing, decided without I/O (DESIGN §5).

Every node container reaches another node's pods through that node: one route
per other node, `<its podCIDR> via <its InternalIP>` on the cluster network, the
way flannel's host-gw backend does it. `desired_routes` reads them off the Node
objects; `route_changes` says what to replace and what to delete to get there
from what is installed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

from kubelab.v1 import objects_pb2


def internal_ip(node: objects_pb2.Node) -> str | None:
    return next((a.address for a in node.status.addresses if a.type == "InternalIP"), None)


def desired_routes(nodes: Iterable[objects_pb2.Node], me: str) -> dict[str, str]:
    """`{pod CIDR: gateway}` for every other node with a valid IPv4 pod CIDR and an
    InternalIP. A CIDR claimed by two nodes (a misconfiguration) goes to the first by
    name, so every node decides the same."""
    routes: dict[str, str] = {}
    for node in sorted(nodes, key=lambda n: n.metadata.name):
        if node.metadata.name == me:
            continue
        gateway = internal_ip(node)
        if gateway is None or not _is_ipv4(gateway):
            continue
        for cidr in node.spec.pod_cidrs or [node.spec.pod_cidr]:
            network = _ipv4_network(cidr)
            if network is not None:
                routes.setdefault(str(network), gateway)
    return routes


def route_changes(
    installed: Mapping[str, str], desired: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """`(to replace: {cidr: gateway}, to delete: [cidr])`."""
    replace = {cidr: via for cidr, via in desired.items() if installed.get(cidr) != via}
    delete = sorted(cidr for cidr in installed if cidr not in desired)
    return replace, delete


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _ipv4_network(text: str) -> ipaddress.IPv4Network | None:
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    return network if isinstance(network, ipaddress.IPv4Network) else None


def installed_routes(ip_route_output: str) -> dict[str, str]:
    """`{destination: gateway}` of the `via` routes in `ip -4 route show` output: what the
    kernel really has, which can differ from what we installed (an interface removed and
    added again, on `docker network disconnect` and `connect`, takes its routes with it)."""
    routes: dict[str, str] = {}
    for line in ip_route_output.splitlines():
        words = line.split()
        if len(words) < 3 or words[1] != "via":
            continue
        network = _ipv4_network(words[0])
        if network is not None:
            routes[str(network)] = words[2]
    return routes
