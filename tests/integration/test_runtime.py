"""PodRuntime with real processes and sockets: serving, probes, restarts, termination.

Pods live on 127.244.201.0/24 (a range no `kubelab up` cluster uses); each
test's echo ports are free ports found on the pod IP, so a concurrent run
elsewhere on the host cannot collide. Every wait is a condition with a
deadline; the `node` fixture terminates whatever a test left running.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from kubelab.core.manifests import load_manifests
from kubelab.core.validation.pods import default_pod_spec, validate_pod
from kubelab.testing.echo_client import http_request, tcp_roundtrip, udp_roundtrip
from kubelab.testing.processes import REPO_ROOT, free_port
from kubelab.testing.wait import until_blocking, until_passes, until_read
from kubelab.v1 import objects_pb2
from node_agent.logic.service_env import service_environment
from node_agent.runtime import PodRuntime

pytestmark = pytest.mark.integration

CIDR = "127.244.201.0/24"
FIRST_IP = "127.244.201.2"
NODE_IP = "127.10.0.201"


def make_pod(name: str, *containers: dict[str, Any], uid: str = "", **spec: Any) -> objects_pb2.Pod:
    """A pod as the apiserver stores it: decoded from a manifest, defaulted, valid."""
    doc = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": uid or f"uid-{name}"},
        "spec": {"containers": list(containers), **spec},
    }
    [loaded] = load_manifests(json.dumps(doc))
    pod = loaded.object
    assert isinstance(pod, objects_pb2.Pod)
    default_pod_spec(pod.spec)
    assert validate_pod(pod) == []
    return pod


def echo(*ports: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"name": "app", "image": "kubelab/echo", "ports": list(ports), **fields}


def http_port(port: int, name: str = "http") -> dict[str, Any]:
    return {"name": name, "containerPort": port}


def program(*command: str, **fields: Any) -> dict[str, Any]:
    return {"name": "app", "image": "busybox", "command": list(command), **fields}


def http_probe(port: str, period: int = 1, failures: int = 1, delay: int = 0) -> dict[str, Any]:
    return {
        "httpGet": {"path": "/healthz", "port": port},
        "initialDelaySeconds": delay,
        "periodSeconds": period,
        "failureThreshold": failures,
    }


class Node:
    """A PodRuntime plus the history of what its on_change callback would report."""

    def __init__(self, log_dir: Path) -> None:
        self.history: list[tuple[str, objects_pb2.PodStatus | None]] = []
        self.runtime = PodRuntime(
            node_name="node-t",
            node_ip=NODE_IP,
            pod_cidr=CIDR,
            log_dir=log_dir,
            on_change=self._record,
            restart_backoff=0.3,
            max_backoff=1.0,
        )

    def _record(self, namespace: str, name: str) -> None:
        self.history.append((name, self.runtime.status(namespace, name)))

    def status(self, name: str) -> objects_pb2.PodStatus:
        status = self.runtime.status("default", name)
        assert status is not None, f"pod {name} unknown"
        return status

    def container(self, name: str) -> objects_pb2.ContainerStatus:
        return self.status(name).container_statuses[0]

    def pid(self, name: str) -> int:
        return self.runtime.kill("default", name, 0)

    async def until(
        self,
        name: str,
        check: Callable[[objects_pb2.PodStatus], bool],
        what: str,
        timeout: float = 10.0,
    ) -> objects_pb2.PodStatus:
        async def holds() -> objects_pb2.PodStatus:
            status = self.status(name)
            assert check(status), f"{what}; status now:\n{status}"
            return status

        return await until_passes(f"pod {name}: {what}", holds, timeout=timeout)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    node = Node(tmp_path / "pods")
    yield node
    await node.runtime.close(grace_seconds=1)


def condition(status: objects_pb2.PodStatus, kind: str) -> str:
    return next((c.status for c in status.conditions if c.type == kind), "absent")


def is_ready(status: objects_pb2.PodStatus) -> bool:
    return condition(status, "Ready") == "True"


def gone(pid: int) -> bool:
    """Not running: no such process, or a zombie nobody reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2 :].startswith("Z")


