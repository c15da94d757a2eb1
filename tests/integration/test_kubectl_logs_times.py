"""`kubectl logs --timestamps / --since / --since-time` through the apiserver to the node
agent, which keeps the time it read each line (CRI records): the times are the
kubelet's RFC3339NanoFixed, in the order the lines came, and `--since*` leaves out
exactly the lines read before. A whole cluster, real processes."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path

from kubelab.testing.wait import until_blocking
from tests.integration.conftest import Cluster
from tests.integration.test_kubectl import Kubectl, grpc_apply, until
from tests.integration.test_kubectl_workloads import kubectl as kubectl  # the fixture
from tests.integration.test_kubectl_workloads import pod, running

STAMPED = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) (.*)$")


def stamped_lines(output: str) -> list[tuple[datetime, str]]:
    out = []
    for line in output.splitlines():
        match = STAMPED.match(line)
        assert match is not None, f"not a timestamped line: {line!r}"
        moment = datetime.strptime(match.group(1)[:26] + "Z", "%Y-%m-%dT%H:%M:%S.%fZ")
        out.append((moment.replace(tzinfo=UTC), match.group(2)))
    return out


def test_timestamps_and_since(cluster: Cluster, kubectl: Kubectl, tmp_path: Path) -> None:
    go = tmp_path / "go"
    wait = f"while [ ! -e {go} ]; do sleep 0.05; done"
    script = f"echo old-1; echo old-2; {wait}; echo new; exec sleep 600"
    grpc_apply(cluster.apiserver, pod("clock", ("app", script)))
    until(lambda: running(kubectl, "clock"), "the pod to run")
    until(lambda: kubectl.ok("logs", "clock") == "old-1\nold-2\n", "the first lines")

    before = stamped_lines(kubectl.ok("logs", "clock", "--timestamps"))
    assert [text for _, text in before] == ["old-1", "old-2"]
    old_time = before[-1][0]
    assert abs((datetime.now(UTC) - old_time).total_seconds()) < 60, "the agent's wall clock"

    # --since-time has seconds precision: the new line comes in a later second.
    boundary = int(old_time.timestamp()) + 1
    until_blocking("the next second", time.time, lambda now: now >= boundary)
    go.touch()
    until(lambda: kubectl.ok("logs", "clock").endswith("new\n"), "the new line")

    since_time = datetime.fromtimestamp(boundary, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert kubectl.ok("logs", "clock", f"--since-time={since_time}") == "new\n"
    assert kubectl.ok("logs", "clock", "--since=1h") == "old-1\nold-2\nnew\n"
    after = stamped_lines(kubectl.ok("logs", "clock", "--timestamps", "--tail=2"))
    assert [text for _, text in after] == ["old-2", "new"]
    assert after[0][0] == old_time, "a line keeps the time it was read"
    assert after[1][0].timestamp() >= boundary
    # The Python client's route: raw query parameters, same answers.
    raw = kubectl.ok(
        "get",
        "--raw",
        "/api/v1/namespaces/default/pods/clock/log?timestamps=true&sinceSeconds=3600",
    )
    assert [text for _, text in stamped_lines(raw)] == ["old-1", "old-2", "new"]


def test_follow_with_timestamps_and_since(
    cluster: Cluster, kubectl: Kubectl, tmp_path: Path
) -> None:
    stop = tmp_path / "stop"
    script = f"echo first; while [ ! -e {stop} ]; do sleep 0.05; done; echo last"
    grpc_apply(cluster.apiserver, pod("talk", ("app", script), restart="Never"))
    until(lambda: running(kubectl, "talk"), "the pod to run")
    until(lambda: kubectl.ok("logs", "talk") == "first\n", "the first line")
    stop.touch()
    # A follow ends with the container; every line has its time, since keeps both.
    followed = kubectl.ok("logs", "-f", "talk", "--timestamps", "--since=10m")
    assert [text for _, text in stamped_lines(followed)] == ["first", "last"]
