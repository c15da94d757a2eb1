"""The healthCheckNodePort as node proxies serve it (kube-proxy's service health server):
first one Service's health server programmed by the proxy's sync over real sockets, then a
real 3-node cluster answering a load balancer's health checks. Every wait has a deadline."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from kubelab.client import Client
from kubelab.core.endpoint_choice import Backend, Target
from kubelab.core.keys import ObjectKey
from kubelab.core.manifests import load_manifests
from kubelab.core.proxy_rules import HEALTH_CHECK, NODE_HEALTH_PORT, Frontend, PortRules
from kubelab.testing.fakes import FakeStore
from kubelab.testing.traffic import echo_post
from kubelab.v1 import objects_pb2
from node_agent.health_check import MAX_HEAD, ServiceHealth
from node_agent.proxy import BindError, ServiceProxy
from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration

KEY = ObjectKey(("default", "web"))
GET = b"GET /healthz HTTP/1.1\r\nHost: lb\r\nUser-Agent: test\r\n\r\n"


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def health_check(
    ip: str, port: int, request: bytes = GET, *, timeout: float = 2.0
) -> Answer | str:
    """One request on a new connection, read to the server's close; 'refused' when nothing
    listens."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(ip, port)
            try:
                writer.write(request)
                raw = await reader.read(-1)
            finally:
                writer.close()
    except ConnectionRefusedError:
        return "refused"
    if not raw:
        return "closed"
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    assert int(headers["Content-Length"]) == len(body) or request.startswith(b"HEAD")
    return Answer(int(status_line.split()[1]), headers, body)


async def until(
    what: str, check: Callable[[], Awaitable[tuple[bool, object]]], timeout: float = 20
) -> None:
    """Poll `check` (done?, what it saw) until done; fail after `timeout` with what it saw."""
    deadline = time.monotonic() + timeout
    while True:
        done, seen = await check()
        if done:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}: {seen}")
        await asyncio.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------- one proxy, no etcd


@pytest.fixture
async def proxy() -> AsyncIterator[ServiceProxy]:
    proxy = ServiceProxy(FakeStore(), node_name="n1", node_ips=["127.0.0.1"])
    yield proxy
    await proxy.stop(grace=0)


def rules(*backends: Backend) -> tuple[PortRules, ...]:
    """One port with no frontend of its own: only its endpoints matter here."""
    return (PortRules("http", "TCP", 80, 0, (), backends, None, True, False),)


def backend(ip: str, *, node: str = "n1", ready: bool = True) -> Backend:
    return Backend(Target(ip, 8080), node, ready, ready, False)


async def test_endpoint_changes_are_read_live_and_rebind_nothing(proxy: ServiceProxy) -> None:
    frontend = Frontend("TCP", "127.0.0.1", free_port(), HEALTH_CHECK)
    await proxy._apply(KEY, rules(backend("10.0.0.1"), backend("10.0.0.2")), (frontend,))
    health = proxy.services[KEY].health
    assert health is not None
    listener = health.listeners[frontend]
    answer = await health_check(frontend.ip, frontend.port)
    assert isinstance(answer, Answer)
    assert answer.status == 200
    assert answer.json() == {
        "service": {"namespace": "default", "name": "web"},
        "localEndpoints": 2,
        "serviceProxyHealthy": True,
    }
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["X-Load-Balancing-Endpoint-Weight"] == "2"

    steps: list[tuple[tuple[PortRules, ...], int, int]] = [
        (rules(backend("10.0.0.1"), backend("10.0.0.2", ready=False)), 200, 1),
        (rules(backend("10.0.0.1", ready=False)), 503, 0),
        (rules(backend("10.0.0.3", node="n2")), 503, 0),
        (rules(), 503, 0),
        (rules(backend("10.0.0.4")), 200, 1),
    ]
    for desired, status, count in steps:
        await proxy._apply(KEY, desired, (frontend,))
        answer = await health_check(frontend.ip, frontend.port)
        assert isinstance(answer, Answer)
        assert (answer.status, answer.json()["localEndpoints"]) == (status, count)
        assert proxy.services[KEY].health is health
        assert health.listeners[frontend] is listener, "an endpoint change rebinds nothing"

    # The Service no longer needs a health check (policy Cluster): the port closes.
    await proxy._apply(KEY, rules(backend("10.0.0.4")), ())
    assert await health_check(frontend.ip, frontend.port) == "refused"
    assert proxy.services[KEY].health is None
    await proxy._apply(KEY, ())
    assert KEY not in proxy.services


