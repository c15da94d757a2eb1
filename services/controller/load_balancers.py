"""The LoadBalancer reconciler's plumbing (DESIGN §2.5): Services ↔ the cloud's load balancers.

Keys are Services. A Service is queued when it is (or was) `type: LoadBalancer`
or its status still shows an address of ours; every such Service is queued
again when the set of Ready nodes changes (debounced: a burst of node events
costs one pass). Changes to a Service's status alone queue nothing: they are
our own writes. The worker reads the caches and, level-triggered:

* a LoadBalancer Service: builds the request (`kubelab.core.lb_requests`),
  calls EnsureLoadBalancer, and writes `status.loadBalancer.ingress` and the
  `LoadBalancerProvisioned` condition with a fenced compare-and-swap — only
  when they differ from what is stored;
* a Service gone or of another type that may still have a load balancer:
  DeleteLoadBalancer (idempotent), then clears the status it showed. Every
  release re-queues the Services waiting for an address.

Retries: a cloud that does not answer backs off in the work queue (and the
condition says CloudProviderUnavailable; after 15 retries the worker drops the
key, and the resync below picks it up again); a Service waiting for an address
(pool exhausted, its address another's) or for a listener (a privileged port)
is retried as soon as any load balancer is released, and every
`pending_period` seconds as a safety net; every LoadBalancer Service, and every
Service whose load balancer may still exist, is synced again every
`resync_period` seconds, which heals a load balancer removed behind the
controller's back and finishes a release the worker gave up on.

On becoming leader, after every informer has synced, the cloud's list is
compared with the Services: a load balancer whose Service is gone or is no
longer a LoadBalancer (deleted while no controller led) is queued for deletion.
A deposed leader's cloud calls are not fenced (the cloud has no notion of
leaders); they are idempotent, and the new leader's view wins.

Without a cloud (`--cloud` empty) nothing is called: LoadBalancer Services get
the condition reason NoCloudProvider.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from prometheus_client import Counter, Gauge

from kubelab.core import event_notes as notes
from kubelab.core import lb_requests
from kubelab.core.keys import ObjectKey
from kubelab.core.lb_requests import InvalidRequestError, Outcome, Retry
from kubelab.core.proxy_rules import NODE_HEALTH_PORT
from kubelab.obs.logs import kobj
from kubelab.runtime.clock import Clock
from kubelab.runtime.events import EventRecorder
from kubelab.runtime.informer import Informer
from kubelab.runtime.queue import WorkQueue
from kubelab.runtime.worker import TemporaryError, Worker
from kubelab.store import (
    ConflictError,
    Fence,
    NotFoundError,
    NotLeaderError,
    StoreProtocol,
    StoreUnavailableError,
)
from kubelab.v1 import cloud_pb2, objects_pb2
from services.controller.cloud import CloudCallError

log = logging.getLogger("controller")

ENSURES = Counter("kubelab_controller_lb_ensures_total", "EnsureLoadBalancer calls", ["result"])
FAILURES = Counter(
    "kubelab_controller_lb_failures_total", "load balancer syncs that failed", ["reason"]
)
DELETES = Counter("kubelab_controller_lb_deletes_total", "load balancers deleted")
PENDING = Gauge("kubelab_controller_lb_pending", "LoadBalancer Services without an address")

# Not a Service key (Services always have a namespace): "the node set may have changed".
_NODES = ObjectKey(("", "nodes"))


class Cloud(Protocol):
    async def ensure(self, spec: cloud_pb2.LoadBalancerSpec) -> cloud_pb2.LoadBalancer: ...
    async def get(self, namespace: str, name: str) -> cloud_pb2.LoadBalancer: ...
    async def delete(self, namespace: str, name: str) -> None: ...
    async def list(self) -> list[cloud_pb2.LoadBalancer]: ...


class _TryAgain(TemporaryError):
    """The sync ended in a state worth retrying with back-off (status already written)."""


def _svc(key: ObjectKey) -> str:
    return f"{key[0]}/{key[1]}"


def _spec_changed(old: objects_pb2.Service | None, new: objects_pb2.Service | None) -> bool:
    """False when only the status (or the resourceVersion) moved: our own writes."""
    if old is None or new is None:
        return True
    return (
        old.spec != new.spec
        or old.metadata.uid != new.metadata.uid
        or old.metadata.generation != new.metadata.generation
        or dict(old.metadata.annotations) != dict(new.metadata.annotations)
    )


class LoadBalancerController:
    def __init__(
        self,
        store: StoreProtocol,
        fence: Fence,
        *,
        services: Informer[ObjectKey, objects_pb2.Service],
        nodes: Informer[ObjectKey, objects_pb2.Node],
        heartbeats: Informer[str, bool],
        cloud: Cloud | None,
        node_health_port: int = NODE_HEALTH_PORT,
        node_debounce: float = 0.5,
        pending_period: float = 3.0,
        resync_period: float = 60.0,
        workers: int = 4,
        clock: Callable[[], float] = time.time,
        timers: Clock | None = None,
        events: EventRecorder | None = None,
    ) -> None:
        self.store = store
        self.fence = fence
        self.services = services
        self.nodes = nodes
        self.heartbeats = heartbeats
        self.cloud = cloud
        self.node_health_port = node_health_port
        self.node_debounce = node_debounce
        self.pending_period = pending_period
        self.resync_period = resync_period
        self.workers = workers
        self.clock = clock
        self.events = events or EventRecorder.null()
        self.queue: WorkQueue[ObjectKey] = WorkQueue(clock=timers)
        self.worker = Worker(
            "load-balancers",
            self.queue,
            self.sync,
            describe=lambda key: kobj(_svc(key), kind="svc"),
            expected=(StoreUnavailableError, ConflictError),
            fatal=(NotLeaderError,),
            logger=log,
        )
        # Services that may have a load balancer in the cloud (Ensured, listed, or last
        # seen as LoadBalancer): only these cost a DeleteLoadBalancer when they go.
        self.known: set[ObjectKey] = set()
        # Services waiting for an address or a listener, oldest first.
        self.waiting: dict[ObjectKey, None] = {}
        self.without_address: set[ObjectKey] = set()
        self.node_set: tuple[cloud_pb2.LoadBalancerNode, ...] = ()
        services.on_change(self._service_changed)
        nodes.on_change(lambda key, old, new: self.queue.add_after(_NODES, node_debounce))
        heartbeats.on_change(lambda key, old, new: self.queue.add_after(_NODES, node_debounce))

    # ------------------------------------------------------------------ events

    def _service_changed(
        self, key: ObjectKey, old: objects_pb2.Service | None, new: objects_pb2.Service | None
    ) -> None:
        if not _spec_changed(old, new):
            return
        was = old is not None and lb_requests.wants_load_balancer(old)
        if was:
            self.known.add(key)
        is_lb = new is not None and lb_requests.wants_load_balancer(new)
        shows = new is not None and lb_requests.shows_load_balancer(new)
        if was or is_lb or shows or key in self.known:
            self.queue.add(key)

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        """Work until cancelled. Call once every informer has synced (DESIGN §7a)."""
        self.node_set = self._ready_nodes()
        for key, obj in self.services.cache.items():
            if lb_requests.wants_load_balancer(obj) or lb_requests.shows_load_balancer(obj):
                self.queue.add(key)
        tasks = [asyncio.create_task(self.worker.run(self.workers))]
        tasks.append(asyncio.create_task(self._retry_pending()))
        tasks.append(asyncio.create_task(self._resync()))
        if self.cloud is not None:
            tasks.append(asyncio.create_task(self._sweep_orphans(self.cloud)))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.queue.close()
            PENDING.set(0)

    async def sync(self, key: ObjectKey) -> None:
        if key == _NODES:
            self._nodes_changed()
        else:
            await self.reconcile(key)

    async def _retry_pending(self) -> None:
        while True:
            await asyncio.sleep(self.pending_period)
            for key in self.waiting:
                self.queue.add(key)

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.resync_period)
            for key in [*self._load_balancer_keys(), *self.known]:
                self.queue.add(key)

    async def _sweep_orphans(self, cloud: Cloud) -> None:
        """Queue every load balancer the cloud has whose Service does not want one; the
        worker deletes it. Retried until the cloud answers once."""
        delay = 0.2
        while True:
            try:
                listed = await cloud.list()
                break
            except CloudCallError as err:
                log.warning("cannot list the cloud's load balancers (%s); retrying", err)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        for lb in listed:
            key = ObjectKey((lb.spec.namespace, lb.spec.name))
            self.known.add(key)
            svc = self.services.get(key)
            if svc is None or not lb_requests.wants_load_balancer(svc):
                log.info("orphaned load balancer on %s", lb.ip, extra=kobj(_svc(key), kind="svc"))
                self.queue.add(key)

    # ------------------------------------------------------------------ nodes

    def _ready_nodes(self) -> tuple[cloud_pb2.LoadBalancerNode, ...]:
        nodes = list(self.nodes.cache.values())
        return lb_requests.lb_nodes(nodes, self.heartbeats.cache)

    def _load_balancer_keys(self) -> list[ObjectKey]:
        return [
            key for key, obj in self.services.cache.items() if lb_requests.wants_load_balancer(obj)
        ]

    def _nodes_changed(self) -> None:
        current = self._ready_nodes()
        if current == self.node_set:
            return
        log.info(
            "ready nodes changed; re-ensuring every load balancer",
            extra={"nodes": ",".join(n.name for n in current)},
        )
        self.node_set = current
        for key in self._load_balancer_keys():
            self.queue.add(key)

    # ------------------------------------------------------------------ work

    async def reconcile(self, key: ObjectKey) -> None:
        service = self.services.get(key)
        if service is None or not lb_requests.wants_load_balancer(service):
            await self._release(key, service)
            return
        outcome = await self._ensure(key, service)
        self._track(key, outcome)
        await self._write_status(key, service, outcome)
        if outcome.retry is Retry.BACKOFF:
            raise _TryAgain(f"{outcome.reason}: {outcome.message}")

    async def _ensure(self, key: ObjectKey, svc: objects_pb2.Service) -> Outcome:
        if self.cloud is None:
            return lb_requests.no_cloud()
        try:
            spec = lb_requests.load_balancer_spec(
                svc, self._ready_nodes(), node_health_port=self.node_health_port
            )
        except InvalidRequestError as err:
            return lb_requests.invalid_request(err)
        self.known.add(key)
        self.events.record(svc, notes.ensuring_load_balancer(not svc.status.conditions))
        try:
            lb = await self.cloud.ensure(spec)
        except CloudCallError as err:
            ENSURES.labels("error").inc()
            ip: str | None = None
            if lb_requests.is_bind_failure(err.code, err.message):
                # The load balancer exists, some listener is not bound: show where it is.
                try:
                    ip = (await self.cloud.get(*key)).ip
                except CloudCallError:
                    ip = None
            return lb_requests.cloud_failure(err.code, err.message, svc, ip=ip)
        ENSURES.labels("ok").inc()
        return lb_requests.provisioned(lb.ip, spec)

    def _track(self, key: ObjectKey, outcome: Outcome) -> None:
        if outcome.provisioned:
            self.waiting.pop(key, None)
        else:
            FAILURES.labels(outcome.reason.value).inc()
            if outcome.retry is Retry.PENDING:
                self.waiting.setdefault(key, None)
            else:
                self.waiting.pop(key, None)

    async def _release(self, key: ObjectKey, svc: objects_pb2.Service | None) -> None:
        """No load balancer wanted: delete any in the cloud, then clear the status."""
        self.waiting.pop(key, None)
        if key in self.known and self.cloud is not None:
            try:
                await self.cloud.delete(*key)
            except CloudCallError as err:
                raise _TryAgain(f"cannot delete the load balancer: {err}") from None
            DELETES.inc()
            log.info("load balancer deleted", extra=kobj(_svc(key), kind="svc"))
            self.events.record(svc, notes.deleted_load_balancer())
            for waiting in self.waiting:  # an address may have come free
                self.queue.add(waiting)
        self.known.discard(key)
        if svc is not None:
            await self._write_status(key, svc, None)
        else:
            self._count_pending(key, False)

    async def _write_status(
        self, key: ObjectKey, svc: objects_pb2.Service, outcome: Outcome | None
    ) -> None:
        status = lb_requests.desired_status(svc, outcome, now=self.clock())
        self._count_pending(key, outcome is not None and not status.load_balancer.ingress)
        if status == svc.status:
            return
        updated = objects_pb2.Service()
        updated.CopyFrom(svc)
        updated.status.CopyFrom(status)
        try:
            await self.store.update(
                updated, expected_revision=int(svc.metadata.resource_version), fence=self.fence
            )
        except NotFoundError:
            return  # deleted meanwhile: its deletion event queues it again
        extra = kobj(_svc(key), kind="svc")
        if outcome is None:
            log.info("load balancer status cleared", extra=extra)
        elif outcome.provisioned:
            log.info("%s", outcome.message, extra={**extra, "ip": outcome.ip})
            self.events.record(svc, notes.ensured_load_balancer())
        else:
            log.warning("%s: %s", outcome.reason.value, outcome.message, extra=extra)
            self.events.record(svc, notes.load_balancer_failed(outcome.message))

    def _count_pending(self, key: ObjectKey, pending: bool) -> None:
        (self.without_address.add if pending else self.without_address.discard)(key)
        PENDING.set(len(self.without_address))
