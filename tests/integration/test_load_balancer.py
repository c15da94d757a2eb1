"""`type: LoadBalancer` end to end (DESIGN §2.5): real etcd, apiserver, controller (with
--cloud), three node agents, echo pods and the cloud-stub. A Service gets an address from the
pool and answers on it from its pods; deleting it or changing its type releases the address;
requested addresses, an exhausted pool, a dead node and a dead cloud-stub behave as a user
would expect. Every wait has a deadline."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kubelab.cli.describe import describe_service
from kubelab.client import Client
from kubelab.core.lb_pool import LbPool
from kubelab.core.lb_requests import CONDITION_TYPE, IP_ANNOTATION, SOURCE_RANGES_ANNOTATION
from kubelab.core.manifests import load_manifests
from kubelab.core.printing import service_external_ip
from kubelab.testing import wait
from kubelab.testing.cloud import CloudStubProcess, cloud_client
from kubelab.testing.processes import ApiServerProcess, ControllerProcess, EtcdServer
from kubelab.testing.traffic import RequestFailed, RequestLoop, connect_outcome, http_get
from kubelab.v1 import cloud_pb2, meta_pb2, objects_pb2
from tests.integration.conftest import Cluster, deployment, eventually, ready_count
from tests.integration.test_dataplane import pinned_deployment, until_answers

pytestmark = pytest.mark.integration

PORT = 8080  # >= 1024: the cloud-stub binds it with or without root


def lb_service(
    name: str,
    *,
    selector: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    type_: str = "LoadBalancer",
    **spec: Any,
) -> objects_pb2.Service:
    body = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "type": type_,
            "selector": selector or {"app": "shop", "env": "prod"},
            "ports": [{"name": "http", "port": PORT, "targetPort": "http"}],
            **spec,
        },
    }
    (loaded,) = load_manifests(json.dumps(body))
    assert isinstance(loaded.object, objects_pb2.Service)
    return loaded.object


def condition(svc: objects_pb2.Service) -> meta_pb2.Condition | None:
    return next((c for c in svc.status.conditions if c.type == CONDITION_TYPE), None)


def ingress(svc: objects_pb2.Service) -> str:
    return ",".join(i.ip for i in svc.status.load_balancer.ingress)


def reason(svc: objects_pb2.Service) -> str:
    cond = condition(svc)
    return f"{cond.status}/{cond.reason}" if cond is not None else ""


async def until_service(
    api: Client,
    name: str,
    check: Callable[[objects_pb2.Service], bool],
    what: str,
    timeout: float = 15.0,
) -> objects_pb2.Service:
    async def service() -> objects_pb2.Service:
        svc = await api.get("services", name)
        assert isinstance(svc, objects_pb2.Service)
        return svc

    return await wait.until(
        f"{name}: {what}",
        service,
        check,
        timeout=timeout,
        interval=0.05,
        describe=lambda svc: f"ingress={ingress(svc) or '-'} condition={condition(svc)}",
    )


async def provisioned(api: Client, name: str, timeout: float = 15.0) -> str:
    """Wait until `name` has an address and a True condition; returns the address."""
    svc = await until_service(
        api, name, lambda s: bool(ingress(s)) and reason(s) == "True/Provisioned", "an address"
    )
    return ingress(svc)


async def listed(cloud: CloudStubProcess) -> dict[str, str]:
    """The cloud's load balancers: "namespace/name" → address (a duplicate name fails)."""
    async with cloud_client(cloud.address) as stub:
        reply = await stub.ListLoadBalancers(cloud_pb2.ListLoadBalancersRequest())
    names = [f"{lb.spec.namespace}/{lb.spec.name}" for lb in reply.load_balancers]
    assert len(names) == len(set(names)), names
    return {f"{lb.spec.namespace}/{lb.spec.name}": lb.ip for lb in reply.load_balancers}


async def get_lb(cloud: CloudStubProcess, name: str) -> cloud_pb2.LoadBalancer:
    async with cloud_client(cloud.address) as stub:
        key = cloud_pb2.LoadBalancerKey(namespace="default", name=name)
        return await stub.GetLoadBalancer(key)


