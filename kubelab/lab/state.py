"""cluster.json: the record of what `kubelab up` started, and when it is stale.

What was started is recorded in `$KUBELAB_HOME/cluster.json` (format in
`kubelab.home`): one `ProcessRecord` per actor, the top-level fields clients
read (`api`, `etcd`, the settings used) and `ready`, set only once every
actor passed its readiness check. The launcher rewrites it after each spawn,
so a `kubelab up` that dies half-way still leaves a record that `down` (or
the next `up`) can clean. Writes go to a temporary file renamed over the old
one, so a reader never sees half a record.

A record is *live* when it says ready and every recorded process is alive
(`process_alive`: same pid, same argv). Anything else is stale: a crashed
run, a `kill -9`, a reboot. `clean_stale` stops what is left of it, last
started first, and removes the record. An unreadable record is a `ValueError`
from `read_state`; the launcher treats it as naming no process it could trust.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kubelab.lab.processes import ProcessRecord, process_alive, stop_process
from kubelab.lab.specs import LabConfig


@dataclass(slots=True)
class ClusterState:
    """cluster.json: the actors started, whether startup finished, and the
    top-level fields clients read (`api`, `etcd`, the settings used)."""

    processes: list[ProcessRecord]
    ready: bool
    started: str
    fields: dict[str, Any]

    def address(self, key: str) -> str | None:
        value = self.fields.get(key)
        return value if isinstance(value, str) else None

    def to_json(self) -> dict[str, Any]:
        return {
            **self.fields,
            "ready": self.ready,
            "started": self.started,
            "processes": [asdict(p) for p in self.processes],
        }

    @classmethod
    def from_json(cls, data: object) -> ClusterState:
        if not isinstance(data, dict) or not isinstance(data.get("processes"), list):
            raise ValueError("not a kubelab cluster.json")
        try:
            processes = [
                ProcessRecord(
                    name=str(raw["name"]),
                    pid=int(raw["pid"]),
                    address=str(raw.get("address", "")),
                    log=str(raw.get("log", "")),
                    command=[str(arg) for arg in raw["command"]],
                    started=str(raw.get("started", "")),
                )
                for raw in data["processes"]
            ]
        except (KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"bad process record: {err!r}") from None
        fields = {k: v for k, v in data.items() if k not in ("processes", "ready", "started")}
        return cls(processes, bool(data.get("ready")), str(data.get("started", "")), fields)


def read_state(state_file: Path) -> ClusterState | None:
    """The recorded cluster, None when there is none; ValueError when unreadable."""
    try:
        text = state_file.read_text()
    except FileNotFoundError:
        return None
    return ClusterState.from_json(json.loads(text))


def write_state(state_file: Path, state: ClusterState) -> None:
    tmp = state_file.with_name(state_file.name + ".tmp")
    tmp.write_text(json.dumps(state.to_json(), indent=2) + "\n")
    tmp.replace(state_file)


def clean_stale(config: LabConfig, note: Callable[[str], None]) -> ClusterState | None:
    """The running cluster if the record is live; otherwise stop what is left of
    a crashed run, remove the record and return None."""
    try:
        state = read_state(config.state_file)
    except (OSError, ValueError) as err:
        note(f"ignoring unreadable {config.state_file} ({err}); starting afresh")
        config.state_file.unlink(missing_ok=True)
        return None
    if state is None:
        return None
    alive = [p for p in state.processes if process_alive(p)]
    if state.ready and state.processes and len(alive) == len(state.processes):
        return state
    gone = ", ".join(f"{p.name} (pid {p.pid})" for p in state.processes if p not in alive)
    note(f"found a stale cluster.json ({gone or 'startup never finished'}); cleaning up")
    for record in reversed(alive):
        stop_process(record)
    config.state_file.unlink(missing_ok=True)
    return None
