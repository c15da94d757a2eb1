"""Shared pod facts: ready, terminating, active, available, controller, timestamps."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubelab.core.pods import (
    controller_owner,
    is_active,
    is_available,
    is_ready,
    is_terminating,
    ready_since,
    to_seconds,
    to_timestamp,
)
from kubelab.testing.pods import make_pod, set_ready
from kubelab.v1 import meta_pb2, objects_pb2


def _ready_without_time() -> objects_pb2.Pod:
    pod = make_pod("p")
    pod.status.conditions.add(type="Ready", status="True")
    return pod


def _other_conditions_only() -> objects_pb2.Pod:
    pod = make_pod("p")
    pod.status.conditions.add(type="ContainersReady", status="True")
    return pod


@pytest.mark.parametrize(
    ("pod", "ready", "since"),
    [
        pytest.param(make_pod("p"), False, None, id="no-conditions"),
        pytest.param(make_pod("p", ready_since=5.0), True, 5.0, id="ready"),
        pytest.param(make_pod("p", not_ready_since=5.0), False, None, id="not-ready"),
        pytest.param(_ready_without_time(), True, None, id="ready-time-unknown"),
        pytest.param(_other_conditions_only(), False, None, id="only-other-conditions"),
    ],
)
def test_readiness(pod: objects_pb2.Pod, ready: bool, since: float | None) -> None:
    assert is_ready(pod) is ready
    assert ready_since(pod) == since


def test_a_readiness_flip_replaces_the_condition() -> None:
    pod = make_pod("p", ready_since=5.0)
    set_ready(pod, False, 7.0)
    set_ready(pod, True, 9.5)
    assert [c.type for c in pod.status.conditions] == ["Ready"]
    assert ready_since(pod) == 9.5


@pytest.mark.parametrize(
    ("pod", "terminating", "active"),
    [
        pytest.param(make_pod("p"), False, True, id="fresh"),
        pytest.param(make_pod("p", phase="Running"), False, True, id="running"),
        pytest.param(make_pod("p", deleted=3.0), True, False, id="terminating"),
        pytest.param(make_pod("p", phase="Failed"), False, False, id="failed"),
        pytest.param(make_pod("p", phase="Succeeded"), False, False, id="succeeded"),
        pytest.param(make_pod("p", phase="Unknown"), False, True, id="unknown-phase"),
    ],
)
def test_terminating_and_active(pod: objects_pb2.Pod, terminating: bool, active: bool) -> None:
    assert is_terminating(pod) is terminating
    assert is_active(pod) is active


@pytest.mark.parametrize(
    ("pod", "min_ready", "now", "available"),
    [
        pytest.param(make_pod("p"), 0, 100.0, False, id="not-ready"),
        pytest.param(make_pod("p", ready_since=99.0), 0, 100.0, True, id="ready-no-min"),
        pytest.param(make_pod("p", ready_since=95.0), 5, 100.0, True, id="exactly-min-ready"),
        pytest.param(make_pod("p", ready_since=95.5), 5, 100.0, False, id="short-of-min-ready"),
        pytest.param(_ready_without_time(), 0, 100.0, True, id="unknown-time-no-min"),
        pytest.param(_ready_without_time(), 5, 100.0, False, id="unknown-time-with-min"),
    ],
)
def test_available(pod: objects_pb2.Pod, min_ready: int, now: float, available: bool) -> None:
    assert is_available(pod, min_ready, now) is available


def _owned(*refs: meta_pb2.OwnerReference) -> objects_pb2.Pod:
    pod = make_pod("p")
    pod.metadata.owner_references.extend(refs)
    return pod


_REF = meta_pb2.OwnerReference(kind="Deployment", name="web", uid="u1")
_CONTROLLER = meta_pb2.OwnerReference(kind="Deployment", name="web", uid="u2", controller=True)


@pytest.mark.parametrize(
    ("pod", "uid"),
    [
        pytest.param(_owned(), None, id="bare"),
        pytest.param(_owned(_REF), None, id="owner-not-controller"),
        pytest.param(_owned(_REF, _CONTROLLER), "u2", id="controller-among-owners"),
    ],
)
def test_controller_owner(pod: objects_pb2.Pod, uid: str | None) -> None:
    owner = controller_owner(pod)
    assert (owner.uid if owner is not None else None) == uid


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_timestamps_round_trip_to_the_microsecond(seconds: float) -> None:
    ts = to_timestamp(seconds)
    assert 0 <= ts.nanos < 1_000_000_000
    assert to_seconds(ts) == pytest.approx(seconds, abs=1e-6)
