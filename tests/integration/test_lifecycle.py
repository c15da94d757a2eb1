"""Lifecycle as Kubernetes: pod GC for deleted nodes, ControllerRef adoption and release.

Real etcd, apiserver, controller and three node agents (tests/integration/conftest.py);
the CLI runs as a subprocess, the way a user runs it. The controller's eviction grace is
long here, so whatever deletes a lost node's pods within seconds is the pod GC, not
node lifecycle eviction.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from kubelab.client import ApiError, Client
from kubelab.core.pods import controller_owner, is_ready
from kubelab.testing import wait
from kubelab.v1 import objects_pb2
from tests.integration.conftest import Cluster, deployment, eventually, pods, ready_count

pytestmark = pytest.mark.integration

# The controller's default --pod-gc-quarantine, which the cluster fixture leaves as it is.
QUARANTINE = 5.0
SELECTOR = "app=shop,env=prod"


@pytest.fixture
def node_grace() -> float:
    """Eviction out of the way: within these tests only the pod GC deletes a node's pods."""
    return 600.0


def kubelab(apiserver_address: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBELAB_HOME": str(home), "KUBELAB_SERVER": apiserver_address}
    result = subprocess.run(
        [sys.executable, "-m", "kubelab.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


async def cli(cluster: Cluster, home: Path, *args: str) -> str:
    result = await asyncio.to_thread(kubelab, cluster.apiserver.address, home, *args)
    assert result.returncode == 0, f"kubelab {' '.join(args)}: {result.stderr}"
    return result.stdout


def names(items: list[objects_pb2.Pod]) -> set[str]:
    return {p.metadata.name for p in items}


async def test_a_deleted_nodes_pods_are_collected_and_deleting_one_completes(
    cluster: Cluster, api: Client, tmp_path: Path
) -> None:
    await api.create(deployment(4))
    ready = await eventually(api, ready_count(4), 30, "4 ready replicas")
    victim = Counter(p.spec.node_name for p in ready).most_common(1)[0][0]
    on_victim = {p.metadata.name for p in ready if p.spec.node_name == victim}

    await asyncio.to_thread(cluster.node(victim).stop)
    # NotReady is not gone: the Node still exists, so its pods stay (eviction's business).
    held_until = time.monotonic() + QUARANTINE + 1
    while time.monotonic() < held_until:
        assert on_victim <= names(await pods(api)), "a NotReady node's pods were collected"
        await asyncio.sleep(0.2)

    assert await cli(cluster, tmp_path, "delete", "node", victim) == f'node "{victim}" deleted\n'
    one = sorted(on_victim)[0]
    assert await cli(cluster, tmp_path, "delete", "pod", one) == f'pod "{one}" deleted\n'
    deleted = time.monotonic()
    await eventually(
        api,
        lambda items: not on_victim & names(items),
        QUARANTINE + 10,
        f"the pods of deleted node {victim} to be collected",
    )
    assert time.monotonic() - deleted < QUARANTINE + 10
    gone = await asyncio.to_thread(kubelab, cluster.apiserver.address, tmp_path, "get", "pod", one)
    assert gone.returncode == 1
    assert "NotFound" in gone.stderr

    def replaced(items: list[objects_pb2.Pod]) -> bool:
        return ready_count(4)(items) and all(p.spec.node_name != victim for p in items)

    await eventually(api, replaced, 30, "4 ready replicas on the remaining nodes")


async def test_a_pod_bound_to_a_node_that_never_existed_is_collected(
    cluster: Cluster, api: Client
) -> None:
    pod = objects_pb2.Pod(api_version="v1", kind="Pod")
    pod.metadata.name = "stray"
    pod.metadata.labels["app"] = "shop"
    pod.spec.node_name = "node-9"
    pod.spec.containers.add(name="shop", image="kubelab/echo")
    await api.create(pod)
    await api.delete("pods", "stray")  # graceful: only an agent on node-9 could finish it
    stored = await api.get("pods", "stray")
    assert isinstance(stored, objects_pb2.Pod) and stored.metadata.HasField("deletion_timestamp")
    await eventually(api, lambda items: not items, QUARANTINE + 10, "the stray pod to go")


async def selected(api: Client) -> list[objects_pb2.Pod]:
    items, _ = await api.list("pods", label_selector=SELECTOR)
    return [p for p in items if isinstance(p, objects_pb2.Pod)]


Check = Callable[[list[objects_pb2.Pod], list[objects_pb2.Pod]], bool]


async def until(
    api: Client, check: Check, timeout: float, what: str
) -> tuple[list[objects_pb2.Pod], list[objects_pb2.Pod]]:
    """Until `check(selected pods, every app=shop pod)` holds."""

    async def both() -> tuple[list[objects_pb2.Pod], list[objects_pb2.Pod]]:
        return await selected(api), await pods(api)

    def summary(current: tuple[list[objects_pb2.Pod], list[objects_pb2.Pod]]) -> object:
        return [
            (p.metadata.name, dict(p.metadata.labels).get("env"), is_ready(p), _owner_uid(p))
            for p in current[1]
        ]

    return await wait.until(
        what, both, lambda current: check(*current), timeout=timeout, interval=0.1, describe=summary
    )


def _owner_uid(pod: objects_pb2.Pod) -> str:
    owner = controller_owner(pod)
    return owner.uid if owner is not None else ""


async def test_a_pod_relabelled_out_is_released_and_relabelled_back_is_adopted(
    cluster: Cluster, api: Client, tmp_path: Path
) -> None:
    created = await api.create(deployment(4))
    uid = created.metadata.uid
    ready = await eventually(api, ready_count(4), 30, "4 ready replicas")
    target = sorted(names(ready))[0]

    def exactly_four_ready_and_owned(chosen: list[objects_pb2.Pod]) -> bool:
        return (
            len(chosen) == 4
            and all(is_ready(p) and not p.metadata.HasField("deletion_timestamp") for p in chosen)
            and all(_owner_uid(p) == uid for p in chosen)
        )

    await cli(cluster, tmp_path, "label", "pod", target, "env=debug", "--overwrite")
    chosen, _ = await until(
        api,
        lambda chosen, everything: (
            exactly_four_ready_and_owned(chosen)
            and any(p.metadata.name == target and not _owner_uid(p) for p in everything)
        ),
        30,
        "the relabelled pod released and replaced",
    )
    assert target not in names(chosen)
    replacements = names(chosen) - names(ready)
    assert len(replacements) == 1

    await cli(cluster, tmp_path, "label", "pod", target, "env=prod", "--overwrite")
    chosen, _ = await until(
        api,
        lambda chosen, everything: (
            exactly_four_ready_and_owned(chosen)
            and target in names(chosen)
            and len(everything) == 4
        ),
        30,
        "the pod adopted back and the surplus deleted",
    )
    # The surplus is the least valuable pod: the replacement, ready for the shortest time.
    assert names(chosen) == names(ready)
    with pytest.raises(ApiError):
        await api.get("pods", replacements.pop())

    async def counts() -> tuple[int, int]:
        current = await api.get("deployments", "shop")
        assert isinstance(current, objects_pb2.Deployment)
        return current.status.replicas, current.status.ready_replicas

    await wait.until("status (replicas, ready) (4, 4)", counts, lambda c: c == (4, 4), interval=0.1)
