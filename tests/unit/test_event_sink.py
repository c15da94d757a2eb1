"""The event writer: never blocks or fails its caller; creates, counts up, re-creates an
expired event; repeats waiting in the queue become one write. On an in-memory store."""

from __future__ import annotations

import asyncio
from typing import cast

from kubelab.core import event_notes as notes
from kubelab.core import kinds
from kubelab.core.kinds import ApiObject, KindInfo
from kubelab.runtime.events import EventRecorder, EventSink
from kubelab.store import AlreadyExistsError, ConflictError, NotFoundError, Store
from kubelab.v1 import meta_pb2, objects_pb2

POD = objects_pb2.Pod(metadata=meta_pb2.ObjectMeta(name="p", namespace="default", uid="u"))


class EventStore:
    """Just what the sink uses: create, get, update, with resourceVersions."""

    def __init__(self) -> None:
        self.events: dict[tuple[str, str], objects_pb2.Event] = {}
        self.revision = 0
        self.writes = 0
        self.failing = False

    def _stamp(self, event: ApiObject) -> None:
        self.revision += 1
        self.writes += 1
        event.metadata.resource_version = str(self.revision)

    async def create(self, event: objects_pb2.Event) -> objects_pb2.Event:
        await asyncio.sleep(0)
        if self.failing:
            raise ConnectionError("etcd is away")
        key = (event.metadata.namespace, event.metadata.name)
        if key in self.events:
            raise AlreadyExistsError("exists")
        event.metadata.uid = event.metadata.uid or "new-uid"
        self._stamp(event)
        self.events[key] = event
        return event

    async def get(self, info: KindInfo, namespace: str, name: str) -> ApiObject:
        assert info is kinds.EVENTS
        found = self.events.get((namespace, name))
        if found is None:
            raise NotFoundError("gone")
        out = objects_pb2.Event()
        out.CopyFrom(found)
        return out

    async def update(
        self, event: objects_pb2.Event, *, expected_revision: int
    ) -> objects_pb2.Event:
        await asyncio.sleep(0)
        key = (event.metadata.namespace, event.metadata.name)
        current = self.events.get(key)
        if current is None:
            raise NotFoundError("gone")
        if int(current.metadata.resource_version) != expected_revision:
            raise ConflictError("changed", int(current.metadata.resource_version))
        self._stamp(event)
        self.events[key] = event
        return event


def sink_on(store: EventStore) -> EventSink:
    return EventSink(cast(Store, store), pending_max=10)


async def test_a_repeat_counts_up_the_stored_event() -> None:
    store = EventStore()
    sink = sink_on(store)
    recorder = sink.recorder("kubelet", "node-1")
    recorder.record(POD, notes.started("c"))
    await sink.idle()
    recorder.record(POD, notes.started("c"))
    await sink.idle()
    [stored] = store.events.values()
    assert stored.count == 2
    assert stored.metadata.uid == "new-uid"  # the update kept what the create stamped
    assert stored.involved_object.field_path == "spec.containers{c}"
    await sink.close()


async def test_repeats_waiting_in_the_queue_become_one_write() -> None:
    store = EventStore()
    sink = sink_on(store)
    recorder = sink.recorder("kubelet")
    for _ in range(5):
        recorder.record(POD, notes.started("c"))
    await sink.idle()
    [stored] = store.events.values()
    assert stored.count == 5
    assert store.writes <= 2  # the first create, then at most one update with count 5
    await sink.close()


async def test_an_expired_event_is_written_again() -> None:
    store = EventStore()
    sink = sink_on(store)
    recorder = sink.recorder("kubelet")
    recorder.record(POD, notes.started("c"))
    await sink.idle()
    store.events.clear()  # etcd's lease ran out
    recorder.record(POD, notes.started("c"))
    await sink.idle()
    [stored] = store.events.values()
    assert stored.count == 2
    await sink.close()


async def test_a_failing_store_loses_events_quietly() -> None:
    store = EventStore()
    store.failing = True
    sink = sink_on(store)
    recorder = sink.recorder("kubelet")
    recorder.record(POD, notes.started("c"))  # must not raise
    await sink.idle()
    assert sink.lost == 1
    assert store.events == {}
    await sink.close()


async def test_a_full_queue_drops_new_events_and_never_blocks() -> None:
    store = EventStore()
    sink = sink_on(store)
    recorder = sink.recorder("kubelet")
    for i in range(25):  # 25 distinct events into a queue of 10, without yielding
        recorder.record(POD, notes.unhealthy("c", "readiness", f"failure {i}"))
    assert sink.lost == 15
    await sink.idle()
    assert len(store.events) == 10
    await sink.close()


def test_recording_outside_an_event_loop_or_without_a_sink_does_nothing() -> None:
    store = EventStore()
    sink = sink_on(store)
    sink.recorder("kubelet").record(POD, notes.started("c"))
    assert sink.lost == 1
    EventRecorder.null().record(POD, notes.started("c"))
    sink.recorder("kubelet").record(None, notes.started("c"))
    sink.recorder("kubelet").record(POD, None)
    assert sink.lost == 1
