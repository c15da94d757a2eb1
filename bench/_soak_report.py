"""bench/soak.py's tables: one per mode, a row per phase, then what explains a miss
(every transition seen, the first failures per path) and what the work did."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kubelab.testing.soak import DETECTION_GOAL, Demand, Phase, phase_verdict
from kubelab.testing.traffic import Failure

PATHS = ("NodePort", "ClusterIP", "LoadBalancer")
SHOWN_FAILURES = 5


@dataclass(frozen=True)
class PhaseReport:
    phase: Phase
    requests: Mapping[str, tuple[int, list[Failure]]]  # path: (attempts, failures)
    work: Mapping[str, int]
    transitions: Sequence[str]
    detection: str  # the kill's two times, or why there are none
    seconds: float


def _failed(report: PhaseReport, path: str) -> str:
    attempts, failures = report.requests.get(path, (0, []))
    return f"{len(failures)} / {attempts:,}"


def _kinds(failures: Sequence[Failure]) -> str:
    """The failures' errors, grouped (the address and the time left out)."""
    kinds = Counter(f.error.partition(": ")[2] or f.error for f in failures)
    return "; ".join(f"{n} x {error}" for error, n in kinds.most_common(4))


def print_mode(mode: str, reports: Sequence[PhaseReport], logs: str, demand: Demand) -> None:
    print(f"\n{mode}: {len(reports)} phases (logs: {logs})")
    print(
        "| phase | load at start | load during, mean / max | false NotReady | leader changes "
        "| failed NodePort | failed ClusterIP | failed LoadBalancer "
        f"| kill -> NotReady and out of the slices (goal <= {DETECTION_GOAL:g} s) | verdict |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for report in reports:
        p = report.phase
        during = f"{p.load_mean:.2f} / {max(p.load_during, default=0):.2f}"
        detected = f"{p.detection:.2f} s" if p.detection is not None else "not detected"
        print(
            f"| {p.name} ({report.seconds / 60:.1f} min) | {p.load_start:.2f} | {during} "
            f"| {p.false_not_ready} | {p.leader_changes} "
            + "".join(f"| {_failed(report, path)} " for path in PATHS)
            + f"| {detected} ({report.detection}) | {phase_verdict(p, demand)} |"
        )
    for report in reports:
        name = report.phase.name
        work = ", ".join(f"{what} {n:,}" for what, n in sorted(report.work.items()))
        print(f"\n{mode} {name}: work done: {work or 'none'}")
        if report.transitions:
            print(f"{mode} {name}: node and leader transitions (from the phase's start):")
            for line in report.transitions:
                print(f"  {line}")
        for path in PATHS:
            _, failures = report.requests.get(path, (0, []))
            if failures:
                print(f"{mode} {name}: {path} failures: {_kinds(failures)}")
                for failure in failures[:SHOWN_FAILURES]:
                    print(f"  {failure}")
