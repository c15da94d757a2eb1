"""Namespace lifecycle admission: no new object in a missing or terminating namespace.

Kubernetes' NamespaceLifecycle admission plugin, for both fronts (through
`Registry.create`): creating a namespaced object in a namespace that does not
exist is NotFound (`namespaces "x" not found`), in one being deleted Forbidden
(`... is forbidden: unable to create new content in namespace x because it is
being terminated`). Only creates are checked, as there: updates and deletes of
what a terminating namespace still holds go on (the namespace controller needs
them).

The answer comes from a watched cache of namespaces; a namespace the cache does
not hold (not synced yet, or created a moment ago through another apiserver) is
looked up in the store before refusing, and a namespace this apiserver has just
marked for deletion is learned at once. A create racing a deletion made through
another apiserver can still land: the namespace controller deletes until the
namespace is empty, which is what Kubernetes relies on too.

`mark_terminating` is a Namespace's deletion (the registry's, for both fronts).
`ensure_system` creates `default`, `kube-system`, `kube-public` and
`kube-node-lease` when missing (Kubernetes' system namespaces controller), by
plain creates: "already exists" is success, so several apiservers starting at
once agree.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from kubelab.core import kinds
from kubelab.core.errors import ForbiddenError
from kubelab.core.keys import ObjectKey
from kubelab.core.kinds import ApiObject
from kubelab.core.validation.namespaces import SYSTEM_NAMESPACES, TERMINATING
from kubelab.runtime import sources
from kubelab.store import AlreadyExistsError, NotFoundError, Store
from kubelab.v1 import meta_pb2, objects_pb2

log = logging.getLogger(__name__)


class NamespaceNotFoundError(NotFoundError):
    """The namespace an object would be created in does not exist (the HTTP front's
    Status names the namespace, not the object)."""

    def __init__(self, namespace: str) -> None:
        super().__init__(f'namespaces "{namespace}" not found')
        self.namespace = namespace


def missing(namespace: str) -> NamespaceNotFoundError:
    return NamespaceNotFoundError(namespace)


def terminating(resource: str, name: str, namespace: str) -> ForbiddenError:
    return ForbiddenError(
        resource,
        name,
        f"unable to create new content in namespace {namespace} because it is being terminated",
    )


class NamespaceView:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._informer = sources.objects(store, kinds.NAMESPACES)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._informer.run(), name="namespaces")
        await self._informer.synced.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def learn(self, namespace: objects_pb2.Namespace) -> None:
        """This apiserver has just written `namespace`: later checks see it at once."""
        self._informer.cache[ObjectKey(("", namespace.metadata.name))] = namespace

    async def admit_create(self, resource: str, name: str, namespace: str) -> None:
        """Raise NotFoundError or ForbiddenError when nothing may be created in `namespace`."""
        found = self._informer.get(ObjectKey(("", namespace)))
        if found is None:
            try:
                found = await self._store.get(kinds.NAMESPACES, "", namespace)
            except NotFoundError:
                raise missing(namespace) from None
        if found.status.phase == TERMINATING:
            raise terminating(resource, name, namespace)


async def mark_terminating(
    store: Store, view: NamespaceView | None, current: objects_pb2.Namespace
) -> objects_pb2.Namespace:
    """A Namespace's deletion: Terminating until the namespace controller has emptied it
    (Kubernetes keeps it while spec.finalizers holds `kubernetes`). Idempotent."""
    if current.metadata.HasField("deletion_timestamp"):
        return current
    marked = objects_pb2.Namespace()
    marked.CopyFrom(current)
    marked.metadata.deletion_timestamp.seconds = int(time.time())
    marked.status.phase = TERMINATING
    written = await store.update(marked, expected_revision=int(current.metadata.resource_version))
    if view is not None:
        view.learn(written)
    log.info("namespace marked for deletion", extra={"namespace": current.metadata.name})
    return written


async def ensure_system(create: Callable[[ApiObject], Awaitable[ApiObject]]) -> None:
    """Create the system namespaces that are missing (retrying while etcd is away)."""
    for name in SYSTEM_NAMESPACES:
        while True:
            try:
                await create(objects_pb2.Namespace(metadata=meta_pb2.ObjectMeta(name=name)))
                log.info("created namespace", extra={"namespace": name})
            except AlreadyExistsError:
                pass
            except Exception as err:
                log.warning("creating namespace %s failed: %s; retrying", name, err)
                await asyncio.sleep(0.5)
                continue
            break
