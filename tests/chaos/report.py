"""What each chaos scenario measured: one `Row` per scenario, kept in
bench/results/chaos.json (each scenario's latest row, with its date and commit) and
printed as a table at the end of the pytest session (tests/chaos/conftest.py).

A row carries its raw numbers and the table cells made from them, so
`bench/chaos_report.py` renders the same table as Markdown without knowing the fields.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kubelab.testing.docker import REPO_ROOT

RESULTS = REPO_ROOT / "bench" / "results" / "chaos.json"
COLUMNS = (
    "scenario",
    "failed NodePort (total / ≥3 s)",
    "failed LB (total / ≥3 s)",
    "endpoints gone",
    "replacements Ready",
    "notes",
    "invariants",
)


@dataclass
class Loop:
    """One request loop's outcome: requests, failures, and the failures of requests that
    began at the failure moment or later (`new`) and 3 s after it or later (`late`)."""

    requests: int
    failed: int
    new: int
    late: int
    errors: list[str] = field(default_factory=list)  # the failures' kinds, for the notes

    def cell(self) -> str:
        return f"{self.failed} / {self.late} of {self.requests}"


@dataclass
class Row:
    scenario: str
    nodeport: Loop | None = None
    lb: Loop | None = None
    endpoints_gone_s: float | None = None
    replacements_ready_s: float | None = None
    notes: list[str] = field(default_factory=list)
    invariants: str = "not checked"
    misses: list[str] = field(default_factory=list)  # targets missed, each with its value
    outcome: str = ""  # passed | failed | error, set by the fixture
    seconds: float = 0.0  # the whole scenario, lab up and down included

    def note(self, text: str) -> None:
        self.notes.append(text)

    def target(self, met: bool, what: str) -> None:
        """Record a target: `what` names it and the measured value."""
        if not met:
            self.misses.append(what)

    def cells(self) -> list[str]:
        misses = [f"MISSED {m}" for m in self.misses]
        return [
            self.scenario,
            self.nodeport.cell() if self.nodeport else "—",
            self.lb.cell() if self.lb else "—",
            seconds(self.endpoints_gone_s),
            seconds(self.replacements_ready_s),
            "; ".join([*self.notes, *misses]) or "—",
            self.invariants,
        ]


def seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def git_commit() -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    dirty = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    ).stdout.strip()
    commit = done.stdout.strip() or "unknown"
    return f"{commit}+dirty" if dirty and commit != "unknown" else commit


def save(row: Row, run: str, path: Path = RESULTS) -> None:
    """Put `row` into the results file in place of the scenario's previous row."""
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    rows = data.setdefault("rows", {})
    rows[row.scenario] = {
        **asdict(row),
        "cells": row.cells(),
        "run": run,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
    }
    data["columns"] = list(COLUMNS)
    data["rows"] = dict(sorted(rows.items(), key=lambda item: scenario_order(item[0])))
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as out:
        json.dump(data, out, indent=2, ensure_ascii=False)
        out.write("\n")
    os.replace(out.name, path)


def scenario_order(name: str) -> tuple[int, str]:
    number, _, _ = name.partition(".")
    return (int(number), name) if number.isdigit() else (99, name)


def text_table(rows: list[Row]) -> str:
    """A plain table for the terminal, wrapped notes and all."""
    ordered = sorted(rows, key=lambda r: scenario_order(r.scenario))
    body = [[*row.cells(), row.outcome] for row in ordered]
    header = [*COLUMNS, "result"]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    notes = COLUMNS.index("notes")
    widths[notes] = min(widths[notes], 70)
    lines = []
    for line in [header, *body]:
        wrapped = _wrap(line[notes], widths[notes])
        for n, part in enumerate(wrapped):
            cells = [
                (cell if n == 0 else "").ljust(widths[i]) if i != notes else part.ljust(widths[i])
                for i, cell in enumerate(line)
            ]
            lines.append(" | ".join(cells).rstrip())
        if line is header:
            lines.append("-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def _wrap(text: str, width: int) -> list[str]:
    parts: list[str] = []
    current = ""
    for piece in text.split("; "):
        candidate = f"{current}; {piece}" if current else piece
        if current and len(candidate) > width:
            parts.append(current + ";")
            current = piece
        else:
            current = candidate
    parts.append(current)
    return parts
