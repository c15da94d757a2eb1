"""A controller over the in-memory fakes, for the apply-step tests: a FakeStore, a FakeClock
(wall time and timers both), a fence the store honours, and every reconciler wired as
`Controllers` wires them; plus builders for the objects they read."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

from kubelab.core import kinds
from kubelab.testing.fakes import FakeClock, FakeStore
from kubelab.testing.pods import make_pod, set_ready
from kubelab.v1 import objects_pb2
from services.controller.load_balancers import Cloud
from services.controller.reconcilers import Controllers

NS = "shop"
APP = {"app": "web"}


class World:
    def __init__(self, cloud: Cloud | None = None) -> None:
        self.clock = FakeClock(start=1_000_000.0)
        self.store = FakeStore(clock=self.clock)
        self.fence = self.store.elect()
        self.controllers = Controllers(
            self.store,
            self.fence,
            node_grace=40.0,
            clock=self.clock,
            timers=self.clock,
            rng=random.Random(7),
            cloud=cloud,
        )
        self.tasks: list[asyncio.Task[None]] = []

    async def start_informers(self) -> None:
        c = self.controllers
        informers = (c.pods, c.statuses, c.nodes, c.heartbeats, c.deployments, c.services, c.slices)
        self.tasks = [asyncio.create_task(i.run()) for i in informers]
        for informer in informers:
            await informer.synced.wait()
        while self.store.watching < len(informers):  # noqa: ASYNC110 - yields, no clock
            await asyncio.sleep(0)

    async def items(self, info: kinds.KindInfo) -> list[kinds.ApiObject]:
        found, _ = await self.store.list(info, NS)
        return found

    async def until(self, check: Callable[[], bool]) -> None:
        """Let the informers and workers run until `check` holds (5 s deadline)."""
        async with asyncio.timeout(5):
            while not check():
                await self.store.settle()
                await asyncio.sleep(0)


def service(name: str = "web") -> objects_pb2.Service:
    svc = objects_pb2.Service(api_version="v1", kind="Service")
    svc.metadata.namespace, svc.metadata.name = NS, name
    svc.spec.selector.update(APP)
    svc.spec.cluster_ip = "10.96.0.10"
    svc.spec.ports.add(name="http", protocol="TCP", port=80, target_port="http")
    return svc


def pod(name: str, node: str = "n1") -> objects_pb2.Pod:
    p = make_pod(name, namespace=NS, node=node, labels=APP)
    p.spec.containers.add(name="app", image="echo").ports.add(name="http", container_port=8080)
    return p


def ready_status(ip: str) -> objects_pb2.PodStatus:
    p = objects_pb2.Pod()
    p.status.phase, p.status.pod_ip = "Running", ip
    set_ready(p, True, 1.0)
    return p.status


def node(name: str) -> objects_pb2.Node:
    n = objects_pb2.Node(api_version="v1", kind="Node")
    n.metadata.name = name
    return n


def deployment(replicas: int) -> objects_pb2.Deployment:
    d = objects_pb2.Deployment(api_version="apps/v1", kind="Deployment")
    d.metadata.namespace, d.metadata.name = NS, "web"
    d.spec.replicas = replicas
    d.spec.selector.match_labels.update(APP)
    d.spec.template.metadata.labels.update(APP)
    d.spec.template.spec.containers.add(name="app", image="echo")
    return d


async def with_a_ready_pod(world: World) -> None:
    await world.store.create(service())
    await world.store.create(pod("web-1"))
    world.store.set_pod_status(NS, "web-1", ready_status("10.244.1.5"))
    await world.start_informers()
    await world.store.settle()


async def stop(world: World) -> None:
    for task in world.tasks:
        task.cancel()
    await asyncio.gather(*world.tasks, return_exceptions=True)
