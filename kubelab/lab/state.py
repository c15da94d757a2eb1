"""cluster.json: the record of what `kubelab up` started, and keeping it private.

What was started is recorded in `$KUBELAB_HOME/cluster.json` (format in
`kubelab.home`): one `ProcessRecord` per actor (pid, argv, restarts), the
supervisor's record, the top-level fields clients read (`api`, `etcd`, the
settings used), the resolved `layout` (every port, the node settings: enough to
start any actor again where it was) and `ready`, set only once every actor
passed its readiness check. The launcher rewrites it after each spawn, so a
`kubelab up` that dies half-way still leaves a record that `down` (or the next
`up`) can clean. Writes go to a temporary file renamed over the old one, so a
reader never sees half a record; the launcher and the supervisor both rewrite
it, each read-modify-write under `state_lock` so neither loses the other's.

Privacy: the home and its directories are 0700, cluster.json, the lock and
logs 0600, as they are written; `make_private` fixes a home an older kubelab
left readable. An unreadable record is a `ValueError` from `read_state`; the
launcher treats it as naming no process it could trust.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kubelab.lab.processes import ProcessRecord
from kubelab.lab.specs import LabConfig, Layout

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
_OWN_KEYS = ("processes", "ready", "started", "supervisor")
# Everything kubelab keeps in a home.
_HOME_ENTRIES = {
    *("cluster.json", "cluster.json.tmp", ".lock", ".state.lock", "kubeconfig", "kubeconfig.tmp"),
    *("logs", "etcd", "nodes"),
    "cloud-forwarding.json",  # the cloud-stub's snapshot (`LabConfig.cloud_snapshot_file`)
    "pki",  # the cluster's CA and certificates (`LabConfig.pki_dir`)
}


def _record(raw: Any) -> ProcessRecord:
    return ProcessRecord(
        name=str(raw["name"]),
        pid=int(raw["pid"]),
        address=str(raw.get("address", "")),
        log=str(raw.get("log", "")),
        command=[str(arg) for arg in raw["command"]],
        started=str(raw.get("started", "")),
        restarts=int(raw.get("restarts", 0)),
    )


@dataclass(slots=True)
class ClusterState:
    """cluster.json: the actors started, whether startup finished, the supervisor,
    and the top-level fields clients read (`api`, `etcd`, the settings used)."""

    processes: list[ProcessRecord]
    ready: bool
    started: str
    fields: dict[str, Any]
    supervisor: ProcessRecord | None = field(default=None)

    def address(self, key: str) -> str | None:
        value = self.fields.get(key)
        return value if isinstance(value, str) else None

    def replace_record(self, record: ProcessRecord) -> None:
        """Put `record` in place of the one with its name."""
        self.processes = [record if p.name == record.name else p for p in self.processes]

    def layout(self, home: Path) -> Layout | None:
        """The resolved layout the actors were started with; None for a record
        written before kubelab recorded it."""
        raw = self.fields.get("layout")
        if not isinstance(raw, dict):
            return None
        try:
            config = LabConfig(
                home=home,
                ports={str(k): int(v) for k, v in raw["ports"].items()},
                service_cidr=str(self.fields["service_cidr"]),
                node_port_range=str(self.fields["node_port_range"]),
                host=str(raw["host"]),
                nodes=int(raw["nodes"]),
                node_ip_base=str(raw["node_ip_base"]),
                pod_network=str(raw["pod_network"]),
                lb_pool=str(self.fields["lb_pool"]),
            )
            hosts = {str(k): str(v) for k, v in raw["hosts"].items()}
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        return Layout(config, {k: v for k, v in config.ports.items() if v is not None}, hosts)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.fields,
            "ready": self.ready,
            "started": self.started,
            "processes": [asdict(p) for p in self.processes],
            "supervisor": asdict(self.supervisor) if self.supervisor else None,
        }

    @classmethod
    def from_json(cls, data: object) -> ClusterState:
        if not isinstance(data, dict) or not isinstance(data.get("processes"), list):
            raise ValueError("not a kubelab cluster.json")
        try:
            processes = [_record(raw) for raw in data["processes"]]
            raw_supervisor = data.get("supervisor")
            supervisor = _record(raw_supervisor) if raw_supervisor else None
        except (KeyError, TypeError, AttributeError, ValueError) as err:
            raise ValueError(f"bad process record: {err!r}") from None
        fields = {k: v for k, v in data.items() if k not in _OWN_KEYS}
        return cls(
            processes, bool(data.get("ready")), str(data.get("started", "")), fields, supervisor
        )


def layout_fields(layout: Layout) -> dict[str, Any]:
    """What `ClusterState.layout` reads back."""
    config = layout.config
    return {
        "ports": dict(layout.ports),
        "hosts": dict(layout.hosts),
        "host": config.host,
        "nodes": config.nodes,
        "node_ip_base": config.node_ip_base,
        "pod_network": config.pod_network,
    }


def read_state(state_file: Path) -> ClusterState | None:
    """The recorded cluster, None when there is none; ValueError when unreadable."""
    try:
        text = state_file.read_text()
    except FileNotFoundError:
        return None
    return ClusterState.from_json(json.loads(text))


def write_state(state_file: Path, state: ClusterState) -> None:
    tmp = state_file.with_name(state_file.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    os.fchmod(fd, PRIVATE_FILE)  # a stale .tmp may have been created readable
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(state.to_json(), indent=2) + "\n")
    tmp.replace(state_file)


@contextlib.contextmanager
def state_lock(home: Path) -> Iterator[None]:
    """Hold the record still for one read-modify-write (a blocking, short flock:
    the launcher's home lock is another, held for a whole up or down)."""
    fd = os.open(home / ".state.lock", os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def make_private(config: LabConfig) -> None:
    """What kubelab keeps in its home readable by the user alone: 0700 directories,
    0600 files. The home itself too, unless it holds things of someone else's
    (KUBELAB_HOME=/tmp or ~ must not lose their modes): what is ours is private
    either way."""
    home = config.home
    home.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    if {entry.name for entry in home.iterdir()} <= _HOME_ENTRIES:
        home.chmod(PRIVATE_DIR)
    for path in (
        config.state_file,
        home / ".lock",
        home / ".state.lock",
        home / "kubeconfig",
        config.cloud_snapshot_file,
    ):
        with contextlib.suppress(FileNotFoundError):
            path.chmod(PRIVATE_FILE)
    with contextlib.suppress(FileNotFoundError):
        config.etcd_dir.chmod(PRIVATE_DIR)  # etcd makes it so; an older one may not be
    for tree in (config.logs_dir, config.nodes_dir):
        for root, _, files in os.walk(tree):
            Path(root).chmod(PRIVATE_DIR)
            for name in files:
                path = Path(root) / name
                if not path.is_symlink():  # chmod would follow it out of the home
                    with contextlib.suppress(FileNotFoundError):
                        path.chmod(PRIVATE_FILE)