async def test_a_port_that_cannot_be_bound_is_retried(proxy: ServiceProxy) -> None:
    frontend = Frontend("TCP", "127.0.0.1", free_port(), HEALTH_CHECK)
    blocker = socket.create_server((frontend.ip, frontend.port))
    try:
        with pytest.raises(BindError, match=str(frontend)):
            await proxy._apply(KEY, rules(backend("10.0.0.1")), (frontend,))
        assert proxy.bind_failures == 1
    finally:
        blocker.close()
    await proxy._apply(KEY, rules(backend("10.0.0.1")), (frontend,))
    answer = await health_check(frontend.ip, frontend.port)
    assert isinstance(answer, Answer) and answer.status == 200
    # A deleted Service takes its health server with it.
    await proxy._apply(KEY, ())
    assert await health_check(frontend.ip, frontend.port) == "refused"
    assert KEY not in proxy.services


@pytest.fixture
async def server() -> AsyncIterator[tuple[ServiceHealth, Frontend]]:
    health = ServiceHealth(KEY, lambda: 0, idle_timeout=0.5)
    frontend = Frontend("TCP", "127.0.0.1", free_port(), HEALTH_CHECK)
    assert await health.ensure([frontend]) == []
    yield health, frontend
    health.close()


@pytest.mark.parametrize(
    ("request_bytes", "status", "has_body"),
    [
        pytest.param(GET, 503, True, id="get"),
        pytest.param(b"GET / HTTP/1.0\n\n", 503, True, id="http-1.0-bare-lf"),
        pytest.param(b"HEAD /healthz HTTP/1.1\r\n\r\n", 503, False, id="head"),
        pytest.param(
            b"POST /healthz HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", 405, True, id="post"
        ),
        pytest.param(b"hello there\r\n", 400, True, id="not-http"),
        pytest.param(b"GET /healthz HTTP/2.0\r\n\r\n", 400, True, id="http-2"),
        pytest.param(b"\x00\xff\x10\n", 400, True, id="binary"),
        pytest.param(b"GET /" + b"x" * MAX_HEAD, 431, True, id="head-too-long"),
    ],
)
async def test_every_request_gets_one_answer_then_close(
    server: tuple[ServiceHealth, Frontend], request_bytes: bytes, status: int, has_body: bool
) -> None:
    health, frontend = server
    answer = await health_check(frontend.ip, frontend.port, request_bytes)
    assert isinstance(answer, Answer)
    assert answer.status == status
    assert bool(answer.body) is has_body
    assert answer.headers["Connection"] == "close"
    assert health.answered[status] == 1


async def test_a_silent_client_is_dropped(server: tuple[ServiceHealth, Frontend]) -> None:
    _, frontend = server
    reader, writer = await asyncio.open_connection(frontend.ip, frontend.port)
    writer.write(b"GET / HTTP/1.1\r\n")  # and never the end of the head
    try:
        async with asyncio.timeout(5):
            assert await reader.read(-1) == b""
    except ConnectionResetError:
        pass  # aborted: as good as closed
    finally:
        writer.close()


# ---------------------------------------------------------------- a real cluster


def manifest(body: dict[str, Any]) -> Any:
    (loaded,) = load_manifests(json.dumps(body))
    return loaded.object