async def node_healthy(cloud: CloudStubProcess, name: str, node: str) -> bool:
    """Whether the cloud has `node` in rotation for `name` (False once it left the spec)."""
    health = {n.name: n.healthy for n in (await get_lb(cloud, name)).nodes}
    return health.get(node, False)


async def until_refused(ip: str, timeout: float = 10.0) -> None:
    await wait.until(
        f"{ip}:{PORT} to refuse",
        lambda: connect_outcome(ip, PORT),
        lambda outcome: outcome == "refused",
        timeout=timeout,
        interval=0.05,
    )


async def shop(api: Client, replicas: int) -> set[str]:
    await api.apply(deployment(replicas, period=1))
    pods = await eventually(api, ready_count(replicas), 40, f"{replicas} shop pods ready")
    return {p.metadata.name for p in pods}


def pool_of(cluster: Cluster) -> LbPool:
    assert cluster.cloud is not None
    return LbPool(cluster.cloud.pool)


async def test_provision_serve_release_on_delete_and_type_change(
    lb_cluster: Cluster, api: Client
) -> None:
    pods = await shop(api, 3)
    created, _ = await api.apply(lb_service("web"))
    assert isinstance(created, objects_pb2.Service)
    assert service_external_ip(created) == "<pending>"
    ip = await provisioned(api, "web")
    assert ip in pool_of(lb_cluster)
    await until_answers(ip, PORT, pods)

    # A user's apply of the same manifest keeps the status (spec updates keep status).
    _, result = await api.apply(lb_service("web"))
    assert result == "unchanged"
    relabelled = lb_service("web")
    relabelled.metadata.labels["tier"] = "front"
    _, result = await api.apply(relabelled)
    assert result == "configured"
    svc = await api.get("services", "web")
    assert isinstance(svc, objects_pb2.Service)
    assert ingress(svc) == ip and reason(svc) == "True/Provisioned"
    assert "LoadBalancerProvisioned   True     Provisioned" in describe_service(svc, [])

    # Another type: the address is released and stops answering; the status forgets it.
    await api.apply(lb_service("web", type_="ClusterIP"))
    await until_service(api, "web", lambda s: not s.status.ByteSize(), "a cleared status")
    await until_refused(ip)
    assert lb_cluster.cloud is not None
    assert await listed(lb_cluster.cloud) == {}

    # And back: the Service gets an address again and answers.
    await api.apply(lb_service("web"))
    ip = await provisioned(api, "web")
    await until_answers(ip, PORT, pods)

    # Deleted: released and silent; applied again: it comes back.
    await api.delete("services", "web")
    await until_refused(ip)
    cloud = lb_cluster.cloud
    await wait.until("no load balancer", lambda: listed(cloud), lambda lbs: not lbs, interval=0.05)
    await api.apply(lb_service("web"))
    ip = await provisioned(api, "web")
    await until_answers(ip, PORT, pods)
    assert await listed(lb_cluster.cloud) == {"default/web": ip}


async def test_requested_addresses_are_honoured_or_refused_clearly(
    lb_cluster: Cluster, api: Client
) -> None:
    assert lb_cluster.cloud is not None
    addresses = list(pool_of(lb_cluster).addresses())
    wanted, annotated = addresses[2], addresses[4]
    await api.apply(lb_service("first", loadBalancerIP=wanted))
    assert await provisioned(api, "first") == wanted
    await api.apply(lb_service("tagged", annotations={IP_ANNOTATION: f"{annotated},fd00::1"}))
    assert await provisioned(api, "tagged") == annotated

    await api.apply(lb_service("second", loadBalancerIP=wanted))
    second = await until_service(
        api, "second", lambda s: reason(s) == "False/AddressUnavailable", "AddressUnavailable"
    )
    cond = condition(second)
    assert cond is not None and "already allocated to Service default/first" in cond.message
    assert not ingress(second)

    await api.apply(lb_service("outside", loadBalancerIP="127.9.9.9"))
    outside = await until_service(
        api, "outside", lambda s: reason(s) == "False/InvalidLoadBalancerSpec", "a refusal"
    )
    cond = condition(outside)
    assert cond is not None
    assert cond.message.startswith('spec.loadBalancerIP: Invalid value: "127.9.9.9"')
    assert f"not in the load balancer pool {lb_cluster.cloud.pool}" in cond.message
    assert "InvalidLoadBalancerSpec" in describe_service(outside, [])

    # Nothing else changed: the refused ones hold nothing, the others kept their addresses.
    assert await listed(lb_cluster.cloud) == {"default/first": wanted, "default/tagged": annotated}
    first = await api.get("services", "first")
    assert isinstance(first, objects_pb2.Service) and ingress(first) == wanted

    # The address comes free: the Service waiting for it gets it at once.
    await api.delete("services", "first")
    assert await provisioned(api, "second", timeout=5) == wanted


