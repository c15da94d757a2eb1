"""The ways to the benchmark's pod, for bench/dataplane.py: what listens where, and
whether it answers.

A `Path` names the four addresses a load generator uses (HTTP, TCP echo, bulk
streams, UDP echo; HAProxy has no UDP), the processes whose CPU time counts as the proxy's,
and a check that they still run. `haproxy()` and `relay()` make the two
comparison proxies, each a `ChildProcess` on its own 127.x address that the
caller stops at the end. `wait_answering` is the gate before any measurement:
every address of a path must answer a real request (HTTP 200 from the pod, the
echo of a TCP stream, a bulk GET, the echo of a datagram) before a deadline.
"""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path as FsPath

HERE = FsPath(__file__).resolve().parent
CLOCK_TICK_S = 1 / os.sysconf("SC_CLK_TCK")
PROBE_TIMEOUT = 1.0  # one answering check
START_DEADLINE = 10.0  # a comparison proxy listening

Address = tuple[str, int]


class NotAnswering(RuntimeError):
    """A path did not answer before its deadline."""


@dataclass(frozen=True)
class Path:
    key: str
    name: str
    http: Address
    tcp: Address
    bulk: Address  # the pod's bulk port (workloads/echo/bulk.py)
    udp: Address | None  # None: this proxy cannot relay UDP
    pids: Callable[[], Sequence[int]] = field(default=lambda: ())  # the proxy's processes
    check: Callable[[], None] = field(default=lambda: None)  # raises if the proxy died
    # The same processes by component, where a path crosses several worth telling apart.
    parts: Callable[[], dict[str, Sequence[int]]] = field(default=dict)
    about: str = ""

    def url(self) -> str:
        return f"http://{self.http[0]}:{self.http[1]}/"


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time of these processes, from /proc (clock-tick resolution)."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])
    return total * CLOCK_TICK_S


def machine_ticks() -> tuple[int, int]:
    """(idle, total) clock ticks of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(f) for f in stat.readline().split()[1:9]]
    return fields[3] + fields[4], sum(fields)  # idle + iowait; user..steal


@dataclass
class CpuMeter:
    """The proxy's CPU time (in all and by component, `Path.parts`) and the machine's
    idle share over one measured run."""

    pids: Callable[[], Sequence[int]]
    parts: Callable[[], dict[str, Sequence[int]]] = dict
    proxy: float = 0.0
    machine: tuple[int, int] = (0, 0)
    by_part: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.proxy = cpu_seconds(self.pids())
        self.by_part = {name: cpu_seconds(pids) for name, pids in self.parts().items()}
        self.machine = machine_ticks()

    def read(self) -> tuple[float | None, int, int]:
        """Proxy CPU seconds (None without a proxy), machine idle and total ticks."""
        idle, total = machine_ticks()
        pids = self.pids()
        proxy = cpu_seconds(pids) - self.proxy if pids else None
        return proxy, idle - self.machine[0], total - self.machine[1]

    def read_parts(self) -> dict[str, float]:
        """CPU seconds of each component since the start (call right after `read`)."""
        return {
            name: cpu_seconds(pids) - self.by_part.get(name, 0.0)
            for name, pids in self.parts().items()
        }


# ---------------------------------------------------------------------------- answering


async def http_answer(address: Address) -> bytes:
    """The body of a GET / on a new connection (raises unless 200)."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        reply = await reader.read()
    finally:
        writer.close()
    head, _, body = reply.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(f"answered {head[:40]!r}")
    return body


async def tcp_echo(address: Address) -> None:
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(b"ping\n")
        if await reader.readexactly(5) != b"ping\n":
            raise ConnectionError("wrong echo")
    finally:
        writer.close()


async def bulk_get(address: Address) -> None:
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(b"GET 5\n")
        if await reader.read() != bytes(5):
            raise ConnectionError("wrong bulk answer")
    finally:
        writer.close()


class _Datagram(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        if not self.reply.done():
            self.reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc)


async def udp_echo(address: Address) -> None:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(_Datagram, remote_addr=address)
    try:
        transport.sendto(b"ping")
        if await protocol.reply != b"ping":
            raise ConnectionError("wrong echo")
    finally:
        transport.close()


