"""healthCheckNodePort allocation through a real apiserver and etcd (DESIGN §2.1): a
LoadBalancer Service with `externalTrafficPolicy: Local` gets one from the NodePort range,
in the same transaction as the Service, as Kubernetes allocates it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from kubelab.client import ApiError, Client
from kubelab.core.allocators import Claim
from kubelab.core.kinds import ApiObject
from kubelab.store import Store
from kubelab.testing.processes import ApiServerProcess, EtcdServer
from kubelab.v1 import objects_pb2

pytestmark = pytest.mark.integration

NODE_PORTS = range(30000, 32768)


def service(name: str, **spec: Any) -> objects_pb2.Service:
    """A LoadBalancer Service with the Local policy, unless `spec` says otherwise."""
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "type": "LoadBalancer",
            "externalTrafficPolicy": "Local",
            "selector": {"app": name},
            "ports": [{"port": 80, "targetPort": "8080"}],
        },
    }
    body["spec"].update(spec)
    return json_format.ParseDict(body, objects_pb2.Service())


def as_service(obj: ApiObject) -> objects_pb2.Service:
    assert isinstance(obj, objects_pb2.Service)
    return obj


@pytest.fixture
def service_cidr() -> str:
    """These tests bind nothing: the default range."""
    return "127.96.0.0/16"


@pytest.fixture
async def api(apiserver: ApiServerProcess) -> AsyncIterator[Client]:
    async with Client(apiserver.address, timeout=10) as client:
        yield client


@pytest.fixture
async def store(etcd: EtcdServer) -> AsyncIterator[Store]:
    s = Store(etcd.endpoint)
    yield s
    await s.close()


async def claims(store: Store) -> dict[Claim, str]:
    found, _ = await store.list_claims()
    return dict(found)


async def test_allocated_from_the_node_port_range_and_kept_on_reapply(
    api: Client, store: Store
) -> None:
    created, result = await api.apply(service("web"))
    assert result == "created"
    svc = as_service(created)
    health = svc.spec.health_check_node_port
    assert health in NODE_PORTS
    assert health != svc.spec.ports[0].node_port
    held = await claims(store)
    assert held[Claim.node_port("TCP", health)] == svc.metadata.uid
    assert held[Claim.node_port("TCP", svc.spec.ports[0].node_port)] == svc.metadata.uid

    # The same manifest again (it leaves the port out): nothing changes, nothing is released.
    again, result = await api.apply(service("web"))
    assert result == "unchanged"
    assert as_service(again).spec.health_check_node_port == health
    # A change elsewhere in the spec keeps it too.
    changed, result = await api.apply(service("web", sessionAffinity="ClientIP"))
    assert result == "configured"
    assert as_service(changed).spec.health_check_node_port == health
    assert await claims(store) == held


async def test_a_requested_port_is_claimed(api: Client, store: Store) -> None:
    created = as_service(await api.create(service("web", healthCheckNodePort=31234)))
    assert created.spec.health_check_node_port == 31234
    assert (await claims(store))[Claim.node_port("TCP", 31234)] == created.metadata.uid


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"externalTrafficPolicy": "Cluster"}, id="policy-to-cluster"),
        pytest.param({"type": "NodePort"}, id="type-to-node-port"),
    ],
)
async def test_released_when_no_longer_needed(
    api: Client, store: Store, change: dict[str, Any]
) -> None:
    svc = as_service(await api.create(service("web")))
    health = Claim.node_port("TCP", svc.spec.health_check_node_port)
    node_port = Claim.node_port("TCP", svc.spec.ports[0].node_port)

    changed, result = await api.apply(service("web", **change))
    assert result == "configured"
    assert as_service(changed).spec.health_check_node_port == 0
    held = await claims(store)
    assert health not in held, "the health check port's claim key is gone"
    assert held[node_port] == svc.metadata.uid, "the nodePort is kept"
    # Released for real: another Service may ask for it.
    other = as_service(
        await api.create(service("other", healthCheckNodePort=svc.spec.health_check_node_port))
    )
    assert (await claims(store))[health] == other.metadata.uid


async def test_back_to_local_allocates_again_and_delete_releases(api: Client, store: Store) -> None:
    cluster = as_service(await api.create(service("web", externalTrafficPolicy="Cluster")))
    assert cluster.spec.health_check_node_port == 0
    assert len(await claims(store)) == 2, "a ClusterIP and a nodePort"
    local = as_service((await api.apply(service("web")))[0])
    assert local.spec.health_check_node_port in NODE_PORTS
    assert Claim.node_port("TCP", local.spec.health_check_node_port) in await claims(store)
    await api.delete("svc", "web")
    assert await claims(store) == {}


async def test_reapplying_get_output_with_the_cluster_policy_releases_it(
    api: Client, store: Store
) -> None:
    created = as_service(await api.create(service("web")))
    edited = objects_pb2.Service()
    edited.CopyFrom(created)
    edited.spec.external_traffic_policy = "Cluster"
    edited.metadata.resource_version = ""
    changed = as_service((await api.apply(edited))[0])
    assert changed.spec.health_check_node_port == 0
    assert Claim.node_port("TCP", created.spec.health_check_node_port) not in await claims(store)


@pytest.mark.parametrize(
    ("existing", "requested", "message"),
    [
        pytest.param(
            service("a", type="NodePort", ports=[{"port": 80, "nodePort": 30080}]),
            service("b", healthCheckNodePort=30080),
            "spec.healthCheckNodePort: Invalid value: 30080: provided port is already allocated",
            id="health-port-is-a-node-port",
        ),
        pytest.param(
            service("a", healthCheckNodePort=30080),
            service("b", healthCheckNodePort=30080),
            "spec.healthCheckNodePort: Invalid value: 30080: provided port is already allocated",
            id="health-port-is-a-health-port",
        ),
        pytest.param(
            service("a", healthCheckNodePort=30080),
            service("b", type="NodePort", ports=[{"port": 80, "nodePort": 30080}]),
            "spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated",
            id="node-port-is-a-health-port",
        ),
        pytest.param(
            None,
            service("b", healthCheckNodePort=40000),
            "spec.healthCheckNodePort: Invalid value: 40000: provided port is not in the valid "
            "range. The range of valid ports is 30000-32767",
            id="out-of-range",
        ),
        pytest.param(
            None,
            service("b", healthCheckNodePort=30080, ports=[{"port": 80, "nodePort": 30080}]),
            "spec.healthCheckNodePort: Invalid value: 30080: provided port is already allocated",
            id="its-own-node-port",
        ),
    ],
)
async def test_a_refused_request_names_the_field_and_changes_nothing(
    api: Client,
    store: Store,
    existing: objects_pb2.Service | None,
    requested: objects_pb2.Service,
    message: str,
) -> None:
    if existing is not None:
        await api.create(existing)
    before, revision = await claims(store), await store.current_revision()
    with pytest.raises(ApiError) as caught:
        await api.apply(requested)
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert message in caught.value.message
    assert await store.current_revision() == revision
    assert await claims(store) == before
    with pytest.raises(ApiError) as missing:
        await api.get("svc", "b")
    assert missing.value.code is grpc.StatusCode.NOT_FOUND


async def test_an_update_asking_for_a_taken_port_changes_nothing(api: Client, store: Store) -> None:
    await api.create(service("a", type="NodePort", ports=[{"port": 80, "nodePort": 30080}]))
    cluster = as_service(await api.create(service("b", externalTrafficPolicy="Cluster")))
    before, revision = await claims(store), await store.current_revision()
    with pytest.raises(ApiError) as caught:
        await api.apply(service("b", healthCheckNodePort=30080))
    assert "spec.healthCheckNodePort: Invalid value: 30080: provided port is already allocated" in (
        caught.value.message
    )
    assert await store.current_revision() == revision
    assert await claims(store) == before
    assert as_service(await api.get("svc", "b")) == cluster
