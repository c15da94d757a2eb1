"""The apiserver's watch cache, seen from outside: every watcher of a kind, on either
front, shares one etcd watch; a slow watcher is ended while the others keep up; a
resume is served from the cache, from etcd when older than the cache's window, and is
410 Gone once etcd compacted it; bookmarks come at the configured interval."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest

from kubelab.client import ApiError, Client
from kubelab.testing.processes import ApiServerProcess, EtcdServer, free_port
from kubelab.testing.wait import until_read
from kubelab.v1 import objects_pb2

pytestmark = pytest.mark.integration

ETCDCTL = Path(sys.executable).parent / "etcdctl"
SERVICES = "/api/v1/namespaces/default/services"


@pytest.fixture
def apiserver_args() -> tuple[str, ...]:
    return ()


@pytest.fixture
def apiserver(
    etcd: EtcdServer, tmp_path: Path, apiserver_args: tuple[str, ...]
) -> Iterator[ApiServerProcess]:
    process = ApiServerProcess(etcd.endpoint, tmp_path, extra_args=apiserver_args)
    process.start()
    yield process
    process.stop()


@pytest.fixture
async def http(apiserver: ApiServerProcess) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(
        apiserver.http_url, connector=aiohttp.TCPConnector(limit=0), trust_env=False
    ) as session:
        yield session


def service(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels or {"app": name}},
        "spec": {"ports": [{"port": 80}]},
    }


async def create(http: aiohttp.ClientSession, name: str, **labels: str) -> int:
    async with http.post(SERVICES, json=service(name, labels or None)) as response:
        assert response.status == 201, await response.text()
        return int((await response.json())["metadata"]["resourceVersion"])


async def revision(http: aiohttp.ClientSession) -> str:
    async with http.get(SERVICES) as response:
        return str((await response.json())["metadata"]["resourceVersion"])


async def stream(http: aiohttp.ClientSession, **query: str) -> list[dict[str, Any]]:
    """A whole watch stream (give it a timeoutSeconds)."""
    async with http.get(SERVICES, params={"watch": "true", **query}) as response:
        assert response.status == 200
        return [json.loads(line) async for line in response.content]


def names(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["type"], e["object"]["metadata"].get("name", "")) for e in events]


async def etcd_watchers(http: aiohttp.ClientSession, etcd: EtcdServer) -> int:
    async with http.get(f"http://{etcd.endpoint}/metrics") as response:
        text = await response.text()
    line = next(x for x in text.splitlines() if x.startswith("etcd_debugging_mvcc_watcher_total"))
    return int(float(line.split()[1]))


class Watcher:
    """An HTTP watch read in the background into `events`."""

    def __init__(self, http: aiohttp.ClientSession, **query: str) -> None:
        self.events: list[dict[str, Any]] = []
        self.ended = asyncio.Event()
        self.task = asyncio.create_task(self._read(http, query))

    async def _read(self, http: aiohttp.ClientSession, query: dict[str, str]) -> None:
        try:
            async with http.get(SERVICES, params={"watch": "true", **query}) as response:
                async for line in response.content:
                    self.events.append(json.loads(line))
        finally:
            self.ended.set()

    def has_more_than(self, count: int) -> bool:
        return len(self.events) > count

    def saw(self, name: str) -> bool:
        return any(e["object"]["metadata"].get("name") == name for e in self.events)

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def warm_cache(http: aiohttp.ClientSession) -> None:
    """Start the apiserver's cache of Services and wait until it delivers: a watch from a
    revision read after this is served by it (a cache starts at the revision it starts
    at; the very first watch from an earlier one goes to etcd)."""
    for step in ("warm-1", "warm-2"):
        watcher = Watcher(http, resourceVersion=await revision(http))
        try:
            await create(http, step)
            await until_read(f"a watcher sees {step}", partial(watcher.saw, step))
        finally:
            await watcher.close()


async def test_every_watcher_of_a_kind_shares_one_etcd_watch(
    http: aiohttp.ClientSession, apiserver: ApiServerProcess, etcd: EtcdServer
) -> None:
    await warm_cache(http)
    # The apiserver's own (allocations) and its cache's one for services.
    before = await etcd_watchers(http, etcd)
    start = await revision(http)
    watchers = [Watcher(http, resourceVersion=start) for _ in range(8)]
    watchers += [Watcher(http, resourceVersion=start, labelSelector="app=shop") for _ in range(4)]
    watchers += [Watcher(http, fieldSelector="metadata.name=shop", resourceVersion=start)]
    seen: list[str] = []

    async def over_grpc() -> None:
        async with Client(apiserver.address, timeout=30) as api:
            async for event in api.watch("svc", resource_version=start):
                if event.object is not None:
                    seen.append(event.object.metadata.name)
                    return

    grpc_watch = asyncio.create_task(over_grpc())
    try:
        # Every watcher is open once each has seen a change made after it opened.
        for n in range(30):
            await create(http, f"probe-{n}", app="probe")
            if all(w.saw(f"probe-{n}") for w in watchers[:8]):
                break
        await create(http, "shop", app="shop")
        await until_read("every watcher sees shop", lambda: all(w.saw("shop") for w in watchers))
        await asyncio.wait_for(grpc_watch, 10)
        assert seen == ["probe-0"]
        assert await etcd_watchers(http, etcd) == before
    finally:
        for watcher in watchers:
            await watcher.close()
        grpc_watch.cancel()


METRICS_PORT = free_port()


async def cached_watchers(http: aiohttp.ClientSession, resource: str) -> int:
    """The apiserver's own count of the watches its cache serves."""
    async with http.get(f"http://127.0.0.1:{METRICS_PORT}/metrics") as response:
        text = await response.text()
    name = f'kubelab_apiserver_cached_watchers{{resource="{resource}"}}'
    line = next((x for x in text.splitlines() if x.startswith(name)), f"{name} 0")
    return int(float(line.split()[1]))


