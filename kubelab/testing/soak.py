"""The tallies of bench/soak.py, pure: what a sequence of observations amounts to.

The bench watches etcd (node heartbeats, the controller election's key) and the
request loops, and hands what it saw here:

* `false_not_ready`: Ready -> NotReady transitions (a node's heartbeat key deleted:
  its lease expired or was revoked) of nodes the bench did not kill, or that it
  killed only later;
* `leader_changes`: how many leadership terms of an election ended while watched
  (the key deleted, or held by another term: a new identity or a new create
  revision); every change counts, none is excused: a controller that loses its
  lease and wins again still ended a term, and its fence changed with it;
* `judge`: per phase and overall, whether the goals (0 / 0 / 0, detection within
  the goal) were met, "not judged" when the load was not what the phase demands.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

DETECTION_GOAL = 3.0  # s, SIGKILL of a node agent -> NotReady and out of the slices


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A node's heartbeat key seen written (alive) or deleted, at `at` (monotonic s)."""

    at: float
    node: str
    alive: bool


Term = tuple[str, int]  # the leader's identity and its key's create revision (its fence)


@dataclass(frozen=True, slots=True)
class Holder:
    """An election's key seen held by `term`, or vacant (None), at `at`."""

    at: float
    term: Term | None


def false_not_ready(
    live: Iterable[str], seen: Sequence[Heartbeat], killed: Mapping[str, float] | None = None
) -> dict[str, int]:
    """Per node, Ready -> NotReady transitions in `seen` (in order), starting from the
    nodes `live`; a node in `killed` counts only before its kill (monotonic s)."""
    alive, killed = set(live), killed or {}
    counts: dict[str, int] = {}
    for beat in seen:
        if beat.alive:
            alive.add(beat.node)
            continue
        if beat.node in alive:
            alive.discard(beat.node)
            if beat.node not in killed or beat.at < killed[beat.node]:
                counts[beat.node] = counts.get(beat.node, 0) + 1
    return counts


def leader_changes(first: Term | None, seen: Sequence[Holder]) -> int:
    """Leadership terms that ended in `seen`, the election held by `first` before it."""
    current, ended = first, 0
    for holder in seen:
        if holder.term != current:
            if current is not None:
                ended += 1
            current = holder.term
    return ended


@dataclass(frozen=True, slots=True)
class Phase:
    """What one phase of one mode measured, and the load it ran under."""

    name: str
    hog: bool
    load_before: float  # the machine's, before the bench started anything
    load_start: float  # at the phase's start (the hog's included)
    load_during: Sequence[float]  # 1-min load averages sampled while it ran
    false_not_ready: int
    leader_changes: int
    failed: int
    detection: float | None  # s; None: no kill, or not detected in time

    @property
    def load_mean(self) -> float:
        return sum(self.load_during) / len(self.load_during) if self.load_during else 0.0

    @property
    def clean(self) -> bool:
        return self.false_not_ready == 0 and self.leader_changes == 0 and self.failed == 0

    @property
    def detected(self) -> bool:
        return self.detection is not None and self.detection <= DETECTION_GOAL


@dataclass(frozen=True, slots=True)
class Demand:
    """The load a phase must run under for its figures to judge the goals: a quiet
    phase starts below `quiet_below`; a hog phase runs at `hog_at_least` or more."""

    quiet_below: float
    hog_at_least: float

    def met_by(self, phase: Phase) -> bool:
        if phase.hog:
            return phase.load_mean >= self.hog_at_least
        return phase.load_before < self.quiet_below


def phase_verdict(phase: Phase, demand: Demand) -> str:
    """'met', 'MISSED' or 'not judged (...)'. A hog phase that fell short of its load
    and still missed has missed: the goal holds under more load than that."""
    met = phase.clean and phase.detected
    if demand.met_by(phase):
        return "met" if met else "MISSED"
    if phase.hog and not met:
        return "MISSED"
    if phase.hog:
        return f"not judged (load mean {phase.load_mean:.2f} < {demand.hog_at_least:g})"
    return f"not judged (load before the run {phase.load_before:.2f} >= {demand.quiet_below:g})"


def judge(phases: Sequence[Phase], demand: Demand) -> str:
    """The overall verdict over every phase of every mode."""
    if not phases:
        return "not judged (nothing ran)"
    verdicts = [phase_verdict(p, demand) for p in phases]
    if "MISSED" in verdicts:
        return "MISSED"
    if all(v == "met" for v in verdicts):
        return "met"
    return "not judged (the load was not what a phase demands)"
