"""Nodes and pods end to end: real etcd, apiserver, controllers and node agent processes.

Node agents run with random test addresses (see tests/integration/conftest.py) so
they never meet a user's cluster on the defaults.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from kubelab.client import ApiError, Client
from kubelab.core.pods import is_ready
from kubelab.store import Store
from kubelab.testing import wait
from kubelab.testing.processes import (
    ControllerProcess,
    EtcdServer,
)
from kubelab.v1 import node_pb2, node_pb2_grpc, objects_pb2
from node_agent.logic.cri_log import parse_record
from tests.integration.conftest import (
    LEASE_TTL,
    Cluster,
    deployment,
    eventually,
    pod_summary,
    pods,
    ready_count,
)

pytestmark = pytest.mark.integration


def http_get(ip: str, port: int, path: str = "/") -> dict[str, Any]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://{ip}:{port}{path}", timeout=5) as answer:
        return dict(json.loads(answer.read()))


def http_post(ip: str, port: int, path: str) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(f"http://{ip}:{port}{path}", method="POST", data=b"")
    with opener.open(request, timeout=5):
        pass


async def test_four_replicas_over_three_nodes_are_ready_and_answer(
    cluster: Cluster, api: Client
) -> None:
    await api.create(deployment(4))
    ready = await eventually(api, ready_count(4), 30, "4 ready replicas")
    assert sorted(Counter(p.spec.node_name for p in ready).values()) == [1, 1, 2]
    for pod in ready:
        node = cluster.node(pod.spec.node_name)
        assert pod.status.pod_ip.startswith(f"{node.pod_base}.{node.number}.")
        assert pod.status.host_ip == node.ip
        answer = await asyncio.to_thread(http_get, pod.status.pod_ip, 8080, "/hello")
        assert answer["pod"] == pod.metadata.name
        assert answer["node"] == pod.spec.node_name
        assert answer["podIP"] == pod.status.pod_ip
        assert answer["path"] == "/hello"
    nodes, _ = await api.list("nodes")
    assert {n.metadata.name for n in nodes} == {"node-1", "node-2", "node-3"}


async def test_a_killed_pod_process_is_restarted_and_counted(cluster: Cluster, api: Client) -> None:
    await api.create(deployment(1))
    (pod,) = await eventually(api, ready_count(1), 30, "1 ready replica")
    node = cluster.node(pod.spec.node_name)
    async with grpc.aio.insecure_channel(node.address) as channel:
        agent = node_pb2_grpc.NodeAgentStub(channel)
        await agent.KillPod(node_pb2.KillPodRequest(namespace="default", name=pod.metadata.name))

    def restarted(items: list[objects_pb2.Pod]) -> bool:
        return (
            len(items) == 1
            and items[0].metadata.name == pod.metadata.name
            and items[0].status.container_statuses[0].restart_count >= 1
            and is_ready(items[0])
        )

    (again,) = await eventually(api, restarted, 20, "the pod restarted and ready again")
    assert again.status.pod_ip == pod.status.pod_ip


async def test_a_failing_readiness_probe_turns_ready_false_in_time(
    cluster: Cluster, api: Client
) -> None:
    period, failures = 1, 3
    await api.create(deployment(1, period=period, failures=failures))
    (pod,) = await eventually(api, ready_count(1), 30, "1 ready replica")
    started = time.monotonic()
    await asyncio.to_thread(http_post, pod.status.pod_ip, 8080, "/healthz/fail")
    await eventually(api, lambda items: not is_ready(items[0]), 10, "Ready to turn false")
    elapsed = time.monotonic() - started
    assert elapsed <= period * failures + period, f"took {elapsed:.2f}s"


async def test_a_killed_node_loses_its_pods_and_they_come_back_elsewhere(
    cluster: Cluster, api: Client, etcd: EtcdServer
) -> None:
    await api.create(deployment(4))
    ready = await eventually(api, ready_count(4), 30, "4 ready replicas")
    victim = Counter(p.spec.node_name for p in ready).most_common(1)[0][0]
    on_victim = {p.metadata.name for p in ready if p.spec.node_name == victim}

    store = Store(etcd.endpoint)
    try:
        cluster.node(victim).kill()
        await wait.until(
            "the dead node's pod statuses to go with its lease (TTL + 1 s)",
            store.list_pod_statuses,
            lambda listed: not on_victim & {name for _, name in listed[0]},
            timeout=LEASE_TTL + 1,
            interval=0.05,
        )
    finally:
        await store.close()

    def replaced(items: list[objects_pb2.Pod]) -> bool:
        return ready_count(4)(items) and all(p.spec.node_name != victim for p in items)

    after = await eventually(api, replaced, 30, "4 ready replicas on the surviving nodes")
    assert not on_victim & {p.metadata.name for p in after}


async def test_the_standby_controller_takes_over_and_nothing_is_scheduled_twice(
    cluster: Cluster, api: Client, etcd: EtcdServer, tmp_path: Path
) -> None:
    standby = ControllerProcess(etcd.endpoint, tmp_path, name="standby")
    standby.start()
    try:
        store = Store(etcd.endpoint)
        try:
            leader = await store.leader("controller")
            assert leader is not None and leader[0] == "controller"
            bindings: Counter[str] = Counter()
            start = await store.current_revision()

            async def record() -> None:
                from kubelab.core.kinds import PODS

                async for event in store.watch(PODS, from_revision=start):
                    previous = event.previous
                    pod = event.object
                    if isinstance(pod, objects_pb2.Pod) and pod.spec.node_name:
                        if previous is None or not previous.spec.node_name:  # type: ignore[union-attr]
                            bindings[pod.metadata.name] += 1

            recorder = asyncio.create_task(record())
            cluster.controllers[0].kill()
            await wait.until(
                "the standby to lead (failover)",
                lambda: store.leader("controller"),
                lambda leader: leader is not None and leader[0] == "standby",
                timeout=2 * LEASE_TTL + 1,
                interval=0.05,
            )
            await api.create(deployment(3))
            await eventually(api, ready_count(3), 30, "3 ready replicas under the new leader")
            recorder.cancel()
            await asyncio.gather(recorder, return_exceptions=True)
            assert len(bindings) == 3
            assert set(bindings.values()) == {1}
        finally:
            await store.close()
    finally:
        standby.stop()


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        pytest.param({"containers": []}, "spec.containers", id="no-containers"),
        pytest.param(
            {"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 70000}]}]},
            "spec.containers[0].ports[0].containerPort",
            id="port-out-of-range",
        ),
        pytest.param(
            {"containers": [{"name": "c", "image": "x", "readinessProbe": {"periodSeconds": 1}}]},
            "spec.containers[0].readinessProbe",
            id="probe-without-handler",
        ),
    ],
)
async def test_bad_pod_specs_are_refused_with_the_field_named(
    api: Client, spec: dict[str, Any], field: str
) -> None:
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad"}, "spec": spec}
    with pytest.raises(ApiError) as caught:
        await api.create(json_format.ParseDict(body, objects_pb2.Pod()))
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert field in caught.value.message
    with pytest.raises(ApiError):
        await api.get("pods", "bad")


async def test_reapplying_a_bound_pods_manifest_changes_nothing(
    cluster: Cluster, api: Client
) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bare", "labels": {"app": "shop"}},
        "spec": {"containers": [{"name": "c", "image": "kubelab/echo"}]},
    }
    manifest = json_format.ParseDict(body, objects_pb2.Pod())
    await api.apply(manifest)
    (bound,) = await eventually(
        api, lambda items: len(items) == 1 and bool(items[0].spec.node_name), 20, "binding"
    )
    again, result = await api.apply(manifest)
    assert result == "unchanged"
    assert again.spec.node_name == bound.spec.node_name


async def test_a_template_change_rolls_the_pods_within_surge_and_unavailability(
    cluster: Cluster, api: Client, etcd: EtcdServer
) -> None:
    replicas = 4
    original = deployment(replicas)
    original.spec.strategy.type = "RollingUpdate"
    original.spec.strategy.rolling_update.max_surge = "1"
    original.spec.strategy.rolling_update.max_unavailable = "0"
    await api.create(original)
    first = await eventually(api, ready_count(replicas), 30, "4 ready replicas")
    old_names = {p.metadata.name for p in first}

    changed = objects_pb2.Deployment()
    changed.CopyFrom(original)
    changed.spec.template.spec.containers[0].image = "kubelab/echo:v2"
    worst_ready, most_pods = replicas, replicas
    await api.apply(changed)

    def alive(current: list[objects_pb2.Pod]) -> list[objects_pb2.Pod]:
        return [p for p in current if not p.metadata.HasField("deletion_timestamp")]

    async def observed() -> list[objects_pb2.Pod]:
        """The pods now, keeping the worst moments of the rollout so far."""
        nonlocal worst_ready, most_pods
        current = await pods(api)
        worst_ready = min(worst_ready, sum(is_ready(p) for p in alive(current)))
        most_pods = max(most_pods, len(alive(current)))
        return current

    def rolled_out(current: list[objects_pb2.Pod]) -> bool:
        live = alive(current)
        return (
            len(live) == replicas
            and all(is_ready(p) for p in live)
            and not old_names & {p.metadata.name for p in current}
        )

    await wait.until(
        "the rollout to finish", observed, rolled_out, timeout=60, describe=pod_summary
    )
    assert worst_ready >= replicas, "maxUnavailable 0 was broken"
    assert most_pods <= replicas + 1, "maxSurge 1 was broken"
    images = {p.spec.containers[0].image for p in await pods(api)}
    assert images == {"kubelab/echo:v2"}


async def test_pods_get_the_service_variables_of_services_that_exist(
    cluster: Cluster, api: Client
) -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "shop-api"},
        "spec": {"selector": {"app": "shop"}, "ports": [{"name": "http", "port": 80}]},
    }
    created = await api.create(json_format.ParseDict(service, objects_pb2.Service()))
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "env-dump", "labels": {"app": "shop"}},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "busybox",
                    "command": ["sh", "-c", "env; sleep 3600"],
                    "env": [{"name": "GREETING", "value": "hello"}],
                }
            ]
        },
    }
    await api.create(json_format.ParseDict(body, objects_pb2.Pod()))
    (pod,) = await eventually(api, ready_count(1), 20, "the env pod running")
    node = cluster.node(pod.spec.node_name)
    log = Path(node.workdir) / node.name / "pods" / "default_env-dump" / "c.log"
    await wait.until_read(
        "the pod to print its service variables",
        lambda: log.read_text() if log.exists() else "",
        lambda text: "SHOP_API_SERVICE_HOST" in text,
        interval=0.05,
    )
    # The file holds CRI records (`<time> stdout F <line>`), as containerd writes them.
    lines = {parse_record(raw).content.decode() for raw in log.read_bytes().splitlines()}
    assert f"SHOP_API_SERVICE_HOST={created.spec.cluster_ip}" in lines
    assert "SHOP_API_SERVICE_PORT=80" in lines
    assert "SHOP_API_SERVICE_PORT_HTTP=80" in lines
    assert f"SHOP_API_PORT=tcp://{created.spec.cluster_ip}:80" in lines
    assert f"POD_IP={pod.status.pod_ip}" in lines
    assert "GREETING=hello" in lines


async def test_a_cleanly_stopped_node_revokes_its_lease_at_once(
    cluster: Cluster, api: Client, etcd: EtcdServer
) -> None:
    await api.create(deployment(3))
    ready = await eventually(api, ready_count(3), 30, "3 ready replicas")
    victim = ready[0].spec.node_name
    store = Store(etcd.endpoint)
    try:
        started = time.monotonic()
        await asyncio.to_thread(cluster.node(victim).stop)
        live, _ = await store.live_nodes()
        statuses, _ = await store.list_pod_statuses()
        assert victim not in live
        assert not {p.metadata.name for p in ready if p.spec.node_name == victim} & {
            name for _, name in statuses
        }
        # Stopping waits for the pods' graceful exit (grace 2 s), then revokes: no TTL wait.
        assert time.monotonic() - started < 2 + LEASE_TTL
    finally:
        await store.close()


async def test_a_cleanly_stopping_node_reports_its_pods_terminating_while_they_drain(
    cluster: Cluster, api: Client
) -> None:
    # The slices must drop a pod from rotation while it still drains (the echo pod keeps
    # its listener LISTEN_GRACE, 1 s, after SIGTERM), not when the lease goes after it.
    await api.create(deployment(3))
    ready = await eventually(api, ready_count(3), 30, "3 ready replicas")
    victim = ready[0].spec.node_name
    theirs = {p.metadata.name for p in ready if p.spec.node_name == victim}
    stopping = asyncio.create_task(asyncio.to_thread(cluster.node(victim).stop))
    reasons: set[str] = set()
    while not stopping.done() and "PodTerminating" not in reasons:
        for pod in await pods(api):
            if pod.metadata.name in theirs:
                reasons |= {c.reason for c in pod.status.conditions if c.type == "Ready"}
        await asyncio.sleep(0.02)
    await stopping
    assert "PodTerminating" in reasons, f"the victim's pods went with Ready reasons {reasons}"


async def test_a_node_that_returns_runs_only_what_it_is_assigned(
    cluster: Cluster, api: Client
) -> None:
    await api.create(deployment(3))
    ready = await eventually(api, ready_count(3), 30, "3 ready replicas")
    victim = ready[0].spec.node_name
    agent = cluster.node(victim)
    agent.kill()
    await eventually(
        api,
        lambda items: ready_count(3)(items) and all(p.spec.node_name != victim for p in items),
        30,
        "replacements on the surviving nodes",
    )
    agent.start()
    nodes, _ = await api.list("nodes")
    back = next(n for n in nodes if n.metadata.name == victim)
    assert isinstance(back, objects_pb2.Node)
    assert {c.type: c.status for c in back.status.conditions}["Ready"] == "True"
    async with grpc.aio.insecure_channel(agent.address) as channel:
        listed = await node_pb2_grpc.NodeAgentStub(channel).ListPods(node_pb2.ListPodsRequest())
    assigned = {p.metadata.name for p in await pods(api) if p.spec.node_name == victim}
    assert {p.metadata.name for p in listed.pods} == assigned
