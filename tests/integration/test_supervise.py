"""A crashed actor comes back alone, and `kubelab up` restarts only what died.

One embedded cluster for the module (`kubelab up --nodes 2` on free ports, node
IPs 127.10.R.1-2, pods and Services in random loopback ranges, so it never meets
a developer's cluster or another test session), with a Deployment of 4 echo pods
behind a NodePort. Each test kills something with SIGKILL under a request loop
through node-1's NodePort, waits (on conditions, with deadlines) until it is back,
and checks that the pods on surviving nodes were not restarted and kept their
IPs. Tests leave the cluster whole; the last one takes it down and up again.
"""

from __future__ import annotations

import json
import os
import random
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubelab import lab
from kubelab.lab.processes import now
from kubelab.lab.state import write_state
from kubelab.lab.supervisor import Supervisor
from kubelab.testing.traffic import RequestLoop
from kubelab.testing.wait import until_blocking, until_read

pytestmark = pytest.mark.integration

NODE_PORT = 30111
REPLICAS = 4
SERVICE = f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: sup}}
spec:
  replicas: {REPLICAS}
  selector: {{matchLabels: {{app: sup}}}}
  template:
    metadata: {{labels: {{app: sup}}}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: echo
        image: kubelab/echo
        ports: [{{name: http, containerPort: 8080}}]
        readinessProbe: {{httpGet: {{path: /healthz, port: http}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: sup}}
spec:
  type: NodePort
  selector: {{app: sup}}
  ports: [{{port: 80, targetPort: http, nodePort: {NODE_PORT}}}]
"""
PodFacts = tuple[str, str, int, str]  # node, pod IP, restarts, container started at


class Cluster:
    """`kubelab` against one KUBELAB_HOME, and what cluster.json says."""

    def __init__(self, home: Path, up_args: tuple[str, ...], node_ip_base: str) -> None:
        self.home = home
        self.up_args = up_args
        self.node1 = node_ip_base.rsplit(".", 1)[0] + ".1"
        self.env = {**os.environ, "KUBELAB_HOME": str(home)}
        self.env.pop("KUBELAB_SERVER", None)

    def __call__(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "kubelab.cli.main", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def ok(self, *args: str, timeout: float = 90) -> str:
        result = self(*args, timeout=timeout)
        assert result.returncode == 0, f"kubelab {' '.join(args)}: {result.stderr}"
        return result.stdout

    def up(self) -> str:
        return self.ok(*self.up_args, timeout=120)

    def state(self) -> lab.ClusterState:
        state = lab.read_state(self.home / "cluster.json")
        assert state is not None
        return state

    def record(self, name: str) -> lab.ProcessRecord:
        return next(p for p in self.state().processes if p.name == name)

    def supervisor(self) -> lab.ProcessRecord:
        supervisor = self.state().supervisor
        assert supervisor is not None
        return supervisor

    def ready(self, name: str) -> bool:
        """The actor's own readiness probe, as `up` uses it."""
        state = self.state()
        layout = state.layout(self.home)
        assert layout is not None
        spec = next(s for st in lab.cluster_stages(layout.config) for s in st if s.name == name)
        return spec.ready(layout)

    def pods(self) -> dict[str, PodFacts]:
        """Every pod of the Deployment that is Running and Ready, by name."""
        items: list[dict[str, Any]] = json.loads(self.ok("get", "pods", "-o", "json"))["items"]
        facts: dict[str, PodFacts] = {}
        for pod in items:
            status = pod.get("status", {})
            ready = any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions", [])
            )
            if (
                status.get("phase") != "Running"
                or not ready
                or "deletionTimestamp" in pod["metadata"]
            ):
                continue
            container = status["containerStatuses"][0]
            facts[pod["metadata"]["name"]] = (
                pod["spec"]["nodeName"],
                status["podIP"],
                int(container.get("restartCount", 0)),
                str(container["state"]["running"]["startedAt"]),
            )
        return facts

    def settled(self, timeout: float = 60) -> dict[str, PodFacts]:
        """Wait until exactly REPLICAS pods run Ready; return them."""
        found: dict[str, PodFacts] = {}

        def all_ready() -> bool:
            nonlocal found
            found = self.pods()
            return len(found) == REPLICAS

        until_blocking(f"{REPLICAS} ready pods", all_ready, timeout=timeout, interval=0.25)
        return found


def _stat(pid: int) -> str:
    try:
        text = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return ""
    return text[text.rfind(")") + 2 :]  # from field 3, the state, on


def children(pid: int) -> list[int]:
    """The processes `pid` started (a node agent's pods)."""
    pids = [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]
    return [child for child in pids if _stat(child).split()[1:2] == [str(pid)]]


def kill(record: lab.ProcessRecord) -> None:
    """SIGKILL, and wait until the actor is gone, and a node's pods, which die with it
    (the actors a supervisor restarted outlive it)."""
    pods = children(record.pid) if record.name.startswith("node-") else []
    doomed = [record.pid, *pods]
    os.kill(record.pid, signal.SIGKILL)

    def gone() -> bool:
        return all(_stat(pid)[:1] in ("", "Z") for pid in doomed)

    until_blocking(f"{record.name} and its children to die", gone, timeout=10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    node_ip_base = f"127.10.{random.randint(150, 250)}.0"
    up_args = (
        "up",
        *("--api-port", "0", "--api-http-port", "0"),
        *("--etcd-port", "0", "--etcd-peer-port", "0"),
        *("--controller-port", "0", "--dns-port", "0", "--dns-health-port", "0"),
        *("--cloud-port", "0", "--cloud-metrics-port", "0"),
        *("--nodes", "2", "--node-ip-base", node_ip_base),
        *("--pod-network", f"127.{random.randint(200, 250)}.0.0/16"),
        *("--service-cidr", f"127.{random.randint(100, 199)}.0.0/16"),
        *("--lb-pool", f"127.{random.randint(100, 199)}.{random.randint(100, 250)}.0/29"),
    )
    c = Cluster(tmp_path_factory.mktemp("supervise") / "home", up_args, node_ip_base)
    try:
        c.up()
        manifest = c.home.parent / "sup.yaml"
        manifest.write_text(SERVICE)
        c.ok("apply", "-f", str(manifest))
        c.settled(90)
        yield c
    finally:
        c("down", "--purge", timeout=120)


@pytest.mark.parametrize(
    "actor", ["etcd", "apiserver", "cloud-stub", "controller", "dns", "node-2"]
)
async def test_a_killed_actor_comes_back_by_itself(cluster: Cluster, actor: str) -> None:
    before = cluster.settled()
    old = cluster.record(actor)
    requests = RequestLoop(cluster.node1, NODE_PORT, concurrency=1).start()
    try:
        await until_read("requests served", lambda: sum(requests.served.values()) >= 5, timeout=20)
        kill(old)
        killed = time.monotonic()

        def back() -> bool:
            new = cluster.record(actor)
            return new.pid != old.pid and lab.process_alive(new) and cluster.ready(actor)

        await until_read(f"{actor} restarted and ready", back, timeout=30, interval=0.1)
        mark = requests.attempts
        await until_read("requests after", lambda: requests.attempts >= mark + 10, timeout=20)
    finally:
        await requests.stop()
    new = cluster.record(actor)
    assert (new.address, new.command, new.restarts) == (old.address, old.command, old.restarts + 1)
    # node-1's NodePort never needed the actor: no request through it failed, but for
    # one in flight to a pod on a killed node while the pods died with it.
    failed = requests.failed_since(killed) if actor.startswith("node-") else requests.failures
    assert not failed, [str(f) for f in failed[:5]]
    after = cluster.settled()
    survivors = {name: facts for name, facts in before.items() if facts[0] != actor}
    assert survivors, "every pod was on the killed node"
    assert {name: after.get(name) for name in survivors} == survivors
    # A restarted node agent runs its pods again on the IPs they had, where the slices
    # and every proxy still send their traffic.
    rerun = {name: facts[:2] for name, facts in before.items() if facts[0] == actor}
    assert {name: after.get(name, ("", ""))[:2] for name in rerun} == rerun


def test_up_starts_only_the_missing_actor_where_it_was(cluster: Cluster) -> None:
    before = cluster.settled()
    state = cluster.state()
    kill(cluster.supervisor())  # or it restarts the controller before `up` can
    controller = cluster.record("controller")
    kill(controller)

    out = cluster.up()
    assert "Restarted controller; everything else kept running." in out
    after = cluster.state()
    unchanged = [(p.name, p.pid) for p in state.processes if p.name != "controller"]
    assert [(p.name, p.pid) for p in after.processes if p.name != "controller"] == unchanged
    restarted = cluster.record("controller")
    assert restarted.pid != controller.pid and lab.process_alive(restarted)
    assert (restarted.address, restarted.command) == (controller.address, controller.command)
    assert after.supervisor is not None and lab.process_alive(after.supervisor)
    assert cluster.settled() == before
    assert "already running" in cluster.up()


def test_status_and_the_supervisor_follow_an_actor_restarted_by_hand(cluster: Cluster) -> None:
    # The case: etcd restarted by hand was reported dead.
    kill(cluster.supervisor())
    etcd = cluster.record("etcd")
    os.kill(etcd.pid, signal.SIGTERM)
    until_blocking("etcd to stop", lambda: not lab.process_alive(etcd), timeout=15)
    with Path(etcd.log).open("ab") as log:
        hand = subprocess.Popen(
            etcd.command, cwd=cluster.home, stdout=log, stderr=log, start_new_session=True
        )
    try:
        until_blocking(
            "etcd by hand", lambda: lab.find_process(etcd.command) == hand.pid, timeout=10
        )
        until_blocking("etcd by hand to answer", lambda: cluster.ready("etcd"), timeout=30)
        status = cluster("status")
        row = next(line.split() for line in status.stdout.splitlines() if line.startswith("etcd "))
        assert row[:3] == ["etcd", str(hand.pid), "yes"]
        assert "Supervisor not running" in status.stdout
        assert status.returncode == 0, status.stderr

        up = cluster(*cluster.up_args, timeout=120)
        assert up.returncode == 0, up.stderr
        assert f"etcd runs as pid {hand.pid} (restarted by hand)" in up.stderr
        assert cluster.record("etcd").pid == hand.pid

        # The new supervisor owns it now: killed, it is restarted like any other.
        hand.kill()
        hand.wait()
        until_blocking(
            "the supervisor to restart etcd",
            lambda: cluster.record("etcd").pid != hand.pid and cluster.ready("etcd"),
            timeout=30,
        )
    finally:
        if hand.poll() is None:
            hand.kill()
            hand.wait()


def test_state_files_are_private_and_an_older_home_is_fixed(cluster: Cluster) -> None:
    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    home, logs = cluster.home, cluster.home / "logs"
    files = [home / "cluster.json", *sorted(logs.iterdir())]
    assert mode(home) == mode(logs) == 0o700
    assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
    for directory in (home, logs):
        directory.chmod(0o755)
    for f in files:
        f.chmod(0o644)
    assert "already running" in cluster.up()
    assert mode(home) == mode(logs) == 0o700
    assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}


def test_a_running_cluster_recorded_without_its_layout_is_left_alone(cluster: Cluster) -> None:
    """What a kubelab from before supervision recorded: up starts only a supervisor."""
    kill(cluster.supervisor())
    state = cluster.state()
    layout = state.fields.pop("layout")
    state.supervisor = None
    with lab.state_lock(cluster.home):
        write_state(cluster.home / "cluster.json", state)
    try:
        assert "already running" in cluster.up()
        after = cluster.state()
        assert [p.pid for p in after.processes] == [p.pid for p in state.processes]
        assert after.supervisor is not None and lab.process_alive(after.supervisor)
    finally:
        with lab.state_lock(cluster.home):
            restored = cluster.state()
            restored.fields["layout"] = layout
            write_state(cluster.home / "cluster.json", restored)


def test_down_and_up_round_trip(cluster: Cluster) -> None:
    state = cluster.state()
    assert state.supervisor is not None
    down = cluster.ok("down", timeout=120)
    assert down.splitlines()[0].startswith("supervisor (pid")
    assert not any(lab.process_alive(p) for p in [state.supervisor, *state.processes])
    cluster.up()
    pods = cluster.settled(90)
    assert {facts[0] for facts in pods.values()} <= {"node-1", "node-2"}
    assert cluster("status").returncode == 0


# ---------------------------------------------------------------- the supervisor alone


def test_a_crash_looping_actor_is_restarted_with_back_off(tmp_path: Path) -> None:
    crash = [sys.executable, "-c", "raise SystemExit(3)"]
    gone = subprocess.Popen(crash)
    gone.wait()
    record = lab.ProcessRecord("crasher", gone.pid, "", str(tmp_path / "crasher.log"), crash, "")
    write_state(tmp_path / "cluster.json", lab.ClusterState([record], True, now(), {}))
    clock = [0.0]
    supervisor = Supervisor(tmp_path, clock=lambda: clock[0])

    def restarts_at(moment: float) -> int:
        """Tick at `moment` (the supervisor's clock); the restarts recorded since."""
        clock[0] = moment
        assert supervisor.tick()
        state = lab.read_state(tmp_path / "cluster.json")
        assert state is not None
        return state.processes[0].restarts

    def crashed() -> None:
        child = supervisor.children["crasher"]
        until_blocking("the restarted actor to crash", lambda: child.poll() is not None)

    # At once, then 1 s after it crashed again; the next is 2 s after that.
    assert restarts_at(0.0) == 1
    crashed()
    assert restarts_at(0.0) == 1, "the second restart waits 1 s"
    assert restarts_at(0.99) == 1
    assert restarts_at(1.0) == 2
    crashed()
    assert restarts_at(1.0) == 2, "the third restart waits 2 s"
    assert restarts_at(2.99) == 2
    assert restarts_at(3.0) == 3
    (tmp_path / "cluster.json").unlink()
    assert not supervisor.tick(), "no cluster.json: nothing left to supervise"
