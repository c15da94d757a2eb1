"""Async clients for the `kubelab/echo` image, for tests that must not block the loop.

Integration tests talk to echo pods while a `PodRuntime` in the same event
loop starts, probes and restarts them, so every helper here is asyncio, and
bounded by a timeout; `kubelab.testing.wait.until_passes` retries them until
they answer.

`HttpAnswer.json()` decodes the echo's body: `{"pod", "namespace", "node",
"podIP", "path", "method", "client"}`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

__all__ = ["HttpAnswer", "http_request", "tcp_roundtrip", "udp_roundtrip"]


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        doc = json.loads(self.body)
        assert isinstance(doc, dict)
        return doc


async def http_request(
    host: str, port: int, path: str = "/", method: str = "GET", timeout: float = 2.0
) -> HttpAnswer:
    """One request on a fresh connection (`Connection: close`), read to EOF."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n"
            writer.write(f"{head}Content-Length: 0\r\n\r\n".encode())
            data = await reader.read()
        finally:
            writer.close()
    raw_head, _, body = data.partition(b"\r\n\r\n")
    lines = raw_head.decode("latin-1").split("\r\n")
    if len(lines[0].split()) < 2:
        raise OSError(f"no HTTP answer from {host}:{port}: {data[:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return HttpAnswer(int(lines[0].split()[1]), headers, body)


async def tcp_roundtrip(host: str, port: int, payload: bytes, timeout: float = 2.0) -> bytes:
    """Send `payload`, half-close, read everything that comes back."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(payload)
            await writer.drain()
            writer.write_eof()
            return await reader.read()
        finally:
            writer.close()


class _OneDatagram(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if not self.answer.done():
            self.answer.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


async def udp_roundtrip(host: str, port: int, payload: bytes, timeout: float = 1.0) -> bytes:
    """Send one datagram and return the first datagram that answers."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        _OneDatagram, remote_addr=(host, port)
    )
    try:
        transport.sendto(payload)
        return await asyncio.wait_for(protocol.answer, timeout)
    finally:
        transport.close()
