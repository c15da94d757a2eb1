"""Actor processes: spawning them detached, waiting for them, stopping them.

Every actor runs detached (`start_new_session=True`, stdin from /dev/null,
stdout+stderr appended to `$KUBELAB_HOME/logs/<name>.log`, cwd the home), so
it outlives the `kubelab up` that started it, the way `kind create cluster`
leaves containers running. Each spawn appends a `RUN_MARK` line with the argv
to the log first, so a failure shows only this run's lines
(`kubelab.lab.errors.tail_log`). Actors run with umask 077 and their logs are
created 0600: what they write (etcd's data, pods' logs) is the user's alone.

Process identity: a pid alone is not proof; after a crash or reboot the pid may
belong to another program. A recorded process counts as ours only while
`/proc/<pid>/cmdline` equals the argv we spawned it with (and it is not a
zombie). `stop_process` signals only such processes, so `down` never kills a
stranger. A child this very process spawned is proved by its `Popen` instead
(`stop_child`): its pid cannot be reused before we reap it. An actor restarted
by hand (the same argv, say copied from its log's RUN_MARK line) has a new pid:
`follow` finds it by that argv among the user's processes, so status, down
and the supervisor keep track of it.

Stopping is SIGTERM to the actor's whole process group, a grace period, then
SIGKILL. Waits are polls of a condition (readiness, process exit) against a
deadline; nothing sleeps and hopes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from kubelab.lab.errors import RUN_MARK, LabError
from kubelab.lab.specs import Layout, ProcessSpec

STOP_GRACE_SECONDS = 10.0
POLL_INTERVAL = 0.1


@dataclass(frozen=True, slots=True)
class ProcessRecord:
    """One started actor as cluster.json records it: enough to find it again."""

    name: str
    pid: int
    address: str
    log: str
    command: list[str]
    started: str
    restarts: int = 0


def now() -> str:
    """A timestamp as records and log marks carry it (UTC, whole seconds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def process_alive(record: ProcessRecord) -> bool:
    """The recorded pid still runs the recorded command (not a zombie, not a stranger)."""
    if Path("/proc/self").exists():
        return _matches(record.pid, record.command)
    try:  # no /proc (macOS): the pid is all we can check
        os.kill(record.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, someone else's
    return True


def _matches(pid: int, command: list[str]) -> bool:
    """`pid` is one of the user's live (not zombie) processes running exactly `command`."""
    proc = Path("/proc") / str(pid)
    try:
        if proc.stat().st_uid != os.getuid():
            return False
        if (proc / "cmdline").read_bytes().split(b"\0")[:-1] != [os.fsencode(a) for a in command]:
            return False
        stat = (proc / "stat").read_text()
    except OSError:
        return False
    # Field 3 of stat, after the parenthesised command name, is the state.
    return not stat[stat.rfind(")") + 2 :].startswith("Z")


def find_process(command: list[str]) -> int | None:
    """The pid of one of the user's processes running exactly `command`, if any
    (lowest first: the one started earliest, as a rule)."""
    try:
        pids = sorted(int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit())
    except OSError:
        return None
    return next((pid for pid in pids if _matches(pid, command)), None)


def follow(record: ProcessRecord) -> ProcessRecord | None:
    """The record as it stands now: itself while its pid is alive, the same
    command under a new pid when someone restarted it by hand, None when gone."""
    if process_alive(record):
        return record
    if not Path("/proc/self").exists():
        return None
    pid = find_process(record.command)
    return replace(record, pid=pid) if pid is not None else None


def adopted(record: ProcessRecord, pid: int) -> ProcessRecord:
    """The record of an actor someone restarted by hand as `pid`: one more restart,
    started now (as far as we can tell), so a crash soon after backs off."""
    return replace(record, pid=pid, started=now(), restarts=record.restarts + 1)


def _signal(record: ProcessRecord, sig: signal.Signals) -> None:
    """Signal the actor's whole session (it leads its own process group), so
    anything it spawned (pods, later) goes too."""
    try:
        if os.getpgid(record.pid) == record.pid:
            os.killpg(record.pid, sig)
        else:
            os.kill(record.pid, sig)
    except ProcessLookupError:
        pass


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll `condition` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL)


def stop_process(record: ProcessRecord, grace: float = STOP_GRACE_SECONDS) -> str:
    """SIGTERM, wait up to `grace` for exit, then SIGKILL. Returns what happened:
    "not running", "stopped" or "killed"."""
    if not process_alive(record):
        return "not running"
    _signal(record, signal.SIGTERM)
    if wait_until(lambda: not process_alive(record), grace):
        return "stopped"
    _signal(record, signal.SIGKILL)
    wait_until(lambda: not process_alive(record), grace)
    return "killed"


def stop_child(proc: subprocess.Popen[bytes], grace: float = STOP_GRACE_SECONDS) -> None:
    """Stop an actor this process spawned. Its Popen is proof of identity (the pid
    cannot be reused before we reap it), so no cmdline check: right after exec
    the kernel may still show an empty cmdline."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)  # it leads its own session (start_new_session)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)


def open_private_log(log: Path) -> BinaryIO:
    """`log` opened for appending, readable by the user alone (an older one is fixed)."""
    log.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "ab")


def start(name: str, command: list[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """Start `command` detached, its output appended to `log` after a RUN_MARK
    line; raises `LabError` when it cannot be executed at all."""
    with open_private_log(log) as out:
        out.write(f"{RUN_MARK}{now()} {' '.join(command)}\n".encode())
        out.flush()
        try:
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd,  # not the caller's cwd: `-m` must not find a stray package
                # Logs go to files a person tails: readable text unless asked otherwise.
                env={"KUBELAB_LOG_FORMAT": "text", **os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
                umask=0o077,
            )
        except OSError as err:
            raise LabError(f"cannot start {name}: {err}", log=log) from None


def spawn(spec: ProcessSpec, layout: Layout) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
    """Start one actor detached, its output appended to its log; raises
    `LabError` when it cannot be executed at all."""
    config = layout.config
    command = spec.command(layout)
    log = config.log_file(spec.name)
    started = now()
    proc = start(spec.name, command, log, config.home)
    record = ProcessRecord(
        name=spec.name,
        pid=proc.pid,
        address=spec.location(layout),
        log=str(log),
        command=command,
        started=started,
    )
    return proc, record


def respawn(record: ProcessRecord, home: Path) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
    """Start a recorded actor again, exactly as before (same argv, so the same
    addresses and ports), one more restart on its record."""
    started = now()
    proc = start(record.name, record.command, Path(record.log), home)
    return proc, replace(record, pid=proc.pid, started=started, restarts=record.restarts + 1)


def wait_ready(spec: ProcessSpec, layout: Layout, proc: subprocess.Popen[bytes]) -> None:
    """Return once the actor's readiness probe passes; `LabError` (naming its
    log) when it exits first or `spec.ready_timeout` runs out."""
    log = layout.config.log_file(spec.name)
    exited: list[int] = []

    def ready_or_exited() -> bool:
        code = proc.poll()
        if code is not None:
            exited.append(code)
            return True
        return spec.ready(layout)

    if not wait_until(ready_or_exited, spec.ready_timeout):
        raise LabError(
            f"{spec.name} did not become ready at {spec.location(layout)} "
            f"within {spec.ready_timeout:.0f}s (log: {log})",
            log=log,
        )
    if exited:
        raise LabError(
            f"{spec.name} exited with code {exited[0]} before it was ready (log: {log})",
            log=log,
        )