@pytest.mark.parametrize("apiserver_args", [("--metrics", f"127.0.0.1:{METRICS_PORT}")])
async def test_watches_from_a_revision_read_after_start_are_served_by_the_cache(
    http: aiohttp.ClientSession,
) -> None:
    """The caches start with the apiserver: a client's list-then-watch is served from
    memory even when other writes moved the revision in between (a cache started by
    the first watch, at the revision of that moment, would send them all to etcd)."""
    start = await revision(http)
    await create(http, "moved")
    watchers = [Watcher(http, resourceVersion=start) for _ in range(10)]
    try:
        await create(http, "shop")
        await until_read("every watcher sees shop", lambda: all(w.saw("shop") for w in watchers))
        assert all(names(w.events) == [("ADDED", "moved"), ("ADDED", "shop")] for w in watchers)
        assert await cached_watchers(http, "services") == 10
    finally:
        for watcher in watchers:
            await watcher.close()


@pytest.mark.parametrize("apiserver_args", [("--watch-buffer", "4")])
async def test_a_slow_watcher_is_ended_and_the_others_keep_up(
    http: aiohttp.ClientSession, apiserver: ApiServerProcess
) -> None:
    await create(http, "big")
    await warm_cache(http)
    start = await revision(http)
    fast = Watcher(http, resourceVersion=start, timeoutSeconds="600")
    # The slow client reads nothing, through a small receive window.
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = apiserver.http_address.rsplit(":", 1)
    slow.connect((host, int(port)))
    path = f"{SERVICES}?watch=true&resourceVersion={start}&timeoutSeconds=600"
    slow.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    changes = 40
    try:
        for n in range(changes):
            body = service("big")
            body["metadata"]["annotations"] = {"filler": "x" * 200_000 + str(n)}
            async with http.put(f"{SERVICES}/big", json=body) as response:
                assert response.status == 200, await response.text()
            # In step with the fast watcher: it is never more than one event behind.
            await until_read(f"fast watcher sees change {n}", partial(fast.has_more_than, n))
        assert [e["type"] for e in fast.events] == ["MODIFIED"] * changes
        assert not fast.ended.is_set()

        # The slow one was ended by the server long before its timeout: it reads the
        # few events that were on their way, then the end of the stream.
        slow.setblocking(False)
        loop = asyncio.get_running_loop()
        received = b""
        while not received.endswith(b"0\r\n\r\n"):
            chunk = await asyncio.wait_for(loop.sock_recv(slow, 1 << 20), 30)
            assert chunk, "the connection closed without ending the stream"
            received += chunk
        assert received.count(b'"type":"MODIFIED"') < changes
    finally:
        slow.close()
        await fast.close()


