"""Events recorded by the real actors, read back as `kubectl describe` and `get events` do.

The scheduler, the deployment controller, the node agents and the LoadBalancer
reconciler record what they do; repeats count up one event; a field selector on
involvedObject picks one object's events (list and watch); events expire after
the TTL their writer was given (etcd deletes them; nothing here sleeps for it).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format

from kubelab.client import ApiError, Client
from kubelab.core import event_notes as notes
from kubelab.runtime.events import EventSink
from kubelab.store import Store
from kubelab.testing.processes import ApiServerProcess, EtcdServer
from kubelab.testing.traffic import echo_post
from kubelab.v1 import meta_pb2, objects_pb2
from tests.integration.conftest import Cluster, deployment, eventually, ready_count

pytestmark = pytest.mark.integration


async def events_of(
    api: Client, kind: str, name: str, namespace: str = "default"
) -> list[objects_pb2.Event]:
    selector = f"involvedObject.kind={kind},involvedObject.name={name}"
    items, _ = await api.list("events", namespace, field_selector=selector)
    return [e for e in items if isinstance(e, objects_pb2.Event)]


async def until_event(
    api: Client,
    kind: str,
    name: str,
    check: Callable[[objects_pb2.Event], bool],
    timeout: float,
    what: str,
) -> objects_pb2.Event:
    deadline = time.monotonic() + timeout
    seen: list[objects_pb2.Event] = []
    while time.monotonic() < deadline:
        seen = await events_of(api, kind, name)
        for event in seen:
            if check(event):
                return event
        await asyncio.sleep(0.05)
    shown = [(e.reason, e.message, e.count) for e in seen]
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what}; {kind}/{name} has {shown}"
    )


def cli(apiserver: ApiServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubelab.cli.main", "--server", apiserver.address, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_a_scheduled_scaled_and_probed_deployment_tells_its_story(
    cluster: Cluster, api: Client, apiserver: ApiServerProcess
) -> None:
    await api.create(deployment(2))
    pods = await eventually(api, ready_count(2), 30, "two ready pods")
    for pod in pods:
        scheduled = await until_event(
            api, "Pod", pod.metadata.name, lambda e: e.reason == "Scheduled", 10, "Scheduled"
        )
        assert scheduled.type == "Normal"
        assert scheduled.message == (
            f"Successfully assigned default/{pod.metadata.name} to {pod.spec.node_name}"
        )
        assert scheduled.source.component == "default-scheduler"
        assert scheduled.involved_object.uid == pod.metadata.uid
        started = await until_event(
            api, "Pod", pod.metadata.name, lambda e: e.reason == "Started", 10, "Started"
        )
        assert started.message == "Started container shop"
        assert started.involved_object.field_path == "spec.containers{shop}"
        assert (started.source.component, started.source.host) == ("kubelet", pod.spec.node_name)

    scaled = await until_event(
        api, "Deployment", "shop", lambda e: e.reason == "ScalingReplicaSet", 10, "scaled to 2"
    )
    assert scaled.message == "Scaled up pods of deployment shop to 2 from 0"
    assert scaled.source.component == "deployment-controller"

    current = await api.get("deployments", "shop")
    assert isinstance(current, objects_pb2.Deployment)
    current.spec.replicas = 4
    await api.update(current)
    await until_event(
        api,
        "Deployment",
        "shop",
        lambda e: e.message == "Scaled up pods of deployment shop to 4 from 2",
        20,
        "scaled to 4",
    )

    # A failing readiness probe: Unhealthy, counted up on every failure.
    victim = pods[0]
    await asyncio.to_thread(echo_post, victim.status.pod_ip, "/healthz/fail")
    unhealthy = await until_event(
        api,
        "Pod",
        victim.metadata.name,
        lambda e: e.reason == "Unhealthy" and e.count >= 2,
        20,
        "Unhealthy twice",
    )
    assert unhealthy.type == "Warning"
    assert unhealthy.message == "Readiness probe failed: HTTP probe failed with statuscode: 503"
    assert unhealthy.last_timestamp.seconds >= unhealthy.first_timestamp.seconds

    described = cli(apiserver, "describe", "pod", victim.metadata.name)
    assert described.returncode == 0, described.stderr
    section = described.stdout[described.stdout.index("Events:") :].splitlines()
    assert section[1].split() == ["Type", "Reason", "Age", "From", "Message"]
    assert any(
        line.split()[:2] == ["Warning", "Unhealthy"] and "(x" in line and "Readiness probe" in line
        for line in section
    ), section
    assert any(
        line.split()[:2] == ["Normal", "Scheduled"] and "default-scheduler" in line
        for line in section
    ), section

    listed = cli(apiserver, "get", "events")
    assert listed.returncode == 0, listed.stderr
    head = listed.stdout.splitlines()[0].split()
    assert head == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert any(f"pod/{victim.metadata.name}" in line for line in listed.stdout.splitlines())


async def test_a_field_selector_watch_sees_only_one_objects_events(
    cluster: Cluster, api: Client
) -> None:
    await api.create(deployment(1))
    pods = await eventually(api, ready_count(1), 30, "a ready pod")
    name = pods[0].metadata.name
    selector = f"involvedObject.kind=Pod,involvedObject.name={name}"
    seen: list[objects_pb2.Event] = []

    async def watch() -> None:
        async for event in api.watch("events", "default", field_selector=selector):
            if isinstance(event.object, objects_pb2.Event):
                seen.append(event.object)
                if any(e.reason == "Killing" for e in seen):
                    return

    watcher = asyncio.create_task(watch())
    await api.delete("pods", name)
    await asyncio.wait_for(watcher, 30)
    assert {e.involved_object.name for e in seen} == {name}
    killing = next(e for e in seen if e.reason == "Killing")
    assert killing.message == "Stopping container shop"

    with pytest.raises(ApiError) as refused:
        await api.list("events", field_selector="involvedObject.color=red")
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.message == "field label not supported: involvedObject.color"


async def test_a_load_balancer_is_ensured_with_events(lb_cluster: Cluster, api: Client) -> None:
    body = {
        "metadata": {"name": "shop-lb"},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": "shop"},
            "ports": [{"port": 80, "targetPort": "8080"}],
        },
    }
    await api.create(json_format.ParseDict(body, objects_pb2.Service()))
    ensured = await until_event(
        api,
        "Service",
        "shop-lb",
        lambda e: e.reason == "EnsuredLoadBalancer",
        30,
        "EnsuredLoadBalancer",
    )
    assert (ensured.type, ensured.message) == ("Normal", "Ensured load balancer")
    assert ensured.source.component == "service-controller"
    reasons = {e.reason for e in await events_of(api, "Service", "shop-lb")}
    assert "EnsuringLoadBalancer" in reasons


@pytest.fixture
def short_ttl_apiserver(etcd: EtcdServer, tmp_path: Path) -> Iterator[ApiServerProcess]:
    """An apiserver whose events live 2 s (etcd's shortest lease)."""
    (tmp_path / "ttl").mkdir()
    process = ApiServerProcess(etcd.endpoint, tmp_path / "ttl", extra_args=("--event-ttl", "2"))
    process.start()
    yield process
    process.stop()


async def _gone(api: Client, name: str) -> bool:
    try:
        await api.get("events", name)
    except ApiError as err:
        return err.code == grpc.StatusCode.NOT_FOUND
    return False


async def until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
async def short_ttl_api(short_ttl_apiserver: ApiServerProcess) -> AsyncIterator[Client]:
    async with Client(short_ttl_apiserver.address, timeout=5) as client:
        yield client


async def test_an_event_created_through_the_api_expires_after_the_ttl(
    short_ttl_api: Client,
) -> None:
    event = objects_pb2.Event(
        metadata=meta_pb2.ObjectMeta(name="shop.1", namespace="default"),
        involved_object=meta_pb2.ObjectReference(kind="Service", name="shop", namespace="default"),
        reason="Testing",
        message="made by hand",
        type="Normal",
        count=1,
    )
    created = await short_ttl_api.create(event)
    assert created.metadata.uid
    assert not await _gone(short_ttl_api, "shop.1")
    await until(lambda: _gone(short_ttl_api, "shop.1"), 15, "the event to expire")


async def test_recorded_events_expire_and_a_repeat_after_expiry_is_written_again(
    etcd: EtcdServer, short_ttl_api: Client
) -> None:
    store = Store(etcd.endpoint, event_ttl=2)
    sink = EventSink(store)
    recorder = sink.recorder("test-component")
    pod = objects_pb2.Pod(metadata=meta_pb2.ObjectMeta(name="p", namespace="default", uid="u1"))
    try:
        recorder.record(pod, notes.started("c"))
        recorder.record(pod, notes.started("c"))
        await sink.idle()
        events = await events_of(short_ttl_api, "Pod", "p")
        assert [(e.reason, e.count) for e in events] == [("Started", 2)]
        name = events[0].metadata.name
        await until(lambda: _gone(short_ttl_api, name), 15, "the recorded event to expire")
        recorder.record(pod, notes.started("c"))
        await sink.idle()
        again = await events_of(short_ttl_api, "Pod", "p")
        assert [(e.metadata.name, e.count) for e in again] == [(name, 3)]
        assert sink.lost == 0
    finally:
        await sink.close()
        await store.close()