@pytest.mark.parametrize("lb_pool_prefix", [30])  # two usable addresses
async def test_exhausted_pool_waits_then_takes_a_freed_address(
    lb_cluster: Cluster, api: Client
) -> None:
    await api.apply(lb_service("a"))
    a = await provisioned(api, "a")
    await api.apply(lb_service("b"))
    b = await provisioned(api, "b")
    assert a != b
    await api.apply(lb_service("c"))
    c = await until_service(api, "c", lambda s: reason(s) == "False/PoolExhausted", "exhaustion")
    cond = condition(c)
    assert cond is not None
    assert cond.message == f"no free address in pool {pool_of(lb_cluster)}"
    assert service_external_ip(c) == "<pending>"
    assert "PoolExhausted" in describe_service(c, [])

    started = time.monotonic()
    await api.delete("services", "a")
    assert await provisioned(api, "c", timeout=5) == a
    assert time.monotonic() - started < 3, "a freed address should be taken within seconds"
    b_now = await api.get("services", "b")
    assert isinstance(b_now, objects_pb2.Service) and ingress(b_now) == b
    assert lb_cluster.cloud is not None
    assert await listed(lb_cluster.cloud) == {"default/b": b, "default/c": a}


async def test_local_policy_passes_the_health_check_port_and_source_ranges_hold(
    lb_cluster: Cluster, api: Client
) -> None:
    assert lb_cluster.cloud is not None
    await api.apply(pinned_deployment("solo", "node-2", [{"name": "http", "containerPort": 8080}]))
    await api.apply(
        lb_service(
            "local",
            selector={"app": "solo"},
            externalTrafficPolicy="Local",
            loadBalancerSourceRanges=["127.0.0.2/32"],
        )
    )
    await api.apply(
        lb_service(
            "ranged",
            selector={"app": "solo"},
            annotations={SOURCE_RANGES_ANNOTATION: "127.0.0.3/32, 127.0.0.4/32"},
        )
    )
    local_ip, ranged_ip = await provisioned(api, "local"), await provisioned(api, "ranged")
    svc = await api.get("services", "local")
    assert isinstance(svc, objects_pb2.Service)
    lb = await get_lb(lb_cluster.cloud, "local")
    assert lb.spec.health_check_node_port == svc.spec.health_check_node_port
    assert list(lb.spec.source_ranges) == ["127.0.0.2/32"]
    assert [n.name for n in lb.spec.nodes] == ["node-1", "node-2", "node-3"]
    assert [n.address for n in lb.spec.nodes] == [n.ip for n in lb_cluster.nodes]
    ranged = await get_lb(lb_cluster.cloud, "ranged")
    assert list(ranged.spec.source_ranges) == ["127.0.0.3/32", "127.0.0.4/32"]

    answer = await eventually_answer(ranged_ip, "127.0.0.3")
    assert answer["pod"].startswith("solo-")
    for ip, outsider in ((ranged_ip, "127.0.0.1"), (local_ip, "127.0.0.1")):
        with pytest.raises(RequestFailed):
            await http_get(ip, PORT, source_ip=outsider)

    assert svc.spec.health_check_node_port, "allocated by the apiserver"
    # Only node-2 has a local endpoint: its proxy's health check says so, the others' 503.
    cloud = lb_cluster.cloud

    async def healthy() -> set[str]:
        return {n.name for n in (await get_lb(cloud, "local")).nodes if n.healthy}

    await wait.until(
        "only node-2 to pass the health check",
        healthy,
        lambda names: names == {"node-2"},
        interval=0.1,
    )
    for _ in range(20):
        served = await http_get(local_ip, PORT, source_ip="127.0.0.2")
        assert served["pod"].startswith("solo-")
        # Local keeps the client's address all the way to the pod.
        assert served["client"].startswith("127.0.0.2:"), served["client"]


