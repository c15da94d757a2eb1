"""Recording events: a call that never blocks or fails its caller, and one writer.

An actor holds one `EventSink` (per process, on its store) and one
`EventRecorder` per component it plays (`sink.recorder("kubelet", host=node)`);
at the point where something happens it calls `recorder.record(obj, note)` with
a `kubelab.core.event_notes.Note`. That call is synchronous and cheap: the
recorder's `Correlator` (`kubelab.core.events`: count repeats, drop spam) decides
what Event to write, and the sink queues it. Nothing it does raises: an event is
a by-product, so a lost one (the queue full, no event loop, etcd away, a write
refused) is logged at debug and forgotten, never an error in the actor.

The writer is one task per sink, started with the first event. Pending writes
are keyed by the event's name, so repeats of one event waiting in the queue
become one write (the latest count). A new event is created; a repeat reads the
stored one and updates it, and is created again if it has expired meanwhile
(events live `--event-ttl` after their last write; `kubelab.store` attaches them
to its expiring lease). Writes are not fenced: a deposed leader's late event is
still true.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from kubelab.core import kinds
from kubelab.core.event_notes import Note
from kubelab.core.events import Correlator, Occurrence, Source, reference
from kubelab.core.kinds import ApiObject
from kubelab.store import AlreadyExistsError, ConflictError, NotFoundError, StoreProtocol
from kubelab.v1 import meta_pb2, objects_pb2

log = logging.getLogger("kubelab.events")

PENDING_MAX = 1000
_WRITE_ATTEMPTS = 3


def _copy(event: objects_pb2.Event) -> objects_pb2.Event:
    out = objects_pb2.Event()
    out.CopyFrom(event)
    return out


class EventSink:
    def __init__(self, store: StoreProtocol, *, pending_max: int = PENDING_MAX) -> None:
        self.store = store
        self.pending_max = pending_max
        self._pending: OrderedDict[tuple[str, str], objects_pb2.Event] = OrderedDict()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.written = 0
        self.lost = 0

    def recorder(
        self, component: str, host: str = "", *, clock: Callable[[], float] = time.time
    ) -> EventRecorder:
        return EventRecorder(self, Correlator(Source(component, host)), clock=clock)

    def submit(self, event: objects_pb2.Event) -> None:
        key = (event.metadata.namespace, event.metadata.name)
        if key not in self._pending and len(self._pending) >= self.pending_max:
            self._lose(event, "too many events waiting to be written")
            return
        if self._task is None or self._task.done():
            try:
                self._task = asyncio.get_running_loop().create_task(
                    self._drain(), name="event writer"
                )
            except RuntimeError:
                self._lose(event, "no event loop")
                return
        self._pending[key] = event
        self._idle.clear()
        self._wake.set()

    async def idle(self) -> None:
        """Return once nothing is waiting to be written (tests, shutdown)."""
        await self._idle.wait()

    async def close(self, timeout: float = 1.0) -> None:
        """Write what is pending for up to `timeout` seconds, then stop."""
        try:
            await asyncio.wait_for(self.idle(), timeout)
        except TimeoutError:
            for event in self._pending.values():
                self._lose(event, "shutting down")
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _lose(self, event: objects_pb2.Event, why: str) -> None:
        self.lost += 1
        log.debug(
            "event lost: %s",
            why,
            extra={"event": f"{event.metadata.namespace}/{event.metadata.name}"},
        )

    async def _drain(self) -> None:
        while True:
            await self._wake.wait()
            while self._pending:
                _, event = self._pending.popitem(last=False)
                try:
                    await self._write(event)
                    self.written += 1
                except Exception as err:
                    self._lose(event, repr(err))
            self._wake.clear()
            self._idle.set()

    async def _write(self, event: objects_pb2.Event) -> None:
        namespace, name = event.metadata.namespace, event.metadata.name
        if event.count <= 1:
            try:
                await self.store.create(_copy(event))
                return
            except AlreadyExistsError:
                pass
        for _ in range(_WRITE_ATTEMPTS):
            try:
                current = await self.store.get(kinds.EVENTS, namespace, name)
            except NotFoundError:
                try:
                    await self.store.create(_copy(event))
                    return
                except AlreadyExistsError:
                    continue
            updated = _copy(event)
            updated.metadata.uid = current.metadata.uid
            updated.metadata.creation_timestamp.CopyFrom(current.metadata.creation_timestamp)
            try:
                await self.store.update(
                    updated, expected_revision=int(current.metadata.resource_version)
                )
                return
            except (ConflictError, NotFoundError):
                continue
        raise ConflictError(f'events "{name}" kept changing', 0)


class EventRecorder:
    """Records the events of one component (`source`), through a sink (or nowhere)."""

    def __init__(
        self,
        sink: EventSink | None,
        correlator: Correlator,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sink = sink
        self.correlator = correlator
        self.clock = clock

    @classmethod
    def null(cls) -> EventRecorder:
        """A recorder that records nothing (actors built without a sink, unit tests)."""
        return cls(None, Correlator(Source("none")))

    def record(self, obj: ApiObject | meta_pb2.ObjectReference | None, note: Note | None) -> None:
        """Record `note` about `obj` (None for either: nothing to record). Never raises."""
        if self.sink is None or obj is None or note is None:
            return
        try:
            if isinstance(obj, meta_pb2.ObjectReference):
                involved = meta_pb2.ObjectReference()
                involved.CopyFrom(obj)
                if note.field_path:
                    involved.field_path = note.field_path
            else:
                involved = reference(obj, field_path=note.field_path)
            occurrence = Occurrence(involved, note.type, note.reason, note.message)
            event = self.correlator.observe(occurrence, self.clock())
            if event is None:
                where = f"{involved.namespace}/{involved.name}"
                log.debug(
                    "event dropped by the spam filter",
                    extra={"object": where, "reason": note.reason},
                )
                return
            self.sink.submit(event)
        except Exception as err:  # an event must never fail the actor
            log.debug("event not recorded: %r", err)
