"""The Kubernetes HTTP API's read rows of bench/api.py, on the same apiserver in the same run.

* list of 1,000 Services: one namespace holding exactly 1,000 NodePort Services, read
  whole `N` times through each front: HTTP as JSON (a ServiceList), HTTP as the Table
  kubectl asks for, and gRPC `List` (kubelab's client, pages of 500 as kubectl's
  --chunk-size); median wall time per list and the HTTP/gRPC ratio;
* `kubectl get svc`: the real kubectl (.venv/bin/kubectl) against a namespace of a
  few Services, discovery cached as a user's would be after their first command;
  median wall time of `N` runs, beside `kubectl version --client` (no request at all:
  the binary's own start-up, the floor any command pays);
* 100 watchers: 100 HTTP watches of one namespace, each open (its watch-list's
  initial-events-end bookmark arrived) before a Service is created there over HTTP;
  per watcher, the time from just before the POST to its ADDED event; p50/p99 over all
  watchers and changes; and the apiserver's CPU (user + system, from /proc) per event
  delivered over that row, which holds on a busy machine where the latencies do not.

Only measurements: bench/api.py prints them and judges the goals.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from kubelab.client import Client
from kubelab.core import manifests
from kubelab.lab import write_kubeconfig
from kubelab.pki import KubeconfigAuth
from kubelab.v1 import objects_pb2

KUBECTL = Path(sys.executable).parent / "kubectl"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


@dataclass(frozen=True, slots=True)
class ReadFigures:
    list_ms: dict[str, float]  # path -> median ms per whole list
    list_bytes: int  # of the JSON ServiceList
    kubectl_ms: float
    kubectl_version_ms: float
    kubectl_version: str
    watch_latencies: list[float]  # seconds
    watch_cpu_ms: float  # the apiserver's CPU per watch event delivered (all events)


def service(namespace: str, name: str) -> dict[str, object]:
    svc = objects_pb2.Service(api_version="v1", kind="Service")
    svc.metadata.name = name
    svc.metadata.namespace = namespace
    svc.metadata.labels.update({"app": "shop"})
    svc.spec.type = "NodePort"
    svc.spec.selector.update({"app": "shop"})
    svc.spec.ports.add(name="http", port=80, target_port="8080", protocol="TCP")
    return manifests.to_kubernetes_dict(svc)


async def ensure_namespace(session: aiohttp.ClientSession, url: str, name: str) -> None:
    """Namespaces that are objects must exist before anything is created in them; where
    they are not (yet), this POST is a 404 and nothing is needed."""
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    async with session.post(f"{url}/api/v1/namespaces", json=body) as response:
        await response.read()


async def seed(session: aiohttp.ClientSession, url: str, namespace: str, count: int) -> None:
    await ensure_namespace(session, url, namespace)
    path = f"{url}/api/v1/namespaces/{namespace}/services"
    names = iter(range(count))

    async def worker() -> None:
        for index in names:
            async with session.post(path, json=service(namespace, f"svc-{index}")) as response:
                if response.status != 201:
                    raise RuntimeError(f"seeding failed: {await response.text()}")

    await asyncio.gather(*(worker() for _ in range(16)))


async def median_ms(runs: int, one: Callable[[], Awaitable[object]]) -> float:
    await one()  # warm
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await one()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


async def list_figures(
    session: aiohttp.ClientSession, url: str, grpc_address: str, namespace: str, runs: int
) -> tuple[dict[str, float], int]:
    path = f"{url}/api/v1/namespaces/{namespace}/services"
    size = 0

    async def http_json() -> None:
        nonlocal size
        async with session.get(path, headers={"Accept": "application/json"}) as response:
            body = await response.read()
        found = json.loads(body)["items"]
        assert len(found) == 1000, len(found)
        size = len(body)

    async def http_table() -> None:
        async with session.get(path, headers={"Accept": TABLE}) as response:
            assert len(json.loads(await response.read())["rows"]) == 1000

    figures = {
        "HTTP list (JSON)": await median_ms(runs, http_json),
        "HTTP list (Table)": await median_ms(runs, http_table),
    }
    async with Client(grpc_address, timeout=30) as api:

        async def grpc_list() -> None:
            items, _ = await api.list("services", namespace)
            assert len(items) == 1000, len(items)

        figures["gRPC List"] = await median_ms(runs, grpc_list)
    return figures, size


def kubectl_figures(
    url: str, namespace: str, home: Path, runs: int, auth: KubeconfigAuth | None = None
) -> tuple[float, float, str]:
    """`kubectl get svc`'s and `kubectl version --client`'s median wall times, and the
    version; `auth`: the kubeconfig's CA and client certificate (an https `url`)."""
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "KUBECONFIG": str(write_kubeconfig(home, url, auth)),
    }

    def wall(*args: str) -> tuple[float, str]:
        started = time.perf_counter()
        done = subprocess.run(
            [str(KUBECTL), *args], env=env, capture_output=True, text=True, check=True
        )
        return (time.perf_counter() - started) * 1000, done.stdout

    wall("get", "svc", "-n", namespace)  # the first run fills the discovery cache
    get = statistics.median(wall("get", "svc", "-n", namespace)[0] for _ in range(runs))
    version = statistics.median(wall("version", "--client")[0] for _ in range(runs))
    text = wall("version", "--client")[1].splitlines()[0]
    return get, version, text