async def eventually_answer(ip: str, source: str, timeout: float = 10.0) -> dict[str, Any]:
    return await wait.until_passes(
        f"an answer from {ip}:{PORT} to {source}",
        lambda: http_get(ip, PORT, source_ip=source),
        timeout=timeout,
        interval=0.05,
        retry_on=(RequestFailed,),
    )


async def test_a_killed_node_leaves_rotation_without_failing_new_requests(
    lb_cluster: Cluster, api: Client
) -> None:
    assert lb_cluster.cloud is not None
    pods = await shop(api, 3)
    await api.apply(lb_service("web"))
    ip = await provisioned(api, "web")
    await until_answers(ip, PORT, pods)
    loop = RequestLoop(ip, PORT, concurrency=2).start()
    try:
        await loop.until_served(pods, timeout=10)
        victim = lb_cluster.node("node-3")
        listed, _ = await api.list("pods")
        doomed = [
            p.status.pod_ip
            for p in listed
            if isinstance(p, objects_pb2.Pod) and p.spec.node_name == "node-3"
        ]
        assert doomed, "no pod on node-3"
        victim.kill()

        # Its pods die with it, a moment later (the kernel signals them as the agent
        # exits; on a loaded machine that moment can come after new requests began): a
        # request the node proxies sent to one before that may be reset mid-way, as on a
        # real node that dies. From when every one of them refuses connections, none may.
        async def all_refuse() -> bool:
            return all([await refuses(ip, 8080) for ip in doomed])

        await wait.until("node-3's pods to stop listening", all_refuse, interval=0.01)
        killed = time.monotonic()
        # Out of rotation: its health check fails (cloud-stub, every 0.3 s)...
        cloud = lb_cluster.cloud
        await wait.until(
            "node-3 out of rotation",
            lambda: node_healthy(cloud, "web", "node-3"),
            lambda healthy: not healthy,
            interval=0.02,
        )
        left = time.monotonic()

        # ...and once its lease expires, the controller re-ensures without it.
        async def in_spec() -> list[str]:
            return [n.name for n in (await get_lb(cloud, "web")).spec.nodes]

        await wait.until(
            "the controller to drop node-3 from the spec",
            in_spec,
            lambda names: names == ["node-1", "node-2"],
            interval=0.05,
        )
        before = loop.attempts
        await wait.until_read(
            "100 more requests (the loop did not stall)",
            lambda: loop.attempts >= before + 100,
            interval=0.05,
        )
    finally:
        await loop.stop()
    # The cloud-stub retries a refused connect on another node and the node proxies retry
    # dead pods, so at most what was in flight when node-3 died can fail.
    assert loop.failed_since(left) == [], [str(f) for f in loop.failed_since(left)]
    assert all(f.started < killed for f in loop.failures), [str(f) for f in loop.failures]
    print(
        f"node kill: {len(loop.failures)} failed of {loop.attempts}; "
        f"left rotation {left - killed:.2f}s after the kill"
    )


async def refuses(ip: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), 0.5)
    except ConnectionRefusedError:
        return True
    except (OSError, TimeoutError):
        return False
    writer.close()
    return False


