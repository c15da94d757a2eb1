"""The steady-state watch fan-out row of bench/api.py: what one change costs the apiserver
once many watchers are open.

100 HTTP watches of one namespace, all open from one resourceVersion (a reflector's
list-then-watch), then `changes` Services created there one after another, each once
every watcher has seen the one before. Per event delivered: the time from just before
the POST to its arrival (p50/p99 over all watchers and changes), and the apiserver's
CPU (user + system, from /proc) over the row, creates included. Unlike the watch-list
row in `_rest_reads`, no watch is opened during the measurement, so this is the cost
of delivering a change, not of starting a watch.

Only measurements: bench/api.py prints them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from _rest_reads import ensure_namespace, service


@dataclass(frozen=True, slots=True)
class FanoutFigures:
    latencies: list[float]  # seconds, one per event delivered
    cpu_ms: float  # the apiserver's CPU per event delivered


async def fanout_figures(
    session: aiohttp.ClientSession,
    url: str,
    namespace: str,
    *,
    watchers: int,
    changes: int,
    server_cpu: Callable[[], float],
) -> FanoutFigures:
    await ensure_namespace(session, url, namespace)
    path = f"{url}/api/v1/namespaces/{namespace}/services"
    async with session.get(path) as response:
        start = (await response.json())["metadata"]["resourceVersion"]
    sent: dict[str, float] = {}
    latencies: list[float] = []
    seen = [0] * watchers
    progressed = asyncio.Event()

    async def watch(index: int) -> None:
        query = {"watch": "true", "resourceVersion": start}
        async with session.get(path, params=query) as response:
            async for line in response.content:
                name = json.loads(line)["object"]["metadata"]["name"]
                if name in sent:
                    latencies.append(time.perf_counter() - sent[name])
                seen[index] += 1
                progressed.set()
                if seen[index] == changes + 1:
                    return

    async def everyone_saw(count: int) -> None:
        while min(seen) < count:
            progressed.clear()
            await progressed.wait()

    tasks = [asyncio.create_task(watch(i)) for i in range(watchers)]
    try:
        # A first change that every watcher sees: all of them are open.
        async with session.post(path, json=service(namespace, "open")) as response:
            assert response.status == 201, await response.text()
        await asyncio.wait_for(everyone_saw(1), 60)
        before = server_cpu()
        for change in range(changes):
            name = f"fan-{change}"
            sent[name] = time.perf_counter()
            async with session.post(path, json=service(namespace, name)) as response:
                assert response.status == 201, await response.text()
            await asyncio.wait_for(everyone_saw(change + 2), 30)
        cpu_ms = (server_cpu() - before) * 1000 / max(len(latencies), 1)
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
    finally:
        for task in tasks:
            task.cancel()
    return FanoutFigures(latencies, cpu_ms)
