"""The controller process: `python -m services.controller --etcd 127.0.0.1:2379`.

Several may run: they elect a leader through etcd and only the leader
reconciles (standbys wait to take over). Serves gRPC health (SERVING once
connected, leader or standby) and reflection on --listen; the metric
`kubelab_controller_leader` says whether this one leads.

--cloud HOST:PORT names the cloud-stub (`kubelab.v1.CloudProvider`) that
provisions `type: LoadBalancer` Services; without it they stay pending with
the condition reason NoCloudProvider.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
from pathlib import Path

from prometheus_client import Gauge

from kubelab.core.proxy_rules import NODE_HEALTH_PORT
from kubelab.obs.logs import setup_logging
from kubelab.obs.metrics import serve_metrics
from kubelab.rpc import tls
from kubelab.rpc.server import start_server
from kubelab.runtime.loop import exit_with
from kubelab.store import EVENT_TTL, Fence, Store
from services.controller.cloud import CloudClient
from services.controller.leader import lead_forever
from services.controller.reconcilers import Controllers

log = logging.getLogger("controller")
LEADER = Gauge("kubelab_controller_leader", "1 while this controller leads")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="controller", description=__doc__)
    parser.add_argument("--etcd", default="127.0.0.1:2379")
    parser.add_argument("--listen", default="127.0.0.1:0", help="health/reflection host:port")
    parser.add_argument("--address-file", type=Path, help="write the bound host:port here")
    parser.add_argument("--identity", default=f"{socket.gethostname()}-{os.getpid()}")
    parser.add_argument("--lease-ttl", type=int, default=2)
    parser.add_argument(
        "--node-grace",
        type=float,
        default=5.0,
        help="seconds a node may be gone before its pods are evicted",
    )
    parser.add_argument(
        "--pod-gc-quarantine",
        type=float,
        default=5.0,
        help="seconds a Node object must be missing before the pods bound to it are deleted",
    )
    parser.add_argument(
        "--max-endpoints-per-slice",
        type=int,
        default=100,
        help="endpoints per EndpointSlice (Kubernetes' default: 100)",
    )
    parser.add_argument(
        "--repair-period", type=float, default=30.0, help="seconds between allocation repairs"
    )
    parser.add_argument(
        "--cloud",
        default="",
        help="the cloud-stub's gRPC host:port (empty: LoadBalancer Services stay pending)",
    )
    parser.add_argument(
        "--node-health-port",
        type=int,
        default=NODE_HEALTH_PORT,
        help="port of the node proxies' /healthz, which load balancers check (0: a TCP "
        "connect to the nodePort instead)",
    )
    parser.add_argument(
        "--event-ttl",
        type=float,
        default=EVENT_TTL,
        help="seconds the events the controller records live after their last update",
    )
    parser.add_argument("--metrics", default="", help="serve /metrics on host:port")
    parser.add_argument("--log-level", default=None)
    tls.add_client_flags(parser, "cloud", "the cloud-stub")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> None:
    store = Store(args.etcd, event_ttl=args.event_ttl)
    server = await start_server(args.listen, [], [])
    if args.address_file:
        args.address_file.write_text(server.address)
    metrics = None
    if args.metrics:
        host, _, port = args.metrics.rpartition(":")
        metrics = await serve_metrics(host or "127.0.0.1", int(port))
    # One channel for the process's life: leadership terms come and go, the cloud stays.
    cloud_tls = tls.client_from_args(args, "cloud")
    cloud = CloudClient(args.cloud, credentials=cloud_tls) if args.cloud else None

    async def lead(fence: Fence) -> None:
        await Controllers(
            store,
            fence,
            node_grace=args.node_grace,
            pod_gc_quarantine=args.pod_gc_quarantine,
            max_endpoints=args.max_endpoints_per_slice,
            repair_period=args.repair_period,
            cloud=cloud,
            node_health_port=args.node_health_port,
        ).run()

    await server.set_serving(True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    election = asyncio.create_task(
        lead_forever(store, args.identity, args.lease_ttl, lead, on_change=LEADER.set)
    )
    await asyncio.wait([election, asyncio.create_task(stop.wait())], return_when="FIRST_COMPLETED")
    log.info("shutting down", extra={"identity": args.identity})
    election.cancel()
    await asyncio.gather(election, return_exceptions=True)
    await server.stop(grace=2)
    if metrics:
        metrics.close()
    if cloud is not None:
        await cloud.close()
    await store.close()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_logging("controller", args.log_level)
    exit_with(run(args), log)


if __name__ == "__main__":
    main()
