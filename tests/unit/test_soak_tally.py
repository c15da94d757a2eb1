"""bench/soak.py's tallies: transitions counted from sequences of observations, and the
verdict under the load each phase demands."""

from __future__ import annotations

import pytest

from kubelab.testing.soak import (
    Demand,
    Heartbeat,
    Holder,
    Phase,
    false_not_ready,
    judge,
    leader_changes,
    phase_verdict,
)


def beats(*seen: tuple[float, str, bool]) -> list[Heartbeat]:
    return [Heartbeat(at, node, alive) for at, node, alive in seen]


@pytest.mark.parametrize(
    ("live", "seen", "killed", "want"),
    [
        pytest.param({"n1", "n2"}, [], None, {}, id="nothing-happened"),
        pytest.param({"n1"}, beats((1, "n1", True), (2, "n1", True)), None, {}, id="rewrites"),
        pytest.param({"n1"}, beats((1, "n1", False)), None, {"n1": 1}, id="one-loss"),
        pytest.param(
            {"n1"},
            beats((1, "n1", False), (1.5, "n1", True), (2, "n1", False)),
            None,
            {"n1": 2},
            id="lost-back-lost",
        ),
        pytest.param(set(), beats((1, "n1", False)), None, {}, id="already-gone"),
        pytest.param(
            {"n1"}, beats((1, "n1", False), (2, "n1", False)), None, {"n1": 1}, id="twice-gone"
        ),
        pytest.param(set(), beats((1, "n3", True), (2, "n3", False)), None, {"n3": 1}, id="joined"),
        pytest.param({"n3"}, beats((5, "n3", False)), {"n3": 4.0}, {}, id="killed-before"),
        pytest.param(
            {"n3"}, beats((3, "n3", False)), {"n3": 4.0}, {"n3": 1}, id="lost-before-kill"
        ),
        pytest.param(
            {"n1", "n3"},
            beats((5, "n3", False), (6, "n1", False)),
            {"n3": 4.0},
            {"n1": 1},
            id="other-node-still-counts",
        ),
    ],
)
def test_false_not_ready(
    live: set[str],
    seen: list[Heartbeat],
    killed: dict[str, float] | None,
    want: dict[str, int],
) -> None:
    assert false_not_ready(live, seen, killed) == want


A1, A2, B3 = ("a", 1), ("a", 2), ("b", 3)


@pytest.mark.parametrize(
    ("first", "seen", "want"),
    [
        pytest.param(A1, [], 0, id="steady"),
        pytest.param(A1, [Holder(1, A1)], 0, id="same-term-rewritten"),
        pytest.param(A1, [Holder(1, None)], 1, id="vacated"),
        pytest.param(A1, [Holder(1, None), Holder(2, A2)], 1, id="same-identity-new-term"),
        pytest.param(A1, [Holder(1, None), Holder(2, B3)], 1, id="handed-over"),
        pytest.param(A1, [Holder(1, None), Holder(2, A2), Holder(3, None)], 2, id="twice"),
        pytest.param(None, [Holder(1, A1)], 0, id="first-election"),
        pytest.param(A1, [Holder(1, B3)], 1, id="replaced-without-a-gap"),
    ],
)
def test_leader_changes(first: tuple[str, int] | None, seen: list[Holder], want: int) -> None:
    assert leader_changes(first, seen) == want


DEMAND = Demand(quiet_below=1.0, hog_at_least=8.0)


def phase(
    *,
    hog: bool = False,
    before: float = 0.2,
    during: tuple[float, ...] = (9.0,),
    failed: int = 0,
    detection: float | None = 1.8,
) -> Phase:
    return Phase("p", hog, before, before, during, 0, 0, failed, detection)


@pytest.mark.parametrize(
    ("given", "want"),
    [
        pytest.param(phase(), "met", id="quiet-met"),
        pytest.param(phase(failed=1), "MISSED", id="quiet-failed"),
        pytest.param(phase(detection=3.5), "MISSED", id="slow-detection"),
        pytest.param(phase(detection=None), "MISSED", id="not-detected"),
        pytest.param(phase(before=1.5), "not judged (load before the run 1.50 >= 1)", id="busy"),
        pytest.param(phase(before=1.5, failed=3), "not judged", id="busy-and-failed"),
        pytest.param(phase(hog=True, before=3.0), "met", id="hog-met"),
        pytest.param(phase(hog=True, during=(4.0, 6.0)), "not judged", id="hog-too-light"),
        pytest.param(phase(hog=True, during=(4.0,), failed=1), "MISSED", id="too-light-missed"),
    ],
)
def test_phase_verdict(given: Phase, want: str) -> None:
    assert phase_verdict(given, DEMAND).startswith(want)


def test_judge_misses_beat_not_judged_and_all_must_be_met() -> None:
    busy = phase(before=2.0)
    assert judge([phase(), phase(hog=True)], DEMAND) == "met"
    assert judge([busy, phase(hog=True)], DEMAND).startswith("not judged")
    assert judge([busy, phase(hog=True, failed=1)], DEMAND) == "MISSED"
    assert judge([], DEMAND).startswith("not judged")