async def serving(ip: str, port: int, path: str = "/") -> dict[str, Any]:
    async def answer() -> dict[str, Any]:
        return (await http_request(ip, port, path)).json()

    return await until_passes(f"HTTP on {ip}:{port}", answer)


# ---------------------------------------------------------------- serving


async def test_echo_pod_serves_http_tcp_and_udp_on_its_own_ip(node: Node) -> None:
    web, raw, dgram = (free_port(FIRST_IP) for _ in range(3))
    pod = make_pod(
        "web",
        echo(
            http_port(web),
            {"name": "tcp-echo", "containerPort": raw},
            {"name": "dns", "containerPort": dgram, "protocol": "UDP"},
        ),
    )
    await node.runtime.ensure(pod, {})

    body = await serving(FIRST_IP, web, "/shop?q=1")
    assert {k: body[k] for k in ("pod", "namespace", "node", "podIP", "path", "method")} == {
        "pod": "web",
        "namespace": "default",
        "node": "node-t",
        "podIP": FIRST_IP,
        "path": "/shop?q=1",
        "method": "GET",
    }
    assert await tcp_roundtrip(FIRST_IP, raw, b"x" * 100_000) == b"x" * 100_000
    assert await udp_roundtrip(FIRST_IP, dgram, b"ping") == b"ping"

    status = node.status("web")
    assert (status.phase, status.pod_ip, status.host_ip) == ("Running", FIRST_IP, NODE_IP)
    assert [ip.ip for ip in status.pod_ips] == [FIRST_IP]
    assert status.start_time.seconds > 0
    assert {c.type: c.status for c in status.conditions} == {
        "Initialized": "True",
        "Ready": "True",  # no readiness probe: running is ready
        "ContainersReady": "True",
        "PodScheduled": "True",
    }
    [container] = status.container_statuses
    assert (container.name, container.image, container.ready, container.started) == (
        "app",
        "kubelab/echo",
        True,
        True,
    )
    assert container.state.HasField("running") and container.restart_count == 0


async def test_ensure_is_idempotent_and_keeps_status_stable(node: Node) -> None:
    pod = make_pod("idle", program("sleep", "60"))
    await node.runtime.ensure(pod, {})
    await node.until("idle", is_ready, "Ready")
    pid, before = node.pid("idle"), node.status("idle")
    await node.runtime.ensure(pod, {"NEW_SERVICE_HOST": "127.96.0.9"})
    assert node.pid("idle") == pid
    assert node.status("idle") == before  # same transition times: nothing to write
    assert node.runtime.running() == [("default", "idle")]


async def test_pod_ips_lowest_free_from_dot_two_and_released_on_terminate(node: Node) -> None:
    for name in ("a", "b"):
        await node.runtime.ensure(make_pod(name, program("sleep", "60")), {})
    assert [node.status(n).pod_ip for n in ("a", "b")] == [FIRST_IP, "127.244.201.3"]
    await node.runtime.terminate("default", "a", 5)
    await node.runtime.ensure(make_pod("c", program("sleep", "60")), {})
    assert node.status("c").pod_ip == FIRST_IP


@pytest.mark.parametrize(
    ("reported", "expected"),
    [
        ("127.244.201.77", "127.244.201.77"),  # an agent's restart: the pod keeps its IP
        (FIRST_IP, "127.244.201.3"),  # taken by "a" meanwhile: the lowest free one
        ("127.244.201.1", "127.244.201.3"),  # the gateway is never a pod's
        ("127.244.201.255", "127.244.201.3"),  # nor the broadcast address
        ("127.244.202.9", "127.244.201.3"),  # another node's range
        ("fd00::9", "127.244.201.3"),
        ("garbage", "127.244.201.3"),
    ],
)
async def test_a_pod_runs_again_on_its_reported_ip_when_free(
    node: Node, reported: str, expected: str
) -> None:
    await node.runtime.ensure(make_pod("a", program("sleep", "60")), {})
    await node.runtime.ensure(make_pod("b", program("sleep", "60")), {}, last_ip=reported)
    assert node.status("b").pod_ip == expected


async def test_a_new_pod_avoids_the_ips_kept_for_pods_not_run_again_yet(node: Node) -> None:
    kept = [FIRST_IP, "127.244.201.3"]
    await node.runtime.ensure(make_pod("new", program("sleep", "60")), {}, avoid=kept)
    assert node.status("new").pod_ip == "127.244.201.4"


