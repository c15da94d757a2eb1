"""The node agent: runs the pods bound to its node and reports their health (DESIGN §2.2).

It owns one etcd lease. Under it: the node's heartbeat key and the status
of every pod it runs, so a dead agent's pods turn "not ready" everywhere
without anyone's timer. The Node object itself is durable (registered at
start, like a kubelet's), so `get nodes` shows a dead node as NotReady.

Work is level-triggered (STYLE habit 2): the pod and service informers only
enqueue pod keys; `_reconcile_pod` reads the cache and makes the runtime
match it:

* bound here, not terminating → `runtime.ensure` (start if not running);
* bound here, terminating (deletionTimestamp) → terminate with the pod's
  grace period in the background, then delete its status and the object
  (the agent finishes a graceful delete, as a kubelet does);
* not bound here any more (deleted, or evicted while this node was away) →
  terminate and forget.

Statuses are written only when they change (the runtime calls `on_change`;
the reporter diffs against what it last wrote). If the lease is found
expired (the agent was paused or cut off longer than the TTL), the agent
takes a new lease and writes its heartbeat and every status again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kubelab.core import kinds
from kubelab.core.keys import ObjectKey
from kubelab.runtime import sources
from kubelab.runtime.events import EventSink
from kubelab.runtime.queue import WorkQueue
from kubelab.runtime.worker import Worker
from kubelab.store import (
    AlreadyExistsError,
    ConflictError,
    Lease,
    LeaseKeeper,
    LeaseLost,
    NotFoundError,
    Store,
    StoreUnavailableError,
)
from kubelab.v1 import objects_pb2
from node_agent.logic.service_env import SERVICE_LINKS_BUDGET, service_links
from node_agent.runtime import PodRuntime

log = logging.getLogger("node_agent")


@dataclass(frozen=True, slots=True)
class NodeConfig:
    name: str
    node_ip: str
    pod_cidr: str
    agent_port: int
    data_dir: Path
    lease_ttl: int = 2
    restart_backoff: float = 1.0
    external_ips: tuple[str, ...] = ()


def node_object(config: NodeConfig) -> objects_pb2.Node:
    node = objects_pb2.Node(api_version="v1", kind="Node")
    node.metadata.name = config.name
    node.metadata.labels.update(
        {"kubernetes.io/hostname": config.name, "kubernetes.io/os": "linux"}
    )
    node.spec.pod_cidr = config.pod_cidr
    node.spec.pod_cidrs.append(config.pod_cidr)
    node.status.addresses.add(type="InternalIP", address=config.node_ip)
    for address in config.external_ips:
        node.status.addresses.add(type="ExternalIP", address=address)
    node.status.addresses.add(type="Hostname", address=config.name)
    node.status.daemon_endpoints.kubelet_endpoint.port = config.agent_port
    return node


class NodeAgent:
    def __init__(self, store: Store, config: NodeConfig) -> None:
        self.store = store
        self.config = config
        self.pods = sources.objects(store, kinds.PODS)
        self.services = sources.objects(store, kinds.SERVICES)
        self.events = EventSink(store)
        self.runtime = PodRuntime(
            node_name=config.name,
            node_ip=config.node_ip,
            pod_cidr=config.pod_cidr,
            log_dir=config.data_dir / "pods",
            on_change=self._status_changed,
            restart_backoff=config.restart_backoff,
            events=self.events.recorder("kubelet", config.name),
        )
        self._work: WorkQueue[ObjectKey] = WorkQueue()
        self._reports: WorkQueue[ObjectKey] = WorkQueue()
        # Retried for ever, as a kubelet's pod workers and status manager do: a node
        # must converge on what it runs and reports, however long etcd is away.
        self._pod_worker = Worker(
            "pods",
            self._work,
            self._reconcile_pod,
            describe=_pod,
            max_retries=None,
            expected=(StoreUnavailableError,),
            expected_level=logging.WARNING,
            logger=log,
        )
        self._report_worker = Worker(
            "pod-status",
            self._reports,
            self._report,
            describe=_pod,
            max_retries=None,
            expected=(Exception,),  # etcd away, or the lease expired under us
            expected_level=logging.WARNING,
            logger=log,
        )
        self._written: dict[ObjectKey, objects_pb2.PodStatus] = {}
        self._terminating: dict[ObjectKey, asyncio.Task[None]] = {}
        self._links_skipped: dict[ObjectKey, tuple[str, ...]] = {}
        self._lease: Lease | None = None
        self._last_ips: dict[ObjectKey, str] = {}  # pods this agent has not run yet: their IPs
        self._tasks: list[asyncio.Task[None]] = []
        self._pods_task: asyncio.Task[None] | None = None  # stopped first on a clean stop
        self.ready = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self._register()
        self.pods.on_change(self._pod_changed)
        for informer in (self.pods, self.services):
            self._tasks.append(asyncio.create_task(informer.run(), name=informer.name))
        await self.pods.synced.wait()
        await self.services.synced.wait()
        await self._recall_pod_ips()
        self._pods_task = asyncio.create_task(self._pod_worker.run(), name="pods")
        self._tasks += [
            asyncio.create_task(self._keep_lease(), name="lease"),
            self._pods_task,
            asyncio.create_task(self._report_worker.run(), name="reports"),
        ]
        self.ready.set()
        log.info("node ready", extra={"node": self.config.name, "pod_cidr": self.config.pod_cidr})

    async def stop(self) -> None:
        """Clean node shutdown, as a kubelet's graceful node shutdown: no pod starts
        again; every pod turns terminating while the lease and the status reports still
        run, so the EndpointSlices mark it not ready and the node proxies stop picking it
        while it drains (stopping the reports first left it ready until the lease went,
        and a proxy could pick it after its listener closed); once the pods are gone,
        revoke the lease, which deletes the heartbeat and every status at once."""
        if self._pods_task is not None:
            self._pods_task.cancel()
            await asyncio.gather(self._pods_task, return_exceptions=True)
        await self.runtime.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for task in self._terminating.values():
            task.cancel()
        if self._lease is not None:
            with contextlib.suppress(Exception):
                await self.store.revoke_lease(self._lease)
        self._work.close()
        self._reports.close()
        await self.events.close()

    async def wait(self) -> None:
        """Return (raising its error) when one of the agent's loops dies: the process should
        end then, not linger looking healthy."""
        done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
        raise RuntimeError(f"agent loop {next(iter(done)).get_name()} ended")

    async def _register(self) -> None:
        started = time.monotonic()
        steps: dict[str, float] = {}

        def step(name: str) -> None:
            steps[f"{name}_ms"] = round((time.monotonic() - started) * 1000, 1)

        lease = await self.store.grant_lease(self.config.lease_ttl)
        step("granted")
        node = node_object(self.config)
        try:
            await self.store.create(node)
        except AlreadyExistsError:
            current = await self.store.get(kinds.NODES, "", self.config.name)
            node.metadata.uid = current.metadata.uid
            node.metadata.generation = current.metadata.generation
            node.metadata.creation_timestamp.CopyFrom(current.metadata.creation_timestamp)
            node.metadata.labels.update(current.metadata.labels)
            if node != _without_version(current):
                await self.store.update(
                    node, expected_revision=int(current.metadata.resource_version)
                )
        step("node")
        await self.store.put_heartbeat(self.config.name, lease)
        step("heartbeat")
        # Only now: a lease whose heartbeat was never written must not look registered.
        self._lease = lease
        log.info("node registered", extra={"node": self.config.name, **steps})

    async def _recall_pod_ips(self) -> None:
        """Where this node's pods ran before this agent started: an agent that crashed or
        was restarted runs them again on the same IPs, which the slices and every proxy
        still hold (their statuses outlive the agent until its old lease expires). A kubelet
        restart leaves its pods running; this is the nearest a restart of processes gets."""
        keys = [key for key, pod in self.pods.cache.items() if self._mine(pod)]
        statuses = await asyncio.gather(
            *(self.store.get_pod_status(*key) for key in keys), return_exceptions=True
        )
        for key, status in zip(keys, statuses, strict=True):
            if isinstance(status, objects_pb2.PodStatus) and status.pod_ip:
                if status.host_ip == self.config.node_ip:
                    self._last_ips[key] = status.pod_ip
            elif isinstance(status, Exception):  # etcd away: lowest free IPs it is
                log.warning("pod %s/%s: its last IP is unknown: %s", *key, status)
        if self._last_ips:
            log.info(
                "running %d pods again on their last IPs",
                len(self._last_ips),
                extra={"node": self.config.name},
            )

    async def _keep_lease(self) -> None:
        """Renew the node's lease from a thread of its own (`LeaseKeeper`): programming a
        thousand Services or probing a hundred pods never makes this node look dead.
        While etcd cannot confirm it, keep trying the same lease; once it is gone (or
        this loop was stuck for long), register again and report every pod anew."""
        interval = max(self.config.lease_ttl / 3, 0.2)
        while True:
            assert self._lease is not None
            lost = await LeaseKeeper(self.store.endpoint, self._lease).run()
            if lost is LeaseLost.UNCONFIRMED:
                log.warning("lease renewal: %s; retrying", lost.value)
                continue
            log.warning("lease %s; registering again", lost.value, extra={"node": self.config.name})
            # A lost lease means etcd was out of reach for its TTL (or this process was
            # stuck): the store's connection may be a stale one from before a network cut.
            began = time.monotonic()
            await self.store.reconnect()
            log.info("store reconnected in %.0f ms", (time.monotonic() - began) * 1000)
            while True:
                try:
                    await self._register()
                    break
                except Exception as err:  # a conflict on the Node, etcd away: next tick
                    log.warning("re-registration failed: %s; retrying", err)
                    await asyncio.sleep(interval)
            self._written.clear()
            for key in self.runtime.running():
                self._reports.add(key)

    # ------------------------------------------------------------------ pods

    def _pod_changed(
        self, key: ObjectKey, old: objects_pb2.Pod | None, new: objects_pb2.Pod | None
    ) -> None:
        if self._mine(old) or self._mine(new) or key in self.runtime.running():
            self._work.add(key)

    def _mine(self, pod: objects_pb2.Pod | None) -> bool:
        return pod is not None and pod.spec.node_name == self.config.name

    def _env_for(self, key: ObjectKey) -> Mapping[str, str]:
        """The pod's Service variables, bounded so exec cannot fail with E2BIG
        (`node_agent.logic.service_env`); a Service left out is logged once per pod."""
        services = [s for s in self.services.cache.values() if s.metadata.namespace == key[0]]
        links = service_links(services)
        if links.skipped and self._links_skipped.get(key) != links.skipped:
            log.warning(
                "no service environment variables for svc=%s: they would pass the %d KiB "
                "budget (exec would fail with 'argument list too long'); use cluster DNS",
                ",".join(f"{key[0]}/{name}" for name in links.skipped),
                SERVICE_LINKS_BUDGET // 1024,
                extra={"node": self.config.name, "pod": f"{key[0]}/{key[1]}"},
            )
        if links.skipped:
            self._links_skipped[key] = links.skipped
        else:
            self._links_skipped.pop(key, None)
        return links.env

    async def _reconcile_pod(self, key: ObjectKey) -> None:
        pod = self.pods.get(key)
        if key in self._terminating:
            return
        if pod is not None and pod.spec.node_name == self.config.name:
            if pod.metadata.HasField("deletion_timestamp"):
                grace = float(pod.spec.termination_grace_period_seconds)
                self._start_termination(key, grace, delete_object=True)
                return
            last_ip = self._last_ips.pop(key, "")
            await self.runtime.ensure(
                pod, self._env_for(key), last_ip=last_ip, avoid=self._last_ips.values()
            )
            return
        self._last_ips.pop(key, None)  # gone before it ran here again: its IP is free
        if key in self.runtime.running():
            self._start_termination(key, 0.0 if pod is None else 30.0, delete_object=False)

    def _start_termination(self, key: ObjectKey, grace: float, *, delete_object: bool) -> None:
        async def terminate() -> None:
            try:
                await self.runtime.terminate(key[0], key[1], grace)
                await self.store.delete_pod_status(*key)
                self._written.pop(key, None)
                if delete_object:
                    await self._delete_pod_object(key)
            finally:
                self._terminating.pop(key, None)
                self._links_skipped.pop(key, None)
                self._work.add(key)

        self._terminating[key] = asyncio.create_task(terminate(), name=f"terminate {key}")

    async def _delete_pod_object(self, key: ObjectKey) -> None:
        for _ in range(5):
            try:
                current = await self.store.get(kinds.PODS, *key)
            except NotFoundError:
                return
            try:
                await self.store.delete(
                    kinds.PODS, *key, expected_revision=int(current.metadata.resource_version)
                )
                log.info("pod deleted", extra={"pod": f"{key[0]}/{key[1]}"})
                return
            except (NotFoundError, ConflictError):
                continue

    # ------------------------------------------------------------------ status

    def _status_changed(self, namespace: str, name: str) -> None:
        self._reports.add(ObjectKey((namespace, name)))

    async def _report(self, key: ObjectKey) -> None:
        status = self.runtime.status(*key)
        if not self._mine(self.pods.get(key)) and key not in self._terminating:
            # No longer bound here (evicted and re-created elsewhere): the key may be
            # another node's now.
            status = None
        if status is not None and status != self._written.get(key):
            assert self._lease is not None
            await self.store.put_pod_status(*key, status, self._lease)
            self._written[key] = status


def _pod(key: ObjectKey) -> dict[str, str]:
    return {"pod": f"{key[0]}/{key[1]}"}


def _without_version(node: objects_pb2.Node) -> objects_pb2.Node:
    copy = objects_pb2.Node()
    copy.CopyFrom(node)
    copy.metadata.resource_version = ""
    return copy
