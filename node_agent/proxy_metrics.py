"""Prometheus metrics of the node proxy, per Service port and endpoint.

A collector, read at scrape time: the relay's hot path only adds to plain ints
(kubelab.relay), and the bytes of connections still open are summed here, so a
long-lived stream shows its bytes before it ends.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector

from node_agent.proxy import ServiceProxy

_ENDPOINT_LABELS = ["service", "port", "endpoint", "pod"]


class ProxyCollector(Collector):
    def __init__(self, proxy: ServiceProxy) -> None:
        self.proxy = proxy

    def collect(self) -> Iterator[Metric]:
        connections = CounterMetricFamily(
            "kubelab_proxy_connections",
            "TCP connections relayed to an endpoint",
            labels=_ENDPOINT_LABELS,
        )
        active = GaugeMetricFamily(
            "kubelab_proxy_active_connections",
            "TCP connections open to an endpoint",
            labels=_ENDPOINT_LABELS,
        )
        failures = CounterMetricFamily(
            "kubelab_proxy_connect_failures",
            "Connects to an endpoint that failed (retried on another endpoint)",
            labels=_ENDPOINT_LABELS,
        )
        flows = CounterMetricFamily(
            "kubelab_proxy_udp_flows", "UDP flows opened to an endpoint", labels=_ENDPOINT_LABELS
        )
        active_flows = GaugeMetricFamily(
            "kubelab_proxy_active_udp_flows", "UDP flows open now", labels=_ENDPOINT_LABELS
        )
        transferred = CounterMetricFamily(
            "kubelab_proxy_bytes",
            "Bytes relayed; direction=in is client to pod",
            labels=[*_ENDPOINT_LABELS, "direction"],
        )
        refused = CounterMetricFamily(
            "kubelab_proxy_refused",
            "New connections refused because the port had no endpoint to use",
            labels=["service", "port"],
        )
        listeners = GaugeMetricFamily(
            "kubelab_proxy_listeners", "Frontends this node listens on", labels=["scope"]
        )
        health_checks = CounterMetricFamily(
            "kubelab_proxy_health_checks",
            "Requests answered on a healthCheckNodePort, by HTTP status (503: no local endpoint)",
            labels=["service", "code"],
        )
        per_scope: dict[str, int] = {}
        for (namespace, name), service in self.proxy.services.items():
            health = service.health.listeners if service.health is not None else {}
            for frontend in [*service.listeners, *health]:
                per_scope[frontend.scope] = per_scope.get(frontend.scope, 0) + 1
            if service.health is not None:
                for code, count in sorted(service.health.answered.items()):
                    health_checks.add_metric([f"{namespace}/{name}", str(code)], count)
            for port in service.ports.values():
                svc = f"{namespace}/{name}"
                port_name = port.rules.name or str(port.rules.port)
                refused.add_metric([svc, port_name], port.refused)
                pods = {b.target: b.pod for b in port.rules.backends}
                for target, stats in port.stats.items():
                    labels = [svc, port_name, str(target), pods.get(target, "")]
                    connections.add_metric(labels, stats.connections)
                    active.add_metric(labels, len(stats.open))
                    failures.add_metric(labels, stats.failures)
                    flows.add_metric(labels, stats.flows_total)
                    active_flows.add_metric(labels, len(stats.flows))
                    transferred.add_metric([*labels, "in"], stats.bytes_in())
                    transferred.add_metric([*labels, "out"], stats.bytes_out())
        for scope, count in sorted(per_scope.items()):
            listeners.add_metric([scope], count)
        bind_failures = CounterMetricFamily(
            "kubelab_proxy_bind_failures", "Frontends that could not be bound"
        )
        bind_failures.add_metric([], self.proxy.bind_failures)
        not_programmed = GaugeMetricFamily(
            "kubelab_proxy_services_not_programmed",
            "Services this node does not (fully) serve, by reason: file_budget (more listeners "
            "than the node's file budget has left), out_of_files, bind, error",
            labels=["service", "reason"],
        )
        for (namespace, name), problem in sorted(self.proxy.problems.problems.items()):
            not_programmed.add_metric([f"{namespace}/{name}", problem.reason], 1)
        sync_failures = CounterMetricFamily(
            "kubelab_proxy_sync_failures",
            "Service syncs that failed, by reason (each retry counts)",
            labels=["reason"],
        )
        for reason, count in sorted(self.proxy.problems.failures.items()):
            sync_failures.add_metric([reason], count)
        budget = GaugeMetricFamily(
            "kubelab_proxy_file_budget",
            "The proxy's file budget: limit is RLIMIT_NOFILE, listeners the part listeners "
            "may hold, in_use what they hold",
            labels=["kind"],
        )
        if self.proxy.budget is not None:
            budget.add_metric(["limit"], self.proxy.budget.limit)
            budget.add_metric(["listeners"], self.proxy.budget.listeners)
        budget.add_metric(["in_use"], self.proxy.listeners_in_use())
        yield from (
            connections,
            active,
            failures,
            flows,
            active_flows,
            transferred,
            refused,
            listeners,
            bind_failures,
            health_checks,
            not_programmed,
            sync_failures,
            budget,
        )


def register(proxy: ServiceProxy) -> ProxyCollector:
    collector = ProxyCollector(proxy)
    REGISTRY.register(collector)
    return collector
