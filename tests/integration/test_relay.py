"""kubelab.relay over real loopback sockets, in-process, no cluster (DESIGN §2.4, §6).

A fake route in each test says where connections go and records what the relay told
it; the backends are small servers on 127.0.0.1 started by the test. Every test body
runs on the default asyncio loop and on uvloop, the loop the node agents run on:
uvloop starts reading an accepted socket even when `connection_made` paused it, and
the relay has a workaround for that (`Connection.hold`), covered by the early-data
tests. Every wait has a deadline and waits on a condition.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import random
import socket
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Sequence,
)
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
import uvloop

from kubelab import relay
from kubelab.core.endpoint_choice import Target
from kubelab.relay import Connection, Flow, UdpListener, serve_tcp, serve_udp
from kubelab.relay.sockets import (
    LINGER_RESET,
    RELAY_CONGESTION,
    TCP_CONGESTION,
    relay_congestion,
)
from kubelab.testing.wait import until_read

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
MiB = 1024 * 1024
TEST_DEADLINE = 25.0  # a whole test body, on one loop

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}

Run = Callable[[Coroutine[Any, Any, None]], None]


@pytest.fixture(params=list(LOOPS))
def run(request: pytest.FixtureRequest) -> Iterator[Run]:
    """Runs a test body to completion on a fresh loop of each kind, within TEST_DEADLINE."""
    name: str = request.param
    with asyncio.Runner(loop_factory=LOOPS[name]) as runner:
        assert isinstance(runner.get_loop(), uvloop.Loop) == (name == "uvloop")

        def go(body: Coroutine[Any, Any, None]) -> None:
            __tracebackhide__ = True
            failed: list[BaseException] = []

            async def bounded() -> None:
                __tracebackhide__ = True
                try:
                    async with asyncio.timeout(TEST_DEADLINE):
                        await body
                except BaseException as exc:
                    failed.append(exc)

            runner.run(bounded())
            if failed:
                # Raised out here, the traceback skips the loop's run_until_complete:
                # uvloop's is a .pyx frame, which pytest may fail to render.
                raise failed[0]

        yield go


# ---------------------------------------------------------------------------- helpers


async def eventually(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Wait until `check()` holds (polled every 5 ms: the relay's own loop moves fast)."""
    await until_read(what, check, timeout=timeout, interval=0.005)


async def settled(value: Callable[[], int], what: str, quiet: float, timeout: float = 10.0) -> int:
    """Wait until `value()` stopped changing for `quiet` seconds; that value."""
    deadline = time.monotonic() + timeout
    last, since = value(), time.monotonic()
    while time.monotonic() - since < quiet:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what} to settle")
        await asyncio.sleep(0.01)
        now = value()
        if now != last:
            last, since = now, time.monotonic()
    return last


async def first_stream_made() -> None:
    """Open and close one stream, so the loop's one-time descriptors exist before a count
    (libuv keeps a spare fd from its first stream on, for running out of fds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind((HOST, 0))
        listener.listen(1)
        _, writer = await asyncio.open_connection(*listener.getsockname())
        writer.close()
        await writer.wait_closed()


def open_fds() -> int:
    """This process's open file descriptors. Leak checks compare with `<=`: an object of
    an earlier test may still be collected (closing its socket) while one runs."""
    return len(os.listdir("/proc/self/fd"))


def dead_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> Target:
    """A loopback port nothing listens on: a connect there is refused at once."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((HOST, 0))
        return Target(HOST, sock.getsockname()[1])


class Blackhole:
    """A slow endpoint on loopback: a listener whose accept queue is full, so the kernel
    drops SYNs to it and a connect there hangs. `make_room()` accepts the connection that
    fills the queue: the connecting side's next SYN (retried after a second) gets in."""

    def __init__(self) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sockets = [self.listener]
        self.listener.bind((HOST, 0))
        self.listener.listen(0)
        self.target = Target(HOST, self.listener.getsockname()[1])
        self.sockets.append(socket.create_connection(self.listener.getsockname(), timeout=2))

    def make_room(self) -> None:
        self.listener.settimeout(2)
        self.sockets.append(self.listener.accept()[0])
        self.listener.setblocking(False)

    def __enter__(self) -> Blackhole:
        return self

    def __exit__(self, *exc: object) -> None:
        for sock in self.sockets:
            sock.close()


