"""Load generators for bench/dataplane.py, run as a child process (one job per run).

    .venv/bin/python bench/_dataplane_load.py bulk HOST:PORT --direction in --bytes 1073741824
    .venv/bin/python bench/_dataplane_load.py udp HOST:PORT --seconds 5 --window 64
    .venv/bin/python bench/_dataplane_load.py latency NAME=HOST:PORT... --seconds 5 --rounds 20

Each prints one JSON object on stdout and exits 0, or prints why on stderr and
exits 1. They run in their own process so the benchmark's own event loop (gRPC
clients, child process pipes) neither slows them nor is slowed by them.

- `bulk`: one TCP stream of `--bytes`, uvloop and BufferedProtocol (writes from one
  reused buffer, reads into one, nothing allocated per chunk), with the transport's
  flow control. `--direction in`: to the pod's bulk port (workloads/echo/bulk.py),
  `PUT <bytes>`, timed from the connect to the pod's `OK` (every byte arrived);
  `out`: `GET <bytes>` from it, timed to the last byte; `both`: to a TCP echo port,
  sending and reading the echo back at once, timed to the last echoed byte (MB/s
  then counts one direction). A warm-up stream (`--warmup` bytes) on its own
  connection comes first.
- `udp`: one connected UDP socket; keeps `--window` datagrams of `--size` bytes
  in flight and counts the echoes for `--seconds` (after `--warmup` seconds). A
  window that gets no echo for LOSS_TIMEOUT is taken as lost and refilled, so
  a drop stalls the window only briefly; the losses are counted.
- `latency`: sequential HTTP/1.1 GETs on one keep-alive connection per target,
  one in flight (ping-pong, TCP_NODELAY), every round trip timed. Targets are
  visited in interleaved rounds (`--rounds` of `--seconds / --rounds` each) so a
  noisy moment on the shared machine hits every path alike. Reports p50/p99 over
  all round trips, and per round (bench/dataplane.py pairs the rounds: see there).

Blocking sockets with no event loop for `udp` and `latency`: the least client
work per datagram or request, which is what a ratio between paths needs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import select
import socket
import sys
import time
from typing import cast

from _stats import percentile

from kubelab.runtime.loop import run_actor

CHUNK = 256 * 1024
LOSS_TIMEOUT = 0.05  # s without an echo: the datagrams in flight are lost
CONNECT_TIMEOUT = 5.0
IO_TIMEOUT = 5.0  # latency: one round trip longer than this is a failure


class LoadError(Exception):
    """The path misbehaved (closed, stalled, answered wrongly)."""


def address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


# ---------------------------------------------------------------------------- bulk


class _Stream(asyncio.BufferedProtocol):
    """One bulk stream (see `bulk`): resolves `done` with the time of its last byte.

    `sending`: bytes to send after `command`; `expected`: bytes to read (the echo,
    the GET's bytes, or the PUT's `OK <n>` line)."""

    def __init__(
        self, command: bytes, sending: int, expected: int, done: asyncio.Future[float]
    ) -> None:
        self.command = command
        self.total = sending
        self.expected = expected
        self.done = done
        self.sent = 0
        self.received = 0
        self.paused = False
        self.transport: asyncio.Transport | None = None
        self.outgoing = memoryview(bytes(CHUNK))
        self.incoming = memoryview(bytearray(CHUNK))
        self.tail = b""  # the last bytes read: the PUT's answer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are alike, not subclasses
        self.transport.set_write_buffer_limits(high=4 * CHUNK)
        if self.command:
            self.transport.write(self.command)
        self._send()

    def _send(self) -> None:
        transport = self.transport
        assert transport is not None
        while not self.paused and self.sent < self.total:
            size = min(CHUNK, self.total - self.sent)
            transport.write(self.outgoing[:size])
            self.sent += size

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._send()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.incoming  # nothing keeps a view of it: reuse is safe

    def buffer_updated(self, nbytes: int) -> None:
        self.received += nbytes
        if self.expected < CHUNK:  # a short answer: keep it to check it
            self.tail = (self.tail + bytes(self.incoming[:nbytes]))[-CHUNK:]
        if self.received >= self.expected and not self.done.done():
            self.done.set_result(time.perf_counter())

    def eof_received(self) -> bool:
        self._fail("the peer closed its side early")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(f"connection lost: {exc!r}")

    def _fail(self, why: str) -> None:
        if not self.done.done():
            self.done.set_exception(
                LoadError(f"{why} after {self.received} of {self.expected} bytes read")
            )


def stream_protocol(direction: str, total: int, done: asyncio.Future[float]) -> _Stream:
    if direction == "in":
        return _Stream(b"PUT %d\n" % total, total, len(b"OK %d\n" % total), done)
    if direction == "out":
        return _Stream(b"GET %d\n" % total, 0, total, done)
    return _Stream(b"", total, total, done)


async def stream(host: str, port: int, direction: str, total: int, timeout: float) -> float:
    """Seconds for one `direction` stream of `total` bytes, from the connect on."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[float] = loop.create_future()
    started = time.perf_counter()
    async with asyncio.timeout(CONNECT_TIMEOUT):
        transport, protocol = await loop.create_connection(
            lambda: stream_protocol(direction, total, done), host, port
        )
    try:
        async with asyncio.timeout(timeout):
            finished = await done
    except TimeoutError:
        raise LoadError(f"{direction}: {total} bytes not through within {timeout:g} s") from None
    finally:
        transport.close()
    if direction == "in" and protocol.tail != b"OK %d\n" % total:
        raise LoadError(f"in: the pod answered {protocol.tail[:80]!r}, not OK {total}")
    return finished - started


