"""Lab-mode networking for a node container with NET_ADMIN (DESIGN §5, lab mode).

In embedded mode every address is on loopback and nothing needs doing. In a container:

* **Pods' own addresses.** The node's podCIDR (10.244.N.0/24) becomes a *local* route on
  the loopback interface, as 127.0.0.0/8 is: every address in it belongs to this node, so
  each pod process binds its POD_IP without a per-pod command, and other nodes' packets
  for it are taken in. (Loopback rather than a dummy interface: not every kernel has the
  dummy driver, and every one has `lo`.)
* **ClusterIPs.** The service CIDR is a local route on loopback too, so a pod or a
  process of the node connecting to a ClusterIP reaches this node's proxy, whose
  listeners bind every ClusterIP:port (IP_FREEBIND). No other host has that route: a
  client outside the cluster cannot reach a ClusterIP, as the seed says.
* **Pods of other nodes.** host-gw: a route `<podCIDR> via <InternalIP>` per other
  node, kept in step with the Node objects (`kubelab.core.node_routes`).
* **Cluster DNS.** The DNS address (10.96.0.10) is in the service CIDR, so it is local
  here too; a relay on it forwards UDP and TCP port 53 to the DNS actor's container,
  the way NodeLocal DNSCache sits on every node.

The kernel is driven with iproute2's `ip`, present in the image: a handful of
commands at start and one per node change, none per pod or per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from kubelab.core import kinds
from kubelab.core.endpoint_choice import Target
from kubelab.core.keys import ObjectKey
from kubelab.core.node_routes import desired_routes, installed_routes, route_changes
from kubelab.relay import TcpListener, UdpListener, serve_tcp, serve_udp
from kubelab.relay.static import StaticRoute
from kubelab.runtime import sources
from kubelab.runtime.informer import Informer
from kubelab.store import Store
from kubelab.v1 import objects_pb2

log = logging.getLogger("node_agent.network")

INTERFACE = "lo"
_RECHECK = 1.0  # also how soon a failed route change is tried again


class IpCommandError(Exception):
    """`ip` failed; the message has its arguments and what it printed."""


async def ip_output(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "ip",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise IpCommandError(f"ip {' '.join(args)}: {err.decode(errors='replace').strip()}")
    return out.decode(errors="replace")


async def ip(*args: str) -> None:
    await ip_output(*args)


@dataclass(frozen=True, slots=True)
class LabNetworkConfig:
    node_name: str
    pod_cidr: str
    service_cidr: str
    cluster_cidr: str = ""  # every node's pods, e.g. 10.244.0.0/16
    cluster_dns: str = ""  # e.g. 10.96.0.10; "" for none
    dns_upstream: Target | None = None  # the DNS actor's address


class LabNetwork:
    def __init__(self, store: Store, config: LabNetworkConfig) -> None:
        self.config = config
        self.nodes: Informer[ObjectKey, objects_pb2.Node] = sources.objects(store, kinds.NODES)
        self.routes: dict[str, str] = {}  # installed: pod CIDR -> gateway
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._dns: list[TcpListener | UdpListener] = []

    async def start(self) -> None:
        """Set up this node's own routes and the DNS forward; then keep the routes to
        other nodes in step. Raises IpCommandError when the container may not (no
        NET_ADMIN): lab mode cannot work without it, better to say so at once."""
        for cidr in (self.config.pod_cidr, self.config.service_cidr):
            await ip("route", "replace", "local", cidr, "dev", INTERFACE)
        if self.config.cluster_cidr:
            # Pods of a node we have no route to (yet) are unreachable here, at once,
            # rather than sent to the default gateway and out of the lab.
            await ip("route", "replace", "unreachable", self.config.cluster_cidr)
        log.info(
            "lab network: %s and %s local on %s",
            self.config.pod_cidr,
            self.config.service_cidr,
            INTERFACE,
        )
        await self._forward_dns()
        self.nodes.on_change(lambda *_: self._changed.set())
        self._tasks = [
            asyncio.create_task(self.nodes.run()),
            asyncio.create_task(self._keep_routes()),
        ]

    async def _forward_dns(self) -> None:
        upstream = self.config.dns_upstream
        if not self.config.cluster_dns or upstream is None:
            return
        route = StaticRoute(upstream)
        address = self.config.cluster_dns
        self._dns = [
            await serve_udp(route, address, 53, free_bind=True),
            await serve_tcp(route, address, 53, free_bind=True),
        ]
        log.info("lab network: DNS %s:53 forwarded to %s", address, upstream)

    async def _keep_routes(self) -> None:
        """Level-triggered: on every Node change and every `_RECHECK` seconds, compare
        what the kernel has with what the Nodes say. The kernel can lose routes behind
        our back: a network disconnected and connected again comes back as a new
        interface without them."""
        await self.nodes.synced.wait()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), _RECHECK)
            self._changed.clear()
            nodes = list(self.nodes.cache.values())
            desired = desired_routes(nodes, self.config.node_name)
            try:
                kernel = installed_routes(await ip_output("-4", "route", "show"))
            except IpCommandError as err:
                log.warning("lab network: %s", err)
                continue
            # Ours are the routes we installed or want; the kernel's others are not ours.
            self.routes = {c: g for c, g in kernel.items() if c in desired or c in self.routes}
            replace, delete = route_changes(self.routes, desired)
            # A change that fails (a gateway not reachable yet, say) is tried again at
            # the next recheck, like any difference from what the Nodes say.
            for cidr, gateway in replace.items():
                if await self._run(("route", "replace", cidr, "via", gateway)):
                    self.routes[cidr] = gateway
                    log.info("lab network: route %s via %s", cidr, gateway)
            for cidr in delete:
                # A route already gone ("No such process") is as good as deleted.
                if await self._run(("route", "del", cidr), ok_if="No such process"):
                    del self.routes[cidr]
                    log.info("lab network: route %s removed", cidr)

    @staticmethod
    async def _run(args: Sequence[str], ok_if: str = "") -> bool:
        try:
            await ip(*args)
        except IpCommandError as err:
            if ok_if and ok_if in str(err):
                return True
            log.warning("lab network: %s", err)
            return False
        return True

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for listener in self._dns:
            listener.close()
        # The routes stay: the container's namespace goes with the container, and a
        # restarted agent replaces them.
