"""The world bench/propagation.py measures: Services and pods on simulated nodes.

10,000 pod processes do not fit on the project's 2-core machine, so a World of Services
and pods bound to three simulated nodes is written to etcd as the apiserver and the node
agents would (`populate`), and the nodes' leases are kept alive (`keep_leases`).
bench/_dataplane_propagation.py reuses it.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from google.protobuf.timestamp_pb2 import Timestamp

from kubelab.core import kinds
from kubelab.core.allocators import service_claims
from kubelab.core.pods import to_timestamp
from kubelab.core.validation.objects import apply_defaults
from kubelab.store import Lease, Store
from kubelab.v1 import objects_pb2

NAMESPACE = "default"
NODE_IPS = {f"node-{n}": f"127.10.92.{n}" for n in (1, 2, 3)}
BASELINE_NODE = "bench-baseline"
# The simulated node agents' lease: long, so a busy moment in this process loses nothing.
LEASE_TTL = 10
WRITERS = 256  # setup writes in flight


class NotConverged(Exception):
    """The world did not reach a phase's goal before its deadline."""


# ---------------------------------------------------------------------- the world


@dataclass(frozen=True, slots=True)
class PodInfo:
    name: str
    service: str
    ip: str
    node: str


@dataclass
class World:
    services: list[str]
    pods: dict[str, PodInfo]
    members: dict[str, frozenset[str]]
    by_ip: dict[str, str]
    # What each pod's status says now (what the slices must come to say).
    ready: dict[str, bool]
    started: Timestamp = field(default_factory=lambda: to_timestamp(time.time()))
    leases: dict[str, Lease] = field(default_factory=dict)

    @classmethod
    def build(cls, services: int, pods: int) -> World:
        names = [f"svc-{i:04d}" for i in range(services)]
        infos: dict[str, PodInfo] = {}
        members: dict[str, frozenset[str]] = {}
        nodes = sorted(NODE_IPS)
        for i, service in enumerate(names):
            mine = []
            for j in range(pods):
                k = i * pods + j
                name = f"{service}-{j}"
                ip = f"127.249.{k // 250}.{k % 250 + 1}"
                infos[name] = PodInfo(name, service, ip, nodes[k % len(nodes)])
                mine.append(name)
            members[service] = frozenset(mine)
        return cls(
            services=names,
            pods=infos,
            members=members,
            by_ip={p.ip: p.name for p in infos.values()},
            ready=dict.fromkeys(infos, True),
        )

    def status(self, name: str, ready: bool, since: float) -> objects_pb2.PodStatus:
        """The status a node agent reports for a running pod, Ready or not since `since`."""
        pod = self.pods[name]
        status = objects_pb2.PodStatus(
            phase="Running",
            pod_ip=pod.ip,
            pod_ips=[objects_pb2.PodIP(ip=pod.ip)],
            host_ip=NODE_IPS[pod.node],
        )
        status.start_time.CopyFrom(self.started)
        changed = to_timestamp(since)
        for kind, value, at in (
            ("Initialized", True, self.started),
            ("Ready", ready, changed),
            ("ContainersReady", ready, changed),
            ("PodScheduled", True, self.started),
        ):
            condition = status.conditions.add(type=kind, status="True" if value else "False")
            condition.last_transition_time.CopyFrom(at)
            if not value:
                condition.reason = "ContainersNotReady"
                condition.message = "containers with unready status: [echo]"
        container = status.container_statuses.add(
            name="echo", ready=ready, started=True, image="kubelab/echo"
        )
        container.state.running.started_at.CopyFrom(self.started)
        return status


def node_object(name: str, ip: str) -> objects_pb2.Node:
    node = objects_pb2.Node(api_version="v1", kind="Node")
    node.metadata.name = name
    node.metadata.labels.update({"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"})
    node.spec.pod_cidr = "127.249.0.0/16"
    node.status.addresses.add(type="InternalIP", address=ip)
    node.status.addresses.add(type="Hostname", address=name)
    return node


def service_object(index: int, name: str) -> objects_pb2.Service:
    svc = objects_pb2.Service()
    svc.metadata.name = name
    svc.metadata.namespace = NAMESPACE
    svc.metadata.labels["app"] = name
    svc.spec.type = "ClusterIP"
    svc.spec.selector["app"] = name
    svc.spec.ports.add(name="http", port=80, target_port="8080", protocol="TCP")
    ip = f"127.96.{index // 250}.{index % 250 + 1}"
    svc.spec.cluster_ip = ip
    svc.spec.cluster_ips.append(ip)
    apply_defaults(kinds.SERVICES, svc)
    return svc


def pod_object(pod: PodInfo) -> objects_pb2.Pod:
    obj = objects_pb2.Pod()
    obj.metadata.name = pod.name
    obj.metadata.namespace = NAMESPACE
    obj.metadata.labels["app"] = pod.service
    obj.spec.node_name = pod.node
    container = obj.spec.containers.add(name="echo", image="kubelab/echo")
    container.ports.add(name="http", container_port=8080, protocol="TCP")
    apply_defaults(kinds.PODS, obj)
    return obj


async def run_bounded(jobs: Iterable[Callable[[], Awaitable[object]]], limit: int) -> None:
    """Run every job, at most `limit` at a time (the store group-commits them)."""
    iterator = iter(jobs)

    async def worker() -> None:
        for job in iterator:
            await job()

    await asyncio.gather(*(worker() for _ in range(limit)))


async def populate(store: Store, world: World, service_port: int = 80) -> None:
    """Nodes with live heartbeats, Services with their claims, bound pods, Ready statuses."""
    for name, ip in NODE_IPS.items():
        world.leases[name] = await store.grant_lease(LEASE_TTL)
        await store.create(node_object(name, ip))
        await store.put_heartbeat(name, world.leases[name])
    services = [service_object(i, name) for i, name in enumerate(world.services)]
    for svc in services:
        svc.spec.ports[0].port = service_port
    await run_bounded(
        (functools.partial(store.create, svc, service_claims(svc)) for svc in services), WRITERS
    )
    await run_bounded(
        (functools.partial(store.create, pod_object(p)) for p in world.pods.values()), WRITERS
    )
    since = time.time()
    await run_bounded(
        (
            functools.partial(
                store.put_pod_status,
                NAMESPACE,
                p.name,
                world.status(p.name, True, since),
                world.leases[p.node],
            )
            for p in world.pods.values()
        ),
        WRITERS,
    )


async def keep_leases(store: Store, leases: Sequence[Lease]) -> None:
    while True:
        await asyncio.sleep(LEASE_TTL / 3)
        for lease in leases:
            if not await store.keep_alive(lease):
                raise NotConverged("a simulated node's lease expired: its pod statuses are gone")
