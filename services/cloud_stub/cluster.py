"""The cluster as the cloud-stub sees it: which nodes a load balancer may forward to,
and which NodePorts exist (`services.cloud_stub.logic.lb_targets`), read from etcd, never from a
request.

Nodes and heartbeats are followed with informers (the controller's sources, so
both actors judge "Ready" from the same keys); `changed` is set whenever either
moves, and the provider re-applies its load balancers then. An Ensure naming a
node they do not confirm reads the nodes afresh first. The NodePort claims
are read fresh for each Ensure: a Service's claim is written in the same
transaction as the Service, before the controller can ask for its load balancer.
"""

from __future__ import annotations

import asyncio

from kubelab.core import kinds
from kubelab.core.allocators import Claim, ClaimKind
from kubelab.runtime import sources
from kubelab.store import Store
from services.cloud_stub.logic.lb_targets import ClusterNodes, cluster_nodes


class ClusterView:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.nodes = sources.objects(store, kinds.NODES)
        self.heartbeats = sources.heartbeats(store)
        self.changed = asyncio.Event()
        for informer in (self.nodes, self.heartbeats):
            informer.on_change(lambda key, old, new: self.changed.set())

    async def run(self) -> None:
        """Follow the cluster until cancelled (the informers retry while etcd is away)."""
        await asyncio.gather(self.nodes.run(), self.heartbeats.run())

    async def synced(self) -> None:
        await self.nodes.synced.wait()
        await self.heartbeats.synced.wait()

    def current(self) -> ClusterNodes:
        nodes = list(self.nodes.cache.values())
        return cluster_nodes(nodes, self.heartbeats.cache)

    async def fresh(self) -> ClusterNodes:
        """Read straight from etcd, for a request naming a node the informers have not
        seen yet (the controller may have seen its heartbeat first)."""
        nodes, _ = await self.store.list(kinds.NODES)
        live, _ = await self.store.live_nodes()
        return cluster_nodes(nodes, live)

    async def node_ports(self) -> set[Claim]:
        claims, _ = await self.store.list_claims(ClaimKind.NODE_PORT)
        return set(claims)
