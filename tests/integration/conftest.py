"""A whole cluster of real processes for end-to-end tests: etcd, apiserver, a controller and
three node agents (127.10.R.N, pods in 127.P.N.0/24 for random R and P, so they never meet a
user's cluster or another test session),
and helpers to wait for pods to converge.

`lb_cluster` is the same cluster plus a cloud-stub (LoadBalancer IPs from a random
127.Q.S.0/`lb_pool_prefix` pool, S >= 100 so it never meets a pod network) whose address the
controller gets with --cloud; the cloud-stub listens on a fixed port, so a test can kill and
restart it under the controller."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from google.protobuf import json_format

from kubelab.client import Client
from kubelab.core.pods import is_ready
from kubelab.testing.cloud import CloudStubProcess, random_pool
from kubelab.testing.processes import (
    ApiServerProcess,
    ControllerProcess,
    EtcdServer,
    NodeAgentProcess,
    free_port,
)
from kubelab.testing.wait import until
from kubelab.v1 import objects_pb2

NODE_GRACE = 2.0
LEASE_TTL = 2
METRICS_PORT = 10249


@dataclass
class Cluster:
    etcd: EtcdServer
    apiserver: ApiServerProcess
    controllers: list[ControllerProcess]
    nodes: list[NodeAgentProcess]
    cloud: CloudStubProcess | None = None

    def node(self, name: str) -> NodeAgentProcess:
        return next(n for n in self.nodes if n.name == name)


@pytest.fixture
def service_cidr() -> str:
    """A random Service range: node proxies bind every ClusterIP with SO_REUSEPORT, and must
    never join the listening group of a user's cluster (127.96.0.0/16) or another session's."""
    return f"127.{random.randint(100, 199)}.0.0/16"


@pytest.fixture
def node(etcd: EtcdServer, tmp_path: Path) -> Iterator[NodeAgentProcess]:
    """One node agent on its own (no controller), for tests of the agent's API."""
    agent = NodeAgentProcess(
        etcd.endpoint,
        tmp_path,
        1,
        ip_base=f"127.10.{random.randint(100, 254)}",
        pod_base=f"127.{random.randint(200, 250)}",
        extra_args=("--lease-ttl", "2"),
    )
    agent.start()
    yield agent
    agent.stop()


@pytest.fixture
def node_grace() -> float:
    """The controller's --node-grace (a test may override it, say to tell pod GC from eviction)."""
    return NODE_GRACE


@pytest.fixture
def node_command_prefix() -> tuple[str, ...]:
    """What the node agents run through (a test may lower their file limit with `prlimit`)."""
    return ()


@pytest.fixture
def cluster(
    etcd: EtcdServer,
    apiserver: ApiServerProcess,
    tmp_path: Path,
    node_grace: float,
    node_command_prefix: tuple[str, ...],
) -> Iterator[Cluster]:
    yield from _cluster(
        etcd,
        apiserver,
        tmp_path,
        node_grace=node_grace,
        node_command_prefix=node_command_prefix,
    )


@pytest.fixture
def lb_pool_prefix() -> int:
    """The cloud-stub pool's prefix length (a test may parametrize a smaller pool)."""
    return 28


@pytest.fixture
def cloud_command_prefix() -> tuple[str, ...]:
    """What the cloud-stub runs through (a test may drop a privilege with `setpriv`)."""
    return ()


@pytest.fixture
def lb_cluster(
    etcd: EtcdServer,
    apiserver: ApiServerProcess,
    tmp_path: Path,
    lb_pool_prefix: int,
    cloud_command_prefix: tuple[str, ...],
) -> Iterator[Cluster]:
    pool = random_pool(lb_pool_prefix)
    cloud = CloudStubProcess(
        etcd.endpoint,
        tmp_path,
        pool,
        listen=f"127.0.0.1:{free_port()}",
        extra_args=("--check-interval", "0.3"),
        command_prefix=cloud_command_prefix,
    )
    cloud.start()
    try:
        yield from _cluster(etcd, apiserver, tmp_path, cloud=cloud)
    finally:
        cloud.stop()


def _cluster(
    etcd: EtcdServer,
    apiserver: ApiServerProcess,
    tmp_path: Path,
    *,
    cloud: CloudStubProcess | None = None,
    node_grace: float = NODE_GRACE,
    node_command_prefix: tuple[str, ...] = (),
) -> Iterator[Cluster]:
    cloud_args = ("--cloud", cloud.address) if cloud is not None else ()
    controller = ControllerProcess(
        etcd.endpoint, tmp_path, extra_args=("--node-grace", str(node_grace), *cloud_args)
    )
    # Random node and pod networks: test sessions running side by side on one machine
    # (two developers, a benchmark) must not bind each other's node addresses.
    ip_base = f"127.10.{random.randint(100, 254)}"
    pod_base = f"127.{random.randint(200, 250)}"
    nodes = [
        NodeAgentProcess(
            etcd.endpoint,
            tmp_path,
            n,
            ip_base=ip_base,
            pod_base=pod_base,
            extra_args=(
                *("--lease-ttl", str(LEASE_TTL), "--restart-backoff", "0.2"),
                *("--metrics", f"{ip_base}.{n}:{METRICS_PORT}"),
            ),
            command_prefix=node_command_prefix,
        )
        for n in (1, 2, 3)
    ]
    running: list[ControllerProcess | NodeAgentProcess] = []
    everything: list[ControllerProcess | NodeAgentProcess] = [controller, *nodes]
    try:
        for process in everything:
            process.start()
            running.append(process)
        yield Cluster(etcd, apiserver, [controller], nodes, cloud)
    finally:
        for process in reversed(running):
            process.stop()


@pytest.fixture
async def api(apiserver: ApiServerProcess) -> AsyncIterator[Client]:
    async with Client(apiserver.address, timeout=10) as client:
        yield client


def deployment(replicas: int, *, period: int = 1, failures: int = 3) -> objects_pb2.Deployment:
    container = {
        "name": "shop",
        "image": "kubelab/echo",
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": period,
            "failureThreshold": failures,
        },
    }
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "shop"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "shop", "env": "prod"}},
            "template": {
                "metadata": {"labels": {"app": "shop", "env": "prod"}},
                "spec": {"containers": [container], "terminationGracePeriodSeconds": 2},
            },
        },
    }
    return json_format.ParseDict(body, objects_pb2.Deployment())


async def pods(api: Client) -> list[objects_pb2.Pod]:
    items, _ = await api.list("pods", label_selector="app=shop")
    return [p for p in items if isinstance(p, objects_pb2.Pod)]


async def eventually(
    api: Client,
    check: Callable[[list[objects_pb2.Pod]], bool],
    timeout: float,
    what: str,
) -> list[objects_pb2.Pod]:
    """Until `check(the app=shop pods)` holds; those pods."""
    return await until(
        what, lambda: pods(api), check, timeout=timeout, interval=0.05, describe=pod_summary
    )


def pod_summary(items: list[objects_pb2.Pod]) -> list[tuple[str, str, str, bool]]:
    return [(p.metadata.name, p.spec.node_name, p.status.phase, is_ready(p)) for p in items]


def ready_count(n: int) -> Callable[[list[objects_pb2.Pod]], bool]:
    def check(items: list[objects_pb2.Pod]) -> bool:
        live = [p for p in items if not p.metadata.HasField("deletion_timestamp")]
        return len(live) == n and all(is_ready(p) for p in live)

    return check
