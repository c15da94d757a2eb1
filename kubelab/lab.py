"""The embedded launcher: `kubelab up` / `down` / `status` without a container runtime.

A cluster is a list of *stages* of `ProcessSpec`s (`cluster_stages()`): every
actor of a stage is spawned, then the launcher waits until each one's
readiness check passes before the next stage starts (the apiserver needs etcd
answering; later the controller and node agents need the apiserver). Adding an
actor is adding a `ProcessSpec` to a stage: its ports, its argv (built from the
resolved ports of every actor), its readiness check. Nothing else here names an
actor.

Every actor runs detached (`start_new_session=True`, stdin from /dev/null,
stdout+stderr appended to `$KUBELAB_HOME/logs/<name>.log`), so it outlives the
`kubelab up` that started it, the way `kind create cluster` leaves containers
running. What was started is recorded in `$KUBELAB_HOME/cluster.json`
(format in `kubelab.home`), rewritten after each spawn so that a `kubelab up`
that dies half-way still leaves a record `down` (or the next `up`) can clean.

Process identity: a pid alone is not proof; after a crash or reboot the pid may
belong to another program. A recorded process counts as ours only while
`/proc/<pid>/cmdline` equals the argv we spawned it with (and it is not a
zombie). `down` signals only such processes, so it never kills a stranger.

Ports: each `PortSpec` has a default (etcd 2379/2380, apiserver 6443). A port
left unset takes its default, or any free port when the default is taken (the
reporter is told). An explicit 0 means "any free port" (tests); any other
explicit port must be free or `up` fails. Free ports are found by binding
before the actor starts; the gap until the actor binds is a race we accept in a
lab (nothing else here allocates ports).

Concurrency: `up` and `down` hold an exclusive flock on `$KUBELAB_HOME/.lock`,
so two of them never interleave on one home. Waits are polls of a condition
(readiness, process exit) against a deadline; nothing sleeps and hopes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import grpc

from kubelab import home as kubelab_home
from kubelab.core.allocators import ClusterIPAllocator, PortRange
from kubelab.etcd_process import EtcdConfig

LOOPBACK = "127.0.0.1"
DEFAULT_SERVICE_CIDR = "127.96.0.0/16"
DEFAULT_NODE_PORT_RANGE = "30000-32767"
STOP_GRACE_SECONDS = 10.0
POLL_INTERVAL = 0.1
LOG_TAIL_LINES = 20
_LOG_MARK = "==== kubelab up: "


class LabError(Exception):
    """A launcher failure worth one clear message (and the actor's log tail, if any)."""

    def __init__(self, message: str, *, log: Path | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.log = log

    def log_tail(self) -> str:
        return tail_log(self.log) if self.log is not None else ""


# ---------------------------------------------------------------- configuration


@dataclass(frozen=True, slots=True)
class PortSpec:
    """A port an actor listens on. `name` is also the key in `LabConfig.ports`."""

    name: str
    default: int
    option: str  # the `kubelab up` option that sets it, for messages


@dataclass(frozen=True, slots=True)
class LabConfig:
    home: Path
    # Port wishes by PortSpec name: missing/None = default (or free if taken),
    # 0 = any free port, N = exactly N.
    ports: Mapping[str, int | None] = field(default_factory=dict)
    service_cidr: str = DEFAULT_SERVICE_CIDR
    node_port_range: str = DEFAULT_NODE_PORT_RANGE
    host: str = LOOPBACK

    @property
    def state_file(self) -> Path:
        return self.home / "cluster.json"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def etcd_dir(self) -> Path:
        return self.home / "etcd"

    def log_file(self, actor: str) -> Path:
        return self.logs_dir / f"{actor}.log"


@dataclass(frozen=True, slots=True)
class Layout:
    """A config with every port resolved: what actor commands are built from."""

    config: LabConfig
    ports: Mapping[str, int]

    def address(self, port: str) -> str:
        return f"{self.config.host}:{self.ports[port]}"


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    """One actor of the embedded cluster.

    `command` builds the argv from the layout (so an actor can point at another
    actor's port); `ready` is ONE quick readiness probe (it must return within
    about a second; the launcher polls it until `ready_timeout`). `address` names
    the PortSpec shown as the actor's address; `state_key`, when set, also puts
    that address at the top of cluster.json (`"api"`, `"etcd"`), where clients
    look for it.
    """

    name: str
    title: str
    ports: tuple[PortSpec, ...]
    command: Callable[[Layout], list[str]]
    ready: Callable[[Layout], bool]
    address: str
    state_key: str | None = None
    ready_timeout: float = 30.0


# ---------------------------------------------------------------- readiness checks


# Probes go straight to loopback: an http_proxy in the user's environment must
# not carry them off (urllib and gRPC both honour it by default).
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_GRPC_DIRECT = [("grpc.enable_http_proxy", 0)]


def etcd_healthy(address: str) -> bool:
    """etcd's own health endpoint says `"health": "true"` (it has a leader and serves)."""
    try:
        with _DIRECT.open(f"http://{address}/health", timeout=1.0) as response:
            body = json.loads(response.read() or b"{}")
    except (OSError, ValueError):
        return False
    return isinstance(body, dict) and body.get("health") == "true"


def grpc_serving(address: str, service: str = "") -> bool:
    """The actor's `grpc.health.v1` check answers SERVING for `service`."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    # A fresh channel per probe: a long-lived channel backs off reconnects
    # (1 s, 1.6 s, ...) after the first refusal and would answer late.
    with grpc.insecure_channel(address, options=_GRPC_DIRECT) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1.0)
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


# ---------------------------------------------------------------- the actors

ETCD_CLIENT = PortSpec("etcd", 2379, "--etcd-port")
ETCD_PEER = PortSpec("etcd-peer", 2380, "--etcd-peer-port")
API = PortSpec("api", 6443, "--api-port")


def _etcd_config(layout: Layout) -> EtcdConfig:
    return EtcdConfig(
        data_dir=layout.config.etcd_dir,
        client_port=layout.ports[ETCD_CLIENT.name],
        peer_port=layout.ports[ETCD_PEER.name],
        host=layout.config.host,
    )


ETCD = ProcessSpec(
    name="etcd",
    title="etcd (the store)",
    ports=(ETCD_CLIENT, ETCD_PEER),
    command=lambda layout: _etcd_config(layout).command(),
    ready=lambda layout: etcd_healthy(layout.address(ETCD_CLIENT.name)),
    address=ETCD_CLIENT.name,
    state_key="etcd",
    ready_timeout=30.0,
)

APISERVER = ProcessSpec(
    name="apiserver",
    title="apiserver (the gRPC API)",
    ports=(API,),
    command=lambda layout: [
        sys.executable,
        "-m",
        "services.apiserver",
        "--listen",
        layout.address(API.name),
        "--etcd",
        layout.address(ETCD_CLIENT.name),
        "--service-cidr",
        layout.config.service_cidr,
        "--node-port-range",
        layout.config.node_port_range,
    ],
    ready=lambda layout: grpc_serving(layout.address(API.name)),
    address=API.name,
    state_key="api",
    ready_timeout=30.0,
)


def cluster_stages(config: LabConfig) -> tuple[tuple[ProcessSpec, ...], ...]:
    """The actors of an embedded cluster, in start order. A function of the config
    so that later options (`--nodes N`) can add one spec per node."""
    del config  # every current actor is fixed
    return ((ETCD,), (APISERVER,))


# ---------------------------------------------------------------- recorded state


@dataclass(frozen=True, slots=True)
class ProcessRecord:
    name: str
    pid: int
    address: str
    log: str
    command: list[str]
    started: str


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


def _write_state(state_file: Path, state: ClusterState) -> None:
    tmp = state_file.with_name(state_file.name + ".tmp")
    tmp.write_text(json.dumps(state.to_json(), indent=2) + "\n")
    tmp.replace(state_file)


# ---------------------------------------------------------------- processes


def process_alive(record: ProcessRecord) -> bool:
    """The recorded pid still runs the recorded command (not a zombie, not a stranger)."""
    proc = Path("/proc") / str(record.pid)
    if Path("/proc/self").exists():
        try:
            raw = (proc / "cmdline").read_bytes()
            stat = (proc / "stat").read_text()
        except OSError:
            return False
        # Field 3 of stat, after the parenthesised command name, is the state.
        if stat[stat.rfind(")") + 2 :].startswith("Z"):
            return False
        return raw.split(b"\0")[:-1] == [os.fsencode(a) for a in record.command]
    try:  # no /proc (macOS): the pid is all we can check
        os.kill(record.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, someone else's
    return True


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


def _wait_until(condition: Callable[[], bool], timeout: float) -> bool:
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
    if _wait_until(lambda: not process_alive(record), grace):
        return "stopped"
    _signal(record, signal.SIGKILL)
    _wait_until(lambda: not process_alive(record), grace)
    return "killed"


def _stop_child(proc: subprocess.Popen[bytes], grace: float = STOP_GRACE_SECONDS) -> None:
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


def tail_log(log: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines the latest run wrote to an actor's log."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    mark = text.rfind(_LOG_MARK)
    if mark >= 0:
        text = text[text.find("\n", mark) + 1 :]
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def _spawn(spec: ProcessSpec, layout: Layout) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
    config = layout.config
    command = spec.command(layout)
    log = config.log_file(spec.name)
    started = _now()
    with log.open("ab") as out:
        out.write(f"{_LOG_MARK}{started} {' '.join(command)}\n".encode())
        out.flush()
        try:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=config.home,  # not the caller's cwd: `-m` must not find a stray package
                # Logs go to files a person tails: readable text unless asked otherwise.
                env={"KUBELAB_LOG_FORMAT": "text", **os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
            )
        except OSError as err:
            raise LabError(f"cannot start {spec.name}: {err}", log=log) from None
    record = ProcessRecord(
        name=spec.name,
        pid=proc.pid,
        address=layout.address(spec.address),
        log=str(log),
        command=command,
        started=started,
    )
    return proc, record


def _wait_ready(spec: ProcessSpec, layout: Layout, proc: subprocess.Popen[bytes]) -> None:
    log = layout.config.log_file(spec.name)
    exited: list[int] = []

    def ready_or_exited() -> bool:
        code = proc.poll()
        if code is not None:
            exited.append(code)
            return True
        return spec.ready(layout)

    if not _wait_until(ready_or_exited, spec.ready_timeout):
        raise LabError(
            f"{spec.name} did not become ready at {layout.address(spec.address)} "
            f"within {spec.ready_timeout:.0f}s (log: {log})",
            log=log,
        )
    if exited:
        raise LabError(
            f"{spec.name} exited with code {exited[0]} before it was ready (log: {log})",
            log=log,
        )


# ---------------------------------------------------------------- ports


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers themselves bind: a port in TIME_WAIT is free to them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str, taken: set[int]) -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in taken:
            return port


def resolve_ports(
    config: LabConfig, specs: Sequence[ProcessSpec], note: Callable[[str], None]
) -> dict[str, int]:
    ports: dict[str, int] = {}
    for spec in specs:
        for wish in spec.ports:
            taken = set(ports.values())
            asked = config.ports.get(wish.name)
            if asked is None:
                if wish.default not in taken and port_free(config.host, wish.default):
                    port = wish.default
                else:
                    port = free_port(config.host, taken)
                    note(
                        f"port {wish.default} is in use; {spec.name} will use "
                        f"{config.host}:{port} instead ({wish.option} to choose)"
                    )
            elif asked == 0:
                port = free_port(config.host, taken)
            elif asked in taken or not port_free(config.host, asked):
                raise LabError(f"{config.host}:{asked} ({wish.option}) is already in use")
            else:
                port = asked
            ports[wish.name] = port
    return ports


# ---------------------------------------------------------------- up / down / status


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


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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


def _clean_stale(config: LabConfig, reporter: Reporter) -> ClusterState | None:
    """The running cluster if the record is live; otherwise stop what is left of
    a crashed run, remove the record and return None."""
    try:
        state = read_state(config.state_file)
    except (OSError, ValueError) as err:
        reporter.note(f"ignoring unreadable {config.state_file} ({err}); starting afresh")
        config.state_file.unlink(missing_ok=True)
        return None
    if state is None:
        return None
    alive = [p for p in state.processes if process_alive(p)]
    if state.ready and state.processes and len(alive) == len(state.processes):
        return state
    gone = ", ".join(f"{p.name} (pid {p.pid})" for p in state.processes if p not in alive)
    reporter.note(f"found a stale cluster.json ({gone or 'startup never finished'}); cleaning up")
    for record in reversed(alive):
        stop_process(record)
    config.state_file.unlink(missing_ok=True)
    return None


def check_config(config: LabConfig) -> None:
    """Refuse settings an actor would only reject after starting (its log is no
    place for a typo in a flag)."""
    try:
        ClusterIPAllocator(config.service_cidr)
    except ValueError as err:
        raise LabError(f'invalid --service-cidr "{config.service_cidr}": {err}') from None
    try:
        PortRange.parse(config.node_port_range)
    except ValueError as err:
        raise LabError(f"invalid --node-port-range: {err}") from None


def up(config: LabConfig, reporter: Reporter | None = None) -> UpResult:
    """Start the embedded cluster and return once every actor is ready; a no-op
    when it already runs. On failure every actor this call started is stopped."""
    reporter = reporter or QuietReporter()
    check_config(config)
    with _locked(config.home):
        running = _clean_stale(config, reporter)
        if running is not None:
            return UpResult(running, already_running=True)
        stages = cluster_stages(config)
        specs = [spec for stage in stages for spec in stage]
        layout = Layout(config, resolve_ports(config, specs, reporter.note))
        config.logs_dir.mkdir(parents=True, exist_ok=True)
        state = ClusterState(
            processes=[],
            ready=False,
            started=_now(),
            fields={
                "home": str(config.home),
                "service_cidr": config.service_cidr,
                "node_port_range": config.node_port_range,
            },
        )
        children: list[subprocess.Popen[bytes]] = []
        try:
            for stage in stages:
                started: list[tuple[ProcessSpec, subprocess.Popen[bytes], float]] = []
                for spec in stage:
                    address = layout.address(spec.address)
                    reporter.starting(spec, address)
                    proc, record = _spawn(spec, layout)
                    children.append(proc)
                    state.processes.append(record)
                    if spec.state_key:
                        state.fields[spec.state_key] = address
                    _write_state(config.state_file, state)
                    started.append((spec, proc, time.monotonic()))
                for spec, proc, began in started:
                    _wait_ready(spec, layout, proc)
                    reporter.ready(spec, layout.address(spec.address), time.monotonic() - began)
        except BaseException:
            # Includes KeyboardInterrupt: a half-started cluster is worse than none.
            for child in reversed(children):
                _stop_child(child)
            config.state_file.unlink(missing_ok=True)
            raise
        state.ready = True
        _write_state(config.state_file, state)
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


def default_config(
    *,
    ports: Mapping[str, int | None] | None = None,
    service_cidr: str = DEFAULT_SERVICE_CIDR,
    node_port_range: str = DEFAULT_NODE_PORT_RANGE,
) -> LabConfig:
    """A config for `$KUBELAB_HOME` (absolute: actors run with it as their cwd)."""
    return LabConfig(
        home=kubelab_home.kubelab_home().expanduser().resolve(),
        ports=dict(ports or {}),
        service_cidr=service_cidr,
        node_port_range=node_port_range,
    )
