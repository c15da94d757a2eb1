"""Client traffic for data-plane tests: one request per new connection, UDP echoes, and a
steady request loop that records every failure.

The echo pods (`kubelab/echo`) answer HTTP with a JSON body naming the pod and the
client address they saw, so a test can tell which endpoint a Service picked.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from kubelab.testing.wait import until, until_read


class RequestFailed(Exception):
    """`cause`: the socket error or timeout; None for an answer that is not a 200 (`silent`:
    the connection closed with no answer at all)."""

    def __init__(
        self, message: str, cause: BaseException | None = None, *, silent: bool = False
    ) -> None:
        super().__init__(message)
        self.cause = cause
        self.silent = silent


async def http_get(
    ip: str, port: int, path: str = "/", *, timeout: float = 2.0, source_ip: str | None = None
) -> dict[str, Any]:
    """GET over a new connection (closed after the answer); the echo pod's JSON body."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                ip, port, local_addr=(source_ip, 0) if source_ip else None
            )
            try:
                writer.write(
                    f"GET {path} HTTP/1.1\r\nHost: {ip}\r\nConnection: close\r\n\r\n".encode()
                )
                raw = await reader.read(-1)
            finally:
                writer.close()
    except (OSError, TimeoutError) as err:
        raise RequestFailed(f"{ip}:{port}: {type(err).__name__}: {err}", err) from None
    if not raw:
        raise RequestFailed(f"{ip}:{port}: closed with no answer", silent=True)
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RequestFailed(f"{ip}:{port}: {head[:60]!r}")
    answer: dict[str, Any] = json.loads(body)
    return answer


def echo_post(ip: str, path: str, port: int = 8080) -> None:
    """POST to an echo pod (`/healthz/fail`, `/healthz/pass` flip its readiness)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(f"http://{ip}:{port}{path}", method="POST", data=b"")
    with opener.open(request, timeout=5):
        pass


async def pod_behind(ip: str, port: int, **kwargs: Any) -> str:
    return str((await http_get(ip, port, **kwargs))["pod"])


async def connect_outcome(ip: str, port: int, timeout: float = 2.0) -> str:
    """How a connection attempt with a request ends: 'answered', 'refused' (refused or
    reset), or 'timeout' (a hang)."""
    try:
        await http_get(ip, port, timeout=timeout)
    except RequestFailed as err:
        if isinstance(err.cause, TimeoutError):
            return "timeout"
        if err.silent or isinstance(err.cause, ConnectionRefusedError | ConnectionResetError):
            return "refused"
        return str(err)
    return "answered"


async def udp_echo(
    ip: str, port: int, payload: bytes, *, timeout: float = 2.0, sock: socket.socket | None = None
) -> bytes:
    """Send one datagram, return the first datagram back (from `ip:port` only)."""
    loop = asyncio.get_running_loop()
    own = sock is None
    if sock is None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    try:
        async with asyncio.timeout(timeout):
            await loop.sock_sendto(sock, payload, (ip, port))
            while True:
                data, addr = await loop.sock_recvfrom(sock, 65536)
                if addr == (ip, port):
                    return data
    finally:
        if own:
            sock.close()


@dataclass(frozen=True)
class Failure:
    started: float  # time.monotonic() when the request began
    error: str

    def __str__(self) -> str:
        return f"{self.error} (started at {self.started:.3f})"


@dataclass
class RequestLoop:
    """New-connection GETs against ip:port back to back (`concurrency` at once) until
    stopped; every outcome is counted."""

    ip: str
    port: int
    concurrency: int = 2
    timeout: float = 2.0
    served: Counter[str] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)
    attempts: int = 0  # never reset, unlike `served`
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    def start(self) -> RequestLoop:
        self._tasks = [asyncio.create_task(self._run()) for _ in range(self.concurrency)]
        return self

    async def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.attempts += 1
            try:
                self.served[await pod_behind(self.ip, self.port, timeout=self.timeout)] += 1
            except RequestFailed as err:
                self.failures.append(Failure(started, str(err)))
            await asyncio.sleep(0.005)

    def failed_since(self, moment: float) -> list[Failure]:
        """Failures of requests that began at `moment` or later."""
        return [f for f in self.failures if f.started >= moment]

    async def until_served(self, pods: set[str], timeout: float) -> None:
        """Wait until every pod in `pods` answered since the last `reset_counts`."""
        await until_read(
            f"every one of {sorted(pods)} to answer",
            lambda: self.served,
            lambda served: pods <= set(served),
            timeout=timeout,
            interval=0.02,
            describe=dict,
        )

    async def until_only(self, pods: set[str], timeout: float, settle: int = 30) -> None:
        """Wait until the last `settle` requests all went to `pods`."""

        async def next_window() -> Counter[str]:
            self.served.clear()
            await until_read(
                f"{settle} answers", lambda: sum(self.served.values()) >= settle, timeout=timeout
            )
            return Counter(self.served)

        await until(
            f"the last {settle} requests to reach only {sorted(pods)}",
            next_window,
            lambda served: set(served) <= pods,
            timeout=timeout,
            interval=0,
            describe=dict,
        )

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)
