"""Where a load balancer may forward: the cluster's Ready nodes, on its NodePorts. Pure.

The controller tells the cloud-stub which nodes and nodePorts to forward to, but
a cloud that forwards wherever it is told is an open relay: any caller of
EnsureLoadBalancer could have it carry traffic to any address and port it can
reach. So the cloud-stub takes the cluster's word, read from etcd, and uses the
request only to choose within it:

* `ClusterNodes`: every Node's InternalIP by name, and which ones a load balancer
  may use, by the very rule the controller builds its request with
  (`lb_requests.lb_nodes`: heartbeat alive, not labelled
  `node.kubernetes.io/exclude-from-external-load-balancers`, with an InternalIP),
  so the legitimate request passes unchanged.
* `forwardable`: the requested nodes the cluster confirms (same name, same
  address, usable); every other one is ignored, with a reason the load balancer
  reports as that node's `last_error`. Ignored, not refused: the controller's view
  and the cloud-stub's may differ for a moment (a node that has just turned
  Ready), and the cloud-stub re-applies whenever the cluster's nodes change, so a
  node ignored now joins when the cluster says so, and one that leaves the
  cluster leaves rotation without waiting for the controller.
* `port_problems`: each nodePort and the healthCheckNodePort must be a NodePort
  the cluster allocated (its claim in etcd); anything else is refused
  (INVALID_ARGUMENT naming the field), so nothing forwards to a node's other
  ports (its agent's API, sshd).
"""

from __future__ import annotations

from collections.abc import Collection, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from kubelab.core import errors
from kubelab.core.allocators import Claim
from kubelab.core.errors import FieldError
from kubelab.core.lb_requests import EXCLUDE_LABEL
from kubelab.core.node_routes import internal_ip
from kubelab.v1 import cloud_pb2, objects_pb2

__all__ = ["ClusterNodes", "cluster_nodes", "forwardable", "port_problems"]


@dataclass(frozen=True, slots=True)
class ClusterNodes:
    # Every Node that has an InternalIP, by name.
    addresses: Mapping[str, str] = field(default_factory=dict)
    # Names whose heartbeat lives.
    live: frozenset[str] = frozenset()
    # Names labelled out of external load balancers.
    excluded: frozenset[str] = frozenset()

    def usable(self) -> dict[str, str]:
        """The nodes a load balancer may forward to, name → address."""
        return {
            name: address
            for name, address in self.addresses.items()
            if name in self.live and name not in self.excluded
        }


def cluster_nodes(nodes: Iterable[objects_pb2.Node], live: Container[str]) -> ClusterNodes:
    addresses: dict[str, str] = {}
    alive: set[str] = set()
    excluded: set[str] = set()
    for node in nodes:
        name, address = node.metadata.name, internal_ip(node)
        if not address:
            continue
        addresses[name] = address
        if name in live:
            alive.add(name)
        if EXCLUDE_LABEL in node.metadata.labels:
            excluded.add(name)
    return ClusterNodes(addresses, frozenset(alive), frozenset(excluded))


def _ignored_because(node: cloud_pb2.LoadBalancerNode, cluster: ClusterNodes) -> str:
    address = cluster.addresses.get(node.name)
    if address is None:
        return f"not forwarded to: the cluster has no node {node.name} with an InternalIP"
    if address != node.address:
        return (
            f"not forwarded to: {node.address} is not the address of node {node.name} "
            f"(its InternalIP is {address})"
        )
    if node.name not in cluster.live:
        return f"not forwarded to: node {node.name} is not Ready"
    return f"not forwarded to: node {node.name} is excluded from external load balancers"


def forwardable(
    requested: Sequence[cloud_pb2.LoadBalancerNode], cluster: ClusterNodes
) -> tuple[tuple[cloud_pb2.LoadBalancerNode, ...], dict[str, str]]:
    """(the requested nodes to forward to, in request order; {name: why not} for the rest)."""
    usable = cluster.usable()
    kept: list[cloud_pb2.LoadBalancerNode] = []
    ignored: dict[str, str] = {}
    for node in requested:
        if usable.get(node.name) == node.address:
            kept.append(node)
        else:
            ignored[node.name] = _ignored_because(node, cluster)
    return tuple(kept), ignored


_NOT_A_NODE_PORT = (
    "is not a NodePort of the cluster: a load balancer forwards only to the NodePorts "
    "the apiserver allocated"
)


def port_problems(
    spec: cloud_pb2.LoadBalancerSpec, node_ports: Collection[Claim]
) -> list[FieldError]:
    """A field error for each port of a (normalized) spec that is no allocated NodePort."""
    found: list[FieldError] = []
    for i, port in enumerate(spec.ports):
        if Claim.node_port(port.protocol, port.node_port) not in node_ports:
            found.append(
                errors.invalid(f"spec.ports[{i}].nodePort", port.node_port, _NOT_A_NODE_PORT)
            )
    check = spec.health_check_node_port
    if check and Claim.node_port("TCP", check) not in node_ports:
        found.append(errors.invalid("spec.healthCheckNodePort", check, _NOT_A_NODE_PORT))
    return found