async def watch_figures(
    session: aiohttp.ClientSession, url: str, namespace: str, watchers: int, changes: int
) -> tuple[list[float], int]:
    """The latencies, and how many events (initial ones and bookmarks too) were delivered."""
    await ensure_namespace(session, url, namespace)
    path = f"{url}/api/v1/namespaces/{namespace}/services"
    query = {
        "watch": "true",
        "sendInitialEvents": "true",
        "resourceVersionMatch": "NotOlderThan",
        "allowWatchBookmarks": "true",
    }
    latencies: list[float] = []
    delivered = [0]
    sent_at = [0.0]  # when this change's POST began
    for change in range(changes):
        name = f"change-{change}"
        opened: list[asyncio.Event] = [asyncio.Event() for _ in range(watchers)]

        async def watch(ready: asyncio.Event, name: str = name) -> None:
            async with session.get(path, params=query) as response:
                async for line in response.content:
                    event = json.loads(line)
                    delivered[0] += 1
                    meta = event["object"]["metadata"]
                    if event["type"] == "BOOKMARK":
                        ready.set()
                    elif event["type"] == "ADDED" and meta["name"] == name and ready.is_set():
                        latencies.append(time.perf_counter() - sent_at[0])
                        return

        tasks = [asyncio.create_task(watch(ready)) for ready in opened]
        await asyncio.gather(*(ready.wait() for ready in opened))
        sent_at[0] = time.perf_counter()
        async with session.post(path, json=service(namespace, name)) as response:
            assert response.status == 201, await response.text()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
    return latencies, delivered[0]


async def measure(
    url: str,
    grpc_address: str,
    home: Path,
    *,
    runs: int,
    watchers: int,
    changes: int,
    server_cpu: Callable[[], float],
) -> ReadFigures:
    """`server_cpu` reads the apiserver's CPU seconds so far."""
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
        await seed(session, url, "bench-list", 1000)
        lists, size = await list_figures(session, url, grpc_address, "bench-list", runs)
        await seed(session, url, "bench-kubectl", 5)
        get, version, text = await asyncio.to_thread(
            kubectl_figures, url, "bench-kubectl", home, runs
        )
        before = server_cpu()
        watched, delivered = await watch_figures(session, url, "bench-watch", watchers, changes)
        cpu_ms = (server_cpu() - before) * 1000 / max(delivered, 1)
    return ReadFigures(lists, size, get, version, text, watched, cpu_ms)
