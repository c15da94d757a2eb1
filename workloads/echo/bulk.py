"""The echo pod's bulk port (`--bulk PORT`): one-way streams of a size the client names.

A connection carries one command, a line of ASCII:

- `PUT <n>\\n`, then n bytes: the pod reads and discards them, answers
  `OK <n>\\n` once it has all of them, and closes. The client's clock stops at
  that line, so the time covers every byte reaching the pod.
- `GET <n>\\n`: the pod sends n bytes (zeros) and closes.

n is a decimal count, 0 to `MAX_BYTES`. Anything else gets `ERR <why>\\n` and the
connection closes; so do bytes beyond n after a PUT, and an EOF before n.

This is what bench/dataplane.py measures bulk throughput with: a stream in one
direction, as a file upload or download is (the TCP echo port moves every byte both
ways at once). Lean for the same reason as the rest of the echo server: reads land
in one buffer shared by the process (`BufferedProtocol`, nothing allocated per read),
and a GET writes slices of one zero-filled buffer, pausing while the transport's
buffer is above its high-water mark.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, cast

__all__ = ["MAX_BYTES", "BulkProtocol"]

MAX_BYTES = 1 << 40
_MAX_LINE = 64
_CHUNK = 256 * 1024
_WRITE_HIGH = 4 * _CHUNK
# One event loop per process runs every callback to completion, and no read is kept
# past its callback, so every connection reads into the same buffer.
_READS = bytearray(_CHUNK)
_ZEROS = memoryview(bytes(_CHUNK))


class _Connections(Protocol):
    def add(self, connection: BulkProtocol) -> None: ...

    def forget(self, connection: BulkProtocol) -> None: ...


class BulkProtocol(asyncio.BufferedProtocol):
    __slots__ = ("left", "line", "paused", "receiving", "registry", "total", "transport")

    def __init__(self, registry: _Connections) -> None:
        self.registry = registry
        self.transport: asyncio.Transport | None = None
        self.line = b""  # the command, until its newline
        self.receiving = False  # a PUT's bytes are coming
        self.total = 0
        self.left = 0  # bytes still to receive (PUT) or send (GET)
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.transport.set_write_buffer_limits(high=_WRITE_HIGH)
        self.registry.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.left = 0
        self.registry.forget(self)

    def get_buffer(self, sizehint: int) -> bytearray:
        return _READS

    def buffer_updated(self, nbytes: int) -> None:
        if self.receiving:
            self._received(nbytes)
            return
        if self.transport is None or self.transport.is_closing():
            return
        data = bytes(_READS[:nbytes])  # only the command's few bytes are copied
        end = data.find(b"\n")
        if end < 0:
            self.line += data
            if len(self.line) > _MAX_LINE:
                self._refuse("command line too long")
            return
        self.line += data[:end]
        self._command(self.line.decode("ascii", "replace").strip(), len(data) - end - 1)

    def _command(self, line: str, extra: int) -> None:
        verb, _, count = line.partition(" ")
        if verb not in ("PUT", "GET"):
            self._refuse(f"unknown command {verb[:16]!r}: use PUT <bytes> or GET <bytes>")
            return
        if not count.isdigit() or int(count) > MAX_BYTES:
            self._refuse(f"bytes: {count[:24]!r} is not a count from 0 to {MAX_BYTES}")
            return
        self.total = self.left = int(count)
        if verb == "GET":
            if extra:
                self._refuse("GET takes nothing after its line")
                return
            self._send()
            return
        self.receiving = True
        self._received(extra)

    def _received(self, nbytes: int) -> None:
        self.left -= nbytes
        if self.left > 0 or self.transport is None:
            return
        self.receiving = False
        if self.left < 0:
            self._refuse(f"{-self.left} bytes beyond the {self.total} announced")
            return
        self.transport.write(b"OK %d\n" % self.total)
        self.transport.close()

    def _send(self) -> None:
        transport = self.transport
        if transport is None:
            return
        while self.left > 0 and not self.paused:
            size = min(self.left, _CHUNK)
            transport.write(_ZEROS[:size])
            self.left -= size
        if not self.left:
            transport.close()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._send()

    def eof_received(self) -> bool:
        if self.receiving:
            self._refuse(f"EOF after {self.total - self.left} of {self.total} bytes")
        return False

    def drain(self) -> None:
        if self.transport is not None:
            self.transport.close()  # a stream has no boundary to wait for

    def _refuse(self, why: str) -> None:
        self.receiving = False
        self.left = 0
        if self.transport is not None:
            self.transport.write(f"ERR {why}\n".encode())
            self.transport.close()