async def test_a_restarted_cloud_stub_keeps_its_addresses_and_catches_up(
    lb_cluster: Cluster, api: Client
) -> None:
    cloud = lb_cluster.cloud
    assert cloud is not None
    pods = await shop(api, 2)
    await api.apply(lb_service("a"))
    await api.apply(lb_service("b"))
    a, b = await provisioned(api, "a"), await provisioned(api, "b")
    await until_answers(a, PORT, pods)

    cloud.kill()
    assert await connect_outcome(a, PORT) == "refused"
    # Asked while the cloud is away: the condition says so, and the controller keeps trying.
    await api.apply(lb_service("c"))
    await until_service(
        api, "c", lambda s: reason(s) == "False/CloudProviderUnavailable", "cloud unavailable"
    )
    cloud.start()
    # Serving means forwarding: the resumed load balancers answer the first request,
    # without waiting for the nodes' first health check.
    assert await connect_outcome(a, PORT) == "answered"
    assert await connect_outcome(b, PORT) == "answered"
    await until_answers(a, PORT, pods)
    await until_answers(b, PORT, pods)
    c = await provisioned(api, "c")
    assert await listed(cloud) == {"default/a": a, "default/b": b, "default/c": c}
    assert len({a, b, c}) == 3
    for name, ip in (("a", a), ("b", b)):
        svc = await api.get("services", name)
        assert isinstance(svc, objects_pb2.Service) and ingress(svc) == ip


async def test_a_new_leader_deletes_load_balancers_orphaned_while_none_led(
    lb_cluster: Cluster, api: Client
) -> None:
    cloud = lb_cluster.cloud
    assert cloud is not None
    await api.apply(lb_service("kept"))
    await api.apply(lb_service("orphan"))
    kept, orphan = await provisioned(api, "kept"), await provisioned(api, "orphan")
    (controller,) = lb_cluster.controllers
    controller.stop()
    await api.delete("services", "orphan")
    assert await listed(cloud) == {"default/kept": kept, "default/orphan": orphan}
    controller.start()
    await wait.until(
        "the orphan released, the kept one kept",
        lambda: listed(cloud),
        lambda lbs: lbs == {"default/kept": kept},
        timeout=15,
        interval=0.05,
    )
    await until_refused(orphan)


async def test_without_a_cloud_the_condition_says_so(
    etcd: EtcdServer, apiserver: ApiServerProcess, api: Client, tmp_path: Path
) -> None:
    controller = ControllerProcess(etcd.endpoint, tmp_path)
    controller.start()
    try:
        await api.apply(lb_service("lonely"))
        svc = await until_service(
            api, "lonely", lambda s: reason(s) == "False/NoCloudProvider", "NoCloudProvider"
        )
        cond = condition(svc)
        assert cond is not None and "--cloud" in cond.message
        assert service_external_ip(svc) == "<pending>"
    finally:
        controller.stop()


def _unprivileged_prefix() -> tuple[str, ...]:
    """How to run the cloud-stub without the right to bind ports below 1024: as root, with
    CAP_NET_BIND_SERVICE dropped from its bounding set (so exec cannot grant it)."""
    return ("setpriv", "--bounding-set=-net_bind_service") if os.geteuid() == 0 else ()


def _privileged_ports_need_privilege() -> bool:
    try:
        first = int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    except (OSError, ValueError):
        return False
    return first > 80 and (os.geteuid() != 0 or shutil.which("setpriv") is not None)


@pytest.mark.skipif(
    not _privileged_ports_need_privilege(), reason="port 80 needs no privilege on this host"
)
@pytest.mark.parametrize("cloud_command_prefix", [_unprivileged_prefix()])
async def test_a_privileged_port_says_what_it_needs(lb_cluster: Cluster, api: Client) -> None:
    pods = await shop(api, 1)
    service = lb_service("web")
    service.spec.ports[0].port = 80
    service.spec.ports.add(name="alt", port=PORT, target_port="http")
    await api.apply(service)
    svc = await until_service(
        api, "web", lambda s: reason(s) == "False/PrivilegedPort", "PrivilegedPort"
    )
    cond = condition(svc)
    assert cond is not None
    assert "(Permission denied)" in cond.message
    assert "sysctl -w net.ipv4.ip_unprivileged_port_start=80" in cond.message
    assert "or use a port >= 1024" in cond.message
    # The address is held and shown, and the port that could be bound answers.
    ip = ingress(svc)
    assert ip in pool_of(lb_cluster)
    await until_answers(ip, PORT, pods)
    assert await connect_outcome(ip, 80) == "refused"