async def test_command_pod_runs_the_program_with_service_and_pod_env(node: Node) -> None:
    shop = objects_pb2.Service()
    shop.metadata.name, shop.metadata.namespace = "shop", "default"
    shop.spec.cluster_ip = "127.96.0.12"
    shop.spec.ports.add(name="http", port=80, protocol="TCP")
    script = (
        'echo "ip=$POD_IP svc=$SHOP_SERVICE_HOST:$SHOP_SERVICE_PORT_HTTP name=$POD_NAME '
        'ns=$POD_NAMESPACE node=$NODE_NAME host=$HOSTNAME own=$OWN"; sleep 60'
    )
    pod = make_pod("env", program("sh", "-c", script, env=[{"name": "OWN", "value": "mine"}]))
    await node.runtime.ensure(pod, service_environment([shop]))
    log = node.runtime.log_path("default", "env")
    expected = f"ip={FIRST_IP} svc=127.96.0.12:80 name=env ns=default node=node-t host=env own=mine"

    async def logged() -> None:
        assert expected in log.read_text()

    await until_passes("the env line in the container log", logged)


# ---------------------------------------------------------------- probes


async def test_readiness_probe_follows_the_healthz_switch(node: Node) -> None:
    port = free_port(FIRST_IP)
    pod = make_pod(
        "ready", echo(http_port(port), readinessProbe=http_probe("http", period=1, failures=2))
    )
    await node.runtime.ensure(pod, {})
    assert not is_ready(node.status("ready"))  # readiness starts false
    await node.until("ready", is_ready, "Ready after the first passing probe", timeout=5)

    assert (await http_request(FIRST_IP, port, "/healthz/fail", "POST")).status == 200
    assert (await http_request(FIRST_IP, port, "/healthz")).status == 503
    # periodSeconds x failureThreshold, plus one period for the probe already scheduled.
    status = await node.until("ready", lambda s: not is_ready(s), "not Ready", timeout=3 + 0.5)
    assert condition(status, "ContainersReady") == "False"
    assert not status.container_statuses[0].ready
    assert status.phase == "Running" and status.pod_ip == FIRST_IP

    await http_request(FIRST_IP, port, "/healthz/pass", "POST")
    await node.until("ready", is_ready, "Ready again", timeout=3)


async def test_startup_probe_gates_readiness_until_it_passes(node: Node) -> None:
    startup = {"exec": {"command": ["cat", "started"]}, "periodSeconds": 1, "failureThreshold": 30}
    pod = make_pod("slow", program("sleep", "60", startupProbe=startup))
    await node.runtime.ensure(pod, {})
    status = await node.until(
        "slow", lambda s: s.container_statuses[0].state.HasField("running"), "running"
    )
    container = status.container_statuses[0]
    assert not container.started and not container.ready and not is_ready(status)
    # The probe runs in the container's working directory: the pod's directory.
    (node.runtime.log_path("default", "slow").parent / "started").write_text("yes")
    status = await node.until("slow", is_ready, "Ready once startup passed", timeout=3)
    assert status.container_statuses[0].started


async def test_liveness_failure_restarts_the_container(node: Node) -> None:
    port = free_port(FIRST_IP)
    pod = make_pod(
        "live",
        # The delay lets the server bind first: one refused probe would condemn it.
        echo(http_port(port), livenessProbe=http_probe("http", period=1, failures=1, delay=1)),
        # Echo exits 0 on SIGTERM; OnFailure restarts it anyway (a liveness kill).
        restartPolicy="OnFailure",
        terminationGracePeriodSeconds=2,
    )
    await node.runtime.ensure(pod, {})
    first = await serving(FIRST_IP, port)
    await http_request(FIRST_IP, port, "/healthz/fail", "POST")
    status = await node.until(
        "live", lambda s: s.container_statuses[0].restart_count == 1, "a restart", timeout=5
    )
    last = status.container_statuses[0].last_state.terminated
    assert "liveness" in last.message and last.exit_code == 0
    await serving(FIRST_IP, port)
    assert (await http_request(FIRST_IP, port, "/healthz")).status == 200  # a new process
    assert first["podIP"] == FIRST_IP and node.status("live").pod_ip == FIRST_IP


