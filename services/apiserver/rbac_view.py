"""The RBAC objects the authorizer reads, live, and the default policy written at start.

`RbacView` holds every Role, ClusterRole, RoleBinding and ClusterRoleBinding in an
informer per kind, listed from the store and then fed by the apiserver's watch cache
(the etcd watch both fronts' watchers share: no watch of its own). A change marks the
state stale; the next authorization rebuilds it (`logic.rbac_objects.state_of`: the
bootstrap policy with the stored objects over it, aggregated ClusterRoles recomputed), so
a burst of changes costs one rebuild and a deleted binding stops granting as soon as its
event arrives (milliseconds; the issue asks for 1 s). Until its informers have synced the
view answers with the bootstrap policy alone, as an apiserver that has read nothing yet.
A watcher the cache ends for falling behind relists, as any informer after a compaction.
ServiceAccounts are held the same way (`account_uid`): a bearer token authenticates only
while its account exists with the uid it was issued for.

`ensure_defaults` is Kubernetes' RBAC PostStartHook: each default ClusterRole and
ClusterRoleBinding is created when missing and reconciled when present
(`logic.rbac_bootstrap`), through the registry so they are validated as any write; a
conflict (another apiserver reconciling at the same moment) reads again, an unreachable
store is retried, so several apiservers starting at once agree.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

from kubelab.core import kinds
from kubelab.core.keys import ObjectKey, key_of
from kubelab.core.kinds import ApiObject, KindInfo
from kubelab.runtime.informer import Informer
from kubelab.store import AlreadyExistsError, ConflictError, NotFoundError, Store
from kubelab.v1 import access_pb2
from services.apiserver.logic.rbac import RbacState
from services.apiserver.logic.rbac_bootstrap import (
    Action,
    Reconciled,
    default_objects,
    reconcile_cluster_role,
    reconcile_cluster_role_binding,
)
from services.apiserver.logic.rbac_defaults import bootstrap_state
from services.apiserver.logic.rbac_objects import state_of
from services.apiserver.registry import Registry
from services.apiserver.watch_cache import FellBehindError, Progress, WatchCache

log = logging.getLogger(__name__)

_RETRY_PAUSE = 0.5


def _everything(obj: ApiObject) -> bool:
    return True


class RbacView:
    def __init__(self, store: Store, cache: WatchCache) -> None:
        self._store = store
        self._cache = cache
        self._informers: dict[KindInfo, Informer[ObjectKey, ApiObject]] = {
            info: Informer(info.resource, self._lister(info), self._watcher(info))
            for info in kinds.RBAC_KINDS
        }
        for informer in self._informers.values():
            informer.on_change(self._changed)
        # ServiceAccounts: whether a token's account still exists (`account_uid`).
        self._accounts: Informer[ObjectKey, ApiObject] = Informer(
            "serviceaccounts",
            self._lister(kinds.SERVICEACCOUNTS),
            self._watcher(kinds.SERVICEACCOUNTS),
        )
        self._state = bootstrap_state()
        self._stale = False
        self._tasks: list[asyncio.Task[None]] = []

    def _lister(self, info: KindInfo) -> Callable[[], Any]:
        async def lister() -> tuple[dict[ObjectKey, ApiObject], int]:
            items, revision = await self._store.list(info)
            return {key_of(i): i for i in items}, revision

        return lister

    def _watcher(
        self, info: KindInfo
    ) -> Callable[[int], AsyncIterator[tuple[ObjectKey, ApiObject | None, int]]]:
        async def watcher(revision: int) -> AsyncIterator[tuple[ObjectKey, ApiObject | None, int]]:
            try:
                async for item in self._cache.watch(info, "", _everything, revision, listed=True):
                    if isinstance(item, Progress):
                        continue
                    event = item.event
                    value = None if item.type == "DELETED" else event.object
                    yield key_of(event.object), value, event.revision
            except FellBehindError:
                return  # the informer lists again

        return watcher

    def _changed(self, key: ObjectKey, old: ApiObject | None, new: ApiObject | None) -> None:
        self._stale = True

    async def start(self) -> None:
        """Run the informers; return once each has listed."""
        everyone = [*self._informers.values(), self._accounts]
        self._tasks = [asyncio.create_task(i.run(), name=f"rbac-{i.name}") for i in everyone]
        for informer in everyone:
            await informer.synced.wait()
        self._stale = True

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def account_uid(self, namespace: str, name: str) -> str | None:
        """The uid of ServiceAccount namespace/name, None when there is none."""
        found = self._accounts.cache.get(ObjectKey((namespace, name)))
        return str(found.metadata.uid) if found is not None else None

    def _objects(self, info: KindInfo) -> list[Any]:
        return list(self._informers[info].cache.values())

    @property
    def state(self) -> RbacState:
        """The state to authorize with now."""
        if self._stale:
            self._stale = False
            try:
                self._state = state_of(
                    roles=cast(list[access_pb2.Role], self._objects(kinds.ROLES)),
                    cluster_roles=self._objects(kinds.CLUSTERROLES),
                    role_bindings=self._objects(kinds.ROLEBINDINGS),
                    cluster_role_bindings=self._objects(kinds.CLUSTERROLEBINDINGS),
                )
            except Exception:  # a bug must not open or close the cluster: keep the last state
                log.exception("rebuilding the RBAC state failed; keeping the previous one")
        return self._state


# ---------------------------------------------------------------- defaults


async def _reconcile_one(
    registry: Registry,
    info: KindInfo,
    expected: access_pb2.ClusterRole | access_pb2.ClusterRoleBinding,
) -> None:
    name = expected.metadata.name
    try:
        existing: Any = await registry.store.get(info, "", name)
    except NotFoundError:
        existing = None
    if isinstance(expected, access_pb2.ClusterRole):
        plan: Reconciled | None = reconcile_cluster_role(existing, expected)
    else:
        plan = reconcile_cluster_role_binding(existing, expected)
    if plan is None:
        return
    if plan.action is Action.RECREATE:
        await registry.delete(info, "", name, existing.metadata.resource_version)
        await registry.create(plan.object)  # a new uid and creation time, as Kubernetes
    elif plan.action is Action.CREATE:
        await registry.create(plan.object)
    else:
        await registry.update(plan.object)
    log.info("%s default %s %s", plan.action.value, info.kind, name)


async def ensure_defaults(registry: Registry) -> None:
    """Create or reconcile every default ClusterRole, then every default binding."""
    roles, bindings = default_objects()
    todo: list[tuple[KindInfo, Any]] = [(kinds.CLUSTERROLES, r) for r in roles]
    todo += [(kinds.CLUSTERROLEBINDINGS, b) for b in bindings]
    for info, expected in todo:
        while True:
            try:
                await _reconcile_one(registry, info, expected)
            except (AlreadyExistsError, ConflictError, NotFoundError):
                continue  # someone else wrote it meanwhile: read it again
            except Exception as err:
                log.warning("writing default %s failed: %s; retrying", info.kind, err)
                await asyncio.sleep(_RETRY_PAUSE)
                continue
            break
