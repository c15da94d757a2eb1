"""The cloud-stub's Prometheus metrics, read from the provider at scrape time.

Nothing on the relay's hot path touches prometheus-client: the routes bump plain
ints (`LbStats`) and this collector turns them into families when scraped.
`lb` labels are "namespace/name".

* `kubelab_cloud_load_balancers` — load balancers this process runs;
* `kubelab_cloud_pool_addresses{state="in_use"|"free"}` — the pool, as of the
  last read of the claims (by any cloud-stub);
* `kubelab_cloud_node_healthy{lb,node}` — 1 while the node is in rotation;
* `kubelab_cloud_connections_total{lb}`, `kubelab_cloud_active_connections{lb}`,
  `kubelab_cloud_udp_flows_total{lb}`, `kubelab_cloud_bytes_total{lb,direction}`
  (`in`: from clients);
* `kubelab_cloud_refused_total{lb,reason="source_range"|"no_node"}`,
  `kubelab_cloud_connect_failures_total{lb}`;
* `kubelab_cloud_health_checks_total{result="pass"|"fail"}`;
* `kubelab_cloud_ignored_nodes_total{lb}` — requested nodes found not to be the
  cluster's Ready nodes (not forwarded to), `kubelab_cloud_refused_node_ports_total`
  — Ensures refused for a nodePort the cluster did not allocate.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from services.cloud_stub.provider import CloudProvider


class CloudCollector(Collector):
    def __init__(self, provider: CloudProvider) -> None:
        self.provider = provider

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        provider = self.provider
        runtimes = sorted(provider.runtimes.items())
        yield GaugeMetricFamily(
            "kubelab_cloud_load_balancers", "load balancers this cloud-stub runs", len(runtimes)
        )
        pool = GaugeMetricFamily(
            "kubelab_cloud_pool_addresses", "addresses of the pool", labels=["state"]
        )
        pool.add_metric(["in_use"], provider.in_use)
        pool.add_metric(["free"], provider.pool.size - provider.in_use)
        yield pool

        healthy = GaugeMetricFamily(
            "kubelab_cloud_node_healthy", "1 while the node is in rotation", labels=["lb", "node"]
        )
        connections = CounterMetricFamily(
            "kubelab_cloud_connections", "TCP connections forwarded", labels=["lb"]
        )
        active = GaugeMetricFamily(
            "kubelab_cloud_active_connections", "TCP connections open now", labels=["lb"]
        )
        flows = CounterMetricFamily("kubelab_cloud_udp_flows", "UDP flows opened", labels=["lb"])
        carried = CounterMetricFamily(
            "kubelab_cloud_bytes", "bytes relayed", labels=["lb", "direction"]
        )
        refused = CounterMetricFamily(
            "kubelab_cloud_refused", "new connections refused", labels=["lb", "reason"]
        )
        failures = CounterMetricFamily(
            "kubelab_cloud_connect_failures", "connects to a node that failed", labels=["lb"]
        )
        ignored = CounterMetricFamily(
            "kubelab_cloud_ignored_nodes",
            "requested nodes that are not the cluster's Ready nodes",
            labels=["lb"],
        )
        for name, runtime in runtimes:
            for node in runtime.node_health():
                healthy.add_metric([name, node.name or node.address], int(node.healthy))
            stats = runtime.stats
            connections.add_metric([name], stats.connections)
            active.add_metric([name], stats.active())
            flows.add_metric([name], stats.flows)
            carried.add_metric([name, "in"], stats.bytes_in())
            carried.add_metric([name, "out"], stats.bytes_out())
            refused.add_metric([name, "source_range"], stats.refused_source)
            refused.add_metric([name, "no_node"], stats.refused_no_node)
            failures.add_metric([name], stats.connect_failures)
            ignored.add_metric([name], stats.ignored_nodes)
        yield from (healthy, connections, active, flows, carried, refused, failures, ignored)
        yield CounterMetricFamily(
            "kubelab_cloud_refused_node_ports",
            "Ensures refused for a nodePort the cluster did not allocate",
            provider.refused_ports,
        )

        checks = CounterMetricFamily(
            "kubelab_cloud_health_checks", "node health checks run", labels=["result"]
        )
        for result in ("pass", "fail"):
            checks.add_metric([result], provider.checker.results[result])
        yield checks
