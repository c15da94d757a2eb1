"""The cluster DNS process: `python -m services.dns --etcd 127.0.0.1:2379 --listen 127.96.0.10:53`.

Order of things, so that nothing is ever answered from a partial view:
gRPC health (NOT_SERVING) on --health, then the informers list Services and
EndpointSlices, the first zone is built and rendered, and only then are the
DNS sockets bound (UDP and TCP, same port) and health flipped to SERVING.
Until then the DNS port refuses at the socket level: a client falls over to
another server or retries, instead of caching a wrong NXDOMAIN.

--listen defaults to 127.96.0.10:53, the service CIDR's 10th address that
the apiserver keeps out of ClusterIP allocation. When port 53 cannot be
bound for lack of privilege, the server binds --fallback-port (10053; 0:
fail instead) and says so in a warning. --address-file receives, once DNS
serves, two lines: the DNS address actually bound (`127.96.0.10:10053`),
then the gRPC health address (`127.0.0.1:41234`); it is written whole
(rename) so a reader never sees one line without the other.

Metrics on --metrics: `kubelab_dns_queries_total{rcode}`,
`kubelab_dns_rebuild_seconds`, `kubelab_dns_prerendered_questions`.
SIGTERM/SIGINT: health NOT_SERVING, sockets closed, informers stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from prometheus_client import REGISTRY

from kubelab.core.addresses import split_address
from kubelab.core.validation.syntax import is_dns1123_subdomain
from kubelab.obs.logs import setup_logging
from kubelab.obs.metrics import serve_metrics
from kubelab.rpc.server import start_server, write_address_file
from kubelab.runtime.loop import exit_with
from kubelab.store import Store
from services.dns.logic.dns_records import DEFAULT_DOMAIN, DEFAULT_TTL
from services.dns.server import QueryCollector, Responder, listen
from services.dns.sync import SWITCH_INTERVAL, ZoneSync

log = logging.getLogger("dns")

DEFAULT_LISTEN = "127.96.0.10:53"
DEFAULT_FALLBACK_PORT = 10053


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="dns", description=__doc__.split("\n\n")[0])
    parser.add_argument("--etcd", default="127.0.0.1:2379", help="etcd client host:port")
    parser.add_argument(
        "--listen", default=DEFAULT_LISTEN, help="DNS address, UDP and TCP (port 0: any)"
    )
    parser.add_argument(
        "--fallback-port",
        type=int,
        default=DEFAULT_FALLBACK_PORT,
        help="port to use when --listen's port needs privileges we lack (0: fail instead)",
    )
    parser.add_argument("--domain", default=DEFAULT_DOMAIN, help="the cluster domain")
    parser.add_argument("--ttl", type=int, default=DEFAULT_TTL, help="TTL of every record (s)")
    parser.add_argument("--health", default="127.0.0.1:0", help="gRPC health host:port")
    parser.add_argument(
        "--address-file",
        type=Path,
        help="once serving, write the DNS address, then the health address, one per line",
    )
    parser.add_argument("--metrics", default="", help="serve /metrics on host:port")
    parser.add_argument("--log-level", default=None)
    args = parser.parse_args(argv)
    args.domain = args.domain.lower().rstrip(".")
    problems = is_dns1123_subdomain(args.domain)
    if problems:
        parser.error(f"--domain {args.domain!r}: {'; '.join(problems)}")
    if not 0 <= args.ttl <= 2**31 - 1:
        parser.error("--ttl must be 0 or more seconds")
    try:
        args.host, args.port = split_address(args.listen)
    except ValueError as err:
        parser.error(f"--listen: {err}")
    return args


def _exit_if_ended(tasks: Sequence[asyncio.Task[None]]) -> None:
    """The informers and the rebuild loop run forever: one that ended is a bug or a
    store we cannot use; exit (non-zero) rather than serve a zone that stopped moving."""
    for task in tasks:
        if task.done():
            error = None if task.cancelled() else task.exception()
            log.error("%s ended (%r); exiting", task.get_name(), error)
            raise SystemExit(1)


async def run(args: argparse.Namespace) -> None:
    store = Store(args.etcd)
    health = await start_server(args.health, [], [])
    metrics = None
    if args.metrics:
        host, port = split_address(args.metrics)
        metrics = await serve_metrics(host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stopping = asyncio.create_task(stop.wait())

    sync = ZoneSync(store, domain=args.domain, ttl=args.ttl)
    sync.start()
    log.info("syncing Services and EndpointSlices from etcd %s", args.etcd)
    first = asyncio.create_task(sync.first_table())
    await asyncio.wait([first, stopping, *sync.tasks], return_when=asyncio.FIRST_COMPLETED)
    listeners = None
    rebuilds: asyncio.Task[None] | None = None
    try:
        _exit_if_ended(sync.tasks)
        if not first.done():
            first.cancel()
            return
        responder = Responder(first.result())
        collector = QueryCollector(responder)
        REGISTRY.register(collector)
        listeners = await listen(responder, args.host, args.port, args.fallback_port)
        if args.address_file:
            write_address_file(args.address_file, listeners.address, health.address)
        await health.set_serving(True)
        log.info(
            "serving DNS for %s on %s (UDP and TCP); health on %s",
            args.domain,
            listeners.address,
            health.address,
        )
        rebuilds = asyncio.create_task(sync.run(responder.swap))
        await asyncio.wait([stopping, rebuilds, *sync.tasks], return_when=asyncio.FIRST_COMPLETED)
        _exit_if_ended([rebuilds, *sync.tasks])
    finally:
        log.info("shutting down")
        await health.set_serving(False)
        if listeners is not None:
            await listeners.close()
        if rebuilds is not None:
            rebuilds.cancel()
        stopping.cancel()
        await sync.stop()
        await health.stop(grace=1)
        if metrics:
            metrics.close()
        await store.close()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_logging("dns", args.log_level)
    sys.setswitchinterval(SWITCH_INTERVAL)
    exit_with(run(args), log)


if __name__ == "__main__":
    main()
