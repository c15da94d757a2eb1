"""Group commit against a real etcd: each caller gets its own true answer, whatever the
sizes of the objects its batch-mates touch (issue 13)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from kubelab.core import kinds
from kubelab.store import ConflictError, Store
from kubelab.testing.processes import EtcdServer
from kubelab.v1 import objects_pb2

pytestmark = pytest.mark.integration


def service(name: str, annotation: int = 0) -> objects_pb2.Service:
    svc = objects_pb2.Service(api_version="v1", kind="Service")
    svc.metadata.name = name
    svc.metadata.namespace = "default"
    if annotation:
        svc.metadata.annotations["blob"] = "x" * annotation
    svc.spec.type = "ClusterIP"
    return svc


@pytest.fixture
async def store(etcd: EtcdServer) -> AsyncIterator[Store]:
    s = Store(etcd.endpoint, timeout=10.0)
    yield s
    await s.close()


async def test_a_batch_of_large_read_backs_answers_each_caller_truly(store: Store) -> None:
    """17 deletes at a stale revision read back 17 objects of 250 kB; a create shares their
    batch. Their answer once passed the client's 4 MiB limit after etcd had applied the
    batch, and the create, sent again alone, answered "already exists"."""
    big = await asyncio.gather(*(store.create(service(f"big{n}", 250_000)) for n in range(17)))
    stale = [int(s.metadata.resource_version) - 1 for s in big]
    deletes = [
        store.delete(kinds.SERVICES, "default", s.metadata.name, expected_revision=rev)
        for s, rev in zip(big, stale, strict=True)
    ]
    results = await asyncio.gather(*deletes, store.create(service("small")), return_exceptions=True)
    assert all(isinstance(r, ConflictError) for r in results[:-1]), results[:-1]
    created = results[-1]
    assert isinstance(created, objects_pb2.Service), created
    assert created.metadata.name == "small"
    items, _ = await store.list(kinds.SERVICES)
    assert len(items) == 18


async def test_concurrent_large_creates_never_exceed_the_request_limit(store: Store) -> None:
    """Each 600 kB create fits etcd's 1.5 MiB request limit; any two batched together would
    too, three would not: every create must succeed, none refused as too large."""
    created = await asyncio.gather(*(store.create(service(f"c{n}", 600_000)) for n in range(9)))
    assert sorted(c.metadata.name for c in created) == [f"c{n}" for n in range(9)]


async def test_a_list_steps_down_to_what_the_client_can_receive(etcd: EtcdServer) -> None:
    """etcd cannot bound a range by bytes: a range step whose answer would pass the client's
    receive limit is retried smaller, so any object that fits a request can be listed."""
    async with contextlib.AsyncExitStack() as stack:
        writer = Store(etcd.endpoint, timeout=10.0)
        stack.push_async_callback(writer.close)
        await asyncio.gather(*(writer.create(service(f"big{n}", 250_000)) for n in range(17)))
        small = Store(etcd.endpoint, timeout=10.0, receive_bytes_max=1024 * 1024)
        stack.push_async_callback(small.close)
        items, _ = await small.list(kinds.SERVICES)
        assert sorted(i.metadata.name for i in items) == sorted(f"big{n}" for n in range(17))
