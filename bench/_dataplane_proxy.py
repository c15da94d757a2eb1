"""One node's `ServiceProxy` alone, reporting every endpoint set it starts using.

    .venv/bin/python bench/_dataplane_proxy.py --etcd 127.0.0.1:2379 --node node-1 \\
        --node-ip 127.10.92.1

For bench/dataplane.py's propagation phase: the node proxy of node_agent/proxy.py
without the rest of the agent (no pods, no lease), so three of them fit beside
etcd and a controller on two cores. Every `on_programmed` callback prints

    <namespace>/<service> <time.monotonic_ns()> <ready pod IPs, sorted, comma-separated, or ->

on stdout, flushed at once; the timestamp is taken in the callback, right after
the proxy swapped the Service's endpoint set. CLOCK_MONOTONIC is system-wide, so
the benchmark compares it with its own. `synced <monotonic_ns>` follows the
proxy's first full sync. Logs go to stderr. SIGTERM or SIGINT stops it (nothing
is printed while it stops: its listeners closing are not new endpoint sets).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import signal
import sys
import time

from kubelab.core.endpoint_choice import Backend
from kubelab.obs.logs import setup_logging
from kubelab.runtime.loop import run_actor
from kubelab.store import Store
from node_agent.proxy import ServiceProxy


class Reporter:
    def __init__(self) -> None:
        self.quiet = False

    def programmed(self, service: tuple[str, str], backends: tuple[Backend, ...]) -> None:
        if self.quiet:
            return
        now = time.monotonic_ns()
        ips = ",".join(sorted({b.target.ip for b in backends if b.ready})) or "-"
        sys.stdout.write(f"{service[0]}/{service[1]} {now} {ips}\n")
        sys.stdout.flush()


def raise_file_limit() -> None:
    """A listener per ClusterIP: a thousand Services need more than the usual 1,024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def run(args: argparse.Namespace) -> int:
    reporter = Reporter()
    store = Store(args.etcd)
    proxy = ServiceProxy(
        store, node_name=args.node, node_ips=[args.node_ip], on_programmed=reporter.programmed
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    code = 0
    try:
        await proxy.start()
        print(f"synced {time.monotonic_ns()}", flush=True)
        failed = asyncio.create_task(proxy.wait())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait([failed, stopping], return_when=asyncio.FIRST_COMPLETED)
        if failed.done():
            print(f"proxy failed: {failed.exception()!r}", file=sys.stderr, flush=True)
            code = 1
        failed.cancel()
        stopping.cancel()
    finally:
        reporter.quiet = True
        await proxy.stop()
        await store.close()
    return code


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--etcd", required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("--node-ip", required=True)
    args = parser.parse_args()
    setup_logging(f"bench-proxy/{args.node}")
    raise_file_limit()
    raise SystemExit(run_actor(run(args)))


if __name__ == "__main__":
    main()