def blocks(count: int, size: int = MiB) -> Iterator[bytes]:
    """`count` distinct blocks of random bytes."""
    base = random.randbytes(size)
    for i in range(count):
        yield i.to_bytes(8, "big") + base[8:]


@dataclass(eq=False)
class FakeRoute:
    """A Route and a UdpRoute: the first target not tried yet; records every call."""

    targets: list[Target]
    source: str | None = None
    connect_timeout: float = 2.0
    picks: list[tuple[str, tuple[Target, ...], Target | None]] = field(default_factory=list)
    failed: list[tuple[Target, BaseException]] = field(default_factory=list)
    opened_conns: list[Connection] = field(default_factory=list)
    closed_conns: list[Connection] = field(default_factory=list)
    opened_flows: list[Flow] = field(default_factory=list)
    closed_flows: list[tuple[Flow, float]] = field(default_factory=list)  # with the time

    def pick(self, client_ip: str, tried: Sequence[Target]) -> Target | None:
        choice = next((t for t in self.targets if t not in tried), None)
        self.picks.append((client_ip, tuple(tried), choice))
        return choice

    def source_ip(self, client_ip: str) -> str | None:
        return self.source

    def connect_failed(self, target: Target, error: BaseException) -> None:
        self.failed.append((target, error))

    def opened(self, conn: Connection) -> None:
        self.opened_conns.append(conn)

    def closed(self, conn: Connection) -> None:
        self.closed_conns.append(conn)

    def flow_opened(self, flow: Flow) -> None:
        self.opened_flows.append(flow)

    def flow_closed(self, flow: Flow) -> None:
        self.closed_flows.append((flow, time.monotonic()))


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echo everything; close after the client's EOF."""
    while data := await reader.read(256 * 1024):
        writer.write(data)
        await writer.drain()


