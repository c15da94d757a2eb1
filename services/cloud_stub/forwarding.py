"""One load balancer's data plane: its listeners, where they forward, what they carried.

A `LoadBalancerRuntime` holds one listener per (ip, protocol, port) of its spec
(`kubelab.relay`: TCP via `serve_tcp`, UDP via `serve_udp`, bound with
IP_FREEBIND since a pool address need not sit on any interface) and a route per
listener. `update(spec, ip)` applies a new spec in place: listeners whose
(ip, protocol, port) is still wanted stay bound, and every route reads the
current node set and nodePort, so a node or nodePort change needs no rebind.
The health checks of nodes it adds are run (awaited) before any traffic is
routed to them.

Only the nodes of the spec that the cluster confirms are forwarded to
(`services.cloud_stub.logic.lb_targets.forwardable`: a Ready node of the cluster, at its
InternalIP); each other one is logged once and reported as unhealthy with the
reason. `update` is called again when the cluster's nodes change.

Each new connection (UDP flow) goes to the next healthy node's nodePort, round
robin (`services.cloud_stub.logic.load_balancers.RoundRobin`, failing open when no node is
healthy). A client outside `spec.source_ranges` gets a reset. A connect that
fails takes the node out of rotation at once and the relay retries another.

Connections: a removed port's (and a deleted load balancer's) connections are
reset, as a cloud load balancer that drops a listener does; a node that left
the spec or turned unhealthy keeps its TCP connections until they end, while
its UDP flows are closed so the client's next datagram picks again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from kubelab.core.endpoint_choice import Target
from kubelab.obs.logs import kobj
from kubelab.relay import Connection, Flow, TcpListener, UdpListener, serve_tcp, serve_udp
from kubelab.v1 import cloud_pb2
from services.cloud_stub.health import HealthChecker
from services.cloud_stub.logic.lb_targets import ClusterNodes, forwardable
from services.cloud_stub.logic.load_balancers import (
    CheckKey,
    ListenerKey,
    RoundRobin,
    check_keys,
    health_by_target,
    listener_keys,
    node_targets,
    plan_listeners,
)
from services.cloud_stub.logic.snapshot import ForwardingEntry
from services.cloud_stub.logic.source_ranges import parse_ranges, source_allowed

log = logging.getLogger("cloud_stub.forwarding")


class _Listener(Protocol):
    def close(self) -> None: ...


# Takes over a listener bound before this runtime existed (`services.cloud_stub.early`),
# by (ip, protocol, port); None when there is none.
Adopt = Callable[[tuple[str, str, int]], TcpListener | UdpListener | None]


class BindError(OSError):
    """Some listeners could not be bound (the address and port are taken by something
    else); the load balancer is stored, and the next Ensure tries again."""


@dataclass(slots=True)
class LbStats:
    """Counters of one load balancer: plain ints on the hot path, read at scrape time."""

    connections: int = 0
    flows: int = 0
    refused_source: int = 0
    refused_no_node: int = 0
    connect_failures: int = 0
    ignored_nodes: int = 0  # times a requested node was found not to be the cluster's
    closed_bytes_in: int = 0
    closed_bytes_out: int = 0
    open: dict[ListenerKey, set[Connection]] = field(default_factory=dict)
    open_flows: dict[ListenerKey, set[Flow]] = field(default_factory=dict)

    def bytes_in(self) -> int:
        live = sum(c.bytes_from_client for conns in self.open.values() for c in conns)
        flows = sum(f.bytes_from_client for fs in self.open_flows.values() for f in fs)
        return self.closed_bytes_in + live + flows

    def bytes_out(self) -> int:
        live = sum(c.bytes_to_client for conns in self.open.values() for c in conns)
        flows = sum(f.bytes_to_client for fs in self.open_flows.values() for f in fs)
        return self.closed_bytes_out + live + flows

    def active(self) -> int:
        return sum(len(conns) for conns in self.open.values())


class _PortRoute:
    """A listener's Route (TCP) and UdpRoute (UDP): the load balancer's choice for it."""

    def __init__(self, lb: LoadBalancerRuntime, key: ListenerKey) -> None:
        self.lb = lb
        self.key = key
        self.rotation = RoundRobin()
        self.connect_timeout = lb.connect_timeout

    def pick(self, client_ip: str, tried: Sequence[Target]) -> Target | None:
        lb = self.lb
        if not source_allowed(client_ip, lb.ranges):
            lb.stats.refused_source += 1
            return None
        target = self.rotation.pick(lb.targets.get(self.key, ()), lb.target_healthy, tried)
        if target is None and not tried:
            lb.stats.refused_no_node += 1
        return target

    def source_ip(self, client_ip: str) -> str | None:
        # A Local Service (it has a health check node port) keeps the client's address,
        # as a cloud's pass-through network load balancer does, so the node proxy and
        # the pod see the real client. That works where the client's address is one of
        # this host's (loopback, embedded mode); elsewhere the relay falls back to the
        # load balancer's own address, as a cloud's SNAT would show.
        return client_ip if self.lb.spec.health_check_node_port else None

    def connect_failed(self, target: Target, error: BaseException) -> None:
        self.lb.connect_failed(target, error)

    def opened(self, conn: Connection) -> None:
        if self.lb.listeners.get(self.key, (None, None))[1] is not self:
            conn.reset()  # the port (or the load balancer) went while we connected
            return
        self.lb.stats.connections += 1
        self.lb.stats.open.setdefault(self.key, set()).add(conn)

    def closed(self, conn: Connection) -> None:
        conns = self.lb.stats.open.get(self.key)
        if conns is not None and conn in conns:
            conns.discard(conn)
            self.lb.stats.closed_bytes_in += conn.bytes_from_client
            self.lb.stats.closed_bytes_out += conn.bytes_to_client

    def flow_opened(self, flow: Flow) -> None:
        self.lb.stats.flows += 1
        self.lb.stats.open_flows.setdefault(self.key, set()).add(flow)

    def flow_closed(self, flow: Flow) -> None:
        flows = self.lb.stats.open_flows.get(self.key)
        if flows is not None and flow in flows:
            flows.discard(flow)
            self.lb.stats.closed_bytes_in += flow.bytes_from_client
            self.lb.stats.closed_bytes_out += flow.bytes_to_client


class LoadBalancerRuntime:
    def __init__(
        self,
        name: str,
        checker: HealthChecker,
        *,
        connect_timeout: float = 0.5,
        udp_idle_timeout: float = 30.0,
        adopt: Adopt | None = None,
    ) -> None:
        self.name = name  # "namespace/name"
        self.checker = checker
        self.connect_timeout = connect_timeout
        self.udp_idle_timeout = udp_idle_timeout
        self.adopt = adopt
        self.requested = cloud_pb2.LoadBalancerSpec()  # as the caller asked
        self.spec = cloud_pb2.LoadBalancerSpec()  # what is run: the nodes the cluster confirms
        self.ignored: dict[str, str] = {}  # requested node name → why it is not forwarded to
        self.ip = ""
        self.ranges = parse_ranges(())
        self.targets: dict[ListenerKey, tuple[Target, ...]] = {}
        self.checks: dict[str, CheckKey] = {}
        self.listeners: dict[ListenerKey, tuple[_Listener, _PortRoute]] = {}
        self.stats = LbStats()
        self._accepting = True  # False once `stop_listening` closed the listeners
        self.target_healthy = health_by_target(self.checks, checker.healthy)

    async def update(
        self,
        requested: cloud_pb2.LoadBalancerSpec,
        ip: str,
        cluster: ClusterNodes,
        *,
        check_first: bool = True,
    ) -> None:
        """Take a (normalized, valid) spec at `ip`, forwarding only to the nodes of it that
        `cluster` confirms. Raises BindError naming the listeners that could not be bound;
        everything else is applied even then. New nodes are health-checked before any
        traffic goes to them, unless `check_first` is off: a load balancer resumed after
        a restart of this process forwards at once to the nodes it forwarded to before
        (the checker's next round, and the relay's connect retry, correct a stale one),
        as a cloud's data plane carries on while its controller restarts."""
        nodes, ignored = forwardable(requested.nodes, cluster)
        for name in ignored.keys() - self.ignored.keys():
            self.stats.ignored_nodes += 1
            log.warning("%s", ignored[name], extra=kobj(self.name, kind="svc", node=name))
        self.requested, self.ignored = requested, ignored
        spec = cloud_pb2.LoadBalancerSpec()
        spec.CopyFrom(requested)
        del spec.nodes[:]
        spec.nodes.extend(nodes)

        checks = check_keys(spec)
        added = self.checker.acquire(checks.values())
        if check_first:
            await self.checker.check(added)
        self.checker.release(self.checks.values())
        self.checks.clear()
        self.checks.update(checks)  # in place: `target_healthy` reads this very dict

        self.spec, self.ip = spec, ip
        self.ranges = parse_ranges(spec.source_ranges)
        self.targets = {
            ListenerKey(ip, p.protocol, p.port): node_targets(spec.nodes, p.node_port)
            for p in spec.ports
        }
        for key, flows in self.stats.open_flows.items():
            wanted = self.targets.get(key, ())
            for flow in [f for f in flows if f.target not in wanted]:
                flow.reset()

        plan = plan_listeners(self.listeners.keys(), listener_keys(ip, spec))
        for key in plan.close:
            await self._close_listener(key)
        failed = []
        for key in plan.open:
            route = _PortRoute(self, key)
            try:
                listener = await self._listen(key, route)
            except OSError as err:
                failed.append(f"{key} ({err.strerror or err})")
                continue
            self.listeners[key] = (listener, route)
            log.info("listening on %s", key, extra=kobj(self.name, kind="svc"))
        if failed:
            raise BindError(f"cannot listen on {', '.join(failed)}")

    async def _listen(self, key: ListenerKey, route: _PortRoute) -> _Listener:
        if self.adopt is not None:
            bound = self.adopt((key.ip, key.protocol, key.port))
            if bound is not None:
                # Its socket, accept queue and connections stay; new ones take this route.
                bound.route = route
                return bound
        if key.protocol == "UDP":
            return await serve_udp(
                route, key.ip, key.port, free_bind=True, idle_timeout=self.udp_idle_timeout
            )
        return await serve_tcp(route, key.ip, key.port, free_bind=True)

    async def _close_listener(self, key: ListenerKey) -> None:
        listener, _ = self.listeners.pop(key)
        if self._accepting:  # a UDP listener must not be closed twice
            listener.close()
        for conn in list(self.stats.open.pop(key, ())):
            # Counted here: `closed` will not find it in the set it was popped with.
            self.stats.closed_bytes_in += conn.bytes_from_client
            self.stats.closed_bytes_out += conn.bytes_to_client
            conn.reset()
        for flow in list(self.stats.open_flows.get(key, ())):
            flow.reset()
        wait_closed = getattr(listener, "wait_closed", None)
        if wait_closed is not None:
            await wait_closed()
        log.info("stopped listening on %s", key, extra=kobj(self.name, kind="svc"))

    def stop_listening(self) -> None:
        """Accept nothing new; connections already open go on (a graceful shutdown).
        Only `close` may follow."""
        if self._accepting:
            self._accepting = False
            for listener, _ in self.listeners.values():
                listener.close()

    async def close(self) -> None:
        """Close every listener, reset what they carry, drop the health checks."""
        for key in list(self.listeners):
            await self._close_listener(key)
        self.checker.release(self.checks.values())
        self.checks.clear()

    # ------------------------------------------------------------------ health

    def connect_failed(self, target: Target, error: BaseException) -> None:
        self.stats.connect_failures += 1
        key = self.checks.get(target.ip)
        if key is not None:
            reason = (
                error.strerror if isinstance(error, OSError) and error.strerror else repr(error)
            )
            self.checker.failed(key, f"connect to {target}: {reason}")

    def node_unhealthy(self, address: str) -> None:
        """Close the UDP flows to a node that left rotation (TCP connections drain)."""
        for flows in self.stats.open_flows.values():
            for flow in [f for f in flows if f.target.ip == address]:
                flow.reset()

    def node_health(self) -> list[cloud_pb2.NodeHealth]:
        health = []
        for node in self.spec.nodes:
            key = self.checks.get(node.address)
            state = self.checker.state(key) if key is not None else None
            health.append(
                cloud_pb2.NodeHealth(
                    name=node.name,
                    address=node.address,
                    healthy=state is None or state.healthy,
                    last_error=state.error if state is not None else "",
                )
            )
        return health

    def forwarding(self) -> list[ForwardingEntry]:
        """What this load balancer's listeners forward to, for the snapshot."""
        ranges = tuple(self.spec.source_ranges)
        keep = bool(self.spec.health_check_node_port)
        return [
            ForwardingEntry(key.ip, key.protocol, key.port, self.targets.get(key, ()), ranges, keep)
            for key in self.listeners
        ]

    def describe(self) -> cloud_pb2.LoadBalancer:
        """The load balancer as requested; a node the cluster did not confirm shows as
        unhealthy, its `last_error` saying why."""
        health = {h.name: h for h in self.node_health()}
        nodes = [
            health.get(node.name)
            or cloud_pb2.NodeHealth(
                name=node.name,
                address=node.address,
                healthy=False,
                last_error=self.ignored.get(node.name, ""),
            )
            for node in self.requested.nodes
        ]
        return cloud_pb2.LoadBalancer(spec=self.requested, ip=self.ip, nodes=nodes)
