"""Informers over the store's sources: objects of a kind, pod statuses, node heartbeats.

Keys are `ObjectKey`s, `(namespace, name)`, for objects and pod statuses, and the node name
for heartbeats; values are the kind's own protobuf message (an informer of `kinds.PODS` holds
`Pod`s, so its users need no `isinstance`), a `PodStatus`, or True for a live node.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

from kubelab.core.keys import ObjectKey, key_of
from kubelab.core.kinds import KindInfo, ObjectT
from kubelab.runtime.informer import Informer
from kubelab.store import EventType, StoreProtocol
from kubelab.v1 import objects_pb2


def objects(
    store: StoreProtocol, info: KindInfo[ObjectT], namespace: str = ""
) -> Informer[ObjectKey, ObjectT]:
    """An informer of one kind, typed for it: `objects(store, kinds.PODS)` holds Pods."""

    async def lister() -> tuple[dict[ObjectKey, ObjectT], int]:
        items, revision = await store.list(info, namespace)
        return {key_of(i): i for i in items}, revision

    async def watcher(revision: int) -> AsyncIterator[tuple[ObjectKey, ObjectT | None, int]]:
        async for event in store.watch(info, namespace, from_revision=revision):
            # The store decodes every object of `info` with `info.message`: a cast, not a check.
            value = None if event.type is EventType.DELETED else cast(ObjectT, event.object)
            yield key_of(event.object), value, event.revision

    return Informer(info.resource, lister, watcher)


def pod_statuses(store: StoreProtocol) -> Informer[ObjectKey, objects_pb2.PodStatus]:
    async def watcher(
        revision: int,
    ) -> AsyncIterator[tuple[ObjectKey, objects_pb2.PodStatus | None, int]]:
        async for event in store.watch_pod_statuses(from_revision=revision):
            yield ObjectKey((event.namespace, event.name)), event.status, event.revision

    return Informer("podstatus", store.list_pod_statuses, watcher)


def heartbeats(store: StoreProtocol) -> Informer[str, bool]:
    async def lister() -> tuple[dict[str, bool], int]:
        names, revision = await store.live_nodes()
        return dict.fromkeys(names, True), revision

    async def watcher(revision: int) -> AsyncIterator[tuple[str, bool | None, int]]:
        async for event in store.watch_heartbeats(from_revision=revision):
            yield event.node, (True if event.alive else None), event.revision

    return Informer("heartbeats", lister, watcher)