async def bulk(args: argparse.Namespace) -> dict[str, float]:
    host, port = address(args.target)
    direction = args.direction
    warmup = await stream(host, port, direction, args.warmup, args.timeout) if args.warmup else 0.0
    seconds = await stream(host, port, direction, args.bytes, args.timeout)
    return {
        "bytes": args.bytes,
        "seconds": seconds,
        "mb_per_s": args.bytes / seconds / 1e6,
        "warmup_seconds": warmup,
    }


# ---------------------------------------------------------------------------- UDP


def udp(args: argparse.Namespace) -> dict[str, float]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(address(args.target))
    sock.setblocking(False)
    payload = bytes(args.size)
    buffer = bytearray(65536)
    window = args.window
    in_flight = 0
    received = 0
    lost = 0
    started = time.monotonic()
    measure_from = started + args.warmup
    end = measure_from + args.seconds
    counted_at_start = -1
    now = started
    while now < end:
        while in_flight < window:
            try:
                sock.send(payload)
            except BlockingIOError:
                break
            except ConnectionRefusedError:
                raise LoadError("datagrams refused (ICMP port unreachable)") from None
            in_flight += 1
        got = 0
        while True:
            try:
                sock.recv_into(buffer)
            except BlockingIOError:
                break
            except ConnectionRefusedError:
                raise LoadError("datagrams refused (ICMP port unreachable)") from None
            got += 1
        if got:
            received += got
            in_flight = max(0, in_flight - got)  # a late echo of a datagram counted lost
        elif not select.select([sock], [], [], LOSS_TIMEOUT)[0]:
            lost += in_flight  # nothing came back in time: what was in flight is gone
            in_flight = 0
        now = time.monotonic()
        if counted_at_start < 0 and now >= measure_from:
            counted_at_start = received
            measure_from = now
            end = now + args.seconds
    sock.close()
    if counted_at_start < 0 or received == counted_at_start:
        raise LoadError(f"no datagram echoed ({lost} lost)")
    seconds = now - measure_from
    return {
        "datagrams": received - counted_at_start,
        "seconds": seconds,
        "per_s": (received - counted_at_start) / seconds,
        "lost": lost,
        "total_datagrams": received,
        "total_seconds": now - started,
    }


# ---------------------------------------------------------------------------- latency


