"""`up`, `down`, `status`: the launcher's three verbs over one `$KUBELAB_HOME`.

`up` checks the config, then under the home's lock either finds a live
cluster (a no-op, `already_running`) or cleans a stale one and starts afresh:
ports resolved, then stage by stage every actor spawned and recorded, then
each one waited on until ready. Only then is cluster.json marked ready. On
any failure, KeyboardInterrupt included, every actor this call started is
stopped and the record removed: a half-started cluster is worse than none.

`down` stops every recorded actor, last started first, and forgets the
cluster; `--purge` also deletes etcd's data and the logs (and the home, when
nothing else is in it). `status` only reads: the record and which recorded
processes are still ours and alive.

Concurrency: `up` and `down` hold an exclusive, non-blocking flock on
`$KUBELAB_HOME/.lock`, so two of them never interleave on one home; the
second fails at once with a `LabError` rather than waiting.

Progress goes to a `Reporter` (the CLI draws spinners); the launcher itself
prints nothing.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kubelab.lab.errors import LabError
from kubelab.lab.ports import resolve_ports
from kubelab.lab.processes import (
    ProcessRecord,
    now,
    process_alive,
    spawn,
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
from kubelab.lab.state import ClusterState, clean_stale, read_state, write_state


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


@dataclass(frozen=True, slots=True)
class ProcessStatus:
    record: ProcessRecord
    alive: bool


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise LabError(
                f"another kubelab up/down is running on {home}; try again when it is done"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def up(config: LabConfig, reporter: Reporter | None = None) -> UpResult:
    """Start the embedded cluster and return once every actor is ready; a no-op
    when it already runs. On failure every actor this call started is stopped."""
    reporter = reporter or QuietReporter()
    check_config(config)
    with _locked(config.home):
        running = clean_stale(config, reporter.note)
        if running is not None:
            return UpResult(running, already_running=True)
        stages = cluster_stages(config)
        specs = [spec for stage in stages for spec in stage]
        ports = resolve_ports(config, specs, reporter.note)
        layout = Layout(config, ports, port_hosts(config, specs))
        config.logs_dir.mkdir(parents=True, exist_ok=True)
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
                    write_state(config.state_file, state)
                    started.append((spec, proc, time.monotonic()))
                for spec, proc, began in started:
                    wait_ready(spec, layout, proc)
                    reporter.ready(spec, spec.location(layout), time.monotonic() - began)
        except BaseException:
            # Includes KeyboardInterrupt: a half-started cluster is worse than none.
            for child in reversed(children):
                stop_child(child)
            config.state_file.unlink(missing_ok=True)
            raise
        state.ready = True
        write_state(config.state_file, state)
        return UpResult(state, already_running=False)


def down(config: LabConfig, *, purge: bool = False) -> list[tuple[ProcessRecord, str]]:
    """Stop every recorded actor (last started first) and forget the cluster;
    `purge` also deletes etcd's data and the logs. Returns what happened to each."""
    outcomes: list[tuple[ProcessRecord, str]] = []
    if not config.home.exists():
        return outcomes
    with _locked(config.home):
        try:
            state = read_state(config.state_file)
        except (OSError, ValueError):
            state = None  # an unreadable record names no process we could trust
        if state is not None:
            for record in reversed(state.processes):
                outcomes.append((record, stop_process(record)))
        config.state_file.unlink(missing_ok=True)
        if purge:
            shutil.rmtree(config.etcd_dir, ignore_errors=True)
            shutil.rmtree(config.logs_dir, ignore_errors=True)
            shutil.rmtree(config.nodes_dir, ignore_errors=True)
    if purge:
        (config.home / ".lock").unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            config.home.rmdir()  # only when nothing but ours was in it
    return outcomes


def status(config: LabConfig) -> tuple[ClusterState, list[ProcessStatus]] | None:
    """The recorded cluster and which of its processes are alive; None when none."""
    state = read_state(config.state_file)
    if state is None:
        return None
    return state, [ProcessStatus(p, process_alive(p)) for p in state.processes]
