"""Reads that show leased state: pods with their reported status, nodes with liveness.

The apiserver's Get, List and Watch for pods and nodes go through here.
Lists read the objects and the leased keys (one range each) and merge them
(`kubelab.core.live_state`). A pod watch is two store watches merged —
pod objects and pod statuses — so `kubelab get pods -w` shows a pod turning
Ready (a status write) as a MODIFIED pod; a node watch adds heartbeat
changes the same way. Other kinds pass through untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine, Sequence
from typing import Any

from kubelab.core import kinds
from kubelab.core.keys import ObjectKey, key_of
from kubelab.core.kinds import ApiObject, KindInfo
from kubelab.core.live_state import node_with_liveness, pod_with_status
from kubelab.store import EventType, NotFoundError, ObjectEvent, Store
from kubelab.v1 import objects_pb2


class LiveViews:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def one(self, info: KindInfo, obj: ApiObject) -> ApiObject:
        if isinstance(obj, objects_pb2.Pod):
            status = await self.store.get_pod_status(obj.metadata.namespace, obj.metadata.name)
            live = None if status is not None else (await self.store.live_nodes())[0]
            return pod_with_status(obj, status, live)
        if isinstance(obj, objects_pb2.Node):
            return node_with_liveness(obj, obj.metadata.name in (await self.store.live_nodes())[0])
        return obj

    async def many(
        self, info: KindInfo, items: Sequence[ApiObject], namespace: str = ""
    ) -> list[ApiObject]:
        """`items` (all of one `namespace` when given) with their leased state merged in."""
        if info is kinds.PODS:
            (statuses, _), (live, _) = await asyncio.gather(
                self.store.list_pod_statuses(namespace), self.store.live_nodes()
            )
            return [
                pod_with_status(i, statuses.get(key_of(i)), live)
                for i in items
                if isinstance(i, objects_pb2.Pod)
            ]
        if info is kinds.NODES:
            live, _ = await self.store.live_nodes()
            return [
                node_with_liveness(i, i.metadata.name in live)
                for i in items
                if isinstance(i, objects_pb2.Node)
            ]
        return list(items)

    async def watch(
        self, info: KindInfo, namespace: str, from_revision: int
    ) -> AsyncIterator[ObjectEvent]:
        if info is kinds.PODS:
            async for event in self._watch_pods(namespace, from_revision):
                yield event
        elif info is kinds.NODES:
            async for event in self._watch_nodes(from_revision):
                yield event
        else:
            async for event in self.store.watch(info, namespace, from_revision=from_revision):
                yield event

    async def _watch_pods(self, namespace: str, start: int) -> AsyncIterator[ObjectEvent]:
        statuses, _ = await self.store.list_pod_statuses(namespace)
        pods: dict[ObjectKey, objects_pb2.Pod] = {}
        queue: asyncio.Queue[Any] = asyncio.Queue()

        async def objects() -> None:
            async for event in self.store.watch(kinds.PODS, namespace, from_revision=start):
                await queue.put(event)

        async def reported() -> None:
            async for event in self.store.watch_pod_statuses(from_revision=start):
                if not namespace or event.namespace == namespace:
                    await queue.put(((event.namespace, event.name), event.status, event.revision))

        async with _running(queue, objects(), reported()):
            while True:
                item = await queue.get()
                if isinstance(item, Exception):
                    raise item
                if isinstance(item, ObjectEvent):
                    pod = item.object
                    assert isinstance(pod, objects_pb2.Pod)
                    key = key_of(pod)
                    if item.type is EventType.DELETED:
                        pods.pop(key, None)
                    else:
                        pods[key] = pod
                    yield _with(item, pod_with_status(pod, statuses.get(key)))
                    continue
                key, status, revision = item
                if status is None:
                    statuses.pop(key, None)
                else:
                    statuses[key] = status
                known = pods.get(key)
                if known is None:
                    try:
                        fetched = await self.store.get(kinds.PODS, *key)
                    except NotFoundError:
                        continue
                    known = pods[key] = fetched
                merged = pod_with_status(known, status)
                yield ObjectEvent(EventType.MODIFIED, kinds.PODS, merged, revision, known)

    async def _watch_nodes(self, start: int) -> AsyncIterator[ObjectEvent]:
        live, _ = await self.store.live_nodes()
        nodes: dict[str, objects_pb2.Node] = {}
        queue: asyncio.Queue[Any] = asyncio.Queue()

        async def objects() -> None:
            async for event in self.store.watch(kinds.NODES, from_revision=start):
                await queue.put(event)

        async def beats() -> None:
            async for event in self.store.watch_heartbeats(from_revision=start):
                await queue.put((event.node, event.alive, event.revision))

        async with _running(queue, objects(), beats()):
            while True:
                item = await queue.get()
                if isinstance(item, Exception):
                    raise item
                if isinstance(item, ObjectEvent):
                    node = item.object
                    assert isinstance(node, objects_pb2.Node)
                    nodes[node.metadata.name] = node
                    yield _with(item, node_with_liveness(node, node.metadata.name in live))
                    continue
                name, alive, revision = item
                (live.add if alive else live.discard)(name)
                known = nodes.get(name)
                if known is None:
                    try:
                        fetched = await self.store.get(kinds.NODES, "", name)
                    except NotFoundError:
                        continue
                    known = nodes[name] = fetched
                merged = node_with_liveness(known, alive)
                yield ObjectEvent(EventType.MODIFIED, kinds.NODES, merged, revision, known)


def _with(event: ObjectEvent, obj: ApiObject) -> ObjectEvent:
    return ObjectEvent(event.type, event.info, obj, event.revision, event.previous)


@contextlib.asynccontextmanager
async def _running(
    queue: asyncio.Queue[Any], *jobs: Coroutine[Any, Any, None]
) -> AsyncIterator[None]:
    """Run producers for the life of a block; a producer's error is put on the queue, so
    the reader raises it instead of waiting forever."""

    async def guarded(job: Coroutine[Any, Any, None]) -> None:
        try:
            await job
        except Exception as err:
            await queue.put(err)

    tasks = [asyncio.ensure_future(guarded(job)) for job in jobs]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
