"""The apiserver process: `python -m services.apiserver --etcd 127.0.0.1:2379 --listen ...`.

Serves `kubelab.v1.Api`, gRPC health (SERVING once the allocation, namespace and RBAC
views have synced and the system namespaces and default RBAC policy exist) and reflection; the
Kubernetes HTTP API on --http-listen (`rest`, the same registry and the same watch
cache behind both), both over TLS with client-certificate authentication and RBAC
when given kube-apiserver's TLS flags (`tls`, `access`); optionally Prometheus
metrics. Events written through either expire after --event-ttl seconds.
SIGTERM/SIGINT stop it gracefully: health flips to NOT_SERVING, in-flight calls get a
grace period.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import signal
from pathlib import Path
from typing import Any

from kubelab.core import certs, kinds, sa_tokens
from kubelab.core.allocators import (
    DEFAULT_NODE_PORT_RANGE,
    DEFAULT_SERVICE_CIDR,
    ClusterIPAllocator,
    NodePortAllocator,
    PortRange,
)
from kubelab.home import DEFAULT_API_ADDRESS
from kubelab.obs.logs import setup_logging
from kubelab.obs.metrics import serve_metrics
from kubelab.rpc import tls
from kubelab.rpc.server import start_server
from kubelab.runtime.loop import run_actor
from kubelab.store import EVENT_TTL, Store
from services.apiserver import servicer, watch_cache, watch_window
from services.apiserver.access import Access, TokenKeys
from services.apiserver.admission import EscalationCheck
from services.apiserver.allocation_view import AllocationView
from services.apiserver.live_views import LiveViews
from services.apiserver.namespace_view import NamespaceView, ensure_system
from services.apiserver.rbac_view import RbacView
from services.apiserver.rbac_view import ensure_defaults as ensure_rbac_defaults
from services.apiserver.registry import AllocationConfig, Registry
from services.apiserver.rest import server as rest_server
from services.apiserver.rest.token_request import ServiceAccountTokens

log = logging.getLogger("apiserver")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="apiserver", description=__doc__)
    parser.add_argument("--listen", default=DEFAULT_API_ADDRESS, help="host:port (port 0: any)")
    parser.add_argument("--etcd", default="127.0.0.1:2379", help="etcd client host:port")
    parser.add_argument("--service-cidr", default=DEFAULT_SERVICE_CIDR)
    parser.add_argument("--node-port-range", default=DEFAULT_NODE_PORT_RANGE)
    parser.add_argument(
        "--dns-ip",
        default=None,
        help="ClusterIP kept for cluster DNS (default: the CIDR's 10th address)",
    )
    parser.add_argument(
        "--event-ttl",
        type=float,
        default=EVENT_TTL,
        help="seconds an Event lives after its last update (Kubernetes' default: 1 h)",
    )
    parser.add_argument("--address-file", type=Path, help="write the bound host:port here")
    parser.add_argument(
        "--http-listen",
        default=f"127.0.0.1:{rest_server.DEFAULT_PORT}",
        help="host:port of the Kubernetes HTTP API (port 0: any)",
    )
    parser.add_argument(
        "--http-address-file", type=Path, help="write the HTTP API's bound host:port here"
    )
    parser.add_argument(
        "--watch-cache-size",
        type=int,
        default=watch_window.DEFAULT_RING_SIZE,
        help="recent events kept per kind for watches resuming from a resourceVersion",
    )
    parser.add_argument(
        "--watch-buffer",
        type=int,
        default=watch_cache.DEFAULT_WATCHER_BUFFER,
        help="undelivered events a watcher may have before it is ended (it re-watches)",
    )
    parser.add_argument(
        "--watch-bookmark-interval",
        type=float,
        default=watch_cache.DEFAULT_BOOKMARK_INTERVAL,
        help="seconds between the bookmarks of watches that allow them",
    )
    parser.add_argument("--metrics", default="", help="serve /metrics on host:port")
    parser.add_argument("--log-level", default=None)
    tls.add_flags(parser)
    tls.add_client_flags(parser, "kubelet", "the node agents (logs)")
    parser.add_argument(
        "--service-account-key-file", type=Path, help="verifies ServiceAccount tokens (sa.pub)"
    )
    parser.add_argument("--service-account-signing-key-file", type=Path, help="signs them (sa.key)")
    parser.add_argument("--service-account-issuer", default=sa_tokens.ISSUER)
    return parser.parse_args(argv)


def service_account_keys(args: argparse.Namespace) -> tuple[TokenKeys | None, Any]:
    """What checks ServiceAccount tokens and what signs them (kube-apiserver's flags)."""
    keys, signing = None, None
    try:
        if args.service_account_key_file:
            public = certs.load_public_key(args.service_account_key_file.read_bytes())
            keys = TokenKeys(public, args.service_account_issuer, (args.service_account_issuer,))
        if args.service_account_signing_key_file:
            signing = certs.load_key(args.service_account_signing_key_file.read_bytes())
    except OSError as err:
        raise ValueError(f"cannot read a service account key: {err}") from None
    return keys, signing


async def run(args: argparse.Namespace) -> None:
    network = ipaddress.IPv4Network(args.service_cidr, strict=False)
    dns_ip = args.dns_ip or str(network.network_address + 10)
    allocation = AllocationConfig(
        ips=ClusterIPAllocator(args.service_cidr, reserved=[dns_ip]),
        ports=NodePortAllocator(PortRange.parse(args.node_port_range)),
    )
    store = Store(args.etcd, event_ttl=args.event_ttl)
    view = AllocationView(store)
    namespaces = NamespaceView(store)
    registry = Registry(store, view, allocation, namespaces=namespaces)
    # One watch cache for both fronts: one etcd watch per kind, whoever watches.
    cache = watch_cache.WatchCache(
        LiveViews(store),
        ring_size=args.watch_cache_size,
        watcher_buffer=args.watch_buffer,
        bookmark_interval=args.watch_bookmark_interval,
    )
    serving_tls = tls.from_args(args)
    rbac = RbacView(store, cache)
    token_keys, signing = service_account_keys(args)
    access = (
        Access(serving_tls.client_ca, rbac=rbac, tokens=token_keys, accounts=rbac)
        if serving_tls
        else None
    )
    if access is not None:
        registry.admit = EscalationCheck(access)
    server = await start_server(
        args.listen,
        [servicer.register(registry, cache, access)],
        [servicer.SERVICE_NAME],
        serving_tls.grpc_credentials() if serving_tls else None,
    )
    tokens = ServiceAccountTokens(store, signing, args.service_account_issuer) if signing else None
    http = rest_server.RestServer(
        registry, cache, access, tls.client_from_args(args, "kubelet"), tokens
    )
    http_address = await http.start(
        args.http_listen, serving_tls.http_context() if serving_tls else None
    )
    metrics = None
    if args.metrics:
        host, _, port = args.metrics.rpartition(":")
        metrics = await serve_metrics(host or "127.0.0.1", int(port))
    if args.http_address_file:
        args.http_address_file.write_text(http_address)
    if args.address_file:
        args.address_file.write_text(server.address)
    log.info(
        "listening on %s (gRPC) and %s (Kubernetes HTTP API), %s; syncing allocations from etcd %s",
        server.address,
        http_address,
        "TLS, client certificates, RBAC" if serving_tls else "plain, no authorization",
        args.etcd,
    )
    await view.start()
    await cache.start(kinds.ALL_KINDS)
    await namespaces.start()
    await rbac.start()
    await ensure_system(registry.create)
    await ensure_rbac_defaults(registry)
    await server.set_serving(True)
    log.info("serving", extra={"service_cidr": str(network), "node_ports": args.node_port_range})

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await http.stop()
    await server.stop(grace=5)
    await cache.stop()
    if metrics:
        metrics.close()
    await view.stop()
    await namespaces.stop()
    await rbac.stop()
    await store.close()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_logging("apiserver", args.log_level)
    try:
        run_actor(run(args))
    except OSError as err:
        log.error("%s", err)
        raise SystemExit(1) from None
    except ValueError as err:
        log.error("bad configuration: %s", err)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