class _Pinger:
    """One keep-alive HTTP connection doing one request at a time."""

    def __init__(self, name: str, host: str, port: int) -> None:
        self.name = name
        self.request = f"GET /ping HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
        self.sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
        self.sock.settimeout(IO_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = bytearray(65536)
        self.view = memoryview(self.buffer)
        self.expected = self._first()
        self.samples: list[int] = []

    def _first(self) -> int:
        """The size of one whole response (it is the same on every request of a
        connection: the echo body differs only by the client's address)."""
        self.sock.sendall(self.request)
        data = b""
        while b"\r\n\r\n" not in data:
            data += self._recv()
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise LoadError(f"{self.name}: unexpected answer {head[:40]!r}")
        length = next(
            (
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            -1,
        )
        if length < 0:
            raise LoadError(f"{self.name}: no Content-Length in {head!r}")
        while len(body) < length:
            body += self._recv()
        return len(head) + 4 + length

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise LoadError(f"{self.name}: the connection closed")
        return chunk

    def ping(self) -> int:
        sock, view, expected = self.sock, self.view, self.expected
        started = time.perf_counter_ns()
        sock.sendall(self.request)
        got = 0
        while got < expected:
            size = sock.recv_into(view[got:])
            if not size:
                raise LoadError(f"{self.name}: the connection closed")
            got += size
        elapsed = time.perf_counter_ns() - started
        if got != expected:
            raise LoadError(f"{self.name}: {got} bytes answered, {expected} expected")
        return elapsed

    def run(self, seconds: float, keep: bool) -> None:
        end = time.monotonic() + seconds
        samples = self.samples
        while time.monotonic() < end:
            for _ in range(100):
                elapsed = self.ping()
                if keep:
                    samples.append(elapsed)


def latency(args: argparse.Namespace) -> dict[str, dict[str, float | list[float]]]:
    pingers = []
    for spec in args.targets:
        name, _, target = spec.partition("=")
        pingers.append(_Pinger(name, *address(target)))
    for pinger in pingers:
        pinger.run(args.warmup, keep=False)
    rounds: dict[str, list[tuple[float, float]]] = {p.name: [] for p in pingers}
    for _ in range(args.rounds):
        for pinger in pingers:
            begin = len(pinger.samples)
            pinger.run(args.seconds / args.rounds, keep=True)
            mine = pinger.samples[begin:]
            rounds[pinger.name].append(
                (percentile(mine, 0.5) / 1000, percentile(mine, 0.99) / 1000)
            )
    result: dict[str, dict[str, float | list[float]]] = {}
    for pinger in pingers:
        pinger.sock.close()
        result[pinger.name] = {
            "samples": len(pinger.samples),
            "p50_us": percentile(pinger.samples, 0.5) / 1000,
            "p99_us": percentile(pinger.samples, 0.99) / 1000,
            "rounds_p50_us": [r[0] for r in rounds[pinger.name]],
            "rounds_p99_us": [r[1] for r in rounds[pinger.name]],
        }
    return result


# ---------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    jobs = parser.add_subparsers(dest="job", required=True)
    job = jobs.add_parser("bulk")
    job.add_argument("target")
    job.add_argument("--direction", choices=("in", "out", "both"), default="in")
    job.add_argument("--bytes", type=int, default=1 << 30)
    job.add_argument("--warmup", type=int, default=64 << 20)
    job.add_argument("--timeout", type=float, default=120.0)
    job = jobs.add_parser("udp")
    job.add_argument("target")
    job.add_argument("--seconds", type=float, default=5.0)
    job.add_argument("--warmup", type=float, default=1.0)
    job.add_argument("--window", type=int, default=64)
    job.add_argument("--size", type=int, default=64)
    job = jobs.add_parser("latency")
    job.add_argument("targets", nargs="+", metavar="NAME=HOST:PORT")
    job.add_argument("--seconds", type=float, default=5.0, help="per target, over all rounds")
    job.add_argument("--warmup", type=float, default=0.5)
    job.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    try:
        result: object
        if args.job == "bulk":
            result = run_actor(bulk(args))
        elif args.job == "udp":
            result = udp(args)
        else:
            result = latency(args)
    except (LoadError, OSError, TimeoutError) as err:
        print(f"{args.job}: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    print(json.dumps(result))


if __name__ == "__main__":
    main()
