"""The chaos suite's table as Markdown, for the README.

    .venv/bin/python bench/chaos_report.py [--file bench/results/chaos.json]

`pytest -m chaos` (tests/chaos) keeps each scenario's latest row in
bench/results/chaos.json: its measurements, the table cells made from them, when it ran
and on which commit. This prints those rows as one Markdown table, in scenario order,
with the date and commit they were measured at (per row when they differ).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "chaos.json"


def cell(text: str) -> str:
    """A table cell: pipes escaped, line breaks flattened."""
    return text.replace("|", "\\|").replace("\r", "").replace("\n", " ")


def render(data: dict[str, Any]) -> str:
    rows: list[dict[str, Any]] = list(data.get("rows", {}).values())
    if not rows:
        return "No chaos results yet: run `pytest -m chaos`.\n"
    columns = [*data["columns"], "result"]
    stamps = {(row["date"][:10], row["commit"]) for row in rows}
    per_row = len(stamps) > 1
    if per_row:
        columns.append("measured")
    lines = []
    if not per_row:
        ((date, commit),) = stamps
        lines += [f"Measured {date} on commit `{commit}` (`pytest -m chaos`).", ""]
    lines += [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for row in rows:
        cells = [*row["cells"], row.get("outcome") or "?"]
        if per_row:
            cells.append(f"{row['date'][:10]} `{row['commit']}`")
        lines.append("| " + " | ".join(cell(c) for c in cells) + " |")
    total = sum(float(row.get("seconds", 0.0)) for row in rows)
    lines += ["", f"{len(rows)} scenarios, {total:.0f} s in all (each on a fresh lab)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, default=RESULTS, help="the results file")
    args = parser.parse_args(argv)
    try:
        data = json.loads(args.file.read_text())
    except FileNotFoundError:
        print(f"{args.file} does not exist: run `pytest -m chaos` first", file=sys.stderr)
        return 1
    sys.stdout.write(render(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
