"""A Service with 20,000 ports (valid in Kubernetes) next to the seed's shop (issue 13).

It once took every node agent's file descriptors in seconds: leases lapsed, every node
went NotReady, every pod was evicted, new pods crash-looped on E2BIG from the Service
environment and the node logs grew by a retry line every few seconds. Now each node's
proxy reports it (over its file budget) and serves everything else; the agents run
under `prlimit` with a known limit, so the budget is the same on every machine."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from kubelab.client import Client
from kubelab.testing import wait
from kubelab.testing.traffic import RequestLoop
from kubelab.v1 import objects_pb2
from node_agent.logic.file_budget import file_budget
from tests.integration.conftest import Cluster, pods
from tests.integration.test_dataplane import (
    apply_seed,
    pinned_deployment,
    ready_pods,
    scrape,
    service,
    until_answers,
)

pytestmark = pytest.mark.integration

FILE_LIMIT = 4096
BIG_PORTS = 20_000
FITS = 1_000  # ports: well inside the budget of FILE_LIMIT
NOT_PROGRAMMED = "kubelab_proxy_services_not_programmed"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def node_command_prefix() -> tuple[str, ...]:
    # util-linux's prlimit: wherever the agent's `setpriv` is, it is too.
    return ("prlimit", f"--nofile={FILE_LIMIT}:{FILE_LIMIT}", "--")


def big(ports: int, name: str = "big") -> objects_pb2.Service:
    return service(
        name,
        {
            "selector": {"app": name},
            "ports": [
                {"name": f"p{i}", "port": 10000 + i, "targetPort": 8080} for i in range(ports)
            ],
        },
    )


def environ_of(pod: str) -> dict[str, str]:
    """The environment of the process running `pod` (embedded mode: a local process)."""
    marker = f"POD_NAME={pod}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            items = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker in items:
            pairs = (item.decode(errors="replace").partition("=") for item in items if item)
            return {name: value for name, _, value in pairs}
    raise AssertionError(f"no process runs pod {pod}")


class NodeWatch:
    """Every moment (read every 0.1 s) a node was not Ready, until stopped."""

    def __init__(self, api: Client) -> None:
        self.api = api
        self.not_ready: list[str] = []
        self.task: asyncio.Task[None] | None = None

    def start(self) -> NodeWatch:
        self.task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        while True:
            nodes, _ = await self.api.list("nodes")
            for node in nodes:
                assert isinstance(node, objects_pb2.Node)
                ready = {c.type: c.status for c in node.status.conditions}.get("Ready")
                if ready != "True":
                    self.not_ready.append(f"{node.metadata.name} Ready={ready} at {time.time()}")
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def every_node(
    cluster: Cluster, check: Callable[[Samples], bool], what: str, timeout: float = 60
) -> None:
    def budget(samples: Samples) -> object:
        return {k: v for k, v in samples.items() if "budget" in k[0] or "not_pro" in k[0]}

    deadline = time.monotonic() + timeout  # for every node together
    for node in cluster.nodes:
        await wait.until(
            f"{node.name}: {what}",
            partial(asyncio.to_thread, scrape, node.ip),
            check,
            timeout=max(0.0, deadline - time.monotonic()),
            interval=0.2,
            describe=budget,
        )


def big_refused(samples: Samples) -> bool:
    labels = frozenset({"service": "default/big", "reason": "file_budget"}.items())
    return samples.get((NOT_PROGRAMMED, labels)) == 1


def big_programmed(samples: Samples) -> bool:
    listeners = samples.get(("kubelab_proxy_file_budget", frozenset({("kind", "in_use")})), 0)
    reported = [k for k in samples if k[0] == NOT_PROGRAMMED]
    return not reported and listeners >= FITS


def nothing_reported(samples: Samples) -> bool:
    return not [k for k in samples if k[0] == NOT_PROGRAMMED]


async def test_a_service_with_20000_ports_is_reported_and_breaks_nothing(
    cluster: Cluster, api: Client
) -> None:
    shop, prod = await apply_seed(api)
    node_port = shop.spec.ports[0].node_port
    seed = {p.metadata.uid for p in await pods(api)}
    # Built before the request loops start: parsing 20,000 ports takes this process's
    # loop a second, which would time the loops' requests out on the client side.
    huge, fits = big(BIG_PORTS), big(FITS)
    watch = NodeWatch(api).start()
    loops = [RequestLoop(node.ip, node_port).start() for node in cluster.nodes]
    marks: list[tuple[float, str]] = []

    def mark(what: str) -> None:
        marks.append((time.monotonic(), what))

    try:
        for node in cluster.nodes:
            await until_answers(node.ip, node_port, prod)
        mark("apply 20000")
        applied, _ = await api.apply(huge)
        assert len(applied.spec.ports) == BIG_PORTS, "valid in Kubernetes: accepted"
        await every_node(cluster, big_refused, "reporting default/big over its file budget")
        budget = file_budget(FILE_LIMIT)
        assert BIG_PORTS > budget.listeners > FITS

        # A new pod in the namespace starts: the Service's variables would pass ARG_MAX.
        mark("refused; new pod")
        await api.apply(
            pinned_deployment("fresh", "node-1", [{"name": "http", "containerPort": 8080}])
        )
        (fresh,) = await ready_pods(api, "fresh", 1)
        env = environ_of(fresh.metadata.name)
        assert env["SHOP_SERVICE_HOST"] == shop.spec.cluster_ip, "other Services keep theirs"
        assert not [name for name in env if name.startswith("BIG_")]
        fresh_log = cluster.node("node-1").log_path.read_text()
        assert "no service environment variables for svc=default/big" in fresh_log

        # Shrunk to fit, it is programmed; grown again, reported again; deleted, forgotten.
        mark(f"shrink to {FITS}")
        await api.apply(fits)
        await every_node(cluster, big_programmed, f"serving default/big's {FITS} ports")
        mark("grow to 20000")
        await api.apply(huge)
        await every_node(cluster, big_refused, "reporting default/big again")
        mark("delete")
        await api.delete("services", "big")
        await every_node(cluster, nothing_reported, "forgetting default/big")
        mark("deleted")
        for node in cluster.nodes:
            await until_answers(node.ip, node_port, prod)
    finally:
        for loop in loops:
            await loop.stop()
        await watch.stop()

    assert watch.not_ready == [], "nodes stayed Ready"
    for node, loop in zip(cluster.nodes, loops, strict=True):
        assert loop.attempts > 0
        assert loop.failures == [], f"{node.name}'s NodePort stopped answering; {marks}"
    now = await pods(api)
    assert seed <= {p.metadata.uid for p in now}, "no seed pod was evicted or replaced"
    for node in cluster.nodes:
        text = node.log_path.read_text()
        about_big = [line for line in text.splitlines() if "default/big" in line]
        # Per node: refused, programmed, refused, and a pod's warning; never a line per retry
        # or per listener.
        assert len(about_big) <= 12, f"{node.name}: {len(about_big)} lines:\n" + "\n".join(
            about_big[:20]
        )
        assert "lease expired" not in text, f"{node.name} lost its lease"
        assert len(text) < 256 * 1024, f"{node.name}'s log is {len(text)} bytes"


def listeners(samples: Samples) -> float:
    return samples.get(("kubelab_proxy_file_budget", frozenset({("kind", "in_use")})), 0)


async def test_a_refused_service_is_programmed_when_listeners_are_released(
    cluster: Cluster, api: Client
) -> None:
    """Parked over the budget, not retried in a loop: another Service's delete wakes it.
    Then an agent restarted with 20,000 ports in etcd comes back Ready and reports them."""
    left = 500
    filler = file_budget(FILE_LIMIT).listeners - left
    await api.apply(big(filler, name="filler"))
    await every_node(cluster, lambda s: listeners(s) == filler, f"holding {filler} listeners")
    await api.apply(big(FITS))
    await every_node(cluster, big_refused, f"refusing {FITS} listeners with {left} left")
    for node in cluster.nodes:
        assert listeners(await asyncio.to_thread(scrape, node.ip)) == filler, "filler kept"
    await api.delete("services", "filler")
    await every_node(cluster, big_programmed, "programming default/big once filler is gone")

    # An agent (re)started with the 20,000 ports in etcd starts, serves and reports it.
    await api.apply(await asyncio.to_thread(big, BIG_PORTS))
    await every_node(cluster, big_refused, "refusing 20,000 ports")
    node = cluster.node("node-2")
    await asyncio.to_thread(node.stop)
    await asyncio.to_thread(node.start)
    await every_node(cluster, big_refused, "refusing 20,000 ports after a restart")
    (back,) = [n for n in (await api.list("nodes"))[0] if n.metadata.name == "node-2"]
    assert isinstance(back, objects_pb2.Node)
    assert {c.type: c.status for c in back.status.conditions}["Ready"] == "True"
