"""The apiserver as a real process over real gRPC, with a real etcd behind it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from kubelab.client import ApiError, Client
from kubelab.core.allocators import Claim, ClaimKind
from kubelab.core.kinds import ApiObject
from kubelab.etcd_process import etcd_binary
from kubelab.store import Store
from kubelab.testing.processes import ApiServerProcess, EtcdServer
from kubelab.testing.wait import until
from kubelab.v1 import objects_pb2

pytestmark = pytest.mark.integration


def service(name: str, **spec: Any) -> objects_pb2.Service:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": "8080"}]},
    }
    body["spec"].update(spec)
    return json_format.ParseDict(body, objects_pb2.Service())


def as_service(obj: ApiObject) -> objects_pb2.Service:
    assert isinstance(obj, objects_pb2.Service)
    return obj


@pytest.fixture
def service_cidr() -> str:
    """These tests read the default range; they bind no ClusterIP."""
    return "127.96.0.0/16"


@pytest.fixture
async def api(apiserver: ApiServerProcess) -> AsyncIterator[Client]:
    client = Client(apiserver.address, timeout=5)
    yield client
    await client.close()


@pytest.fixture
async def store(etcd: EtcdServer) -> AsyncIterator[Store]:
    s = Store(etcd.endpoint)
    yield s
    await s.close()


async def test_create_allocates_and_defaults(api: Client) -> None:
    created = await api.create(service("shop", type="NodePort"))
    assert isinstance(created, objects_pb2.Service)
    assert created.spec.cluster_ip.startswith("127.96.")
    assert list(created.spec.cluster_ips) == [created.spec.cluster_ip]
    assert 30000 <= created.spec.ports[0].node_port <= 32767
    assert created.spec.ports[0].protocol == "TCP"
    assert created.spec.session_affinity == "None"
    assert created.spec.external_traffic_policy == "Cluster"
    assert created.metadata.namespace == "default"
    assert created.metadata.uid and created.metadata.resource_version
    assert created.metadata.HasField("creation_timestamp")
    assert await api.get("svc", "shop") == created


async def test_apply_is_create_then_unchanged_then_configured(api: Client) -> None:
    first, result = await api.apply(service("shop", type="NodePort"))
    assert result == "created"
    again, result = await api.apply(service("shop", type="NodePort"))
    assert result == "unchanged"
    assert again == first
    changed = service("shop", type="NodePort")
    changed.metadata.labels["env"] = "prod"
    third, result = await api.apply(changed)
    assert result == "configured"
    # Re-applying a manifest without clusterIP/nodePort keeps what was allocated.
    assert third.spec.cluster_ip == first.spec.cluster_ip
    assert third.spec.ports[0].node_port == first.spec.ports[0].node_port


async def test_list_filters_by_label_selector(api: Client) -> None:
    for name, env in [("a", "prod"), ("b", "dev"), ("c", "prod")]:
        svc = service(name)
        svc.metadata.labels["env"] = env
        await api.create(svc)
    items, revision = await api.list("svc", label_selector="env=prod")
    assert sorted(i.metadata.name for i in items) == ["a", "c"]
    assert int(revision) > 0
    items, _ = await api.list("services", label_selector="env notin (prod),app")
    assert [i.metadata.name for i in items] == ["b"]
    with pytest.raises(ApiError) as caught:
        await api.list("svc", label_selector="env in (prod")
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("spec", "field", "text"),
    [
        pytest.param(
            {"type": "NodePort", "ports": [{"port": 80, "nodePort": 40000}]},
            "spec.ports[0].nodePort",
            "spec.ports[0].nodePort: Invalid value: 40000: provided port is not in the valid "
            "range. The range of valid ports is 30000-32767",
            id="node-port-out-of-range",
        ),
        pytest.param(
            {"ports": [{"port": 70000}]},
            "spec.ports[0].port",
            "must be between 1 and 65535, inclusive",
            id="port-too-big",
        ),
        pytest.param(
            {"clusterIP": "10.1.2.3"},
            "spec.clusterIP",
            "provided IP is not in the valid range",
            id="cluster-ip-out-of-range",
        ),
        pytest.param({"type": "Fancy"}, "spec.type", "Unsupported value", id="bad-type"),
    ],
)
async def test_bad_input_names_the_field_and_writes_nothing(
    api: Client, store: Store, spec: dict[str, Any], field: str, text: str
) -> None:
    before = await store.current_revision()
    with pytest.raises(ApiError) as caught:
        await api.create(service("shop", **spec))
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert field in caught.value.message
    assert text in caught.value.message
    assert await store.current_revision() == before
    assert (await store.list_claims())[0] == {}


async def test_bad_service_name_is_refused(api: Client) -> None:
    with pytest.raises(ApiError) as caught:
        await api.create(service("Shop_1"))
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "metadata.name" in caught.value.message


async def test_generate_name_gets_a_random_suffix(api: Client) -> None:
    svc = service("")
    svc.metadata.generate_name = "shop-"
    created = await api.create(svc)
    assert created.metadata.name.startswith("shop-")
    assert len(created.metadata.name) == len("shop-") + 5


async def test_reapplying_get_output_with_a_new_type_drops_node_ports(api: Client) -> None:
    created = await api.create(service("shop", type="NodePort"))
    assert isinstance(created, objects_pb2.Service)
    edited = objects_pb2.Service()
    edited.CopyFrom(created)
    edited.spec.type = "ClusterIP"
    edited.metadata.resource_version = ""
    changed, result = await api.apply(edited)
    assert result == "configured"
    assert isinstance(changed, objects_pb2.Service)
    assert changed.spec.ports[0].node_port == 0
    assert changed.spec.external_traffic_policy == ""
    assert changed.spec.cluster_ip == created.spec.cluster_ip


async def test_create_twice_is_already_exists(api: Client) -> None:
    await api.create(service("shop"))
    with pytest.raises(ApiError) as caught:
        await api.create(service("shop"))
    assert caught.value.code is grpc.StatusCode.ALREADY_EXISTS


async def test_stale_resource_version_is_aborted(api: Client) -> None:
    created = await api.create(service("shop"))
    fresh = objects_pb2.Service()
    fresh.CopyFrom(created)
    fresh.metadata.labels["v"] = "1"
    await api.update(fresh)
    created.metadata.labels["v"] = "2"
    with pytest.raises(ApiError) as caught:
        await api.update(created)
    assert caught.value.code is grpc.StatusCode.ABORTED
    got = await api.get("svc", "shop")
    assert got.metadata.labels["v"] == "1"


async def test_get_and_delete_missing_is_not_found(api: Client) -> None:
    for call in (api.get("svc", "nope"), api.delete("svc", "nope")):
        with pytest.raises(ApiError) as caught:
            await call
        assert caught.value.code is grpc.StatusCode.NOT_FOUND
        assert 'services "nope" not found' in caught.value.message


async def test_requested_node_port_collision_is_refused_and_leaves_nothing(
    api: Client, store: Store
) -> None:
    await api.create(service("a", type="NodePort", ports=[{"port": 80, "nodePort": 30080}]))
    claims_before, _ = await store.list_claims()
    with pytest.raises(ApiError) as caught:
        await api.create(service("b", type="NodePort", ports=[{"port": 80, "nodePort": 30080}]))
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert (
        "spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
        in caught.value.message
    )
    assert (await store.list_claims())[0] == claims_before
    with pytest.raises(ApiError):
        await api.get("svc", "b")


async def test_requested_cluster_ip_collision_is_refused(api: Client) -> None:
    await api.create(service("a", clusterIP="127.96.1.1"))
    with pytest.raises(ApiError) as caught:
        await api.create(service("b", clusterIP="127.96.1.1"))
    assert 'spec.clusterIP: Invalid value: "127.96.1.1": provided IP is already allocated' in (
        caught.value.message
    )


async def test_delete_releases_the_port_for_reuse(api: Client, store: Store) -> None:
    await api.create(service("a", type="NodePort", ports=[{"port": 80, "nodePort": 30080}]))
    await api.delete("svc", "a")
    assert (await store.list_claims())[0] == {}
    again = await api.create(service("b", type="NodePort", ports=[{"port": 80, "nodePort": 30080}]))
    assert as_service(again).spec.ports[0].node_port == 30080


async def test_type_change_releases_node_ports_and_keeps_cluster_ip(
    api: Client, store: Store
) -> None:
    created = await api.create(
        service("a", type="NodePort", ports=[{"port": 80, "nodePort": 30080}])
    )
    changed, result = await api.apply(service("a", type="ClusterIP"))
    assert result == "configured"
    assert as_service(changed).spec.cluster_ip == as_service(created).spec.cluster_ip
    assert as_service(changed).spec.ports[0].node_port == 0
    claims, _ = await store.list_claims()
    assert {c.kind for c in claims} == {ClaimKind.CLUSTER_IP}
    await api.create(service("b", type="NodePort", ports=[{"port": 80, "nodePort": 30080}]))


async def test_watch_resumes_from_a_resource_version(api: Client) -> None:
    await api.create(service("a"))
    _, revision = await api.list("svc")
    for name in ("b", "c", "d"):
        await api.create(service(name))
    await api.delete("svc", "b")

    seen: list[tuple[str, str]] = []

    async def consume() -> None:
        async for event in api.watch("svc", resource_version=revision):
            assert event.object is not None
            seen.append((event.type, event.object.metadata.name))
            if len(seen) == 4:
                return

    await asyncio.wait_for(consume(), 10)
    assert seen == [("ADDED", "b"), ("ADDED", "c"), ("ADDED", "d"), ("DELETED", "b")]


async def test_watch_with_selector_turns_relabels_into_added_and_deleted(api: Client) -> None:
    created = await api.create(service("a"))
    events: list[tuple[str, str]] = []
    bookmark = asyncio.Event()

    async def consume() -> None:
        async for event in api.watch("svc", label_selector="env=prod"):
            if event.type == "BOOKMARK":
                bookmark.set()
                continue
            assert event.object is not None
            events.append((event.type, event.object.metadata.name))
            if len(events) == 2:
                return

    task = asyncio.create_task(consume())
    await asyncio.wait_for(bookmark.wait(), 10)
    created.metadata.labels["env"] = "prod"
    created.metadata.resource_version = ""
    await api.update(created)
    created.metadata.labels["env"] = "dev"
    await api.update(created)
    await asyncio.wait_for(task, 10)
    assert events == [("ADDED", "a"), ("DELETED", "a")]


async def test_watch_with_a_malformed_resource_version_is_invalid(api: Client) -> None:
    with pytest.raises(ApiError) as caught:
        async for _ in api.watch("svc", resource_version="abc"):
            pass
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "resourceVersion" in caught.value.message


async def test_watch_from_a_compacted_revision_is_out_of_range(
    etcd: EtcdServer, api: Client
) -> None:
    await api.create(service("a"))
    _, old = await api.list("svc")
    await api.create(service("b"))
    await api.create(service("c"))
    _, now = await api.list("svc")
    etcdctl = Path(etcd_binary()).with_name("etcdctl")
    compact = await asyncio.create_subprocess_exec(
        str(etcdctl), f"--endpoints={etcd.endpoint}", "compact", now
    )
    assert await compact.wait() == 0
    with pytest.raises(ApiError) as caught:
        async for _ in api.watch("svc", resource_version=old):
            pass
    assert caught.value.code is grpc.StatusCode.OUT_OF_RANGE


async def test_500_concurrent_creates_through_two_apiservers_never_duplicate(
    etcd: EtcdServer, apiserver: ApiServerProcess, tmp_path: Path, store: Store
) -> None:
    second = ApiServerProcess(etcd.endpoint, tmp_path, name="apiserver-2")
    second.start()
    clients = [Client(apiserver.address, timeout=30), Client(second.address, timeout=30)]
    try:
        semaphore = asyncio.Semaphore(64)

        async def create(index: int) -> objects_pb2.Service:
            async with semaphore:
                created = await clients[index % 2].create(service(f"svc-{index}", type="NodePort"))
                assert isinstance(created, objects_pb2.Service)
                return created

        created = await asyncio.gather(*(create(i) for i in range(500)))
    finally:
        for client in clients:
            await client.close()
        second.stop()

    ips = [s.spec.cluster_ip for s in created]
    ports = [s.spec.ports[0].node_port for s in created]
    assert len(set(ips)) == 500
    assert len(set(ports)) == 500
    claims, _ = await store.list_claims()
    assert len(claims) == 1000
    assert {c.name for c in claims if c.kind is ClaimKind.CLUSTER_IP} == set(ips)
    assert {Claim.node_port("TCP", p) for p in ports} <= set(claims)


async def test_etcd_outage_is_unavailable_then_recovers_without_restart(
    etcd: EtcdServer, api: Client
) -> None:
    await api.create(service("before"))
    etcd.stop()
    with pytest.raises(ApiError) as caught:
        await api.create(service("during"))
    assert caught.value.code is grpc.StatusCode.UNAVAILABLE
    with pytest.raises(ApiError) as caught:
        await api.list("svc")
    assert caught.value.code is grpc.StatusCode.UNAVAILABLE
    etcd.start()

    async def created() -> bool:
        try:
            await api.create(service("after", type="NodePort"))
        except ApiError as err:
            assert err.code is grpc.StatusCode.UNAVAILABLE  # anything else ends the wait
            return False
        return True

    await until("a create once etcd is back", created, timeout=20, interval=0.1)
    items, _ = await api.list("svc")
    assert sorted(i.metadata.name for i in items) == ["after", "before"]


async def test_a_port_freed_by_another_apiserver_is_found_when_the_range_looks_full(
    etcd: EtcdServer, tmp_path: Path
) -> None:
    small = ("--node-port-range", "30000-30002")
    first = ApiServerProcess(etcd.endpoint, tmp_path, name="a", extra_args=small)
    second = ApiServerProcess(etcd.endpoint, tmp_path, name="b", extra_args=small)
    first.start()
    second.start()
    try:
        async with Client(first.address) as a, Client(second.address) as b:
            for name in ("s0", "s1", "s2"):
                await a.create(service(name, type="NodePort"))
            with pytest.raises(ApiError) as caught:
                await a.create(service("s3", type="NodePort"))
            assert caught.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
            freed = as_service(await b.delete("svc", "s1")).spec.ports[0].node_port
            again = await a.create(service("s3", type="NodePort"))
            assert again.spec.ports[0].node_port == freed
    finally:
        first.stop()
        second.stop()


async def test_apply_stream_answers_in_order_with_per_object_errors(
    api: Client, store: Store
) -> None:
    await api.create(service("existing", type="NodePort"))
    objects: list[ApiObject] = [service(f"bulk-{i}") for i in range(150)]
    objects[70] = service("bad", ports=[{"port": 0}])
    objects[100] = service("existing", type="NodePort")
    answers = [answer async for answer in api.apply_many(objects, chunk_size=16)]

    assert len(answers) == 150
    bad, _ = answers[70]
    assert isinstance(bad, ApiError)
    assert bad.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "spec.ports[0].port" in bad.message
    assert answers[100][1] == "unchanged"
    created = [a for i, (a, r) in enumerate(answers) if i not in (70, 100)]
    assert all(r == "created" for i, (a, r) in enumerate(answers) if i not in (70, 100))
    assert [a.metadata.name for a in created if not isinstance(a, ApiError)] == [
        f"bulk-{i}" for i in range(150) if i not in (70, 100)
    ]
    items, _ = await api.list("svc")
    assert len(items) == 149
    ips = [as_service(i).spec.cluster_ip for i in items]
    assert len(set(ips)) == 149
    claims, _ = await store.list_claims()
    assert len(claims) == 149 + 1  # every ClusterIP, and the one NodePort
