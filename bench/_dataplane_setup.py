"""bench/dataplane.py's echo pod, its Service and every path to it, each answering.

The pod: ONE `kubelab/echo` pod (a Deployment of 1 replica: HTTP on 8080, a raw
TCP echo on 9000 named `tcp-echo`, one-way streams on 9100 named `bulk`, a UDP
echo on 5353) behind a Service with the same four ports: `type: LoadBalancer`
when the LoadBalancer path is measured (a LoadBalancer Service has its nodePorts
and clusterIP too, and the node proxy serves them exactly as a NodePort
Service's), `type: NodePort` otherwise. Its external IP is learnt as a user
would, from a watch on the Service.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path as FsPath

from _cluster import BenchCluster, IngressWatch, echo_deployment, echo_service, ready_pod
from _cluster import until_in_rotation as lb_in_rotation
from _dataplane_measure import phase
from _dataplane_paths import (
    ChildProcess,
    NotAnswering,
    Path,
    haproxy,
    relay,
    start_answering,
    wait_answering,
)

from kubelab.client import Client
from kubelab.testing.cloud import cloud_client
from kubelab.testing.processes import free_port

NAME = "bench-dataplane"
HAPROXY_HOST = "127.253.0.1"
RELAY_HOST = "127.253.0.2"
HTTP_PORT, TCP_PORT, BULK_PORT, UDP_PORT = 8080, 9000, 9100, 5353  # the pod's and the Service's
PATHS = ("direct", "haproxy", "relay", "nodeport", "clusterip", "loadbalancer")

# Deadlines, in seconds: generous, a healthy run takes a fraction of each.
POD_DEADLINE = 60.0
PROXY_DEADLINE = 20.0


@dataclass(frozen=True)
class Backend:
    pod: str
    pod_ip: str
    node: str
    node_ip: str
    cluster_ip: str
    node_ports: dict[str, int]
    external_ip: str  # "" without a LoadBalancer Service


async def apply_backend(api: Client, load_balancer: bool) -> Backend:
    """The echo pod Ready, its Service stored (and with an external IP if a LoadBalancer)."""
    container_ports = [
        {"name": "http", "containerPort": HTTP_PORT},
        {"name": "tcp-echo", "containerPort": TCP_PORT},
        {"name": "bulk", "containerPort": BULK_PORT},
        {"name": "udp", "containerPort": UDP_PORT, "protocol": "UDP"},
    ]
    service = echo_service(
        NAME,
        NAME,
        "LoadBalancer" if load_balancer else "NodePort",
        [
            ("http", HTTP_PORT, "TCP"),
            ("tcp-echo", TCP_PORT, "TCP"),
            ("bulk", BULK_PORT, "TCP"),
            ("udp", UDP_PORT, "UDP"),
        ],
    )
    watch = IngressWatch(api)
    await watch.start()
    try:
        await api.apply(echo_deployment(NAME, container_ports))
        stored, _ = await api.apply(service)
        pod = await ready_pod(api, NAME, POD_DEADLINE)
        external_ip = (await watch.ingress(NAME, POD_DEADLINE))[0] if load_balancer else ""
    finally:
        await watch.stop()
    return Backend(
        pod=pod.metadata.name,
        pod_ip=pod.status.pod_ip,
        node=pod.spec.node_name,
        node_ip=pod.status.host_ip,
        cluster_ip=stored.spec.cluster_ip,
        node_ports={p.name: p.node_port for p in stored.spec.ports},
        external_ip=external_ip,
    )


def build_paths(
    keys: Sequence[str],
    backend: Backend,
    cluster: BenchCluster,
    haproxy_ports: tuple[int, int, int],
    relay_ports: tuple[int, int, int, int],
) -> list[Path]:
    ports = backend.node_ports
    agents = sorted(cluster.nodes)

    def service_path(
        key: str,
        name: str,
        ip: str,
        via: Sequence[str],
        about: str,
        service_ports: tuple[int, int, int, int] = (HTTP_PORT, TCP_PORT, BULK_PORT, UDP_PORT),
    ) -> Path:
        """A path through the node agents `via` (and, for the LoadBalancer, the
        cloud-stub in front of them: its CPU and theirs both count, told apart)."""
        agent_pids = cluster.agent_pids(via)
        cloud = key == "loadbalancer"

        def parts() -> dict[str, Sequence[int]]:
            return {"cloud-stub": cluster.cloud_pids(), "node agents": agent_pids()}

        def pids() -> Sequence[int]:
            return [*cluster.cloud_pids(), *agent_pids()] if cloud else agent_pids()

        http, tcp, bulk, udp = service_ports
        return Path(
            key,
            name,
            (ip, http),
            (ip, tcp),
            (ip, bulk),
            (ip, udp),
            pids=pids,
            parts=parts if cloud else dict,
            check=cluster.alive(via, cloud=cloud),
            about=about,
        )

    every: dict[str, Path] = {
        "direct": Path(
            "direct",
            "direct",
            (backend.pod_ip, HTTP_PORT),
            (backend.pod_ip, TCP_PORT),
            (backend.pod_ip, BULK_PORT),
            (backend.pod_ip, UDP_PORT),
            about=f"the pod's own address, {backend.pod_ip}",
        ),
        "haproxy": Path(
            "haproxy",
            "HAProxy (1 thread)",
            (HAPROXY_HOST, haproxy_ports[0]),
            (HAPROXY_HOST, haproxy_ports[1]),
            (HAPROXY_HOST, haproxy_ports[2]),
            None,
            about=f"haproxy -db, nbthread 1, mode tcp, on {HAPROXY_HOST}",
        ),
        "relay": Path(
            "relay",
            "relay (static route)",
            (RELAY_HOST, relay_ports[0]),
            (RELAY_HOST, relay_ports[1]),
            (RELAY_HOST, relay_ports[3]),
            (RELAY_HOST, relay_ports[2]),
            about=f"kubelab.relay alone in one process (uvloop), on {RELAY_HOST}",
        ),
        "nodeport": service_path(
            "nodeport",
            "NodePort",
            backend.node_ip,
            [backend.node],
            f"{backend.node}'s agent on {backend.node_ip}, nodePorts "
            f"{ports['http']}/{ports['tcp-echo']}/{ports['bulk']}/{ports['udp']}",
            (ports["http"], ports["tcp-echo"], ports["bulk"], ports["udp"]),
        ),
        "clusterip": service_path(
            "clusterip",
            "ClusterIP",
            backend.cluster_ip,
            agents,
            f"{backend.cluster_ip}, bound by all {len(agents)} agents (SO_REUSEPORT)",
        ),
        "loadbalancer": service_path(
            "loadbalancer",
            "LoadBalancer",
            backend.external_ip,
            agents,
            f"{backend.external_ip} (cloud-stub, pool {cluster.lb_pool}), round robin over "
            f"the {len(agents)} nodes' nodePorts, each agent on to the pod: two relays in series",
        ),
    }
    return [every[key] for key in keys]


async def start_paths(
    keys: Sequence[str],
    backend: Backend,
    cluster: BenchCluster,
    workdir: FsPath,
    children: list[ChildProcess],
) -> list[Path]:
    """Every path in `keys`, answering: the comparison proxies started (added to
    `children`, which the caller stops), the node agents' proxy found listening, the
    load balancer forwarding to every node."""
    haproxy_ports = (free_port(HAPROXY_HOST), free_port(HAPROXY_HOST), free_port(HAPROXY_HOST))
    relay_ports = (
        free_port(RELAY_HOST),
        free_port(RELAY_HOST),
        free_port(RELAY_HOST),
        free_port(RELAY_HOST),
    )
    by_key = {p.key: p for p in build_paths(keys, backend, cluster, haproxy_ports, relay_ports)}
    expect = f'"pod":"{backend.pod}"'.encode()
    if "direct" in by_key:
        with phase("direct"):
            await wait_answering(by_key["direct"], PROXY_DEADLINE, expect)
    pod = backend.pod_ip
    if "haproxy" in by_key:
        path = by_key["haproxy"]
        child = haproxy(
            workdir,
            [
                ("http", path.http, (pod, HTTP_PORT)),
                ("tcp-echo", path.tcp, (pod, TCP_PORT)),
                ("bulk", path.bulk, (pod, BULK_PORT)),
            ],
        )
        children.append(child)
        by_key["haproxy"] = path = dataclasses.replace(path, pids=child.pids, check=child.check)
        with phase("HAProxy"):
            await start_answering(child, path, expect)
    if "relay" in by_key:
        child = relay(
            workdir,
            RELAY_HOST,
            [
                (relay_ports[0], (pod, HTTP_PORT)),
                (relay_ports[1], (pod, TCP_PORT)),
                (relay_ports[3], (pod, BULK_PORT)),
            ],
            [(relay_ports[2], (pod, UDP_PORT))],
        )
        children.append(child)
        by_key["relay"] = path = dataclasses.replace(
            by_key["relay"], pids=child.pids, check=child.check
        )
        with phase("relay (static route)"):
            await start_answering(child, path, expect)
    if "loadbalancer" in by_key and cluster.cloud is not None:
        with phase("LoadBalancer: every node in rotation"):
            async with cloud_client(cluster.cloud.address) as stub:
                await lb_in_rotation(stub, NAME, len(cluster.nodes), PROXY_DEADLINE)
    for key in ("nodeport", "clusterip", "loadbalancer"):
        if key in by_key:
            with phase(f"{by_key[key].name} through the node agents' proxy"):
                try:
                    await wait_answering(by_key[key], PROXY_DEADLINE, expect)
                except NotAnswering as err:
                    raise NotAnswering(
                        f"{err}. Do the node agents proxy (node_agent/proxy.py)? "
                        "--paths direct,haproxy,relay measures without them"
                    ) from None
    return [by_key[k] for k in keys]
