"""The real kubectl on workloads: `logs` (-f, -p, --tail, -c) through the apiserver's
proxy to the node agents, `scale`, `rollout status`, `wait`, and `delete` returning
promptly. A whole cluster (apiserver, controller, three node agents), real processes.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from google.protobuf import json_format

from kubelab.v1 import objects_pb2
from tests.integration.conftest import Cluster, deployment
from tests.integration.test_kubectl import KUBECTL, Kubectl, grpc_apply, until

pytestmark = pytest.mark.integration


def pod(
    name: str, *containers: tuple[str, str], grace: int = 1, restart: str = "Always"
) -> objects_pb2.Pod:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {
            "containers": [
                {"name": c, "image": "busybox", "command": ["sh", "-c", script]}
                for c, script in containers
            ],
            "terminationGracePeriodSeconds": grace,
            "restartPolicy": restart,
        },
    }
    return json_format.ParseDict(body, objects_pb2.Pod())


def pod_json(kubectl: Kubectl, name: str) -> dict[str, object]:
    found: dict[str, object] = json.loads(kubectl.ok("get", "pod", name, "-o", "json"))
    return found


def running(kubectl: Kubectl, name: str, restarts: int = 0) -> bool:
    status = pod_json(kubectl, name).get("status", {})
    assert isinstance(status, dict)
    containers = status.get("containerStatuses", [])
    return bool(containers) and all(
        "running" in c.get("state", {}) and c.get("restartCount", 0) >= restarts for c in containers
    )


@pytest.fixture
def kubectl(cluster: Cluster, tmp_path: Path) -> Kubectl:
    return Kubectl(cluster.apiserver.http_url, tmp_path / "kubectl-home")


def test_logs_tail_containers_and_errors(cluster: Cluster, kubectl: Kubectl) -> None:
    lines = "; ".join(f"echo line-{n}" for n in range(1, 6))
    grpc_apply(
        cluster.apiserver,
        pod("one", ("app", f"{lines}; exec sleep 600")),
        pod("two", ("a", "echo from-a; exec sleep 600"), ("b", "echo from-b; exec sleep 600")),
    )
    until(lambda: running(kubectl, "one") and running(kubectl, "two"), "the pods to run")

    assert kubectl.ok("logs", "one") == "".join(f"line-{n}\n" for n in range(1, 6))
    assert kubectl.ok("logs", "pod/one", "--tail=2") == "line-4\nline-5\n"
    assert kubectl.ok("logs", "one", "--tail=0") == ""
    assert kubectl.ok("logs", "one", "--limit-bytes=8") == "line-1\nl"
    assert kubectl.ok("logs", "two", "-c", "b") == "from-b\n"
    # Each line with the time the node agent read it (test_kubectl_logs_times has more).
    stamped = kubectl.run("logs", "one", "--timestamps", "--tail=1")
    assert stamped.returncode == 0 and stamped.stdout.endswith("Z line-5\n")
    assert stamped.stderr == ""

    assert "container c is not valid for pod two" in kubectl.fails("logs", "two", "-c", "c")
    assert 'pods "nope" not found' in kubectl.fails("logs", "nope")
    assert "must be greater than or equal to 0" in kubectl.fails(
        "get", "--raw", "/api/v1/namespaces/default/pods/one/log?tailLines=-1"
    )
    # kubectl picks a container itself; a client that does not is told to.
    refused = kubectl.fails("get", "--raw", "/api/v1/namespaces/default/pods/two/log")
    assert "a container name must be specified for pod two, choose one of: [a b]" in refused
    no_previous = kubectl.fails("logs", "one", "--previous")
    assert 'previous terminated container "app" in pod "one" not found' in no_previous


def test_logs_of_a_pod_no_agent_can_serve(cluster: Cluster, kubectl: Kubectl) -> None:
    nowhere = pod("nowhere", ("app", "exec sleep 600"))
    nowhere.spec.node_selector["disk"] = "none-has-it"
    far = pod("far", ("app", "echo far; exec sleep 600"))
    far.spec.node_name = cluster.nodes[2].name
    grpc_apply(cluster.apiserver, nowhere, far)
    until(lambda: running(kubectl, "far"), "the pod on the last node to run")
    assert 'pod "nowhere" is not scheduled to a node yet' in kubectl.fails("logs", "nowhere")

    cluster.nodes[2].stop()
    refused = kubectl.fails("logs", "far")
    assert "Error from server (ServiceUnavailable)" in refused
    assert f"cannot reach the node agent of {cluster.nodes[2].name}" in refused


def test_logs_previous_instance(cluster: Cluster, kubectl: Kubectl, tmp_path: Path) -> None:
    mark = tmp_path / "crashed-once"
    script = (
        f"if [ -e {mark} ]; then echo second; exec sleep 600; fi; touch {mark}; echo first; exit 1"
    )
    grpc_apply(cluster.apiserver, pod("crashy", ("app", script)))
    until(lambda: running(kubectl, "crashy", restarts=1), "the pod to run again after a crash")
    assert kubectl.ok("logs", "crashy") == "second\n"
    assert kubectl.ok("logs", "crashy", "-p") == "first\n"


def test_logs_follow_streams_new_lines(cluster: Cluster, kubectl: Kubectl, tmp_path: Path) -> None:
    go, stop = tmp_path / "go", tmp_path / "stop"
    script = (
        f"echo before; while [ ! -e {go} ]; do sleep 0.05; done; echo after; i=0; "
        f"while [ ! -e {stop} ]; do i=$((i+1)); echo tick-$i; sleep 0.05; done; echo last"
    )
    grpc_apply(cluster.apiserver, pod("talker", ("app", script), restart="Never"))
    until(lambda: running(kubectl, "talker"), "the pod to run")
    following = _kubectl_logs(kubectl, "-f", "talker")
    only_new: subprocess.Popen[str] | None = None
    try:
        assert following.stdout is not None
        assert following.stdout.readline() == "before\n"
        go.touch()  # printed after the follow started: it arrives on the open stream
        assert following.stdout.readline() == "after\n"
        # Started once "after" is written: --tail=0 skips it and "before", and shows
        # the ticks printed from when its stream opened.
        only_new = _kubectl_logs(kubectl, "-f", "--tail=0", "talker")
        assert only_new.stdout is not None
        assert only_new.stdout.readline().startswith("tick-")
        stop.touch()
        assert following.stdout.readline().startswith("tick-")
        # The container ended: both streams end with it, and kubectl with them.
        assert following.stdout.read().splitlines()[-1] == "last"
        assert only_new.stdout.read().splitlines()[-1] == "last"
        assert following.wait(30) == 0 and only_new.wait(30) == 0
    finally:
        for process in (following, only_new):
            if process is not None:
                process.kill()
                process.wait(10)


def _kubectl_logs(kubectl: Kubectl, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(KUBECTL), "logs", *args],
        env=kubectl.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_scale_rollout_status_and_wait(cluster: Cluster, kubectl: Kubectl, tmp_path: Path) -> None:
    grpc_apply(cluster.apiserver, deployment(2))
    rolled = kubectl.ok("rollout", "status", "deploy/shop", "--timeout=90s")
    assert 'deployment "shop" successfully rolled out' in rolled

    assert kubectl.ok("scale", "deploy", "shop", "--replicas=4") == "deployment.apps/shop scaled\n"
    scale = json.loads(
        kubectl.ok("get", "--raw", "/apis/apps/v1/namespaces/default/deployments/shop/scale")
    )
    assert scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"] == {"replicas": 4}
    assert scale["status"]["selector"] == "app=shop,env=prod"
    assert 'deployment "shop" successfully rolled out' in kubectl.ok(
        "rollout", "status", "deploy/shop", "--timeout=90s"
    )
    waited = kubectl.ok("wait", "--for=condition=Ready", "pod", "-l", "app=shop", "--timeout=60s")
    assert len(waited.splitlines()) == 4
    assert all(line.endswith("condition met") for line in waited.splitlines())
    ready = json.loads(kubectl.ok("get", "deploy", "shop", "-o", "json"))["status"]
    assert (ready["readyReplicas"], ready["availableReplicas"], ready["updatedReplicas"]) == (
        4,
        4,
        4,
    )

    # A template change (what `kubectl set image` makes): a rollout kubectl waits out.
    current = json.loads(kubectl.ok("get", "deploy", "shop", "-o", "json"))
    current["spec"]["template"]["metadata"]["annotations"] = {"rollout": "two"}
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(current))
    kubectl.ok("replace", "--validate=false", "-f", str(changed))
    rolled = kubectl.ok("rollout", "status", "deploy/shop", "--timeout=120s")
    assert rolled.splitlines()[-1] == 'deployment "shop" successfully rolled out'
    done = json.loads(kubectl.ok("get", "deploy", "shop", "-o", "json"))
    assert done["status"]["observedGeneration"] == done["metadata"]["generation"]
    assert done["status"]["updatedReplicas"] == done["status"]["availableReplicas"] == 4
    progressing = {c["type"]: c for c in done["status"]["conditions"]}["Progressing"]
    assert progressing["reason"] == "NewReplicaSetAvailable"
    pods = json.loads(kubectl.ok("get", "pods", "-l", "app=shop", "-o", "json"))["items"]
    live = [p for p in pods if "deletionTimestamp" not in p["metadata"]]
    assert len(live) == 4
    assert all(p["metadata"].get("annotations", {}).get("rollout") == "two" for p in live)

    # Errors as Kubernetes words them.
    url = "/apis/apps/v1/namespaces/default/deployments/shop/scale"
    negative = tmp_path / "negative.json"
    negative.write_text(json.dumps({**scale, "spec": {"replicas": -1}}))
    refused = kubectl.fails("replace", "--raw", url, "-f", str(negative))
    assert 'The Scale "shop" is invalid: spec.replicas: Invalid value: -1' in refused
    assert json.loads(kubectl.ok("get", "--raw", url))["spec"] == {"replicas": 4}
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps({**scale, "spec": {"replicas": 1}}))
    assert "the object has been modified" in kubectl.fails(
        "replace", "--raw", url, "-f", str(stale)
    )
    missing = kubectl.fails("scale", "deploy", "nope", "--replicas=1")
    assert "(NotFound)" in missing and '"nope" not found' in missing


def test_delete_returns_and_wait_for_delete(
    cluster: Cluster, kubectl: Kubectl, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    # Ends at SIGTERM once released: "other" stays Terminating until the test says so.
    lingering = (
        f"trap 'while [ ! -e {release} ]; do sleep 0.05; done; exit 0' TERM; echo up; "
        "while true; do sleep 0.1; done"
    )
    grpc_apply(
        cluster.apiserver,
        pod("slow", ("app", "exec sleep 600"), grace=30),
        pod("other", ("app", lingering), grace=30),
    )
    until(lambda: running(kubectl, "slow") and running(kubectl, "other"), "the pods to run")
    # A long grace period and a process that ends at SIGTERM: kubectl returns once the pod
    # is gone (its watch-list ends its initial events with the bookmark), long before the
    # grace period and within the --timeout it is given.
    assert 'pod "slow" deleted' in kubectl.ok("delete", "pod", "slow", "--timeout=20s")
    assert "NotFound" in kubectl.fails("get", "pod", "slow")

    until(lambda: kubectl.ok("logs", "other") == "up\n", "the lingering pod's trap")
    assert 'pod "other" deleted' in kubectl.ok("delete", "pod", "other", "--wait=false")
    waiting = subprocess.Popen(
        [str(KUBECTL), "wait", "--for=delete", "pod/other", "--timeout=60s", "-v=6"],
        env=kubectl.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert waiting.stderr is not None and waiting.stdout is not None
        # kubectl has found the pod still there (-v=6 logs each request) ...
        for line in waiting.stderr:
            if "pods/other" in line and "200 OK" in line:
                break
        release.touch()  # ... and sees it go once the node agent has stopped it.
        assert waiting.stdout.read() == "pod/other condition met\n"
        assert waiting.wait(30) == 0
    finally:
        waiting.kill()
        waiting.wait(10)
