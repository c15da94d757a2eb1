"""`up`, `down`, `status`: the launcher's three verbs over one `$KUBELAB_HOME`.

`up` checks the config, then under the home's lock does one of three things:

- The record names a cluster that once became ready: restart only what is
  missing. Nothing that runs is touched (an actor restarted by hand, the same
  argv under a new pid, is followed, not replaced); every actor that is gone is
  started again stage by stage with its recorded argv, so on its previous
  addresses and ports, and waited on until ready. Its supervisor is stopped
  first (it would race us) and started afresh at the end. When everything runs,
  supervisor included, this is a no-op (`already_running`).
- A record from a kubelab that did not record its layout: left alone when all
  of it runs (a supervisor is started for it); otherwise like the next case.
- No record, or one from a start that never finished: stop what is left of
  it and start afresh: ports
  resolved, then stage by stage every actor spawned and recorded, then each one
  waited on until ready, then the supervisor. Only then is cluster.json marked
  ready. On any failure, KeyboardInterrupt included, every actor this call
  started is stopped and the record removed: a half-started cluster is worse
  than none.

`down` stops the supervisor first, so nothing is restarted during the
shutdown, then every recorded actor, last started first, and forgets the
cluster; `--purge` also deletes etcd's data and the logs (and the home, when
nothing else is in it). `status` only reads: the record and which recorded
processes still run (`follow`), supervisor included.

Every `up` makes the home private first (`make_private`): 0700 directories,
0600 files, fixing what an older kubelab left readable.

Concurrency: `up` and `down` hold an exclusive, non-blocking flock on
`$KUBELAB_HOME/.lock`, so two of them never interleave on one home; the
second fails at once with a `LabError` rather than waiting. Against the
supervisor, every rewrite of cluster.json is a read-modify-write under
`state_lock`.

Progress goes to a `Reporter` (the CLI draws spinners); the launcher itself
prints nothing.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kubelab.lab.errors import LabError
from kubelab.lab.ports import resolve_ports
from kubelab.lab.processes import (
    ProcessRecord,
    adopted,
    follow,
    now,
    respawn,
    spawn,
    start,
    stop_child,
    stop_process,
    wait_ready,
)
from kubelab.lab.specs import (
    CLUSTER_DOMAIN,
    LabConfig,
    Layout,
    ProcessSpec,
    check_config,
    cluster_stages,
    port_hosts,
)
from kubelab.lab.state import (
    PRIVATE_DIR,
    PRIVATE_FILE,
    ClusterState,
    layout_fields,
    make_private,
    read_state,
    state_lock,
    write_state,
)
from kubelab.pki import ensure_pki

SUPERVISOR = "supervisor"


class Reporter(Protocol):
    """How the launcher tells a human what it is doing (the CLI draws progress)."""

    def note(self, message: str) -> None: ...
    def starting(self, spec: ProcessSpec, address: str) -> None: ...
    def ready(self, spec: ProcessSpec, address: str, seconds: float) -> None: ...


class QuietReporter:
    def note(self, message: str) -> None:
        pass

    def starting(self, spec: ProcessSpec, address: str) -> None:
        pass

    def ready(self, spec: ProcessSpec, address: str, seconds: float) -> None:
        pass


@dataclass(frozen=True, slots=True)
class UpResult:
    state: ClusterState
    already_running: bool
    # Actors this `up` started again on a cluster that was partly running.
    restarted: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ProcessStatus:
    record: ProcessRecord  # as it runs now: a process restarted by hand has its new pid
    alive: bool


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    state: ClusterState
    processes: list[ProcessStatus]
    supervisor: ProcessStatus | None


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    home.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    fd = os.open(home / ".lock", os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise LabError(
                f"another kubelab up/down is running on {home}; try again when it is done"
            ) from None
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _save(config: LabConfig, state: ClusterState) -> None:
    with state_lock(config.home):
        write_state(config.state_file, state)


def _reread(config: LabConfig, state: ClusterState) -> ClusterState:
    """The record as it is now (a supervisor that just stopped may have rewritten it)."""
    try:
        return read_state(config.state_file) or state
    except (OSError, ValueError):
        return state


def _status(record: ProcessRecord) -> ProcessStatus:
    current = follow(record)
    return ProcessStatus(current or record, current is not None)


def supervisor_command(home: Path) -> list[str]:
    return [sys.executable, "-m", "kubelab.lab.supervisor", "--home", str(home)]


def _start_supervisor(config: LabConfig) -> ProcessRecord:
    command = supervisor_command(config.home)
    log = config.log_file(SUPERVISOR)
    started = now()
    proc = start(SUPERVISOR, command, log, config.home)
    return ProcessRecord(SUPERVISOR, proc.pid, "", str(log), command, started)


def _stop_supervisor(state: ClusterState) -> tuple[ProcessRecord, str] | None:
    if state.supervisor is None:
        return None
    current = follow(state.supervisor)
    if current is None:
        return state.supervisor, "not running"
    return current, stop_process(current)


def up(config: LabConfig, reporter: Reporter | None = None) -> UpResult:
    """Start the embedded cluster, or what is missing of it, and return once every
    actor is ready; a no-op when it all runs. On failure every actor this call
    started is stopped."""
    reporter = reporter or QuietReporter()
    check_config(config)
    with _locked(config.home):
        make_private(config)
        _ensure_pki(config)
        state = _recorded(config, reporter.note)
        if state is not None:
            layout = state.layout(config.home)
            if state.ready and layout is not None:
                return _restart_missing(config, state, layout, reporter)
            running = state.processes and all(follow(p) is not None for p in state.processes)
            if state.ready and running:
                return _supervise_as_is(config, state)
            _clean(config, state, reporter.note)
        return _fresh(config, reporter)


def _ensure_pki(config: LabConfig) -> None:
    """The cluster CA and every certificate, made once and kept (`kubelab.pki`): what
    the apiserver serves with and what the kubeconfig presents."""
    try:
        ensure_pki(
            config.pki_dir,
            nodes=[f"node-{n}" for n in range(1, config.nodes + 1)],
            api_sans=sorted({config.host, "127.0.0.1", "localhost"}),
            node_sans={f"node-{n}": [config.node_ip(n)] for n in range(1, config.nodes + 1)},
            cloud_sans=[config.host],
            now=datetime.datetime.now(datetime.UTC),
            service_cidr=config.service_cidr,
        )
    except (OSError, ValueError) as err:
        raise LabError(
            f"cannot make the cluster's certificates in {config.pki_dir}: {err}"
        ) from None


def _recorded(config: LabConfig, note: Callable[[str], None]) -> ClusterState | None:
    try:
        return read_state(config.state_file)
    except (OSError, ValueError) as err:
        note(f"ignoring unreadable {config.state_file} ({err}); starting afresh")
        config.state_file.unlink(missing_ok=True)
        return None


def _supervise_as_is(config: LabConfig, state: ClusterState) -> UpResult:
    """A running cluster recorded by a kubelab that did not record its layout:
    leave it be, and supervise it (the supervisor needs only the argv)."""
    if state.supervisor is None or follow(state.supervisor) is None:
        state.supervisor = _start_supervisor(config)
        _save(config, state)
    return UpResult(state, already_running=True)


def _clean(config: LabConfig, state: ClusterState, note: Callable[[str], None]) -> None:
    """Stop what is left of a cluster that cannot be restarted in place, and forget it."""
    running = [(record, follow(record)) for record in state.processes]
    gone = ", ".join(f"{r.name} (pid {r.pid})" for r, current in running if current is None)
    note(f"found a stale cluster.json ({gone or 'startup never finished'}); cleaning up")
    _stop_supervisor(state)
    for _, current in reversed(running):
        if current is not None:
            stop_process(current)
    config.state_file.unlink(missing_ok=True)


def _restart_missing(
    config: LabConfig, state: ClusterState, layout: Layout, reporter: Reporter
) -> UpResult:
    """Start again, where they were, the recorded actors that are not running."""
    running = all(follow(p) is not None for p in state.processes)
    if running and state.supervisor is not None and follow(state.supervisor) is not None:
        return UpResult(state, already_running=True)
    _stop_supervisor(state)  # it must not restart what we are restarting
    state = _reread(config, state)
    records = {p.name: p for p in state.processes}
    restarted: list[str] = []
    children: list[subprocess.Popen[bytes]] = []
    try:
        for stage in cluster_stages(layout.config):
            started: list[tuple[ProcessSpec, subprocess.Popen[bytes], float]] = []
            for spec in stage:
                record = records.get(spec.name)
                if record is None:
                    continue
                current = follow(record)
                if current is not None:
                    if current.pid != record.pid:
                        reporter.note(f"{spec.name} runs as pid {current.pid} (restarted by hand)")
                        state.replace_record(adopted(record, current.pid))
                    continue
                reporter.starting(spec, record.address)
                proc, restarted_record = respawn(record, config.home)
                children.append(proc)
                restarted.append(spec.name)
                state.replace_record(restarted_record)
                _save(config, state)
                started.append((spec, proc, time.monotonic()))
            for spec, proc, began in started:
                wait_ready(spec, layout, proc)
                reporter.ready(spec, records[spec.name].address, time.monotonic() - began)
        state.supervisor = _start_supervisor(config)
    except BaseException:
        # Only what this call started: everything else was running and stays so.
        for child in reversed(children):
            stop_child(child)
        _save(config, state)
        raise
    _save(config, state)
    return UpResult(state, already_running=False, restarted=tuple(restarted))


def _fresh(config: LabConfig, reporter: Reporter) -> UpResult:
    stages = cluster_stages(config)
    specs = [spec for stage in stages for spec in stage]
    ports = resolve_ports(config, specs, reporter.note)
    layout = Layout(config, ports, port_hosts(config, specs))
    config.logs_dir.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    state = ClusterState(
        processes=[],
        ready=False,
        started=now(),
        fields={
            "home": str(config.home),
            "service_cidr": config.service_cidr,
            "node_port_range": config.node_port_range,
            "lb_pool": config.lb_pool,
            "cluster_domain": CLUSTER_DOMAIN,
            "layout": layout_fields(layout),
        },
    )
    children: list[subprocess.Popen[bytes]] = []
    try:
        for stage in stages:
            started: list[tuple[ProcessSpec, subprocess.Popen[bytes], float]] = []
            for spec in stage:
                address = spec.location(layout)
                reporter.starting(spec, address)
                proc, record = spawn(spec, layout)
                children.append(proc)
                state.processes.append(record)
                if spec.state_key:
                    state.fields[spec.state_key] = address
                state.fields.update(spec.endpoint_urls(layout))
                _save(config, state)
                started.append((spec, proc, time.monotonic()))
            for spec, proc, began in started:
                wait_ready(spec, layout, proc)
                reporter.ready(spec, spec.location(layout), time.monotonic() - began)
        state.ready = True
        state.supervisor = _start_supervisor(config)
        _save(config, state)
    except BaseException:
        # Includes KeyboardInterrupt: a half-started cluster is worse than none.
        if state.supervisor is not None:
            stop_process(state.supervisor)
        for child in reversed(children):
            stop_child(child)
        config.state_file.unlink(missing_ok=True)
        raise
    return UpResult(state, already_running=False)


def down(config: LabConfig, *, purge: bool = False) -> list[tuple[ProcessRecord, str]]:
    """Stop the supervisor, then every recorded actor (last started first), and
    forget the cluster; `purge` also deletes etcd's data and the logs. Returns
    what happened to each."""
    outcomes: list[tuple[ProcessRecord, str]] = []
    if not config.home.exists():
        return outcomes
    with _locked(config.home):
        try:
            state = read_state(config.state_file)
        except (OSError, ValueError):
            state = None  # an unreadable record names no process we could trust
        if state is not None:
            stopped = _stop_supervisor(state)
            if stopped is not None:
                outcomes.append(stopped)
                state = _reread(config, state)
            for record in reversed(state.processes):
                current = follow(record)
                outcomes.append(
                    (current, stop_process(current)) if current else (record, "not running")
                )
        config.state_file.unlink(missing_ok=True)
        if purge:
            shutil.rmtree(config.etcd_dir, ignore_errors=True)
            shutil.rmtree(config.logs_dir, ignore_errors=True)
            shutil.rmtree(config.nodes_dir, ignore_errors=True)
            config.cloud_snapshot_file.unlink(missing_ok=True)  # it describes that etcd
            shutil.rmtree(config.pki_dir, ignore_errors=True)  # a new cluster, a new CA
    if purge:
        (config.home / "kubeconfig").unlink(missing_ok=True)
        for lock in (".lock", ".state.lock"):
            (config.home / lock).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            config.home.rmdir()  # only when nothing but ours was in it
    return outcomes


def status(config: LabConfig) -> ClusterStatus | None:
    """The recorded cluster and which of its processes run; None when none."""
    state = read_state(config.state_file)
    if state is None:
        return None
    supervisor = _status(state.supervisor) if state.supervisor is not None else None
    return ClusterStatus(state, [_status(p) for p in state.processes], supervisor)
