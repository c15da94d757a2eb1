"""The kubelet's status rules: phase, restart decisions, crash-loop back-off, conditions."""

from __future__ import annotations

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from kubelab.core.pod_status import (
    Conditions,
    RestartBackoff,
    exit_code_of,
    pod_phase,
    should_restart,
)
from kubelab.v1 import objects_pb2


def running() -> objects_pb2.ContainerStatus:
    status = objects_pb2.ContainerStatus(name="c")
    status.state.running.SetInParent()
    return status


def creating() -> objects_pb2.ContainerStatus:
    status = objects_pb2.ContainerStatus(name="c")
    status.state.waiting.reason = "ContainerCreating"
    return status


def exited(code: int) -> objects_pb2.ContainerStatus:
    status = objects_pb2.ContainerStatus(name="c")
    status.state.terminated.exit_code = code
    return status


def backing_off(code: int = 1) -> objects_pb2.ContainerStatus:
    status = objects_pb2.ContainerStatus(name="c", restart_count=2)
    status.state.waiting.reason = "CrashLoopBackOff"
    status.last_state.terminated.exit_code = code
    return status


@pytest.mark.parametrize(
    ("policy", "containers", "phase"),
    [
        pytest.param("Always", [creating()], "Pending", id="nothing-started"),
        pytest.param("Always", [running(), creating()], "Pending", id="one-still-creating"),
        pytest.param("Always", [running()], "Running", id="running"),
        pytest.param("Always", [backing_off()], "Running", id="crash-loop-is-running"),
        pytest.param("Always", [exited(0)], "Running", id="always-restarts-completed"),
        pytest.param("Never", [exited(0)], "Succeeded", id="never-exit-0"),
        pytest.param("Never", [exited(0), exited(2)], "Failed", id="never-one-failed"),
        pytest.param("Never", [running(), exited(2)], "Running", id="never-one-still-runs"),
        pytest.param("OnFailure", [exited(0)], "Succeeded", id="on-failure-exit-0"),
        pytest.param("OnFailure", [backing_off()], "Running", id="on-failure-restarting"),
        pytest.param("OnFailure", [exited(0), backing_off()], "Running", id="on-failure-mixed"),
        pytest.param("Always", [], "Pending", id="no-containers"),
    ],
)
def test_pod_phase(policy: str, containers: list[objects_pb2.ContainerStatus], phase: str) -> None:
    assert pod_phase(policy, containers) == phase


@pytest.mark.parametrize(
    ("policy", "code", "restart"),
    [
        pytest.param("Always", 0, True, id="always-success"),
        pytest.param("Always", 1, True, id="always-failure"),
        pytest.param("OnFailure", 0, False, id="on-failure-success"),
        pytest.param("OnFailure", 137, True, id="on-failure-killed"),
        pytest.param("Never", 1, False, id="never"),
    ],
)
def test_should_restart(policy: str, code: int, restart: bool) -> None:
    assert should_restart(policy, code) is restart


@pytest.mark.parametrize(
    ("returncode", "expected"),
    [
        pytest.param(0, (0, 0), id="success"),
        pytest.param(3, (3, 0), id="failure"),
        pytest.param(-9, (137, 9), id="sigkill"),
        pytest.param(-15, (143, 15), id="sigterm"),
    ],
)
def test_exit_code_of(returncode: int, expected: tuple[int, int]) -> None:
    assert exit_code_of(returncode) == expected


def test_backoff_first_restart_immediate_then_doubling_to_max() -> None:
    backoff = RestartBackoff(1.0, 5.0, reset_after=60.0)
    delays = [backoff.next(ran_for=0.1) for _ in range(6)]
    assert delays == [0.0, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_backoff_resets_after_a_long_run() -> None:
    backoff = RestartBackoff(1.0, 30.0, reset_after=60.0)
    for _ in range(4):
        backoff.next(ran_for=1.0)
    assert backoff.next(ran_for=60.0) == 0.0
    assert backoff.next(ran_for=1.0) == 1.0


def stamp(seconds: int) -> Timestamp:
    return Timestamp(seconds=seconds)


def test_condition_transition_time_moves_only_with_status() -> None:
    conditions = Conditions()
    assert conditions.set("Ready", False, stamp(10), "ContainersNotReady") is True
    assert conditions.set("Ready", False, stamp(20), "ContainersNotReady") is False
    ready = conditions.get("Ready")
    assert ready is not None and ready.last_transition_time.seconds == 10
    assert conditions.set("Ready", True, stamp(30)) is True
    ready = conditions.get("Ready")
    assert ready is not None and ready.last_transition_time.seconds == 30
    assert ready.status == "True" and not ready.reason


def test_conditions_listed_in_kubelet_order() -> None:
    conditions = Conditions()
    for kind in ("PodScheduled", "ContainersReady", "Ready", "Initialized"):
        conditions.set(kind, True, stamp(1))
    assert [c.type for c in conditions.listed()] == [
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ]
