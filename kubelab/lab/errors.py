"""How the launcher fails: one `LabError`, carrying the failing actor's log tail.

Every failure `up` and `down` can explain (a taken port, a bad flag, an actor
that exits or never gets ready, a second launcher on the same home) is a
`LabError` with one sentence for a human. When an actor is to blame it also
names that actor's log, and `log_tail()` returns the lines its *latest* run
wrote: each spawn first appends a `RUN_MARK` line (`kubelab.lab.processes`),
and the tail starts after the last one, so an old run's crash never shows up
as the reason this one failed. Reading the log is best effort: an unreadable
log is an empty tail, never a second error.
"""

from __future__ import annotations

from pathlib import Path

LOG_TAIL_LINES = 20
RUN_MARK = "==== kubelab up: "


class LabError(Exception):
    """A launcher failure worth one clear message (and the actor's log tail, if any)."""

    def __init__(self, message: str, *, log: Path | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.log = log

    def log_tail(self) -> str:
        return tail_log(self.log) if self.log is not None else ""


def tail_log(log: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines the latest run wrote to an actor's log."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    mark = text.rfind(RUN_MARK)
    if mark >= 0:
        text = text[text.find("\n", mark) + 1 :]
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])
