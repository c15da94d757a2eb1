"""The EndpointSlice reconciler's plumbing (DESIGN §2.3): who to reconcile, and the writes.

Keys are Services. A Service is queued when it changes, when a pod it selects
(before or after the change) changes or gets a new status from its node, and
when one of its slices changes behind our back. The worker reads the caches,
asks the pure `reconcile_slices` for a plan, and writes it with fenced
compare-and-swap writes; an empty plan writes nothing.

Expectations, as Kubernetes' EndpointSlice tracker: after writing slices, the
Service is not planned again until the slice informer has seen each written
resourceVersion (or deletion), so a cache lagging our own writes never leads
to a duplicate slice or a stale overwrite.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence

from kubelab.core import kinds
from kubelab.core.endpointslices import SERVICE_NAME_LABEL, is_managed, reconcile_slices
from kubelab.core.keys import ObjectKey
from kubelab.core.live_state import pod_with_status
from kubelab.runtime.clock import Clock
from kubelab.runtime.expectations import Expectations
from kubelab.runtime.informer import Informer
from kubelab.runtime.queue import WorkQueue
from kubelab.store import AlreadyExistsError, Fence, NotFoundError, StoreProtocol
from kubelab.v1 import objects_pb2
from services.controller.label_index import PodLabelIndex, SelectorIndex

log = logging.getLogger("controller")

_EXPECTATION_TIMEOUT = 10.0


class SliceController:
    def __init__(
        self,
        store: StoreProtocol,
        fence: Fence,
        *,
        pods: Informer[ObjectKey, objects_pb2.Pod],
        statuses: Informer[ObjectKey, objects_pb2.PodStatus],
        services: Informer[ObjectKey, objects_pb2.Service],
        slices: Informer[ObjectKey, objects_pb2.EndpointSlice],
        max_endpoints: int = 100,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        timers: Clock | None = None,
    ) -> None:
        self.store = store
        self.fence = fence
        self.pods = pods
        self.statuses = statuses
        self.services = services
        self.slices = slices
        self.max_endpoints = max_endpoints
        self.clock = clock
        self.rng = rng or random.Random()
        self.queue: WorkQueue[ObjectKey] = WorkQueue(clock=timers)
        self.selectors = SelectorIndex()
        self.pod_labels = PodLabelIndex()
        # Service → slice names of ours, from the slice informer.
        self.slices_of: dict[ObjectKey, set[str]] = {}
        # Service → the slices it wrote, each awaited at the resourceVersion written ("" for
        # a deletion). A met expectation needs no re-queue: the slice event queued it.
        self.expected: Expectations[ObjectKey, ObjectKey] = Expectations(
            kind="svc", what="slice writes", timeout=_EXPECTATION_TIMEOUT, clock=clock, logger=log
        )
        pods.on_change(self._pod_changed)
        statuses.on_change(self._status_changed)
        services.on_change(self._service_changed)
        slices.on_change(self._slice_changed)

    # ------------------------------------------------------------------ events

    def _service_changed(
        self, key: ObjectKey, old: objects_pb2.Service | None, new: objects_pb2.Service | None
    ) -> None:
        selector = new.spec.selector if new is not None else None
        self.selectors.put(key, selector)
        self.queue.add(key)

    def _pod_changed(
        self, key: ObjectKey, old: objects_pb2.Pod | None, new: objects_pb2.Pod | None
    ) -> None:
        self.pod_labels.put(key, new.metadata.labels if new is not None else None)
        for pod in (old, new):
            if pod is not None:
                for service in self.selectors.selecting(key[0], pod.metadata.labels):
                    self.queue.add(service)

    def _status_changed(self, key: ObjectKey, old: object, new: object) -> None:
        pod = self.pods.get(key)
        if pod is not None:
            for service in self.selectors.selecting(key[0], pod.metadata.labels):
                self.queue.add(service)

    def _slice_changed(
        self,
        key: ObjectKey,
        old: objects_pb2.EndpointSlice | None,
        new: objects_pb2.EndpointSlice | None,
    ) -> None:
        self.expected.observe(key, _revision(new))
        for obj in (old, new):
            name = obj.metadata.labels.get(SERVICE_NAME_LABEL) if obj is not None else None
            if not name:
                continue
            service = ObjectKey((key[0], name))
            names = self.slices_of.setdefault(service, set())
            (names.add if obj is new else names.discard)(key[1])
            if not names:
                del self.slices_of[service]
            self.queue.add(service)

    # ------------------------------------------------------------------ work

    async def reconcile(self, key: ObjectKey) -> None:
        if self.expected.wait(key) is not None:
            return  # the slice informer's events (or the timeout's add_after) queue us again
        service = self.services.get(key)
        existing = [
            s
            for name in sorted(self.slices_of.get(key, ()))
            if (s := self.slices.get(ObjectKey((key[0], name)))) is not None
            and is_managed(s, key[1])
        ]
        if service is None:
            # A deleted Service takes its slices with it (Kubernetes' garbage collector).
            for slice_ in existing:
                await self._delete(slice_)
            return
        plan = reconcile_slices(
            service,
            self._selected_pods(service),
            existing,
            max_endpoints=self.max_endpoints,
            rng=self.rng,
        )
        if plan.empty:
            return
        # Begun before writing: the informer may deliver our writes mid-way.
        self.expected.begin(key)
        self.queue.add_after(key, _EXPECTATION_TIMEOUT)
        try:
            await self._write(key, plan.create, plan.update, plan.delete)
        finally:
            self.expected.finish(key)

    async def _write(
        self,
        key: ObjectKey,
        create: Sequence[objects_pb2.EndpointSlice],
        update: Sequence[objects_pb2.EndpointSlice],
        delete: Sequence[str],
    ) -> None:
        """A plan's writes, each expected at the revision it made (unless the informer
        shows it already)."""
        for new in create:
            try:
                created = await self.store.create(new, fence=self.fence)
            except AlreadyExistsError:
                continue
            self._expect(key, created.metadata.name, created.metadata.resource_version)
        for changed in update:
            revision = int(changed.metadata.resource_version)
            updated = await self.store.update(changed, expected_revision=revision, fence=self.fence)
            self._expect(key, updated.metadata.name, updated.metadata.resource_version)
        for name in delete:
            doomed = self.slices.get(ObjectKey((key[0], name)))
            if doomed is not None:
                await self._delete(doomed)
                self._expect(key, name, "")

    def _expect(self, service: ObjectKey, name: str, revision: str) -> None:
        slice_key = ObjectKey((service[0], name))
        self.expected.expect(
            service, slice_key, revision, seen=(_revision(self.slices.get(slice_key)),)
        )

    def _selected_pods(self, service: objects_pb2.Service) -> list[objects_pb2.Pod]:
        namespace = service.metadata.namespace
        pods = []
        for pod_key in self.pod_labels.matching(namespace, service.spec.selector):
            pod = self.pods.get(pod_key)
            if pod is not None:
                pods.append(pod_with_status(pod, self.statuses.get(pod_key)))
        return pods

    async def _delete(self, slice_: objects_pb2.EndpointSlice) -> None:
        try:
            await self.store.delete(
                kinds.ENDPOINTSLICES,
                slice_.metadata.namespace,
                slice_.metadata.name,
                expected_revision=int(slice_.metadata.resource_version),
                fence=self.fence,
            )
        except NotFoundError:
            pass


def _revision(obj: objects_pb2.EndpointSlice | None) -> str:
    """A slice's state as expectations see it: its resourceVersion, "" when gone."""
    return obj.metadata.resource_version if obj is not None else ""
