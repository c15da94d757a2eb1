"""The cloud-stub process: `python -m services.cloud_stub --etcd 127.0.0.1:2379`.

The pretend cloud (DESIGN §1, §2.5): gRPC `kubelab.v1.CloudProvider` hands out
external IPs from --pool and forwards each one's ports to the healthy nodes'
nodePorts (`services.cloud_stub.serving` has the whole order of a start).

A restart should not touch load-balancer traffic, as restarting a cloud's
controller does not. So the first thing a start does, with only the relay
imported (about 0.15 s into the process), is bind every listener of
--snapshot-file (`services.cloud_stub.early`) and forward from it, while gRPC,
protobuf and the etcd client (most of a second more) are imported on a worker
thread; the load balancers resumed from etcd then take those listeners over, and
the file is rewritten after every change.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from kubelab.core.addresses import split_address
from kubelab.core.lb_pool import DEFAULT_POOL, LbPool
from kubelab.obs.logs import setup_logging
from kubelab.rpc import tls
from kubelab.runtime.loop import exit_with
from services.cloud_stub.early import EarlyForwarding, read_snapshot, start_early
from services.cloud_stub.logic.snapshot import ForwardingEntry

log = logging.getLogger("cloud_stub")


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="cloud_stub", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--etcd", default="127.0.0.1:2379", help="etcd client host:port")
    parser.add_argument("--listen", default="127.0.0.1:0", help="gRPC host:port (port 0: any)")
    parser.add_argument("--pool", default=DEFAULT_POOL, help="CIDR of the external IPs")
    parser.add_argument(
        "--check-interval", type=_positive, default=0.5, help="seconds between node checks"
    )
    parser.add_argument(
        "--check-timeout", type=_positive, default=0.3, help="seconds a node check may take"
    )
    parser.add_argument(
        "--connect-timeout",
        type=_positive,
        default=0.5,
        help="seconds a connect to a node may take",
    )
    parser.add_argument(
        "--udp-idle-timeout", type=_positive, default=30.0, help="seconds before a UDP flow ends"
    )
    parser.add_argument(
        "--shutdown-grace", type=float, default=2.0, help="seconds open connections get on exit"
    )
    parser.add_argument(
        "--address-file", type=Path, help="once serving, write the bound gRPC host:port here"
    )
    parser.add_argument("--metrics", default="", help="serve /metrics on host:port")
    parser.add_argument(
        "--snapshot-file",
        type=Path,
        help="keep what is forwarded here, and forward from it first thing after a restart",
    )
    parser.add_argument("--log-level", default=None)
    tls.add_flags(parser)
    args = parser.parse_args(argv)
    try:
        args.pool = LbPool(args.pool)
    except ValueError as err:
        parser.error(f"--pool: {err}")
    try:
        split_address(args.listen)
        if args.metrics:
            split_address(args.metrics)
    except ValueError as err:
        parser.error(str(err))
    return args


async def run(args: argparse.Namespace, snapshot: list[ForwardingEntry]) -> int | None:
    early = await start_early(
        snapshot, connect_timeout=args.connect_timeout, udp_idle_timeout=args.udp_idle_timeout
    )
    # Imported only now, and on a worker thread: an import runs no event loop, and the
    # snapshot's listeners must relay meanwhile (the loop gets the GIL back between
    # the import's bytecodes, every switch interval at worst).
    serving = await asyncio.to_thread(importlib.import_module, "services.cloud_stub.serving")
    run_serving: Callable[[argparse.Namespace, EarlyForwarding], Awaitable[int | None]]
    run_serving = serving.run
    return await run_serving(args, early)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_logging("cloud-stub", args.log_level)
    snapshot = read_snapshot(args.snapshot_file) if args.snapshot_file is not None else []
    exit_with(run(args, snapshot), log)


if __name__ == "__main__":
    main()
