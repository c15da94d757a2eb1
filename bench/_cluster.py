"""A real cluster for bench/dataplane.py and bench/lb.py, the echo pod they measure, and
a client's view of LoadBalancer Services.

`BenchCluster`: etcd, an apiserver, a controller and three node agents (node IPs
`node_ip_base`.N, pods in `pod_base`.N.0/24) and, given a load-balancer pool,
the cloud-stub, started before the controller, which gets its address with
--cloud (the order `kubelab up` uses, so the controller's first Ensure finds it
serving). Every process logs into the work directory; `stop` stops what runs,
in reverse order.

`IngressWatch` is how a user learns a LoadBalancer Service's address: one watch
on the Services (`kubelab get svc -w`), and per Service the first ingress IP it
showed and when this process received that event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import json_format

from kubelab.client import Client
from kubelab.core.lb_requests import CONDITION_TYPE
from kubelab.core.pods import is_ready, is_terminating
from kubelab.testing.cloud import CloudStubProcess
from kubelab.testing.processes import (
    ApiServerProcess,
    ControllerProcess,
    EtcdServer,
    NodeAgentProcess,
)
from kubelab.testing.wait import until
from kubelab.v1 import cloud_pb2, objects_pb2

if TYPE_CHECKING:  # a stub-only class (see kubelab.testing.cloud.cloud_client)
    from kubelab.v1.cloud_pb2_grpc import CloudProviderAsyncStub

NODES = (1, 2, 3)
LB_POLL = 0.05  # s, between reads of the cloud's view of a load balancer
# s: bench/lb.py times a release with it; shorter would load the cloud-stub doing it.
RELEASE_POLL = 0.01


@dataclass
class BenchCluster:
    workdir: Path
    node_ip_base: str
    pod_base: str
    lb_pool: str = ""  # empty: no cloud-stub, and a controller without --cloud
    etcd: EtcdServer = field(init=False)
    apiserver: ApiServerProcess = field(init=False)
    controller: ControllerProcess = field(init=False)
    cloud: CloudStubProcess | None = field(init=False)
    nodes: dict[str, NodeAgentProcess] = field(init=False)

    def __post_init__(self) -> None:
        self.etcd = EtcdServer(self.workdir / "etcd")
        endpoint = self.etcd.endpoint
        self.apiserver = ApiServerProcess(endpoint, self.workdir)
        self.controller = ControllerProcess(endpoint, self.workdir)
        self.cloud = (
            CloudStubProcess(endpoint, self.workdir, self.lb_pool) if self.lb_pool else None
        )
        agents = (
            NodeAgentProcess(
                endpoint, self.workdir, n, ip_base=self.node_ip_base, pod_base=self.pod_base
            )
            for n in NODES
        )
        self.nodes = {agent.name: agent for agent in agents}

    def start(self) -> None:
        self.etcd.start()
        self.apiserver.start()
        if self.cloud is not None:
            self.cloud.start()
            self.controller.extra_args = ("--cloud", self.cloud.address)
        self.controller.start()
        for agent in self.nodes.values():
            agent.start()

    def stop(self) -> None:
        for agent in self.nodes.values():
            agent.stop()
        self.controller.stop()
        if self.cloud is not None:
            self.cloud.stop()
        self.apiserver.stop()
        self.etcd.stop()

    def agent_pids(self, names: Sequence[str]) -> Callable[[], Sequence[int]]:
        def pids() -> Sequence[int]:
            return [p.pid for n in names if (p := self.nodes[n].process) is not None]

        return pids

    def cloud_pids(self) -> Sequence[int]:
        process = self.cloud.process if self.cloud is not None else None
        return () if process is None else (process.pid,)

    def alive(self, names: Sequence[str], cloud: bool = False) -> Callable[[], None]:
        """A check that raises once one of these node agents (or the cloud-stub) exited."""

        def check() -> None:
            for name in names:
                process = self.nodes[name].process
                if process is None or process.poll() is not None:
                    raise RuntimeError(f"the node agent {name} exited (see {name}.log)")
            if cloud and self.cloud is not None:
                process = self.cloud.process
                if process is None or process.poll() is not None:
                    raise RuntimeError("the cloud-stub exited (see cloud-stub.log)")

        return check


# ---------------------------------------------------------------------- objects


def echo_deployment(name: str, ports: Sequence[dict[str, Any]]) -> objects_pb2.Deployment:
    """One `kubelab/echo` pod labelled app=`name`, with `ports` (container ports; one
    named "http", which the readiness probe reads every second)."""
    labels = {"app": name}
    container = {
        "name": "echo",
        "image": "kubelab/echo",
        "ports": list(ports),
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1},
    }
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }
    return json_format.ParseDict(body, objects_pb2.Deployment())


def echo_service(
    name: str,
    app: str,
    type_: str,
    ports: Sequence[tuple[str, int, str]],
    labels: dict[str, str] | None = None,
) -> objects_pb2.Service:
    """A Service of `type_` for the pods labelled app=`app`; `ports`: (name, port,
    protocol), each to the container port of the same name."""
    body = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "type": type_,
            "selector": {"app": app},
            "ports": [
                {"name": port_name, "port": port, "targetPort": port_name, "protocol": protocol}
                for port_name, port, protocol in ports
            ],
        },
    }
    return json_format.ParseDict(body, objects_pb2.Service())


async def ready_pod(api: Client, app: str, timeout: float) -> objects_pb2.Pod:
    """The first Ready pod labelled app=`app` with an IP; TimeoutError after `timeout` s."""

    async def live() -> list[objects_pb2.Pod]:
        items, _ = await api.list("pods", label_selector=f"app={app}")
        return [p for p in items if isinstance(p, objects_pb2.Pod) and not is_terminating(p)]

    def shown(pods: list[objects_pb2.Pod]) -> str:
        return (
            ", ".join(f"{p.metadata.name} {p.status.phase or 'Pending'}" for p in pods) or "no pod"
        )

    pods = await until(
        "the echo pod Ready",
        live,
        lambda pods: any(is_ready(p) and p.status.pod_ip for p in pods),
        timeout=timeout,
        interval=0.1,
        describe=shown,
    )
    return next(p for p in pods if is_ready(p) and p.status.pod_ip)


# ---------------------------------------------------------------------- LoadBalancer


def condition_text(svc: objects_pb2.Service | None) -> str:
    conditions = svc.status.conditions if svc is not None else []
    cond = next((c for c in conditions if c.type == CONDITION_TYPE), None)
    return f"{cond.status}/{cond.reason}: {cond.message}" if cond is not None else "no condition"


class IngressWatch:
    """One watch on the Services (a `label_selector`'s); per Service name, the first
    ingress IP a client saw and `time.perf_counter()` when this process received it."""

    def __init__(self, api: Client, label_selector: str = "") -> None:
        self.api = api
        self.label_selector = label_selector
        self.seen: dict[str, tuple[str, float]] = {}
        self.last: dict[str, objects_pb2.Service] = {}
        self.waiting: dict[str, asyncio.Future[tuple[str, float]]] = {}
        self.live = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self, timeout: float = 10.0) -> None:
        """Return once the watch streams (its BOOKMARK came): a Service applied from now
        on is seen from its first event, and the stream's setup is no measurement's."""
        self.task = asyncio.create_task(self._run(), name="Service watch")
        live = asyncio.create_task(self.live.wait())
        done, _ = await asyncio.wait(
            [self.task, live], timeout=timeout, return_when="FIRST_COMPLETED"
        )
        live.cancel()
        if self.task in done:
            self.task.result()
            raise RuntimeError("the Service watch ended")
        if not done:
            raise TimeoutError(f"the Service watch did not start within {timeout:g} s")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def _run(self) -> None:
        async for event in self.api.watch("services", label_selector=self.label_selector):
            received = time.perf_counter()  # before anything else this event costs
            if event.type == "BOOKMARK":
                self.live.set()
                continue
            svc = event.object
            if not isinstance(svc, objects_pb2.Service) or event.type == "DELETED":
                continue
            name = svc.metadata.name
            self.last[name] = svc
            ips = [i.ip for i in svc.status.load_balancer.ingress if i.ip]
            if ips and name not in self.seen:
                self.seen[name] = (ips[0], received)
                waiter = self.waiting.pop(name, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(self.seen[name])

    async def ingress(self, name: str, timeout: float) -> tuple[str, float]:
        """`name`'s first ingress IP and when it was seen; TimeoutError (with the
        Service's LoadBalancerProvisioned condition) after `timeout` s."""
        if name in self.seen:
            return self.seen[name]
        waiter = self.waiting.setdefault(name, asyncio.get_running_loop().create_future())
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except TimeoutError:
            raise TimeoutError(
                f"Service {name}: no ingress IP within {timeout:g} s "
                f"({condition_text(self.last.get(name))})"
            ) from None

    def forget(self, name: str) -> None:
        self.seen.pop(name, None)
        self.last.pop(name, None)


async def load_balancer(cloud: CloudProviderAsyncStub, name: str) -> cloud_pb2.LoadBalancer | None:
    """The cloud's view of default/`name` (None: it has no such load balancer)."""
    try:
        return await cloud.GetLoadBalancer(
            cloud_pb2.LoadBalancerKey(namespace="default", name=name), timeout=5
        )
    except grpc.aio.AioRpcError as err:
        if err.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise RuntimeError(f"cloud-stub GetLoadBalancer {name}: {err.details()}") from None


async def until_in_rotation(
    cloud: CloudProviderAsyncStub, name: str, nodes: int, timeout: float
) -> None:
    """Until the load balancer of `name` forwards to `nodes` nodes, all healthy (the
    controller saw every node Ready, the cloud-stub's checks pass)."""

    def healthy(lb: cloud_pb2.LoadBalancer | None) -> int:
        return sum(n.healthy for n in lb.nodes) if lb is not None else 0

    await until(
        f"load balancer {name}: {nodes} nodes in rotation",
        lambda: load_balancer(cloud, name),
        lambda lb: healthy(lb) == nodes,
        timeout=timeout,
        interval=LB_POLL,
        describe=lambda lb: [f"{n.name} {n.healthy}" for n in lb.nodes] if lb else "none",
    )


async def until_released(cloud: CloudProviderAsyncStub, name: str, timeout: float) -> None:
    """Until the cloud has no load balancer for `name` (its address back in the pool)."""
    await until(
        f"load balancer {name} released",
        lambda: load_balancer(cloud, name),
        lambda lb: lb is None,
        timeout=timeout,
        interval=RELEASE_POLL,
        describe=lambda lb: "still in the cloud",
    )
