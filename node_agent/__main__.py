"""A node agent process: `python -m node_agent --name node-1 --node-ip 127.10.0.1 ...`.

Serves `kubelab.v1.NodeAgent` on NODE_IP:AGENT_PORT with gRPC health
(SERVING once registered, synced and proxying) and reflection, and proxies
Service traffic on this node (node_agent/proxy.py) unless `--no-proxy`: NodePorts on
--node-ip and every --external-ip. `--lab-network` (a container with NET_ADMIN, lab mode)
makes the pod CIDR and the service CIDR local, routes to other nodes' pods and forwards
--cluster-dns to --dns-upstream (node_agent/lab_network.py). SIGTERM/SIGINT: stop every
pod gracefully, revoke the lease, exit.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import signal
from pathlib import Path

from kubelab.core.endpoint_choice import Target
from kubelab.core.proxy_rules import NODE_HEALTH_PORT
from kubelab.obs.logs import setup_logging
from kubelab.obs.metrics import serve_metrics
from kubelab.rpc import tls
from kubelab.rpc.access import MASTERS, AllowIdentities
from kubelab.rpc.server import start_server
from kubelab.runtime.loop import exit_with
from kubelab.store import EVENT_TTL, Store
from node_agent import proxy_metrics, servicer
from node_agent.agent import NodeAgent, NodeConfig
from node_agent.health_check import ProxyHealth
from node_agent.lab_network import IpCommandError, LabNetwork, LabNetworkConfig
from node_agent.logic.file_budget import file_budget
from node_agent.proxy import ServiceProxy

log = logging.getLogger("node_agent")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="node_agent", description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--node-ip", required=True, help="the InternalIP: agent, pods' gateway")
    parser.add_argument(
        "--external-ip",
        action="append",
        default=[],
        help="another address of this node (ExternalIP) where NodePorts answer; repeatable",
    )
    parser.add_argument("--pod-cidr", required=True)
    parser.add_argument("--etcd", default="127.0.0.1:2379")
    parser.add_argument("--agent-port", type=int, default=10250)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--lease-ttl", type=int, default=2)
    parser.add_argument("--restart-backoff", type=float, default=1.0)
    parser.add_argument(
        "--event-ttl",
        type=float,
        default=EVENT_TTL,
        help="seconds the events this node records live after their last update",
    )
    parser.add_argument(
        "--no-proxy", action="store_true", help="do not proxy Service traffic on this node"
    )
    parser.add_argument("--connect-timeout", type=float, default=0.5, help="proxy to endpoint")
    parser.add_argument(
        "--healthz-port",
        type=int,
        default=NODE_HEALTH_PORT,
        help="the proxy's /healthz on --node-ip, which load balancers check (0: none)",
    )
    parser.add_argument("--udp-idle-timeout", type=float, default=30.0)
    parser.add_argument("--metrics", default="", help="serve /metrics on host:port")
    parser.add_argument(
        "--lab-network", action="store_true", help="set up lab-mode routes (needs NET_ADMIN)"
    )
    parser.add_argument("--service-cidr", default="10.96.0.0/16", help="with --lab-network")
    parser.add_argument(
        "--cluster-cidr", default="", help="with --lab-network: every pod, e.g. 10.244.0.0/16"
    )
    parser.add_argument("--cluster-dns", default="", help="with --lab-network: e.g. 10.96.0.10")
    parser.add_argument(
        "--dns-upstream", default="", help="with --cluster-dns: the DNS actor's host:port"
    )
    parser.add_argument("--log-level", default=None)
    tls.add_flags(parser)
    args = parser.parse_args(argv)
    if args.cluster_dns and not args.dns_upstream:
        parser.error("--cluster-dns needs --dns-upstream")
    if args.dns_upstream:
        host, _, port = args.dns_upstream.rpartition(":")
        if not host or not port.isdigit():
            parser.error(f"--dns-upstream: {args.dns_upstream!r} is not host:port")
    return args


async def run(args: argparse.Namespace) -> int:
    config = NodeConfig(
        name=args.name,
        node_ip=args.node_ip,
        pod_cidr=args.pod_cidr,
        agent_port=args.agent_port,
        data_dir=args.data_dir,
        lease_ttl=args.lease_ttl,
        restart_backoff=args.restart_backoff,
        external_ips=tuple(args.external_ip),
    )
    store = Store(args.etcd, event_ttl=args.event_ttl)
    network = None
    if args.lab_network:
        upstream = None
        if args.dns_upstream:
            host, _, port = args.dns_upstream.rpartition(":")
            upstream = Target(host, int(port))
        network = LabNetwork(
            store,
            LabNetworkConfig(
                node_name=args.name,
                pod_cidr=args.pod_cidr,
                service_cidr=args.service_cidr,
                cluster_cidr=args.cluster_cidr,
                cluster_dns=args.cluster_dns,
                dns_upstream=upstream,
            ),
        )
    agent = NodeAgent(store, config)
    proxy = None
    if not args.no_proxy:
        budget = file_budget(raise_file_limit())
        log.info(
            "file limit %d: up to %d proxy listeners",
            budget.limit,
            budget.listeners,
            extra={"node": args.name},
        )
        proxy = ServiceProxy(
            store,
            node_name=args.name,
            node_ips=[args.node_ip, *args.external_ip],
            connect_timeout=args.connect_timeout,
            udp_idle_timeout=args.udp_idle_timeout,
            budget=budget,
        )
        proxy_metrics.register(proxy)
    serving_tls = tls.from_args(args)
    server = await start_server(
        f"{args.node_ip}:{args.agent_port}",
        [servicer.register(agent)],
        [servicer.SERVICE_NAME],
        serving_tls.grpc_credentials() if serving_tls else None,
        # The kubelet's port: the apiserver's kubelet client and the admins.
        [AllowIdentities(f"node agent {args.name}", (), (MASTERS,))] if serving_tls else (),
    )
    serving = False
    healthz = None
    if proxy is not None and args.healthz_port:
        # Up before the agent starts: a load balancer sees 503 until the proxy has synced.
        healthz = ProxyHealth(args.name, lambda: serving)
        await healthz.start(args.node_ip, args.healthz_port)
    metrics = None
    if args.metrics:
        host, _, port = args.metrics.rpartition(":")
        metrics = await serve_metrics(host or args.node_ip, int(port))
    exit_code = 0
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    starting = asyncio.create_task(_start(agent, proxy, network))
    await asyncio.wait([starting, asyncio.create_task(stop.wait())], return_when="FIRST_COMPLETED")
    if starting.done() and (error := starting.exception()) is not None:
        if not isinstance(error, IpCommandError):
            raise error
        log.error("lab network: %s (lab mode needs a container with NET_ADMIN)", error)
        exit_code = 1
    elif starting.done():
        await server.set_serving(True)
        serving = True
        failed = asyncio.create_task(_wait(agent, proxy))
        await asyncio.wait(
            [failed, asyncio.create_task(stop.wait())], return_when="FIRST_COMPLETED"
        )
        if failed.done() and failed.exception() is not None:
            log.error("agent failed: %r", failed.exception(), extra={"node": args.name})
            exit_code = 1
        failed.cancel()
    log.info("shutting down", extra={"node": args.name})
    # Load balancers take the node out at their next check; until then a connect to a
    # closed listener is refused and retried on another node (those already in a
    # listener's accept queue are relayed: TcpListener.close).
    serving = False
    await server.set_serving(False)
    starting.cancel()
    if proxy is not None:
        await proxy.stop()
    await agent.stop()
    if network is not None:
        await network.stop()
    await server.stop(grace=2)
    if healthz is not None:
        healthz.close()
    if metrics:
        metrics.close()
    await store.close()
    return exit_code


def raise_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit, as many daemons do (the low soft
    default exists for select(), which neither asyncio nor gRPC use here), and return
    the soft limit now in force: every proxy listener is a descriptor."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as err:
            log.warning("cannot raise the file limit from %d to %d: %s", soft, hard, err)
    return soft


async def _start(agent: NodeAgent, proxy: ServiceProxy | None, network: LabNetwork | None) -> None:
    if network is not None:
        await network.start()  # before any pod: pods bind addresses it makes local
    await agent.start()
    if proxy is not None:
        await proxy.start()


async def _wait(agent: NodeAgent, proxy: ServiceProxy | None) -> None:
    """Until a loop of the agent or the proxy dies (raising its error)."""
    waits = [asyncio.create_task(agent.wait())]
    if proxy is not None:
        waits.append(asyncio.create_task(proxy.wait()))
    try:
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        next(iter(done)).result()
    finally:
        for task in waits:
            task.cancel()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_logging(f"node/{args.name}", args.log_level)
    exit_with(run(args), log)


if __name__ == "__main__":
    main()
