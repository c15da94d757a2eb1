"""`kubelab.relay` alone, with a static route: the "relay (static route)" row of bench/dataplane.py.

    .venv/bin/python bench/_dataplane_relay.py --host 127.253.0.2 \\
        --tcp 18080=127.250.1.2:8080 --tcp 19000=127.250.1.2:9000 --udp 15353=127.250.1.2:5353

Listens on HOST:PORT for every mapping and relays to its one target: no
informers, no balancer, no counters beyond the relay's own, on uvloop as a node
agent runs. The difference between this row and the NodePort/ClusterIP rows is
what the node proxy adds around the relay. Prints `ready` once every listener is
bound; SIGTERM or SIGINT stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from kubelab.core.endpoint_choice import Target
from kubelab.relay import serve_tcp, serve_udp
from kubelab.relay.static import StaticRoute
from kubelab.runtime.loop import run_actor


def mapping(text: str) -> tuple[int, Target]:
    """`LISTEN_PORT=TARGET_IP:TARGET_PORT`."""
    port, _, target = text.partition("=")
    ip, _, target_port = target.rpartition(":")
    return int(port), Target(ip, int(target_port))


async def serve(args: argparse.Namespace) -> None:
    closers = []
    for port, target in args.tcp:
        server = await serve_tcp(StaticRoute(target), args.host, port)
        closers.append(server.close)
    for port, target in args.udp:
        listener = await serve_udp(StaticRoute(target), args.host, port)
        closers.append(listener.close)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    for close in closers:
        close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--tcp", type=mapping, action="append", default=[])
    parser.add_argument("--udp", type=mapping, action="append", default=[])
    run_actor(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
