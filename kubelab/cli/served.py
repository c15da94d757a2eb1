"""Where a Service answers: `get svc -o wide`'s SERVED-AT column and describe's
`Served At` lines, computed as every node proxy computes its listeners
(kubelab.core.proxy_rules.served_at) from live Nodes and the Service's slices."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kubelab.client import Client
from kubelab.core import kinds
from kubelab.core.keys import ObjectKey, key_of
from kubelab.core.kinds import SERVICE_NAME_LABEL
from kubelab.core.printing import NONE
from kubelab.core.proxy_rules import served_at
from kubelab.v1 import objects_pb2


async def live_node_addresses(client: Client) -> dict[str, list[str]]:
    """Each Ready node's InternalIPs: a NotReady node's proxy is not there to answer."""
    nodes, _ = await client.list(kinds.NODES.resource, "")
    found: dict[str, list[str]] = {}
    for node in nodes:
        if not isinstance(node, objects_pb2.Node):
            continue
        ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)
        if ready:
            found[node.metadata.name] = [
                a.address for a in node.status.addresses if a.type == "InternalIP"
            ]
    return found


async def service_slices(
    client: Client, service: objects_pb2.Service
) -> list[objects_pb2.EndpointSlice]:
    selector = f"{SERVICE_NAME_LABEL}={service.metadata.name}"
    items, _ = await client.list(
        kinds.ENDPOINTSLICES.resource, service.metadata.namespace, selector
    )
    return [s for s in items if isinstance(s, objects_pb2.EndpointSlice)]


def served_cell(
    service: objects_pb2.Service,
    slices: Sequence[objects_pb2.EndpointSlice],
    nodes: Mapping[str, Sequence[str]],
) -> str:
    places = [p for _, ps in served_at(service, slices, nodes) for p in ps]
    return ",".join(places) or NONE


async def served_cells(
    client: Client, services: Sequence[objects_pb2.Service]
) -> dict[ObjectKey, str]:
    """SERVED-AT for each Service; slices are read only where they matter (a Local
    external policy answers only on nodes with a local endpoint)."""
    nodes = await live_node_addresses(client)
    cells: dict[ObjectKey, str] = {}
    for svc in services:
        local = svc.spec.external_traffic_policy == "Local"
        slices = await service_slices(client, svc) if local else []
        cells[key_of(svc)] = served_cell(svc, slices, nodes)
    return cells
