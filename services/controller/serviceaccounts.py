"""The serviceaccounts controller: a `default` ServiceAccount in every active namespace.

The decision is `services.controller.logic.serviceaccounts.missing_service_accounts`;
this is its plumbing, as Kubernetes' serviceaccounts controller does it: keys are
namespaces (`("", name)`), queued when a namespace appears or changes and when one of a
namespace's managed accounts is deleted. A sync reads the namespace and its accounts from
the informers and creates what is missing, fenced as the leader's; one that exists
already (another writer, or an informer a moment behind) is success.

Why the controller and not the apiserver's namespace create: a `default` account deleted
by a user must come back, which takes a watch on ServiceAccounts, and the controller
already holds the namespace informer and the leader's fenced writes (Kubernetes runs this
loop in kube-controller-manager too).
"""

from __future__ import annotations

import logging

from kubelab.core.keys import ObjectKey
from kubelab.runtime.clock import Clock
from kubelab.runtime.informer import Informer
from kubelab.runtime.queue import WorkQueue
from kubelab.store import AlreadyExistsError, Fence, StoreProtocol
from kubelab.v1 import access_pb2, objects_pb2
from services.controller.logic.serviceaccounts import MANAGED, missing_service_accounts

log = logging.getLogger("controller")


class ServiceAccountsController:
    def __init__(
        self,
        store: StoreProtocol,
        fence: Fence,
        *,
        namespaces: Informer[ObjectKey, objects_pb2.Namespace],
        accounts: Informer[ObjectKey, access_pb2.ServiceAccount],
        timers: Clock | None = None,
    ) -> None:
        self.store = store
        self.fence = fence
        self.namespaces = namespaces
        self.accounts = accounts
        self.queue: WorkQueue[ObjectKey] = WorkQueue(clock=timers)
        namespaces.on_change(self._namespace_changed)
        accounts.on_change(self._account_changed)

    def start(self) -> None:
        """Queue every namespace (call once the informers synced)."""
        for key in self.namespaces.cache:
            self.queue.add(key)

    def _namespace_changed(
        self, key: ObjectKey, old: objects_pb2.Namespace | None, new: objects_pb2.Namespace | None
    ) -> None:
        if new is not None:
            self.queue.add(key)

    def _account_changed(
        self,
        key: ObjectKey,
        old: access_pb2.ServiceAccount | None,
        new: access_pb2.ServiceAccount | None,
    ) -> None:
        if new is None and key[1] in MANAGED:
            self.queue.add(ObjectKey(("", key[0])))

    async def sync(self, key: ObjectKey) -> None:
        name = key[1]
        existing = [n for n in MANAGED if self.accounts.get(ObjectKey((name, n))) is not None]
        for account in missing_service_accounts(self.namespaces.get(key), existing):
            try:
                await self.store.create(account, fence=self.fence)
            except AlreadyExistsError:
                continue
            log.info("created service account %s", account.metadata.name, extra={"namespace": name})