# ---------------------------------------------------------------- restarts


async def test_killed_container_restarts_then_backs_off(node: Node) -> None:
    port = free_port(FIRST_IP)
    await node.runtime.ensure(make_pod("crashy", echo(http_port(port))), {})
    await serving(FIRST_IP, port)
    first_pid = node.runtime.kill("default", "crashy")
    status = await node.until(
        "crashy", lambda s: s.container_statuses[0].restart_count == 1, "first restart"
    )
    last = status.container_statuses[0].last_state.terminated
    assert (last.exit_code, last.signal, last.reason) == (137, 9, "Error")
    await serving(FIRST_IP, port)
    assert node.pid("crashy") != first_pid
    assert (
        "echo: pod default/crashy"
        in node.runtime.log_path("default", "crashy", previous=True).read_text()
    )

    node.runtime.kill("default", "crashy")  # the second crash in a row waits out a back-off
    await node.until(
        "crashy", lambda s: s.container_statuses[0].restart_count == 2, "second restart"
    )
    waiting = [
        s.container_statuses[0].state.waiting.reason
        for name, s in node.history
        if name == "crashy" and s is not None
    ]
    assert "CrashLoopBackOff" in waiting
    await serving(FIRST_IP, port)


@pytest.mark.parametrize(
    ("policy", "container", "phase", "exit_code", "reason"),
    [
        pytest.param(
            "Never", program("sh", "-c", "exit 0"), "Succeeded", 0, "Completed", id="never-ok"
        ),
        pytest.param(
            "Never", program("sh", "-c", "exit 3"), "Failed", 3, "Error", id="never-fails"
        ),
        pytest.param(
            "OnFailure",
            program("sh", "-c", "exit 0"),
            "Succeeded",
            0,
            "Completed",
            id="on-failure-ok",
        ),
        pytest.param(
            "Never", program("/no/such/program"), "Failed", 128, "StartError", id="start-error"
        ),
    ],
)
async def test_pods_that_run_to_completion(
    node: Node, policy: str, container: dict[str, Any], phase: str, exit_code: int, reason: str
) -> None:
    await node.runtime.ensure(make_pod("job", container, restartPolicy=policy), {})
    status = await node.until("job", lambda s: s.phase == phase, phase)
    [done] = status.container_statuses
    assert (done.state.terminated.exit_code, done.state.terminated.reason) == (exit_code, reason)
    assert done.restart_count == 0 and not done.ready
    assert condition(status, "Ready") == "False"
    assert status.pod_ip == FIRST_IP


async def test_on_failure_restarts_a_failing_program_with_back_off(node: Node) -> None:
    pod = make_pod("flaky", program("sh", "-c", "exit 3"), restartPolicy="OnFailure")
    await node.runtime.ensure(pod, {})
    status = await node.until(
        "flaky", lambda s: s.container_statuses[0].restart_count >= 2, "two restarts"
    )
    assert status.phase == "Running"
    seen = [s.container_statuses[0] for name, s in node.history if s is not None]
    backing_off = [c for c in seen if c.state.waiting.reason == "CrashLoopBackOff"]
    assert backing_off and all(c.last_state.terminated.exit_code == 3 for c in backing_off)


async def test_image_change_replaces_the_container(node: Node) -> None:
    pod = make_pod("img", program("sleep", "60"))
    await node.runtime.ensure(pod, {})
    await node.until("img", is_ready, "Ready")
    pid = node.pid("img")
    pod.spec.containers[0].image = "busybox:2"
    await node.runtime.ensure(pod, {})
    status = await node.until(
        "img", lambda s: s.container_statuses[0].restart_count == 1 and is_ready(s), "replaced"
    )
    assert status.container_statuses[0].image == "busybox:2"
    assert node.pid("img") != pid


async def test_a_new_uid_under_the_same_name_is_a_new_pod(node: Node) -> None:
    await node.runtime.ensure(make_pod("same", program("sleep", "60")), {})
    await node.until("same", is_ready, "Ready")
    pid = node.pid("same")
    await node.runtime.ensure(make_pod("same", program("sleep", "60"), uid="uid-2"), {})
    await node.until("same", is_ready, "the new pod Ready")
    assert node.pid("same") != pid and gone(pid)
    assert node.container("same").restart_count == 0


