"""The embedded cluster's supervisor: an actor that exits is started again, as
systemd (`Restart=always`) or the kubelet (restartPolicy Always) would.

`kubelab up` starts it, detached like the actors, once every actor is ready and
records it in cluster.json; `kubelab down` stops it before any actor, so nothing
is restarted during a shutdown; a `kubelab up` that finds actors missing stops
it, starts what is missing itself (reporting progress), then starts a fresh one.
It is not imported by `kubelab.lab`: it runs as `python -m kubelab.lab.supervisor`.

Every `POLL` seconds it looks at each recorded actor with `follow`: the recorded
pid still runs the recorded argv, or the same argv runs under a new pid because
someone restarted it by hand, which it adopts (and records). An actor that is
gone is started again with its recorded argv, so on the same addresses and
ports, after the kubelet's crash-loop back-off (`RestartBackoff`): the first
restart at once, then 1 s, doubling up to 30 s; an actor that ran 60 s starts
over. Each restart is one log line naming the actor and one more `restarts` on
its record, rewritten under `state_lock`.

The first actors are not its children (`kubelab up` started them and exited),
so it polls rather than waits; the ones it starts it reaps. SIGTERM ends it
after the step under way, leaving every actor running. It exits by itself
when cluster.json is gone (a `down --purge` it missed).
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from kubelab.core.pod_status import RestartBackoff
from kubelab.lab.errors import LabError
from kubelab.lab.processes import ProcessRecord, adopted, follow, now, respawn
from kubelab.lab.state import read_state, state_lock, write_state
from kubelab.obs.logs import kobj, setup_logging

POLL = 0.2
INITIAL_BACKOFF = 1.0
MAX_BACKOFF = 30.0
RESET_AFTER = 60.0

log = logging.getLogger("kubelab.lab.supervisor")


def ran_for(record: ProcessRecord) -> float:
    """Seconds since the record's start (0 when it has no readable time)."""
    try:
        began = datetime.fromisoformat(record.started)
    except ValueError:
        return 0.0
    return max(0.0, (datetime.now(UTC) - began).total_seconds())


class Supervisor:
    """Keeps one home's recorded actors running; `tick` is one look at all of them."""

    def __init__(self, home: Path, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.home = home
        self.clock = clock  # when restarts are due (tests step it)
        self.state_file = home / "cluster.json"
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.backoffs: dict[str, RestartBackoff] = {}
        self.due: dict[str, float] = {}  # actor -> when its pending restart is due

    def tick(self) -> bool:
        """Restart what is due, adopt what came back by hand; False once the
        cluster is gone."""
        for child in self.children.values():
            child.poll()  # reap, so a dead child is not a live zombie
        with state_lock(self.home):
            try:
                state = read_state(self.state_file)
            except (OSError, ValueError) as err:
                log.error("cannot read %s: %s", self.state_file, err)
                return True  # look again next time: a running `up` rewrites it
            if state is None:
                return False
            changed = False
            for record in state.processes:
                current = self._check(record)
                if current != record:
                    state.replace_record(current)
                    changed = True
            if changed:
                write_state(self.state_file, state)
        return True

    def _check(self, record: ProcessRecord) -> ProcessRecord:
        name = record.name
        current = follow(record)
        if current is not None:
            if current.pid != record.pid:
                self.due.pop(name, None)
                log.info(
                    "%s runs again as pid %d (started by hand); following it",
                    name,
                    current.pid,
                    extra=kobj(name, kind="actor"),
                )
                return adopted(record, current.pid)
            return record
        backoff = self.backoffs.setdefault(
            name, RestartBackoff(INITIAL_BACKOFF, MAX_BACKOFF, RESET_AFTER)
        )
        moment = self.clock()
        if name not in self.due:
            delay = backoff.next(ran_for=ran_for(record))
            self.due[name] = moment + delay
            child = self.children.get(name)
            code = child.returncode if child is not None and child.pid == record.pid else None
            log.warning(
                "%s (pid %d) exited%s after %.1fs; restarting it in %.1fs",
                name,
                record.pid,
                f" with code {code}" if code is not None else "",
                ran_for(record),
                delay,
                extra=kobj(name, kind="actor"),
            )
        if moment < self.due[name]:
            return record
        del self.due[name]
        try:
            proc, restarted = respawn(record, self.home)
        except LabError as err:
            log.error("%s", err.message, extra=kobj(name, kind="actor"))
            return replace(record, started=now())  # so the next try backs off further
        self.children[name] = proc
        log.info(
            "%s restarted as pid %d (restart %d)",
            name,
            proc.pid,
            restarted.restarts,
            extra=kobj(name, kind="actor"),
        )
        return restarted


def supervise(home: Path, stop: threading.Event) -> None:
    supervisor = Supervisor(home)
    log.info("supervising the actors recorded in %s", supervisor.state_file)
    while not stop.is_set():
        try:
            if not supervisor.tick():
                log.info("%s is gone; nothing left to supervise", supervisor.state_file)
                return
        except OSError as err:  # a full disk, a home made unwritable: try again next time
            log.error("cannot supervise: %s", err)
        stop.wait(POLL)
    log.info("stopping; the actors keep running")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="kubelab.lab.supervisor", description=__doc__)
    parser.add_argument("--home", type=Path, required=True, help="The cluster's KUBELAB_HOME.")
    args = parser.parse_args(argv)
    setup_logging("supervisor")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    supervise(args.home, stop)


if __name__ == "__main__":
    main()
