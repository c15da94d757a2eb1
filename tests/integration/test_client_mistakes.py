"""Client mistakes that were answered as server faults (issue 13), against real processes:
each is now INVALID_ARGUMENT naming the field, stores nothing, and the server keeps serving."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest

from kubelab.client import ApiError, Client
from kubelab.core import kinds
from kubelab.testing.cloud import CloudStubProcess, random_pool
from kubelab.testing.processes import ApiServerProcess, EtcdServer, free_port
from kubelab.v1 import api_pb2, api_pb2_grpc, objects_pb2

pytestmark = pytest.mark.integration

HUGE = "a" * 5_000_000
OVERFLOW = "99999999999999999999999"
GARBAGE = b"\x0a\x05\xff\xff\xff\xff\xff"


def _service(name: str = "shop") -> objects_pb2.Service:
    svc = objects_pb2.Service()
    svc.metadata.name = name
    svc.spec.ports.add(port=80)
    return svc


def _identity(data: bytes) -> bytes:
    return data


@pytest.fixture
async def stub(apiserver: ApiServerProcess) -> AsyncIterator[api_pb2_grpc.ApiStub]:
    async with grpc.aio.insecure_channel(apiserver.address) as channel:
        yield api_pb2_grpc.ApiStub(channel)


async def _first_event(call: grpc.aio.UnaryStreamCall[object, object]) -> None:
    async for _ in call:
        return


Call = Callable[[api_pb2_grpc.ApiStub], Awaitable[object]]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(
            lambda s: s.Get(api_pb2.GetRequest(key=api_pb2.ObjectKey(kind="svc", name=HUGE))),
            "name: Too long: may not be more than 253 bytes",
            id="get-5MB-name",
        ),
        pytest.param(
            lambda s: s.Delete(
                api_pb2.DeleteRequest(key=api_pb2.ObjectKey(kind="svc", namespace=HUGE, name="x"))
            ),
            "namespace: Too long: may not be more than 63 bytes",
            id="delete-5MB-namespace",
        ),
        pytest.param(
            lambda s: _first_event(s.Watch(api_pb2.WatchRequest(kind="svc", namespace=HUGE))),
            "namespace: Too long",
            id="watch-5MB-namespace",
        ),
        pytest.param(
            lambda s: s.Get(api_pb2.GetRequest(key=api_pb2.ObjectKey(kind=HUGE, name="x"))),
            "(5000000 characters)",
            id="get-5MB-kind",
        ),
        pytest.param(
            lambda s: s.Delete(
                api_pb2.DeleteRequest(
                    key=api_pb2.ObjectKey(kind="svc", name="shop"), resource_version=OVERFLOW
                )
            ),
            f'resourceVersion: Invalid value: "{OVERFLOW}"',
            id="delete-resourceVersion-overflow",
        ),
        pytest.param(
            lambda s: _first_event(
                s.Watch(api_pb2.WatchRequest(kind="svc", resource_version=OVERFLOW))
            ),
            f'resourceVersion: Invalid value: "{OVERFLOW}"',
            id="watch-resourceVersion-overflow",
        ),
        pytest.param(
            lambda s: _first_event(
                s.Watch(api_pb2.WatchRequest(kind="svc", resource_version="-1"))
            ),
            "must be a non-negative integer",
            id="watch-negative-resourceVersion",
        ),
    ],
)
async def test_key_and_version_mistakes(
    stub: api_pb2_grpc.ApiStub, api: Client, call: Call, message: str
) -> None:
    stored, _ = await api.apply(_service())
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(stub)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert message in (caught.value.details() or "")
    again = await api.get("svc", "shop")
    assert again.metadata.resource_version == stored.metadata.resource_version


async def test_update_with_an_overflowing_resource_version_changes_nothing(api: Client) -> None:
    stored, _ = await api.apply(_service())
    changed = _service()
    changed.metadata.resource_version = OVERFLOW
    changed.metadata.labels["new"] = "label"
    with pytest.raises(ApiError) as caught:
        await api.update(changed)
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.message.startswith("metadata.resourceVersion: Invalid value")
    again = await api.get("svc", "shop")
    assert again.metadata.resource_version == stored.metadata.resource_version
    assert "new" not in again.metadata.labels


@pytest.mark.parametrize("method", ["Create", "Update", "Apply", "Get", "List", "Delete"])
async def test_undecodable_unary_requests(apiserver: ApiServerProcess, method: str) -> None:
    async with grpc.aio.insecure_channel(apiserver.address) as channel:
        call = channel.unary_unary(f"/kubelab.v1.Api/{method}", _identity, _identity)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(GARBAGE)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "is not a valid kubelab.v1." in (caught.value.details() or "")
    assert "Traceback" not in apiserver.log_path.read_text()


async def test_a_garbage_apply_stream_chunk_is_refused_after_the_good_ones(
    apiserver: ApiServerProcess, api: Client
) -> None:
    good = api_pb2.ApplyChunk(objects=[kinds.wrap(_service("before"))]).SerializeToString()
    async with grpc.aio.insecure_channel(apiserver.address) as channel:
        call = channel.stream_stream("/kubelab.v1.Api/ApplyStream", _identity, _identity)
        answers = []
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            # Nothing after the garbage: a client writing to a call the server has ended
            # fails on its own side (grpc reports that as INTERNAL from its core).
            async for answer in call(iter([good, GARBAGE])):
                answers.append(api_pb2.ApplyChunkResult.FromString(answer))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "kubelab.v1.ApplyChunk" in (caught.value.details() or "")
    assert [r.response.result for a in answers for r in a.results] == ["created"]
    assert (await api.get("svc", "before")).metadata.name == "before"


async def test_the_cloud_stub_refuses_undecodable_requests(
    etcd: EtcdServer, tmp_path: Path
) -> None:
    cloud = CloudStubProcess(
        etcd.endpoint, tmp_path, random_pool(28), listen=f"127.0.0.1:{free_port()}"
    )
    cloud.start()
    try:
        async with grpc.aio.insecure_channel(cloud.address) as channel:
            call = channel.unary_unary(
                "/kubelab.v1.CloudProvider/EnsureLoadBalancer", _identity, _identity
            )
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call(GARBAGE)
    finally:
        cloud.stop()
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "Traceback" not in cloud.log_path.read_text()


@pytest.mark.parametrize(
    ("name", "namespace"),
    [
        pytest.param(HUGE, "default", id="5MB-name"),
        pytest.param("shop", HUGE, id="5MB-namespace"),
        pytest.param("a/b", "default", id="slash-in-name"),
    ],
)
@pytest.mark.parametrize("verb", ["apply", "update"])
async def test_an_object_whose_key_cannot_be_stored_is_refused_in_the_kinds_words(
    api: Client, name: str, namespace: str, verb: str
) -> None:
    svc = _service(name)
    svc.metadata.namespace = namespace
    with pytest.raises(ApiError) as caught:
        await (api.apply(svc) if verb == "apply" else api.update(svc))
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.message.startswith("Service ")
    field = "metadata.name" if namespace == "default" else "metadata.namespace"
    assert f"{field}: Invalid value" in caught.value.message
    assert len(caught.value.message.encode()) <= 2048
    items, _ = await api.list("svc")
    assert items == []