# ---------------------------------------------------------------- termination


async def test_terminate_is_graceful_and_forgets_the_pod(node: Node) -> None:
    port = free_port(FIRST_IP)
    await node.runtime.ensure(make_pod("bye", echo(http_port(port))), {})
    await serving(FIRST_IP, port)
    pid = node.pid("bye")
    started = time.monotonic()
    await node.runtime.terminate("default", "bye", 10)
    assert time.monotonic() - started < 5  # echo exits at SIGTERM, well before the grace
    assert gone(pid)
    assert node.runtime.status("default", "bye") is None
    assert node.runtime.running() == []
    reports = [s for name, s in node.history if name == "bye"]
    assert reports[-1] is None  # the caller's cue to delete the status
    terminating = [s for s in reports if s is not None and condition(s, "Ready") == "False"]
    assert terminating and all(s.pod_ip == FIRST_IP for s in terminating)
    assert any(condition(s, "ContainersReady") == "True" for s in terminating)  # serving
    stopped = next(s for s in reversed(reports) if s is not None)
    assert stopped.container_statuses[0].state.terminated.exit_code == 0


async def test_terminate_sigkills_after_the_grace_period(node: Node) -> None:
    pod = make_pod("stubborn", program("sh", "-c", "trap '' TERM; echo trapped; sleep 60"))
    await node.runtime.ensure(pod, {})
    await node.until("stubborn", is_ready, "Ready")
    # Ready comes with the process start, maybe before sh set its trap (then SIGTERM
    # would end it at once): wait for the line it prints after.
    path = node.runtime.log_path("default", "stubborn")
    await until_read("the trap set", lambda: path.exists() and b"trapped" in path.read_bytes())
    pid = node.pid("stubborn")
    started = time.monotonic()
    await node.runtime.terminate("default", "stubborn", 1)
    assert 1 <= time.monotonic() - started < 4
    assert gone(pid)


async def test_kill_of_an_unknown_pod_raises_key_error(node: Node) -> None:
    with pytest.raises(KeyError):
        node.runtime.kill("default", "nobody")


# ---------------------------------------------------------------- agent death

AGENT = """
import asyncio, sys
from pathlib import Path
from kubelab.v1 import objects_pb2
from node_agent.runtime import PodRuntime

async def main() -> None:
    runtime = PodRuntime(node_name="n", node_ip="127.10.0.201", pod_cidr=sys.argv[1],
                         log_dir=Path(sys.argv[2]), on_change=lambda ns, name: None)
    pod = objects_pb2.Pod()
    pod.metadata.namespace, pod.metadata.name = "default", "orphan"
    pod.spec.restart_policy = "Always"
    pod.spec.containers.add(name="app", image="busybox", command=["sleep", "60"])
    await runtime.ensure(pod, {})
    while True:  # the container starts in its own task, right after ensure
        try:
            pid = runtime.kill("default", "orphan", 0)
            break
        except ProcessLookupError:
            await asyncio.sleep(0.01)
    Path(sys.argv[3]).write_text(str(pid))
    await asyncio.Event().wait()

asyncio.run(main())
"""


def test_pods_die_with_a_sigkilled_agent(tmp_path: Path) -> None:
    pid_file = tmp_path / "pod.pid"
    agent = subprocess.Popen(
        [sys.executable, "-c", AGENT, "127.244.203.0/24", str(tmp_path / "pods"), str(pid_file)],
        cwd=REPO_ROOT,
    )
    pod_pid = 0
    try:
        until_blocking(
            "the pod's pid", lambda: pid_file.exists() and pid_file.read_text() != "", timeout=10
        )
        pod_pid = int(pid_file.read_text())
        assert not gone(pod_pid)
        agent.kill()
        agent.wait(5)
        until_blocking("the pod to die with its agent", lambda: gone(pod_pid), timeout=5)
    finally:
        agent.kill()
        agent.wait(5)
        if pod_pid and not gone(pod_pid):
            os.kill(pod_pid, signal.SIGKILL)
