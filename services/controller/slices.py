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
from collections.abc import Callable

from kubelab.core import kinds
from kubelab.core.endpointslices import SERVICE_NAME_LABEL, is_managed, reconcile_slices
from kubelab.core.kinds import ApiObject
from kubelab.core.live_state import pod_with_status
from kubelab.runtime.informer import Informer
from kubelab.runtime.queue import WorkQueue
from kubelab.store import AlreadyExistsError, Fence, NotFoundError, PodKey, Store
from kubelab.v1 import objects_pb2
from services.controller.label_index import PodLabelIndex, SelectorIndex

log = logging.getLogger("controller")

_EXPECTATION_TIMEOUT = 10.0


class SliceController:
    def __init__(
        self,
        store: Store,
        fence: Fence,
        *,
        pods: Informer[PodKey, ApiObject],
        statuses: Informer[PodKey, objects_pb2.PodStatus],
        services: Informer[PodKey, ApiObject],
        slices: Informer[PodKey, ApiObject],
        max_endpoints: int = 100,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
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
        self.queue: WorkQueue[PodKey] = WorkQueue()
        self.selectors = SelectorIndex()
        self.pod_labels = PodLabelIndex()
        # Service → slice names of ours, from the slice informer.
        self.slices_of: dict[PodKey, set[str]] = {}
        # Service → {slice name: resourceVersion we wrote, or "" for a deletion}, deadline.
        self.expected: dict[PodKey, tuple[dict[str, str], float]] = {}
        pods.on_change(self._pod_changed)
        statuses.on_change(self._status_changed)
        services.on_change(self._service_changed)
        slices.on_change(self._slice_changed)

    # ------------------------------------------------------------------ events

    def _service_changed(self, key: PodKey, old: ApiObject | None, new: ApiObject | None) -> None:
        selector = new.spec.selector if isinstance(new, objects_pb2.Service) else None
        self.selectors.put(key, selector)
        self.queue.add(key)

    def _pod_changed(self, key: PodKey, old: ApiObject | None, new: ApiObject | None) -> None:
        self.pod_labels.put(key, new.metadata.labels if new is not None else None)
        for pod in (old, new):
            if pod is not None:
                for service in self.selectors.selecting(key[0], pod.metadata.labels):
                    self.queue.add(service)

    def _status_changed(self, key: PodKey, old: object, new: object) -> None:
        pod = self.pods.get(key)
        if pod is not None:
            for service in self.selectors.selecting(key[0], pod.metadata.labels):
                self.queue.add(service)

    def _slice_changed(self, key: PodKey, old: ApiObject | None, new: ApiObject | None) -> None:
        for obj in (old, new):
            name = obj.metadata.labels.get(SERVICE_NAME_LABEL) if obj is not None else None
            if not name:
                continue
            service = (key[0], name)
            names = self.slices_of.setdefault(service, set())
            (names.add if obj is new else names.discard)(key[1])
            if not names:
                del self.slices_of[service]
            waiting = self.expected.get(service)
            if waiting is not None:
                wanted = waiting[0].get(key[1])
                seen = new.metadata.resource_version if new is not None else ""
                if wanted is not None and wanted == seen:
                    del waiting[0][key[1]]
            self.queue.add(service)

    # ------------------------------------------------------------------ work

    async def reconcile(self, key: PodKey) -> None:
        waiting = self.expected.get(key)
        if waiting is not None and not waiting[0]:
            del self.expected[key]
        elif waiting is not None:
            if self.clock() < waiting[1]:
                return  # the slice informer's events will queue us again
            log.warning("slice writes never showed up; planning anew", extra={"svc": "/".join(key)})
            del self.expected[key]
        service = self.services.get(key)
        existing = [
            s
            for name in sorted(self.slices_of.get(key, ()))
            if isinstance(s := self.slices.get((key[0], name)), objects_pb2.EndpointSlice)
            and is_managed(s, key[1])
        ]
        if not isinstance(service, objects_pb2.Service):
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
        # Registered before writing: the informer may deliver our writes mid-way.
        pending: dict[str, str] = {}
        self.expected[key] = (pending, self.clock() + _EXPECTATION_TIMEOUT)
        self.queue.add_after(key, _EXPECTATION_TIMEOUT)
        for new in plan.create:
            try:
                created = await self.store.create(new, fence=self.fence)
            except AlreadyExistsError:
                continue
            self._expect(pending, key[0], created.metadata.name, created.metadata.resource_version)
        for changed in plan.update:
            revision = int(changed.metadata.resource_version)
            updated = await self.store.update(changed, expected_revision=revision, fence=self.fence)
            self._expect(pending, key[0], updated.metadata.name, updated.metadata.resource_version)
        for name in plan.delete:
            doomed = self.slices.get((key[0], name))
            if isinstance(doomed, objects_pb2.EndpointSlice):
                await self._delete(doomed)
                self._expect(pending, key[0], name, "")

    def _expect(self, pending: dict[str, str], namespace: str, name: str, revision: str) -> None:
        """Wait for `name` at `revision` ("" = gone) unless the informer already has it."""
        cached = self.slices.get((namespace, name))
        seen = cached.metadata.resource_version if cached is not None else ""
        if seen != revision:
            pending[name] = revision

    def _selected_pods(self, service: objects_pb2.Service) -> list[objects_pb2.Pod]:
        namespace = service.metadata.namespace
        pods = []
        for pod_key in self.pod_labels.matching(namespace, service.spec.selector):
            pod = self.pods.get(pod_key)
            if isinstance(pod, objects_pb2.Pod):
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