def web_deployment() -> objects_pb2.Deployment:
    container = {
        "name": "echo",
        "image": "kubelab/echo",
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": 1,
            "failureThreshold": 1,
        },
    }
    deployment = manifest(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [container], "terminationGracePeriodSeconds": 2},
                },
            },
        }
    )
    assert isinstance(deployment, objects_pb2.Deployment)
    return deployment


def web_service(policy: str) -> objects_pb2.Service:
    service = manifest(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {
                "type": "LoadBalancer",
                "externalTrafficPolicy": policy,
                "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        }
    )
    assert isinstance(service, objects_pb2.Service)
    return service


async def answers(cluster: Cluster, port: int) -> dict[str, int | str]:
    """Each node's answer on `port`: the HTTP status, or how the connection went."""

    async def one(ip: str) -> int | str:
        try:
            answer = await health_check(ip, port)
        except (OSError, TimeoutError) as err:
            return type(err).__name__
        return answer if isinstance(answer, str) else answer.status

    results = await asyncio.gather(*(one(node.ip) for node in cluster.nodes))
    return {node.name: result for node, result in zip(cluster.nodes, results, strict=True)}


async def until_answers(
    cluster: Cluster, port: int, expected: Mapping[str, int | str], what: str
) -> None:
    async def check() -> tuple[bool, object]:
        seen = await answers(cluster, port)
        return seen == expected, seen

    await until(what, check)


async def the_ready_pod(api: Client) -> objects_pb2.Pod:
    found: list[objects_pb2.Pod] = []

    async def check() -> tuple[bool, object]:
        items, _ = await api.list("pods", label_selector="app=web")
        found[:] = [p for p in items if isinstance(p, objects_pb2.Pod)]
        ready = [
            p
            for p in found
            if p.status.pod_ip
            and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions)
        ]
        return len(found) == len(ready) == 1, [(p.metadata.name, p.status.phase) for p in found]

    await until("one ready web pod", check, timeout=30)
    return found[0]


async def test_only_the_node_with_a_ready_pod_passes(cluster: Cluster, api: Client) -> None:
    await api.apply(web_deployment())
    created, _ = await api.apply(web_service("Local"))
    assert isinstance(created, objects_pb2.Service)
    port = created.spec.health_check_node_port
    assert port
    pod = await the_ready_pod(api)
    here = pod.spec.node_name
    others = [node.name for node in cluster.nodes if node.name != here]
    passing = {here: 200} | dict.fromkeys(others, 503)

    await until_answers(cluster, port, passing, f"200 on {here} only")
    answer = await health_check(cluster.node(here).ip, port)
    assert isinstance(answer, Answer)
    assert answer.json()["localEndpoints"] == 1

    await asyncio.to_thread(echo_post, pod.status.pod_ip, "/healthz/fail")
    await until_answers(cluster, port, dict.fromkeys([here, *others], 503), "503 everywhere")
    await asyncio.to_thread(echo_post, pod.status.pod_ip, "/healthz/pass")
    await until_answers(cluster, port, passing, f"200 on {here} again")

    changed, result = await api.apply(web_service("Cluster"))
    assert result == "configured"
    assert isinstance(changed, objects_pb2.Service)
    assert changed.spec.health_check_node_port == 0
    await until_answers(
        cluster, port, dict.fromkeys([here, *others], "refused"), "the port closed everywhere"
    )


async def test_the_node_proxy_answers_its_healthz(cluster: Cluster) -> None:
    """kube-proxy's healthz on port 10256: what load balancers check for Cluster-policy
    Services. Every synced node agent answers 200 naming itself."""
    for node in cluster.nodes:
        answer = await health_check(node.ip, NODE_HEALTH_PORT)
        assert isinstance(answer, Answer), f"{node.name}: {answer}"
        assert answer.status == 200
        body = answer.json()
        assert body["nodeName"] == node.name and body["nodeEligible"] is True
