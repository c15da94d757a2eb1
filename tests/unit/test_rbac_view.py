"""The apiserver's live RBAC state (services.apiserver.rbac_view) over the in-memory store and
the real watch cache: rebuilt after each change, the defaults written and reconciled once,
and the serviceaccounts controller's `default` account per namespace."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from google.protobuf.json_format import ParseDict

from kubelab.core import kinds
from kubelab.core.allocators import ClusterIPAllocator, NodePortAllocator, PortRange
from kubelab.core.keys import ObjectKey
from kubelab.runtime import sources
from kubelab.store import Store
from kubelab.testing.fakes import FakeStore
from kubelab.testing.wait import until_read
from kubelab.v1 import access_pb2, meta_pb2, objects_pb2
from services.apiserver.allocation_view import AllocationView
from services.apiserver.live_views import LiveViews
from services.apiserver.logic.rbac import Attributes, UserInfo, authenticated, authorize
from services.apiserver.rbac_view import RbacView, ensure_defaults
from services.apiserver.registry import AllocationConfig, Registry
from services.apiserver.watch_cache import WatchCache
from services.controller.logic.serviceaccounts import missing_service_accounts
from services.controller.serviceaccounts import ServiceAccountsController

ALICE = authenticated(UserInfo("alice"))
LIST_SERVICES = Attributes(ALICE, "list", "default", resource="services")


def registry_of(store: FakeStore) -> Registry:
    allocation = AllocationConfig(
        ips=ClusterIPAllocator("10.96.0.0/16"),
        ports=NodePortAllocator(PortRange.parse("30000-32767")),
    )
    return Registry(store, AllocationView(store), allocation)  # type: ignore[arg-type]


def alice_views() -> access_pb2.RoleBinding:
    out = access_pb2.RoleBinding()
    ParseDict(
        {
            "metadata": {"name": "alice-view", "namespace": "default"},
            "roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "alice"}],
        },
        out,
    )
    return out


@pytest.fixture
async def view() -> AsyncIterator[tuple[FakeStore, RbacView]]:
    store = FakeStore()
    cache = WatchCache(LiveViews(cast(Store, store)))
    await cache.start(kinds.RBAC_KINDS)
    made = RbacView(cast(Store, store), cache)
    await made.start()
    yield store, made
    await made.stop()
    await cache.stop()


async def test_a_binding_grants_once_stored_and_stops_once_deleted(
    view: tuple[FakeStore, RbacView],
) -> None:
    store, rbac = view
    registry = registry_of(store)
    assert not authorize(LIST_SERVICES, rbac.state).allowed
    await registry.create(alice_views())
    await until_read("the binding granting", lambda: authorize(LIST_SERVICES, rbac.state).allowed)
    assert rbac.state is rbac.state  # rebuilt once per change, not per read
    await registry.delete(kinds.ROLEBINDINGS, "default", "alice-view")
    await until_read("the grant gone", lambda: not authorize(LIST_SERVICES, rbac.state).allowed)


async def test_a_new_aggregated_rule_reaches_view_live(view: tuple[FakeStore, RbacView]) -> None:
    store, rbac = view
    registry = registry_of(store)
    await registry.create(alice_views())
    crontabs = access_pb2.ClusterRole()
    ParseDict(
        {
            "metadata": {
                "name": "crontabs",
                "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"},
            },
            "rules": [{"verbs": ["list"], "apiGroups": ["example.com"], "resources": ["ct"]}],
        },
        crontabs,
    )
    await registry.create(crontabs)
    request = Attributes(ALICE, "list", "default", "example.com", "ct")
    await until_read("view aggregating crontabs", lambda: authorize(request, rbac.state).allowed)


async def test_defaults_are_written_once_and_restored_after_an_edit() -> None:
    store = FakeStore()
    registry = registry_of(store)
    await ensure_defaults(registry)
    roles, _ = await store.list(kinds.CLUSTERROLES)
    bindings, _ = await store.list(kinds.CLUSTERROLEBINDINGS)
    assert {"cluster-admin", "admin", "edit", "view"} <= {r.metadata.name for r in roles}
    assert "system:basic-user" in {b.metadata.name for b in bindings}
    writes = store.writes
    await ensure_defaults(registry)
    assert store.writes == writes  # nothing to change: nothing written

    basic = await store.get(kinds.CLUSTERROLEBINDINGS, "", "system:basic-user")
    basic.ClearField("subjects")
    await store.update(basic, expected_revision=int(basic.metadata.resource_version))
    await ensure_defaults(registry)
    restored = await store.get(kinds.CLUSTERROLEBINDINGS, "", "system:basic-user")
    assert [s.name for s in restored.subjects] == ["system:authenticated"]


# ---------------------------------------------------------------- default service accounts


def namespace(name: str, phase: str = "Active") -> objects_pb2.Namespace:
    return objects_pb2.Namespace(
        metadata=meta_pb2.ObjectMeta(name=name), status=objects_pb2.NamespaceStatus(phase=phase)
    )


@pytest.mark.parametrize(
    ("ns", "existing", "created"),
    [
        pytest.param(namespace("dev"), [], ["dev/default"], id="new-namespace"),
        pytest.param(namespace("dev"), ["default"], [], id="has-one"),
        pytest.param(namespace("dev", "Terminating"), [], [], id="terminating"),
        pytest.param(None, [], [], id="gone"),
    ],
)
def test_missing_service_accounts(
    ns: objects_pb2.Namespace | None, existing: list[str], created: list[str]
) -> None:
    made = missing_service_accounts(ns, existing)
    assert [f"{a.metadata.namespace}/{a.metadata.name}" for a in made] == created
    assert all((a.api_version, a.kind) == ("v1", "ServiceAccount") for a in made)


async def test_every_namespace_gets_a_default_account_again_after_a_delete() -> None:
    store = FakeStore()
    fence = store.elect()
    await store.create(namespace("dev"))
    namespaces = sources.objects(store, kinds.NAMESPACES)
    accounts = sources.objects(store, kinds.SERVICEACCOUNTS)
    controller = ServiceAccountsController(store, fence, namespaces=namespaces, accounts=accounts)
    tasks = [asyncio.create_task(i.run()) for i in (namespaces, accounts)]
    await asyncio.gather(namespaces.synced.wait(), accounts.synced.wait())
    controller.start()

    async def drain() -> None:
        while len(controller.queue):
            key = await controller.queue.get()
            await controller.sync(key)
            controller.queue.done(key)

    async def account(ns: str) -> Any:
        await drain()
        await store.settle()
        return accounts.get(ObjectKey((ns, "default")))

    try:
        await drain()
        found, _ = await store.list(kinds.SERVICEACCOUNTS, "dev")
        assert [a.metadata.name for a in found] == ["default"]
        await store.create(namespace("staging"))
        await store.settle()
        assert await account("staging") is not None
        gone = await store.get(kinds.SERVICEACCOUNTS, "dev", "default")
        revision = int(gone.metadata.resource_version)
        await store.delete(kinds.SERVICEACCOUNTS, "dev", "default", expected_revision=revision)
        await store.settle()
        assert await account("dev") is not None
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
