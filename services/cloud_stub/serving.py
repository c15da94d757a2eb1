"""The cloud-stub's control side, started by `services.cloud_stub.__main__` once the
snapshot's listeners are bound (see there for the order of a start).

The pretend cloud (DESIGN §1, §2.5): gRPC `kubelab.v1.CloudProvider` (plus
health and reflection) on --listen; it hands out external IPs from --pool and
forwards each one's ports to the healthy nodes' nodePorts.

Order of things: gRPC on --listen with health NOT_SERVING; the cluster's nodes
are read from etcd and followed from then on (a load balancer forwards only to
them: `services.cloud_stub.cluster`); every load balancer stored in etcd is run
again (same address, listeners bound; retried while etcd
is away); the node health checks start; then health turns SERVING and
--address-file receives the bound gRPC address (written whole, by rename, as
`services.dns` does), so a launcher waiting on either never talks to a
cloud-stub that has forgotten its load balancers.

Pool: every address of --pool but the network and broadcast addresses (a /31 or
/32 has neither). Health checks every --check-interval seconds, each bounded by
--check-timeout; one failure takes a node out of rotation, one pass brings it
back; when no node of a load balancer is healthy it fails open (all of them).
Metrics on --metrics (`kubelab_cloud_*`, see services/cloud_stub/metrics.py).

SIGTERM/SIGINT: health NOT_SERVING, the gRPC server stops (1 s grace), the
listeners stop accepting, open connections get --shutdown-grace seconds and are
then reset. Records and claims stay in etcd for the next start.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from prometheus_client import REGISTRY
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from kubelab.core.addresses import split_address
from kubelab.obs.metrics import serve_metrics
from kubelab.rpc import tls
from kubelab.rpc.access import CONTROLLER_USER, MASTERS, AllowIdentities
from kubelab.rpc.server import start_server, write_address_file
from kubelab.store import Store, StoreUnavailableError
from services.cloud_stub import servicer
from services.cloud_stub.cluster import ClusterView
from services.cloud_stub.early import EarlyForwarding, SnapshotWriter
from services.cloud_stub.health import HealthChecker
from services.cloud_stub.metrics import CloudCollector
from services.cloud_stub.provider import CloudProvider

log = logging.getLogger("cloud_stub")


async def _resume(provider: CloudProvider) -> None:
    retrying = AsyncRetrying(
        retry=retry_if_exception_type(StoreUnavailableError),
        wait=wait_exponential(multiplier=0.1, max=2.0),
        before_sleep=lambda state: log.warning(
            "etcd unavailable (%s); retrying", state.outcome and state.outcome.exception()
        ),
    )
    async for attempt in retrying:
        with attempt:
            await provider.resume()


async def run(args: argparse.Namespace, early: EarlyForwarding) -> int | None:
    store = Store(args.etcd)
    checker = HealthChecker(interval=args.check_interval, timeout=args.check_timeout)
    cluster = ClusterView(store)
    provider = CloudProvider(
        store,
        args.pool,
        checker,
        cluster,
        connect_timeout=args.connect_timeout,
        udp_idle_timeout=args.udp_idle_timeout,
        adopt=early.adopt,
    )
    if args.snapshot_file is not None:
        provider.forwarding_changed = SnapshotWriter(args.snapshot_file)
    serving_tls = tls.from_args(args)
    # The cloud controller's API: the controller (its cloud client) and the admins.
    allowed = AllowIdentities("cloud-stub", (CONTROLLER_USER,), (MASTERS,))
    server = await start_server(
        args.listen,
        [servicer.register(provider)],
        [servicer.SERVICE_NAME],
        serving_tls.grpc_credentials() if serving_tls else None,
        [allowed] if serving_tls else (),
    )
    metrics = None
    if args.metrics:
        metrics = await serve_metrics(*split_address(args.metrics))
    REGISTRY.register(CloudCollector(provider))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stopping = asyncio.create_task(stop.wait())
    checks: asyncio.Task[None] | None = None
    watching = asyncio.create_task(cluster.run(), name="cluster")
    following: asyncio.Task[None] | None = None
    code = None
    try:
        log.info("reading the cluster's nodes from etcd %s", args.etcd)
        synced = asyncio.create_task(cluster.synced())
        await asyncio.wait([synced, stopping], return_when=asyncio.FIRST_COMPLETED)
        if not synced.done():
            synced.cancel()
            return None
        log.info("resuming load balancers")
        resuming = asyncio.create_task(_resume(provider))
        await asyncio.wait([resuming, stopping], return_when=asyncio.FIRST_COMPLETED)
        if not resuming.done():
            resuming.cancel()
            return None
        resuming.result()
        early.close_rest()  # what the snapshot had and etcd no longer has
        checks = asyncio.create_task(checker.run(), name="health checks")
        following = asyncio.create_task(provider.follow(), name="follow the cluster")
        await server.set_serving(True)
        if args.address_file:
            write_address_file(args.address_file, server.address)
        log.info(
            "serving CloudProvider on %s",
            server.address,
            extra={"pool": str(args.pool), "load_balancers": len(provider.runtimes)},
        )
        done, _ = await asyncio.wait(
            [stopping, checks, following, watching], return_when=asyncio.FIRST_COMPLETED
        )
        for task in done - {stopping}:
            error = None if task.cancelled() else task.exception()
            log.error("%s ended (%r); exiting", task.get_name(), error)
            code = 1
    finally:
        log.info("shutting down")
        await server.stop(grace=1)
        await provider.stop(args.shutdown_grace)
        for background in (checks, following, watching):
            if background is not None:
                background.cancel()
        stopping.cancel()
        if metrics:
            metrics.close()
        await store.close()
    return code
