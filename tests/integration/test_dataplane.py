"""The data plane end to end (DESIGN §2.4): real node agents proxy NodePort and ClusterIP
traffic to real echo pods over real sockets. Every wait has a deadline."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kubelab.client import ApiError, Client
from kubelab.core.manifests import load_manifest_files, load_manifests
from kubelab.testing.traffic import (
    RequestLoop,
    connect_outcome,
    echo_post,
    http_get,
    pod_behind,
    udp_echo,
)
from kubelab.testing.wait import until, until_passes, until_read
from kubelab.v1 import objects_pb2
from tests.integration.conftest import METRICS_PORT, Cluster, eventually, ready_count

pytestmark = pytest.mark.integration

SEED = Path(__file__).resolve().parents[2] / "examples" / "shop.yaml"
PROD = 5  # the Deployment's 4 replicas and shop-usd, whose extra label still matches
AFFINITY_SECONDS = 2


async def apply_seed(api: Client) -> tuple[objects_pb2.Service, set[str]]:
    for item in load_manifest_files([str(SEED)]):
        await api.apply(item.object)
    pods = await eventually(api, ready_count(6), 40, "the seed's 6 pods ready")
    prod = {p.metadata.name for p in pods if p.metadata.labels.get("env") == "prod"}
    service = await api.get("services", "shop")
    assert isinstance(service, objects_pb2.Service)
    return service, prod


async def until_answers(ip: str, port: int, pods: set[str], timeout: float = 10.0) -> Counter[str]:
    """Requests on new connections until every pod in `pods` answered; returns the counts."""
    seen: Counter[str] = Counter()

    async def ask() -> Counter[str]:
        try:
            seen[await pod_behind(ip, port)] += 1
        except Exception:
            await asyncio.sleep(0.05)  # not answering yet; an answer asks again at once
        return seen

    return await until(
        f"{ip}:{port}: every one of {sorted(pods)} to answer",
        ask,
        lambda counts: pods <= set(counts),
        timeout=timeout,
        interval=0,
    )


async def test_the_seed_through_every_nodeport_and_the_cluster_ip(
    cluster: Cluster, api: Client
) -> None:
    service, prod = await apply_seed(api)
    assert len(prod) == PROD
    node_port = service.spec.ports[0].node_port
    for node in cluster.nodes:
        await until_answers(node.ip, node_port, prod)
        # Round robin: the next PROD new connections to one node reach PROD different pods.
        turn = [await pod_behind(node.ip, node_port) for _ in range(PROD)]
        assert set(turn) == prod, f"{node.name}: {turn}"
    seen = await until_answers(service.spec.cluster_ip, 80, prod)
    for _ in range(50):
        seen[await pod_behind(service.spec.cluster_ip, 80)] += 1
    assert set(seen) == prod, "never the dev pod"


def service(name: str, spec: dict[str, object]) -> objects_pb2.Service:
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}
    (loaded,) = load_manifests(json.dumps(body))
    assert isinstance(loaded.object, objects_pb2.Service)
    return loaded.object


def pinned_deployment(
    name: str, node: str, ports: list[dict[str, object]]
) -> objects_pb2.Deployment:
    """One echo pod of app=`name` on `node`."""
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "nodeSelector": {"kubernetes.io/hostname": node},
                    "containers": [{"name": "echo", "image": "kubelab/echo", "ports": ports}],
                },
            },
        },
    }
    (loaded,) = load_manifests(json.dumps(body))
    assert isinstance(loaded.object, objects_pb2.Deployment)
    return loaded.object


async def ready_pods(api: Client, app: str, count: int) -> list[objects_pb2.Pod]:
    async def check() -> list[objects_pb2.Pod]:
        items, _ = await api.list("pods", label_selector=f"app={app}")
        return [p for p in items if isinstance(p, objects_pb2.Pod)]

    return await until(
        f"{count} ready app={app} pods",
        check,
        lambda found: len(found) == count and all(p.status.pod_ip and _ready(p) for p in found),
        timeout=30,
        interval=0.05,
        describe=lambda found: [(p.metadata.name, p.status.phase) for p in found],
    )


def _ready(pod: objects_pb2.Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


async def test_udp_through_the_nodeport_and_the_cluster_ip(cluster: Cluster, api: Client) -> None:
    await api.apply(
        pinned_deployment("dns-ish", "node-2", [{"containerPort": 5353, "protocol": "UDP"}])
    )
    await api.apply(
        service(
            "dns-ish",
            {
                "type": "NodePort",
                "selector": {"app": "dns-ish"},
                "ports": [{"name": "dns", "protocol": "UDP", "port": 53, "targetPort": 5353}],
            },
        )
    )
    await ready_pods(api, "dns-ish", 1)
    svc = await api.get("services", "dns-ish")
    assert isinstance(svc, objects_pb2.Service)
    addresses = [(n.ip, svc.spec.ports[0].node_port) for n in cluster.nodes]
    addresses.append((svc.spec.cluster_ip, 53))
    for ip, port in addresses:
        answer = await until_passes(
            f"a UDP answer through {ip}:{port}",
            partial(udp_echo, ip, port, f"hello {ip}".encode(), timeout=0.5),
            interval=0,
            retry_on=(TimeoutError,),
        )
        assert answer == f"hello {ip}".encode()
        # The flow carries more datagrams, both ways, from the Service's address.
        assert await udp_echo(ip, port, b"x" * 1200) == b"x" * 1200


async def test_client_ip_affinity_keeps_a_client_on_its_pod_until_the_timeout(
    cluster: Cluster, api: Client
) -> None:
    shop, _ = await apply_seed(api)
    shop.spec.session_affinity = "ClientIP"
    shop.spec.session_affinity_config.client_ip.timeout_seconds = AFFINITY_SECONDS
    await api.apply(shop)
    node = cluster.nodes[0]
    port = shop.spec.ports[0].node_port

    async def affine() -> bool:
        first = await pod_behind(node.ip, port, source_ip="127.0.0.21")
        return all(
            [await pod_behind(node.ip, port, source_ip="127.0.0.21") == first for _ in range(5)]
        )

    await until("the proxy to take the affinity", affine, interval=0)
    first = await pod_behind(node.ip, port, source_ip="127.0.0.21")
    assert [await pod_behind(node.ip, port, source_ip="127.0.0.21") for _ in range(20)] == [
        first
    ] * 20
    pinned = time.monotonic()  # the proxy's last pick for 127.0.0.21 was before this
    # Other clients are spread as before.
    others = {await pod_behind(node.ip, port, source_ip=f"127.0.0.{30 + i}") for i in range(10)}
    assert len(others) == PROD
    # Idle past timeoutSeconds: the next connection is balanced again (round robin moved
    # on). Nothing here happens in the background to wait for: the proxy compares the
    # pin's age with the timeout when the next connection comes, and any probe from this
    # client would renew the pin, so time itself is the input.
    await asyncio.sleep(max(0.0, pinned + AFFINITY_SECONDS + 0.1 - time.monotonic()))
    assert await pod_behind(node.ip, port, source_ip="127.0.0.21") != first


async def test_external_traffic_policy_local(cluster: Cluster, api: Client) -> None:
    await api.apply(pinned_deployment("local", "node-1", [{"name": "http", "containerPort": 8080}]))
    await api.apply(
        service(
            "local",
            {
                "type": "NodePort",
                "selector": {"app": "local"},
                "externalTrafficPolicy": "Local",
                "ports": [{"port": 80, "targetPort": 8080}],
            },
        )
    )
    (pod,) = await ready_pods(api, "local", 1)
    svc = await api.get("services", "local")
    assert isinstance(svc, objects_pb2.Service)
    port = svc.spec.ports[0].node_port
    one, two, three = cluster.nodes
    await until_answers(one.ip, port, {pod.metadata.name})
    answer = await http_get(one.ip, port, source_ip="127.0.0.55")
    assert answer["pod"] == pod.metadata.name
    assert answer["client"].split(":")[0] == "127.0.0.55", "the pod sees the client's address"
    for other in (two, three):
        assert await connect_outcome(other.ip, port) == "refused", other.name
    # The ClusterIP keeps the Cluster policy: it answers from every node's listener.
    assert await pod_behind(svc.spec.cluster_ip, 80) == pod.metadata.name


async def test_internal_traffic_policy_local(cluster: Cluster, api: Client) -> None:
    await api.apply(pinned_deployment("inner", "node-1", [{"name": "http", "containerPort": 8080}]))
    await api.apply(
        service(
            "inner",
            {
                "selector": {"app": "inner"},
                "internalTrafficPolicy": "Local",
                "ports": [{"port": 80, "targetPort": 8080}],
            },
        )
    )
    (pod,) = await ready_pods(api, "inner", 1)
    svc = await api.get("services", "inner")
    assert isinstance(svc, objects_pb2.Service)
    ip = svc.spec.cluster_ip
    one, two, _ = cluster.nodes
    answer = await until_passes(
        "an answer from node-1's endpoint",
        lambda: http_get(ip, 80, source_ip=one.ip),
        interval=0.05,
        retry_on=(Exception,),
    )
    assert answer["pod"] == pod.metadata.name
    # A client on node-2 (its node address as source) has no local endpoint: refused.
    for _ in range(10):
        try:
            await http_get(ip, 80, source_ip=two.ip)
        except Exception:
            continue
        raise AssertionError("a client on node-2 reached node-1's endpoint")


async def test_a_service_without_endpoints_refuses_at_once(cluster: Cluster, api: Client) -> None:
    await api.apply(
        service(
            "empty",
            {"type": "NodePort", "selector": {"app": "nobody"}, "ports": [{"port": 80}]},
        )
    )
    svc = await api.get("services", "empty")
    assert isinstance(svc, objects_pb2.Service)
    node_port = svc.spec.ports[0].node_port
    # Listening (not "nothing there"): the proxy accepts and resets, and says so in its count.
    deadline = time.monotonic() + 10
    for ip, port in [(n.ip, node_port) for n in cluster.nodes] + [(svc.spec.cluster_ip, 80)]:
        started = time.monotonic()
        outcome = await connect_outcome(ip, port, timeout=3.0)
        assert outcome == "refused", f"{ip}:{port}: {outcome}"
        assert time.monotonic() - started < 1.0, "a refusal, not a hang"
        assert time.monotonic() < deadline


async def update(api: Client, resource: str, name: str, change: Callable[[Any], None]) -> None:
    """Read, change, compare-and-swap; again on ABORTED (someone wrote in between)."""
    for _ in range(10):
        obj = await api.get(resource, name)
        change(obj)
        try:
            await api.update(obj)
            return
        except ApiError as err:
            if err.code is not grpc.StatusCode.ABORTED:
                raise
    raise AssertionError(f"{resource}/{name} kept changing")


async def set_env(api: Client, name: str, env: str) -> None:
    await update(api, "pods", name, lambda pod: pod.metadata.labels.update({"env": env}))


async def scale(api: Client, replicas: int) -> None:
    await update(api, "deployments", "shop", lambda d: setattr(d.spec, "replicas", replicas))


async def test_traffic_follows_every_change_with_no_failed_new_request(
    cluster: Cluster, api: Client
) -> None:
    shop, prod = await apply_seed(api)
    one = cluster.nodes[0]
    await until_answers(one.ip, shop.spec.ports[0].node_port, prod)
    await until_answers(shop.spec.cluster_ip, 80, prod)
    by_node = RequestLoop(one.ip, shop.spec.ports[0].node_port).start()
    by_cluster_ip = RequestLoop(shop.spec.cluster_ip, 80).start()
    loops = {"NodePort": by_node, "ClusterIP": by_cluster_ip}

    async def only(pods: set[str], step: str, since: float = 0.0) -> None:
        for path, loop in loops.items():
            await loop.until_only(pods, 10)
            failed = loop.failed_since(since)
            assert not failed, f"{step}, through the {path}: {[str(f) for f in failed]}"

    pods = {p.metadata.name: p for p in await eventually(api, ready_count(6), 5, "pods")}
    flipped = sorted(prod)[0]
    await asyncio.to_thread(echo_post, pods[flipped].status.pod_ip, "/healthz/fail")
    await only(prod - {flipped}, "readiness failed")
    await asyncio.to_thread(echo_post, pods[flipped].status.pod_ip, "/healthz/pass")
    await only(prod, "readiness back")

    moved = "shop-usd"  # a bare pod: relabelling a Deployment's pod would orphan it
    await set_env(api, moved, "dev")
    await only(prod - {moved}, "relabelled out")
    await set_env(api, moved, "prod")
    await only(prod, "relabelled in")

    await scale(api, 2)
    remaining = await eventually(api, ready_count(4), 20, "scaled to 2")
    kept = {p.metadata.name for p in remaining if p.metadata.labels.get("env") == "prod"}
    await only(kept, "scaled down")

    # A node dies (SIGKILL: its pods die with it). The ClusterIP loop stops first: a request
    # that the dying agent itself was relaying dies with it, as it would on a real node.
    await by_cluster_ip.stop()
    del loops["ClusterIP"]
    victim = next(
        n
        for n in cluster.nodes[1:]
        if any(p.spec.node_name == n.name for p in remaining if p.metadata.name in kept)
    )
    victim.kill()
    doomed = [p for p in remaining if p.spec.node_name == victim.name]
    # Its pods die with it (pdeathsig): a request already inside one dies too, as on a
    # real node. From the moment they are all gone, no new request may fail.
    for pod in doomed:
        await until_refused(pod.status.pod_ip, 8080)
    dead = time.monotonic()
    survivors = kept - {p.metadata.name for p in doomed}
    await only(survivors, f"{victim.name} killed", since=dead)
    await by_node.stop()
    assert not by_node.failed_since(dead), by_node.failures
    assert by_node.attempts > 100, "the loop did run"


async def until_refused(ip: str, port: int, timeout: float = 10.0) -> None:
    await until(
        f"{ip}:{port} to refuse",
        lambda: connect_outcome(ip, port, timeout=1.0),
        lambda outcome: outcome == "refused",
        timeout=timeout,
        interval=0.01,
    )


def run_cli(cluster: Cluster, tmp_path: Path, *args: str) -> str:
    env = {
        **os.environ,
        "KUBELAB_HOME": str(tmp_path / "home"),
        "KUBELAB_SERVER": cluster.apiserver.address,
    }
    done = subprocess.run(
        [sys.executable, "-m", "kubelab.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def scrape(ip: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://{ip}:{METRICS_PORT}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


async def test_where_each_port_is_served_and_the_proxy_metrics(
    cluster: Cluster, api: Client, tmp_path: Path
) -> None:
    shop, prod = await apply_seed(api)
    port = shop.spec.ports[0].node_port
    one = cluster.nodes[0]
    places = [f"{shop.spec.cluster_ip}:80/TCP"] + [f"{n.ip}:{port}/TCP" for n in cluster.nodes]
    wide = run_cli(cluster, tmp_path, "get", "svc", "shop", "-o", "wide")
    head, line = wide.splitlines()
    assert head.split()[-1] == "SERVED-AT"
    assert line.split()[-1] == ",".join(places)
    described = run_cli(cluster, tmp_path, "describe", "svc", "shop")
    assert f"Served At:                {','.join(places)}" in described

    await until_answers(one.ip, port, prod)
    before = scrape(one.ip)
    served = Counter([await pod_behind(one.ip, port) for _ in range(2 * PROD)])
    after = scrape(one.ip)
    pods = {p.metadata.name: p for p in await eventually(api, ready_count(6), 5, "pods")}
    for name, count in served.items():
        labels = {
            "service": "default/shop",
            "port": "http",
            "endpoint": f"{pods[name].status.pod_ip}:8080",
            "pod": f"default/{name}",
        }
        key = frozenset(labels.items())
        connections = ("kubelab_proxy_connections_total", key)
        assert after[connections] - before.get(connections, 0) == count, name
        sent = ("kubelab_proxy_bytes_total", frozenset({**labels, "direction": "out"}.items()))
        assert after[sent] > before.get(sent, 0), f"bytes from {name}"


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def test_a_thousand_connections_leave_nothing_behind(cluster: Cluster, api: Client) -> None:
    shop, prod = await apply_seed(api)
    one = cluster.nodes[0]
    port = shop.spec.ports[0].node_port
    await until_answers(one.ip, port, prod)
    assert one.process is not None
    baseline = open_fds(one.process.pid)
    for batch in range(20):
        await asyncio.gather(*(pod_behind(one.ip, port) for _ in range(50)))
        if batch == 10:
            # Half of them hung up without reading the answer.
            writers = [(await asyncio.open_connection(one.ip, port))[1] for _ in range(50)]
            for writer in writers:
                writer.transport.abort()
    pid = one.process.pid
    await until_read(
        f"node-1 back to its {baseline} fds",
        lambda: open_fds(pid),
        lambda fds: fds <= baseline,
        interval=0.05,
    )
    active = {
        labels: value
        for (name, labels), value in scrape(one.ip).items()
        if name == "kubelab_proxy_active_connections"
    }
    assert active and not any(active.values()), active