async def digest(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read to EOF, then answer with the length and sha256 of what came."""
    h, n = hashlib.sha256(), 0
    while data := await reader.read(256 * 1024):
        h.update(data)
        n += len(data)
    writer.write(f"{n} {h.hexdigest()}".encode())
    await writer.drain()


class Backend:
    """A stream server on 127.0.0.1 running `handler` per connection. Notes each peer's
    address and how each connection ended: "done", or the exception's class name."""

    def __init__(self, handler: Handler = echo) -> None:
        self.handler = handler
        self.peers: list[tuple[str, int]] = []
        self.ended: list[str] = []
        self.server: asyncio.Server | None = None
        self.target = Target(HOST, 0)

    async def __aenter__(self) -> Backend:
        self.server = await asyncio.start_server(self._serve, HOST, 0)
        self.target = Target(HOST, self.server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        await close_server(self.server)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        self.peers.append((peer[0], peer[1]))
        try:
            await self.handler(reader, writer)
        except OSError as err:
            self.ended.append(type(err).__name__)
        else:
            self.ended.append("done")
        finally:
            writer.close()


async def close_server(server: asyncio.Server) -> None:
    server.close()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(2):
            await server.wait_closed()


@contextlib.asynccontextmanager
async def relaying(route: FakeRoute) -> AsyncIterator[tuple[str, int]]:
    """A relay listener on 127.0.0.1 for `route`; its address."""
    server = await serve_tcp(route, HOST, 0)
    try:
        host, port = server.sockets[0].getsockname()[:2]
        yield host, port
    finally:
        server.close()


async def roundtrip(addr: tuple[str, int], message: bytes) -> bytes:
    """One connection: send, half-close, read to EOF."""
    reader, writer = await asyncio.open_connection(*addr)
    try:
        writer.write(message)
        writer.write_eof()
        return await reader.read()
    finally:
        writer.close()


# ---------------------------------------------------------------------------- TCP


def test_bytes_flow_both_ways_intact_and_are_counted(run: Run) -> None:
    payload = random.randbytes(8 * MiB)

    async def main() -> None:
        async with Backend() as backend:
            route = FakeRoute([backend.target])
            async with relaying(route) as addr:
                reader, writer = await asyncio.open_connection(*addr)

                async def send() -> None:
                    for at in range(0, len(payload), MiB):
                        writer.write(payload[at : at + MiB])
                        await writer.drain()
                    writer.write_eof()

                async with asyncio.TaskGroup() as tasks:
                    tasks.create_task(send())
                    receiving = tasks.create_task(reader.read())
                received = receiving.result()
                writer.close()
                await eventually(lambda: len(route.closed_conns) == 1, "the connection to close")

        assert len(received) == len(payload)
        assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()
        [conn] = route.opened_conns
        assert route.closed_conns == [conn]
        assert conn.target == backend.target
        assert conn.client_addr == writer.get_extra_info("sockname")[:2]
        assert conn.bytes_from_client == len(payload)
        assert conn.bytes_to_client == len(payload)
        assert route.picks == [(HOST, (), backend.target)]
        assert route.failed == []
        assert backend.ended == ["done"]

    run(main())


@pytest.mark.parametrize("client", ["open", "half-closed", "eof-only"])
@pytest.mark.parametrize("upstream", ["fast", "slow"])
def test_data_sent_before_upstream_connects_is_not_lost(
    run: Run, upstream: str, client: str
) -> None:
    """The client writes at once: bytes, then more later ("open"), bytes and its EOF
    ("half-closed"), or only its EOF ("eof-only"). "slow": the first endpoint does not
    answer the connect (its accept queue is full) and the relay tries the next after
    connect_timeout, so the bytes and the EOF surely arrive while there is no upstream
    yet (on uvloop the relay reads them then, and holds them)."""
    payload = b"" if client == "eof-only" else random.randbytes(200 * 1024)
    more = b"and more" if client == "open" else b""

    async def main() -> None:
        with Blackhole() as hole:
            async with Backend() as backend:
                targets = [hole.target, backend.target] if upstream == "slow" else [backend.target]
                route = FakeRoute(targets, connect_timeout=0.3)
                async with relaying(route) as addr:
                    reader, writer = await asyncio.open_connection(*addr)
                    writer.write(payload)
                    if client == "open":
                        received = await reader.readexactly(len(payload))
                        # still open both ways after the early bytes
                        writer.write(more)
                        assert await reader.readexactly(len(more)) == more
                        writer.write_eof()
                        assert await reader.read() == b""
                    else:
                        writer.write_eof()
                        received = await reader.read()  # the echo closes after our EOF
                    writer.close()
                    await eventually(lambda: len(route.closed_conns) == 1, "the connection to end")

        assert received == payload
        if upstream == "slow":
            [(target, error)] = route.failed
            assert target == hole.target
            assert isinstance(error, TimeoutError)
        else:
            assert route.failed == []
        [conn] = route.closed_conns
        assert conn.target == backend.target
        assert conn.bytes_from_client == conn.bytes_to_client == len(payload) + len(more)
        assert backend.ended == ["done"]

    run(main())


def test_client_half_close_backend_still_answers(run: Run) -> None:
    payload = random.randbytes(3 * MiB)

    async def main() -> None:
        async with Backend(digest) as backend:
            route = FakeRoute([backend.target])
            async with relaying(route) as addr:
                answer = await roundtrip(addr, payload)
                await eventually(lambda: len(route.closed_conns) == 1, "the connection to end")

        assert answer == f"{len(payload)} {hashlib.sha256(payload).hexdigest()}".encode()
        assert backend.ended == ["done"]

    run(main())


def test_backend_half_close_client_sees_eof_after_all_bytes_and_can_still_send(
    run: Run,
) -> None:
    payload = random.randbytes(4 * MiB)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        heard: asyncio.Future[bytes] = loop.create_future()

        async def banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(payload)
            writer.write_eof()  # done sending, still listening
            heard.set_result(await reader.read())

        async with Backend(banner) as backend:
            route = FakeRoute([backend.target])
            async with relaying(route) as addr:
                reader, writer = await asyncio.open_connection(*addr)
                received = await reader.read()  # to EOF
                assert received == payload
                writer.write(b"still here")
                writer.write_eof()
                assert await heard == b"still here"
                writer.close()
                await eventually(lambda: len(route.closed_conns) == 1, "the connection to end")

        [conn] = route.closed_conns
        assert (conn.bytes_from_client, conn.bytes_to_client) == (10, len(payload))
        assert backend.ended == ["done"]

    run(main())


def test_backend_closes_client_sees_eof_after_all_bytes(run: Run) -> None:
    payload = random.randbytes(4 * MiB)

    async def main() -> None:
        async def say_and_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(payload)
            await writer.drain()  # Backend closes the socket after this

        async with Backend(say_and_close) as backend:
            route = FakeRoute([backend.target])
            async with relaying(route) as addr:
                reader, writer = await asyncio.open_connection(*addr)
                received = await reader.read()
                writer.close()
                await eventually(lambda: len(route.closed_conns) == 1, "the connection to end")

        assert received == payload

    run(main())


def test_no_target_resets_the_client_at_once(run: Run) -> None:
    async def main() -> None:
        route = FakeRoute([])
        async with relaying(route) as addr:
            # The client's own socket, so its address is known even when the reset comes
            # before this loop has seen the connect complete.
            loop = asyncio.get_running_loop()
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.setblocking(False)
                sock.bind((HOST, 0))
                client_ip = sock.getsockname()[0]
                started = time.monotonic()
                async with asyncio.timeout(1):
                    with pytest.raises(ConnectionResetError):
                        await loop.sock_connect(sock, addr)
                        await loop.sock_recv(sock, 1)
                assert time.monotonic() - started < 1

        assert route.picks == [(client_ip, (), None)]
        assert route.opened_conns == route.closed_conns == []

    run(main())


def test_refused_connect_is_retried_on_the_next_target(run: Run) -> None:
    dead = dead_port()

    async def main() -> None:
        async with Backend() as backend:
            route = FakeRoute([dead, backend.target])
            async with relaying(route) as addr:
                assert await roundtrip(addr, b"hello") == b"hello"
                await eventually(lambda: len(route.closed_conns) == 1, "the connection to end")

        [(target, error)] = route.failed
        assert target == dead
        assert isinstance(error, ConnectionRefusedError)
        assert [p[1:] for p in route.picks] == [((), dead), ((dead,), backend.target)]
        [conn] = route.closed_conns
        assert conn.target == backend.target

    run(main())


def test_gives_up_after_max_connect_tries_with_a_reset(run: Run) -> None:
    dead = [dead_port() for _ in range(relay.MAX_CONNECT_TRIES)]

    async def main() -> None:
        async with Backend() as backend:
            route = FakeRoute([*dead, backend.target])
            async with relaying(route) as addr:
                # Refusals on loopback come back inside connect(), so the relay may give
                # up before the client's own connect has returned: the reset can reach
                # the client at either step.
                async with asyncio.timeout(2):
                    with pytest.raises(ConnectionResetError):
                        reader, writer = await asyncio.open_connection(*addr)
                        try:
                            await reader.read(1)
                        finally:
                            writer.close()

        assert [t for t, _ in route.failed] == dead
        assert backend.peers == []
        assert route.opened_conns == []

    run(main())


@pytest.mark.parametrize("mode", ["MiB-writes", "small-writes", "small-pipe"])
@pytest.mark.parametrize("direction", ["upload", "download"])
def test_back_pressure_bounds_memory_then_everything_arrives(
    run: Run, direction: str, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One end pushes 64 MiB while the other reads nothing. The relay stops reading the
    pusher as soon as the quiet end's socket takes no more, holding at most one read or
    one pipe itself, so its memory stays bounded and the pusher ends up blocked in
    drain(); then the reader reads it all.

    small-pipe: the pipe fills before PIPE_SIZE bytes, as it does when segments are
    small (each takes a pipe slot; over a 1500-byte MTU 256 slots hold ~370 KB). The
    relay must stop reading then too, not spin on a readable socket it cannot take
    from. Here the pipe is simply left at its default size."""
    count = 64
    piece = 1000 if mode == "small-writes" else MiB
    if mode == "small-pipe":
        monkeypatch.setattr(relay.tcp, "F_SETPIPE_SZ", fcntl.F_GETPIPE_SZ)
    bound = 32 * MiB  # kernel socket buffers included

    async def main() -> None:
        loop = asyncio.get_running_loop()
        handed: asyncio.Future[asyncio.StreamWriter] = loop.create_future()
        finished = asyncio.Event()

        async def hand_over(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            handed.set_result(writer)
            await finished.wait()

        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind((HOST, 0))
        listener.listen(8)
        listener.setblocking(False)
        async with Backend(hand_over) as backend:
            if direction == "upload":  # the backend is a raw socket that reads nothing yet
                route = FakeRoute([Target(HOST, listener.getsockname()[1])])
            else:  # the client is the raw socket
                route = FakeRoute([backend.target])
            async with relaying(route) as addr:
                if direction == "upload":
                    _, pusher = await asyncio.open_connection(*addr)
                    quiet, _ = await loop.sock_accept(listener)
                else:
                    quiet = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    quiet.setblocking(False)
                    await loop.sock_connect(quiet, addr)
                    pusher = await handed
                await eventually(lambda: len(route.opened_conns) == 1, "the connection")
                [conn] = route.opened_conns
                assert conn.upstream is not None
                # the relay's side writing to the quiet end, and the side it reads from
                writing, reading = (
                    (conn.upstream, conn.client)
                    if direction == "upload"
                    else (conn.client, conn.upstream)
                )
                written = 0
                most_queued = 0
                sent = hashlib.sha256()

                async def push() -> None:
                    nonlocal written, most_queued
                    for block in blocks(count):
                        sent.update(block)
                        for start in range(0, len(block), piece):
                            pusher.write(block[start : start + piece])
                        await pusher.drain()
                        written += len(block)
                        most_queued = max(most_queued, queued_in(writing))
                    pusher.write_eof()

                pushing = asyncio.create_task(push())
                stalled_at = await settled(lambda: written, "the pusher to stall", quiet=0.3)
                assert not pushing.done(), "the pusher was never held back"
                assert stalled_at < bound, f"{stalled_at / MiB:.1f} MiB went in unread"
                assert not reading.reading
                queued = queued_in(writing)
                assert 0 < queued <= HELD_AT_MOST
                most_queued = max(most_queued, queued)

                got, h = 0, hashlib.sha256()
                with quiet:
                    while data := await loop.sock_recv(quiet, 256 * 1024):
                        got += len(data)
                        h.update(data)
                await pushing
                finished.set()
                await eventually(lambda: len(route.closed_conns) == 1, "the connection to end")
        listener.close()

        assert got == count * MiB
        assert h.digest() == sent.digest()
        assert most_queued <= HELD_AT_MOST
        [conn] = route.closed_conns
        moved = conn.bytes_from_client if direction == "upload" else conn.bytes_to_client
        assert moved == count * MiB

    run(main())


HELD_AT_MOST = max(relay.READ_SIZE, relay.PIPE_SIZE)


def queued_in(side: Any) -> int:
    """Bytes the relay holds for one socket (read from the other, not yet taken): copied,
    or in the other side's pipe."""
    pending = side.pending
    held: int = side.peer.piped
    return held + (0 if pending is None else len(pending))


async def one_connection(
    route: FakeRoute, addr: tuple[str, int]
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Connection]:
    """A client connection through the relay that has echoed a ping, and the relay's
    Connection for it (the route's only one)."""
    reader, writer = await asyncio.open_connection(*addr)
    writer.write(b"ping")
    assert await reader.readexactly(4) == b"ping"
    [conn] = route.opened_conns
    return reader, writer, conn


def test_close_relays_the_connections_still_in_the_accept_queue(run: Run) -> None:
    """A client whose connect the kernel completed before the listener closed is relayed,
    not reset (a node proxy stopping, a port removed while connections arrive)."""

    async def main() -> None:
        async with Backend() as backend:
            listener = await serve_tcp(FakeRoute([backend.target]), HOST, 0)
            address = listener.sockets[0].getsockname()[:2]
            # Blocking connects, no loop turn in between: all three wait in the queue.
            clients = [socket.create_connection(address, timeout=2) for _ in range(3)]
            listener.close()
            for client in clients:
                with client:
                    client.sendall(b"ping")
                    client.shutdown(socket.SHUT_WR)
                    client.setblocking(False)
                    loop = asyncio.get_running_loop()
                    answer = b""
                    async with asyncio.timeout(5):
                        while chunk := await loop.sock_recv(client, 16):
                            answer += chunk
                    assert answer == b"ping"

    run(main())


def test_reset_resets_both_sockets(run: Run) -> None:
    async def main() -> None:
        async with Backend() as backend:
            route = FakeRoute([backend.target])
            async with relaying(route) as addr:
                reader, writer, conn = await one_connection(route, addr)
                conn.reset()
                with pytest.raises(ConnectionResetError):
                    await reader.read(1)
                writer.close()
                await eventually(lambda: backend.ended != [], "the backend's read to end")

        assert backend.ended == ["ConnectionResetError"]

    run(main())


def test_reset_connection_is_reported_closed(run: Run) -> None:
    """The route hears of a reset connection like of any other: the proxy drops it from
    its open set and counts its bytes (reset() once marked the connection closed itself,
    so the sides' connection_lost found nothing left to do)."""

    async def main() -> None:
        async with Backend() as backend:
            route = FakeRoute([backend.target])
            async with relaying(route) as addr:
                reader, writer, conn = await one_connection(route, addr)
                conn.reset()
                with pytest.raises(ConnectionResetError):
                    await reader.read(1)
                writer.close()
                await eventually(
                    lambda: route.closed_conns == [conn], "route.closed for the reset", timeout=1
                )

    run(main())


def test_source_ip_is_bound_for_the_upstream_connect(run: Run) -> None:
    async def main() -> None:
        async with Backend() as backend:
            route = FakeRoute([backend.target], source="127.0.0.77")
            async with relaying(route) as addr:
                assert await roundtrip(addr, b"from where") == b"from where"
                await eventually(lambda: len(route.closed_conns) == 1, "the connection to end")

        [(ip, _)] = backend.peers
        assert ip == "127.0.0.77"

    run(main())


def congestion_of(sock: socket.socket) -> bytes:
    assert TCP_CONGESTION is not None
    return sock.getsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, 16).rstrip(b"\0")


@pytest.mark.skipif(TCP_CONGESTION is None, reason="no TCP_CONGESTION on this platform")
def test_relay_sockets_use_the_relay_congestion_control(run: Run) -> None:
    """Both sockets of a connection (the accepted one inherits the listener's) use CUBIC
    or Reno, not a pacing default such as BBR, where this host lets the relay choose."""

    async def main() -> None:
        async with Backend() as backend:
            route = FakeRoute([backend.target])
            async with relaying(route) as addr:
                _, writer, conn = await one_connection(route, addr)
                assert conn.upstream is not None
                sockets = [conn.client.sock, conn.upstream.sock]
                used = {congestion_of(sock) for sock in sockets}
                writer.close()
        with socket.socket() as probe:
            default = congestion_of(probe)
        chosen = relay_congestion()
        if chosen is None:  # the default is fine already, or nothing else may be set
            assert used == {default}
        else:
            assert default not in RELAY_CONGESTION
            assert used == {chosen}

    run(main())


def test_thousand_connections_leave_no_fds_tasks_or_open_routes(run: Run) -> None:
    async def main() -> None:
        async with Backend() as backend:
            route = FakeRoute([backend.target])
            async with relaying(route) as addr:
                fds, tasks = open_fds(), len(asyncio.all_tasks())

                async def one(i: int) -> None:
                    reader, writer = await asyncio.open_connection(*addr)
                    message = f"connection {i} ".encode() * 20
                    writer.write(message)
                    assert await reader.readexactly(len(message)) == message
                    writer.close()
                    await writer.wait_closed()

                for batch in range(20):
                    await asyncio.gather(*(one(batch * 50 + k) for k in range(50)))

                await eventually(
                    lambda: len(route.closed_conns) == 1000, "every connection closed", timeout=10
                )
                await eventually(lambda: open_fds() <= fds, "the fds to be released")
                await eventually(lambda: len(asyncio.all_tasks()) == tasks, "tasks to finish")

        assert len(route.opened_conns) == 1000
        assert {id(c) for c in route.opened_conns} == {id(c) for c in route.closed_conns}
        assert backend.ended == ["done"] * 1000

    run(main())


def test_client_leaving_during_a_slow_connect_leaves_nothing(run: Run) -> None:
    async def main() -> None:
        with Blackhole() as hole:
            async with Backend() as backend:
                route = FakeRoute([hole.target, backend.target], connect_timeout=0.3)
                async with relaying(route) as addr:
                    fds, tasks = open_fds(), len(asyncio.all_tasks())
                    for linger in (False, True):  # a FIN, then a reset
                        _, writer = await asyncio.open_connection(*addr)
                        writer.write(b"bye")
                        if linger:
                            sock = writer.get_extra_info("socket")
                            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
                        writer.close()
                        await writer.wait_closed()
                    await eventually(lambda: len(route.failed) == 2, "both slow connects to fail")
                    await eventually(lambda: open_fds() <= fds, "the fds to be released")
                    await eventually(lambda: len(asyncio.all_tasks()) == tasks, "tasks to finish")
                    await eventually(
                        lambda: len(route.closed_conns) == len(route.opened_conns),
                        "every opened connection to be closed",
                    )

    run(main())


def test_client_leaving_during_a_connect_that_then_succeeds_leaves_nothing(run: Run) -> None:
    """The client resets while the upstream connect hangs; then the connect succeeds (the
    endpoint's accept queue got room for the retried SYN). The relay drops the upstream
    connection at once and nothing is left behind."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        with Blackhole() as hole:
            route = FakeRoute([hole.target], connect_timeout=5)
            async with relaying(route) as addr:
                await first_stream_made()
                fds, tasks = open_fds(), len(asyncio.all_tasks())
                _, writer = await asyncio.open_connection(*addr)
                await eventually(lambda: len(route.picks) == 1, "the upstream connect to start")
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
                writer.close()
                await writer.wait_closed()
                hole.make_room()  # one more fd, until the end
                async with asyncio.timeout(3):
                    upstream, _ = await loop.sock_accept(hole.listener)
                    with upstream:
                        try:
                            assert await loop.sock_recv(upstream, 1) == b""
                        except ConnectionResetError:
                            pass
                await eventually(lambda: open_fds() <= fds + 1, "the fds to be released")
                await eventually(lambda: len(asyncio.all_tasks()) == tasks, "tasks to finish")
                await eventually(
                    lambda: len(route.closed_conns) == len(route.opened_conns),
                    "every opened connection to be closed",
                )
        assert route.failed == []

    run(main())


# ---------------------------------------------------------------------------- UDP


class Datagrams(asyncio.DatagramProtocol):
    """A client socket: what came, and from where."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.DatagramTransport subclasses, only alike.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.queue.put_nowait((data, (addr[0], addr[1])))

    @property
    def address(self) -> tuple[str, int]:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return host, port

    async def ask(self, to: tuple[str, int], data: bytes) -> tuple[bytes, tuple[str, int]]:
        assert self.transport is not None
        self.transport.sendto(data, to)
        async with asyncio.timeout(2):
            return await self.queue.get()


class UdpEcho(Datagrams):
    """A UDP echo server; notes the address of every sender."""

    def __init__(self) -> None:
        super().__init__()
        self.peers: list[tuple[str, int]] = []

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        assert self.transport is not None
        self.peers.append((addr[0], addr[1]))
        self.transport.sendto(data, addr)


async def udp_endpoints(count: int) -> list[Datagrams]:
    loop = asyncio.get_running_loop()
    out = []
    for _ in range(count):
        _, proto = await loop.create_datagram_endpoint(Datagrams, local_addr=(HOST, 0))
        out.append(proto)
    return out


@contextlib.asynccontextmanager
async def udp_echo() -> AsyncIterator[tuple[UdpEcho, Target]]:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(UdpEcho, local_addr=(HOST, 0))
    try:
        yield proto, Target(*proto.address)
    finally:
        transport.close()


def closing(endpoints: Iterable[Datagrams]) -> None:
    for e in endpoints:
        if e.transport is not None:
            e.transport.close()


def test_udp_flows_relay_both_ways_idle_out_and_close(run: Run) -> None:
    async def main() -> None:
        async with udp_echo() as (backend, target):
            route = FakeRoute([target])
            one, two = clients = await udp_endpoints(2)
            fds, tasks = open_fds(), len(asyncio.all_tasks())
            listener = await serve_udp(route, HOST, 0, idle_timeout=0.2)
            at: tuple[str, int] = listener.sock.getsockname()

            assert await one.ask(at, b"one") == (b"one", at)
            assert await two.ask(at, b"two") == (b"two", at)
            assert [f.client_addr for f in route.opened_flows] == [one.address, two.address]
            assert set(listener.flows) == {one.address, two.address}
            assert len(set(backend.peers)) == 2  # a socket of its own for each flow
            for _ in range(20):
                assert await one.ask(at, b"again") == (b"again", at)
            assert len(route.opened_flows) == 2
            first = listener.flows[one.address]
            assert (first.bytes_from_client, first.bytes_to_client) == (3 + 100, 3 + 100)
            assert first.target == target

            # Busy for three idle timeouts: only the idle flow is swept.
            deadline = time.monotonic() + 0.6
            while time.monotonic() < deadline:
                assert await one.ask(at, b"busy") == (b"busy", at)
                await asyncio.sleep(0.03)
            assert [f.client_addr for f, _ in route.closed_flows] == [two.address]
            assert listener.flows[one.address] is first

            await eventually(lambda: len(route.closed_flows) == 2, "the idle flow to close")
            assert listener.flows == {}
            assert await one.ask(at, b"back") == (b"back", at)
            assert len(route.opened_flows) == 3
            assert listener.flows[one.address] is route.opened_flows[2]

            listener.close()
            assert len(route.closed_flows) == 3
            assert listener.flows == {}
            listener.close()  # again: nothing more to do, and no error
            assert len(route.closed_flows) == 3
            await eventually(lambda: open_fds() <= fds, "the fds to be released")
            await eventually(lambda: len(asyncio.all_tasks()) == tasks, "the sweeper to end")
            closing(clients)

    run(main())


def test_udp_refused_endpoint_closes_the_flow_and_the_next_datagram_picks_again(
    run: Run,
) -> None:
    async def main() -> None:
        async with udp_echo() as (_, target):
            dead = dead_port(socket.SOCK_DGRAM)
            route = FakeRoute([dead])
            [client] = await udp_endpoints(1)
            listener = await serve_udp(route, HOST, 0)
            at: tuple[str, int] = listener.sock.getsockname()
            try:
                assert client.transport is not None
                client.transport.sendto(b"anyone?", at)
                await eventually(lambda: len(route.closed_flows) == 1, "the refused flow to close")
                assert route.closed_flows[0][0].target == dead
                route.targets = [target]
                assert await client.ask(at, b"hello") == (b"hello", at)
                assert [f.target for f in route.opened_flows] == [dead, target]
            finally:
                listener.close()
                closing([client])

    run(main())


def test_udp_source_ip_is_bound(run: Run) -> None:
    async def main() -> None:
        async with udp_echo() as (backend, target):
            route = FakeRoute([target], source="127.0.0.77")
            [client] = await udp_endpoints(1)
            listener = await serve_udp(route, HOST, 0)
            at: tuple[str, int] = listener.sock.getsockname()
            try:
                assert await client.ask(at, b"hi") == (b"hi", at)
            finally:
                listener.close()
                closing([client])
        [(ip, _)] = backend.peers
        assert ip == "127.0.0.77"

    run(main())


def test_udp_flow_is_not_closed_before_idle_timeout(run: Run) -> None:
    """The sweep is coarse, but never cuts a flow short: the last datagram goes late in a
    sweep period, where a sweep that counts generations too few would close the flow
    after only part of idle_timeout (it once did, after half)."""
    idle = 0.4

    async def main() -> None:
        async with udp_echo() as (_, target):
            route = FakeRoute([target])
            [client] = await udp_endpoints(1)
            listener: UdpListener = await serve_udp(route, HOST, 0, idle_timeout=idle)
            at: tuple[str, int] = listener.sock.getsockname()
            try:

                async def next_sweep() -> float:
                    generation = listener.generation
                    await eventually(lambda: listener.generation != generation, "a sweep")
                    return time.monotonic()

                # Time a sweep period, then send three quarters into the next one.
                await next_sweep()
                start = await next_sweep()
                period = await next_sweep() - start
                await asyncio.sleep(0.75 * period)
                assert await client.ask(at, b"x") == (b"x", at)
                last = time.monotonic()
                await eventually(lambda: route.closed_flows != [], "the flow to idle out", 3)
                [(_, closed_at)] = route.closed_flows
                assert closed_at - last >= idle, f"closed after {closed_at - last:.2f}s idle"
            finally:
                listener.close()
                closing([client])

    run(main())
