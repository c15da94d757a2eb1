"""Probe thresholds, schedules and startup gating, with time passed in."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubelab.v1 import objects_pb2
from node_agent.logic.probe_state import ContainerProbes, ProbeKind, ProbeTiming, ProbeTracker

LIVE = ProbeKind.LIVENESS
READY = ProbeKind.READINESS
START = ProbeKind.STARTUP


def feed(tracker: ProbeTracker, results: list[bool]) -> list[bool]:
    """The tracker's state after each result, one probe per period."""
    states = []
    for i, ok in enumerate(results):
        tracker.record(ok, at=float(i) * tracker.timing.period)
        states.append(tracker.passing)
    return states


@pytest.mark.parametrize(
    ("kind", "timing", "results", "states"),
    [
        pytest.param(
            READY, ProbeTiming(), [True], [True], id="readiness-starts-false-one-success-flips"
        ),
        pytest.param(
            READY,
            ProbeTiming(success_threshold=3),
            [True, True, False, True, True, True],
            [False, False, False, False, False, True],
            id="readiness-needs-consecutive-successes",
        ),
        pytest.param(
            READY,
            ProbeTiming(failure_threshold=2),
            [True, False, True, False, False, True],
            [True, True, True, True, False, True],
            id="readiness-needs-consecutive-failures",
        ),
        pytest.param(
            LIVE, ProbeTiming(), [False, False], [True, True], id="liveness-starts-passing"
        ),
        pytest.param(
            LIVE,
            ProbeTiming(failure_threshold=3),
            [False, False, False, True],
            [True, True, False, False],
            id="liveness-failure-is-final-for-the-instance",
        ),
        pytest.param(
            START,
            ProbeTiming(failure_threshold=5),
            [False, False, True, False],
            [False, False, True, True],
            id="startup-success-is-final",
        ),
    ],
)
def test_tracker_thresholds(
    kind: ProbeKind, timing: ProbeTiming, results: list[bool], states: list[bool]
) -> None:
    assert feed(ProbeTracker(kind, timing, started_at=0.0), results) == states


def test_tracker_schedule_initial_delay_then_period_from_probe_start() -> None:
    tracker = ProbeTracker(READY, ProbeTiming(initial_delay=5, period=2), started_at=100.0)
    assert tracker.next_due(100.0) == 105.0
    assert tracker.next_due(107.5) == 107.5  # overdue: now
    tracker.record(False, at=107.5)
    assert tracker.next_due(108.0) == 109.5


@pytest.mark.parametrize(
    ("kind", "ok"),
    [
        pytest.param(LIVE, False, id="liveness-failed"),
        pytest.param(START, False, id="startup-failed"),
        pytest.param(START, True, id="startup-passed"),
    ],
)
def test_tracker_stops_probing(kind: ProbeKind, ok: bool) -> None:
    tracker = ProbeTracker(kind, ProbeTiming(failure_threshold=1), started_at=0.0)
    tracker.record(ok, at=0.0)
    assert tracker.done
    assert tracker.next_due(50.0) is None
    assert tracker.record(not ok, at=10.0) is False


def test_probe_timing_of_a_defaulted_and_an_undefaulted_probe() -> None:
    probe = objects_pb2.Probe(initial_delay_seconds=3, period_seconds=1, failure_threshold=2)
    assert ProbeTiming.of(probe) == ProbeTiming(3, 1, 1, 1, 2)
    assert ProbeTiming.of(objects_pb2.Probe()) == ProbeTiming()


@given(
    kind=st.sampled_from([READY, LIVE]),
    success=st.integers(1, 4),
    failure=st.integers(1, 4),
    results=st.lists(st.booleans(), max_size=40),
)
def test_state_never_flips_without_its_threshold(
    kind: ProbeKind, success: int, failure: int, results: list[bool]
) -> None:
    timing = ProbeTiming(success_threshold=success, failure_threshold=failure)
    tracker = ProbeTracker(kind, timing, started_at=0.0)
    before = tracker.passing
    for i, ok in enumerate(results):
        if tracker.done:
            break
        flipped = tracker.record(ok, at=float(i))
        assert flipped == (tracker.passing != before)
        needed = success if ok else failure
        streak = results[: i + 1][-needed:]
        met = len(streak) == needed and all(r == ok for r in streak)
        if flipped:
            assert met and tracker.passing == ok
        if met:
            assert tracker.passing == ok  # a met threshold always takes effect
        before = tracker.passing


def container(
    *,
    startup_probe: objects_pb2.Probe | None = None,
    liveness_probe: objects_pb2.Probe | None = None,
    readiness_probe: objects_pb2.Probe | None = None,
) -> objects_pb2.Container:
    return objects_pb2.Container(
        name="c",
        image="kubelab/echo",
        startup_probe=startup_probe,
        liveness_probe=liveness_probe,
        readiness_probe=readiness_probe,
    )


def test_container_without_probes_is_started_and_ready() -> None:
    probes = ContainerProbes.of(container(), started_at=0.0)
    assert (probes.started, probes.ready, probes.failed) == (True, True, None)
    assert probes.next_due(0.0) is None


def test_startup_gates_liveness_and_readiness() -> None:
    probe = objects_pb2.Probe(period_seconds=10, failure_threshold=3, success_threshold=1)
    probes = ContainerProbes.of(
        container(
            startup_probe=objects_pb2.Probe(period_seconds=1, failure_threshold=30),
            liveness_probe=probe,
            readiness_probe=probe,
        ),
        started_at=0.0,
    )
    assert probes.due(0.0) == [START]
    assert not probes.started and not probes.ready
    assert probes.record(START, False, at=0.0) is False
    assert probes.next_due(0.5) == 1.0  # only startup runs, at its period
    assert probes.record(START, True, at=1.0) is True
    assert probes.started and not probes.ready  # readiness starts false
    assert sorted(probes.due(1.0)) == sorted([LIVE, READY])  # at once after startup
    assert probes.record(READY, True, at=1.0) is True
    assert probes.ready
    assert probes.next_due(2.0) == 2.0  # liveness, not run yet, is overdue
    probes.record(LIVE, True, at=2.0)
    assert probes.next_due(3.0) == 11.0


def test_failed_liveness_condemns_and_unreadies() -> None:
    probes = ContainerProbes.of(
        container(
            liveness_probe=objects_pb2.Probe(period_seconds=1, failure_threshold=1),
        ),
        started_at=0.0,
    )
    assert probes.ready
    assert probes.record(LIVE, False, at=0.0) is True
    assert probes.failed is LIVE
    assert not probes.ready
    assert probes.next_due(1.0) is None


def test_failed_startup_condemns() -> None:
    probes = ContainerProbes.of(
        container(startup_probe=objects_pb2.Probe(period_seconds=1, failure_threshold=2)),
        started_at=0.0,
    )
    probes.record(START, False, at=0.0)
    assert probes.failed is None
    probes.record(START, False, at=1.0)
    assert probes.failed is START and not probes.started