@pytest.mark.parametrize("apiserver_args", [("--watch-bookmark-interval", "0.3")])
async def test_bookmarks_come_at_the_configured_interval(http: aiohttp.ClientSession) -> None:
    await warm_cache(http)
    start = await revision(http)
    # A selector nothing matches: the bookmark is this watcher's only news of progress.
    watcher = Watcher(
        http, resourceVersion=start, labelSelector="app=nothing", allowWatchBookmarks="true"
    )
    try:
        written = await create(http, "shop")
        marks = await until_read(
            "a bookmark past the write",
            lambda: [
                int(e["object"]["metadata"]["resourceVersion"])
                for e in watcher.events
                if e["type"] == "BOOKMARK"
            ],
            lambda found: found and found[-1] >= written,
        )
        assert all(e["type"] == "BOOKMARK" for e in watcher.events)
        assert marks == sorted(marks)
    finally:
        await watcher.close()
    # Not asked for: none (the stream ends at its timeout with nothing in it).
    quiet = await stream(
        http, resourceVersion=start, labelSelector="app=nothing", timeoutSeconds="1"
    )
    assert quiet == []


async def test_a_resume_from_the_cache_is_gone_once_etcd_compacted_it(
    http: aiohttp.ClientSession, apiserver: ApiServerProcess, etcd: EtcdServer
) -> None:
    await warm_cache(http)
    before = await revision(http)
    for name in ("a", "b", "c"):
        await create(http, name)
    resumed = await stream(http, resourceVersion=before, timeoutSeconds="1")
    assert names(resumed) == [("ADDED", "a"), ("ADDED", "b"), ("ADDED", "c")]

    now = await revision(http)
    compact = await asyncio.create_subprocess_exec(
        str(ETCDCTL),
        "--endpoints",
        etcd.endpoint,
        "compact",
        now,
        stdout=asyncio.subprocess.DEVNULL,
    )
    assert await asyncio.wait_for(compact.wait(), 30) == 0
    gone = await stream(http, resourceVersion=before, timeoutSeconds="5")
    assert [e["type"] for e in gone] == ["ERROR"]
    assert (gone[0]["object"]["code"], gone[0]["object"]["reason"]) == (410, "Expired")

    async with Client(apiserver.address, timeout=10) as api:
        with pytest.raises(ApiError) as caught:
            async for _ in api.watch("svc", resource_version=before):
                pass
    assert caught.value.code is grpc.StatusCode.OUT_OF_RANGE
    # From the compaction on, resuming works again.
    await create(http, "d")
    assert names(await stream(http, resourceVersion=now, timeoutSeconds="1")) == [("ADDED", "d")]


@pytest.mark.parametrize("apiserver_args", [("--watch-cache-size", "2")])
async def test_a_resume_older_than_the_cache_window_is_served_by_etcd(
    http: aiohttp.ClientSession,
) -> None:
    await warm_cache(http)
    before = await revision(http)
    follower = Watcher(http, resourceVersion=before)
    try:
        for name in ("a", "b", "c", "d", "e"):
            await create(http, name)
        await until_read("the cache has the last change", lambda: follower.saw("e"))
    finally:
        await follower.close()
    # Older than the two events the cache keeps: from etcd.
    resumed = await stream(http, resourceVersion=before, timeoutSeconds="1")
    assert names(resumed) == [("ADDED", n) for n in "abcde"]
    # The last two, from the cache itself.
    at_c = next(e for e in follower.events if e["object"]["metadata"]["name"] == "c")
    from_c = at_c["object"]["metadata"]["resourceVersion"]
    resumed = await stream(http, resourceVersion=from_c, timeoutSeconds="1")
    assert names(resumed) == [("ADDED", "d"), ("ADDED", "e")]


async def test_a_grpc_watch_and_an_http_watch_see_the_same_changes(
    http: aiohttp.ClientSession, apiserver: ApiServerProcess
) -> None:
    start = await revision(http)
    await create(http, "a", env="prod")
    async with Client(apiserver.address, timeout=10) as api:
        svc = objects_pb2.Service()
        svc.metadata.name, svc.metadata.namespace = "b", "default"
        svc.metadata.labels["env"] = "dev"
        svc.spec.ports.add(port=80)
        await api.create(svc)
        await api.delete("svc", "a")
        seen: list[tuple[str, str]] = []

        async def consume() -> None:
            async for event in api.watch("svc", label_selector="env=prod", resource_version=start):
                assert event.object is not None
                seen.append((event.type, event.object.metadata.name))
                if len(seen) == 2:
                    return

        await asyncio.wait_for(consume(), 10)
    over_http = await stream(
        http, resourceVersion=start, labelSelector="env=prod", timeoutSeconds="1"
    )
    assert seen == names(over_http) == [("ADDED", "a"), ("DELETED", "a")]