async def wait_answering(path: Path, deadline: float, expect: bytes = b"") -> None:
    """Until HTTP (with `expect` in the body), the TCP echo, the bulk port and the UDP
    echo of `path` all answer; NotAnswering after `deadline` seconds, naming what did not."""
    checks: list[tuple[str, Address, Callable[[], Awaitable[None]]]] = []

    async def http() -> None:
        body = await http_answer(path.http)
        if expect not in body:
            raise ConnectionError(f"not the benchmark's pod: {body[:120]!r}")

    checks.append(("HTTP", path.http, http))
    checks.append(("TCP echo", path.tcp, lambda: tcp_echo(path.tcp)))
    checks.append(("bulk", path.bulk, lambda: bulk_get(path.bulk)))
    if path.udp is not None:
        udp = path.udp
        checks.append(("UDP echo", udp, lambda: udp_echo(udp)))
    started = time.monotonic()
    for what, address, check in checks:
        last: BaseException | None = None
        while True:
            try:
                async with asyncio.timeout(PROBE_TIMEOUT):
                    await check()
                break
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as err:
                last = err
            if time.monotonic() - started > deadline:
                raise NotAnswering(
                    f"{path.name}: {what} on {address[0]}:{address[1]} did not answer within "
                    f"{deadline:g} s (last: {last!r})"
                )
            await asyncio.sleep(0.05)


# ---------------------------------------------------------------------------- HAProxy


def haproxy_config(frontends: Sequence[tuple[str, Address, Address]]) -> str:
    """One thread, mode tcp, defaults otherwise: what a user would start with.
    `frontends`: (name, listen address, backend address)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    # Two descriptors per relayed connection, and HAProxy refuses to start when
    # maxconn needs more than the limit it may raise itself to.
    maxconn = max(256, min(20000, (soft - 200) // 2))
    lines = [
        "global",
        "    nbthread 1",
        f"    maxconn {maxconn}",
        "defaults",
        "    mode tcp",
        "    timeout connect 5s",
        "    timeout client 60s",
        "    timeout server 60s",
    ]
    for name, (host, port), (ip, target_port) in frontends:
        lines += [
            f"frontend {name}",
            f"    bind {host}:{port}",
            f"    default_backend {name}",
            f"backend {name}",
            f"    server pod {ip}:{target_port}",
        ]
    return "\n".join(lines) + "\n"


@dataclass
class ChildProcess:
    """A comparison proxy: started with a log file, stopped by its own pid."""

    name: str
    command: list[str]
    log_path: FsPath
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, env=env
            )

    def pids(self) -> Sequence[int]:
        return () if self.process is None else (self.process.pid,)

    def check(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace").splitlines()[-3:]
            raise NotAnswering(
                f"{self.name} exited (code {self.process.returncode}): " + " | ".join(tail)
            )

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def haproxy(workdir: FsPath, frontends: Sequence[tuple[str, Address, Address]]) -> ChildProcess:
    config = workdir / "haproxy.cfg"
    config.write_text(haproxy_config(frontends))
    # -db: stay in the foreground, one process (the one whose CPU is counted).
    return ChildProcess("haproxy", ["haproxy", "-db", "-f", str(config)], workdir / "haproxy.log")


def relay(
    workdir: FsPath,
    host: str,
    tcp: Sequence[tuple[int, Address]],
    udp: Sequence[tuple[int, Address]],
) -> ChildProcess:
    command = [sys.executable, str(HERE / "_dataplane_relay.py"), "--host", host]
    for flag, mappings in (("--tcp", tcp), ("--udp", udp)):
        for port, (ip, target_port) in mappings:
            command += [flag, f"{port}={ip}:{target_port}"]
    return ChildProcess("relay", command, workdir / "relay.log")


async def start_answering(child: ChildProcess, path: Path, expect: bytes) -> None:
    child.start()
    try:
        await wait_answering(path, START_DEADLINE, expect)
    except NotAnswering:
        child.check()  # a crash explains more than a timeout
        raise
