"""A node proxy's ports: per Service port, the endpoints, their choice and their counters.

`Port` holds one `Balancer` (round robin, ClientIP affinity, suspects) and the
connections and flows per endpoint, with the counters behind the metrics.
When a terminating endpoint leaves the Service (a deleted pod) its connections
are reset; an endpoint that turned not ready, or left for another reason, keeps
the connections it has until they end (drain). Flows to an endpoint that left
are closed. `Route` is what one frontend's listener asks of its port. An
endpoint that failed a connect is suspect; the proxy probes it until it answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kubelab.core.endpoint_choice import Balancer, Target
from kubelab.core.keys import ObjectKey
from kubelab.core.proxy_rules import CLUSTER_IP, Frontend, PortRules
from kubelab.relay import Connection, Flow

if TYPE_CHECKING:  # the proxy owns its ports; ports only call back into it
    from node_agent.proxy import ServiceProxy


@dataclass(slots=True)
class EndpointStats:
    """Counters for one endpoint of one port: plain ints on the hot path, read by the
    metrics collector at scrape time."""

    connections: int = 0
    failures: int = 0
    closed_bytes_in: int = 0
    closed_bytes_out: int = 0
    open: set[Connection] = field(default_factory=set)
    flows: set[Flow] = field(default_factory=set)
    flows_total: int = 0

    def end(self, item: Connection | Flow) -> bool:
        """Count a connection or flow that ended; False if it was not ours."""
        if isinstance(item, Connection):
            if item not in self.open:
                return False
            self.open.discard(item)
        else:
            if item not in self.flows:
                return False
            self.flows.discard(item)
        self.closed_bytes_in += item.bytes_from_client
        self.closed_bytes_out += item.bytes_to_client
        return True

    def bytes_in(self) -> int:
        return (
            self.closed_bytes_in
            + sum(c.bytes_from_client for c in self.open)
            + sum(f.bytes_from_client for f in self.flows)
        )

    def bytes_out(self) -> int:
        return (
            self.closed_bytes_out
            + sum(c.bytes_to_client for c in self.open)
            + sum(f.bytes_to_client for f in self.flows)
        )


class Port:
    """One Service port on this node: its endpoints, their choice and their counters."""

    def __init__(self, proxy: ServiceProxy, service: ObjectKey, rules: PortRules) -> None:
        self.proxy = proxy
        self.service = service
        self.rules = rules
        self.balancer = Balancer(affinity_timeout=rules.affinity_timeout)
        self.balancer.update(rules.backends, affinity_timeout=rules.affinity_timeout)
        self.targets = frozenset(b.target for b in rules.backends)
        self.stats = {t: EndpointStats() for t in self.targets}
        self.refused = 0
        self.closed = False

    def update(self, rules: PortRules) -> bool:
        """Take new rules; True when the endpoint set changed.

        Decided once, when an endpoint leaves: if it left while terminating (a deleted
        pod) its connections are reset now; otherwise (relabelled out, its node lost)
        they drain, as conntrack keeps them under kube-proxy. UDP flows are closed as
        soon as their endpoint is no longer one a new flow could pick (not ready and
        not serving-while-terminating, or gone), so the client's next datagram picks
        again: kube-proxy clears those conntrack entries."""
        before = {b.target: b for b in self.rules.backends}
        changed = rules.backends != self.rules.backends
        self.rules = rules
        self.balancer.update(rules.backends, affinity_timeout=rules.affinity_timeout)
        self.targets = frozenset(b.target for b in rules.backends)
        usable = {b.target for b in rules.backends if b.ready or (b.serving and b.terminating)}
        for target, stats in list(self.stats.items()):
            if target not in usable:
                for flow in list(stats.flows):
                    flow.reset()
            if target in self.targets:
                continue
            left = before.get(target)
            if left is not None and left.terminating:
                for conn in list(stats.open):
                    conn.reset()
            self.forget_if_idle(target)
        for target in self.targets:
            self.stats.setdefault(target, EndpointStats())
        return changed

    def forget_if_idle(self, target: Target) -> None:
        stats = self.stats.get(target)
        if stats is not None and target not in self.targets and not stats.open and not stats.flows:
            del self.stats[target]

    def close(self) -> None:
        """The port is gone (its Service deleted or changed): reset what it carries."""
        self.closed = True
        for stats in self.stats.values():
            for conn in list(stats.open):
                conn.reset()
            for flow in list(stats.flows):
                flow.reset()
        self.stats.clear()

    def connections(self) -> int:
        return sum(len(stats.open) for stats in self.stats.values())


class Route:
    """What one frontend's listener asks: the port's balancer, seen from this frontend."""

    def __init__(self, port: Port, frontend: Frontend) -> None:
        self.port = port
        self.frontend = frontend
        self.connect_timeout = port.proxy.connect_timeout

    def _local_node(self, client_ip: str) -> str | None:
        proxy, rules = self.port.proxy, self.port.rules
        if self.frontend.scope == CLUSTER_IP:
            if not rules.internal_local:
                return None
            # The client's node: in embedded mode every agent may accept a ClusterIP
            # connection, so "local" is read off the client's address.
            return proxy.addresses.node_of(client_ip) or proxy.node_name
        return proxy.node_name if rules.external_local else None

    def pick(self, client_ip: str, tried: Sequence[Target]) -> Target | None:
        target = self.port.balancer.pick(client_ip, node=self._local_node(client_ip), exclude=tried)
        if target is None and not tried:
            self.port.refused += 1
        return target

    def source_ip(self, client_ip: str) -> str | None:
        # externalTrafficPolicy: Local keeps the client's address visible to the pod.
        if self.frontend.scope != CLUSTER_IP and self.port.rules.external_local:
            return client_ip
        return None

    def connect_failed(self, target: Target, error: BaseException) -> None:
        self.port.balancer.connect_failed(target)
        stats = self.port.stats.get(target)
        if stats is not None:
            stats.failures += 1
        self.port.proxy.probe_later(self.port, target)

    def opened(self, conn: Connection) -> None:
        assert conn.target is not None
        if self.port.closed:  # the Service went while we connected
            conn.reset()
            return
        # The endpoint may have left while we connected: the connect succeeded, so the
        # pod is there; the connection drains like the endpoint's others.
        stats = self.port.stats.setdefault(conn.target, EndpointStats())
        self.port.balancer.connected(conn.target)
        stats.connections += 1
        stats.open.add(conn)

    def closed(self, conn: Connection) -> None:
        assert conn.target is not None
        self._ended(conn.target, conn)

    def flow_opened(self, flow: Flow) -> None:
        stats = self.port.stats.get(flow.target)
        if stats is None or flow.target not in self.port.targets:
            flow.reset()
            return
        stats.flows_total += 1
        stats.flows.add(flow)

    def flow_closed(self, flow: Flow) -> None:
        self._ended(flow.target, flow)

    def _ended(self, target: Target, item: Connection | Flow) -> None:
        stats = self.port.stats.get(target)
        if stats is not None and stats.end(item):
            self.port.forget_if_idle(target)
