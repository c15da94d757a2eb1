"""The TCP and UDP relay under every node proxy and the cloud-stub (DESIGN §2.4, §6).

A listener asks its `Route` where each new connection (or UDP flow) goes, then
moves bytes. The route owns the policy (which endpoint, what source address,
what to track); this module owns the sockets.

TCP. One `_Side` protocol per socket, two per connection. The client's socket
does not read until the upstream connect succeeded, so nothing is lost and a
failed connect can be retried on another endpoint: nothing was sent yet. No
endpoint, or every try failed: the client's socket is closed with a reset at
once (SO_LINGER 0), so the client sees a refusal, never a hang.
The hot path is `buffer_updated`: the kernel reads straight into a per-side
buffer (BufferedProtocol), which is handed to the peer's transport without a
copy. uvloop may still hold that view until the end of the loop iteration, so a
buffer whose bytes are still queued is never read into again: the side takes a
fresh one. Buffers start at 16 KiB and grow to 256 KiB for a side whose reads fill
them (a bulk stream), so a thousand idle keep-alive connections stay small.
Back-pressure: when one transport's write buffer passes its high-water mark the
other side stops reading, and resumes when it drains. Half-close: an EOF from one
side is passed on with `write_eof`; the connection ends when both directions
have, or when either side fails (the other is then reset, as a kernel would).

UDP. A flow per client address, each with its own connected socket to the
endpoint the route chose; replies go back through the listening socket, so they
come from the address the client sent to. Datagrams move synchronously in
reader callbacks through one shared buffer (`recvfrom_into` / `send`). Flows
idle longer than `idle_timeout` are closed by a sweep.

Counters (bytes, per connection and flow) are plain ints on the objects; the
route reads them when a connection closes. Nothing on the hot path logs.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import struct
from collections.abc import Sequence
from typing import Protocol, cast

from kubelab.core.endpoint_choice import Target

log = logging.getLogger(__name__)

SMALL_BUFFER = 16 * 1024
LARGE_BUFFER = 256 * 1024
HIGH_WATER = 1024 * 1024
MAX_CONNECT_TRIES = 3
_LINGER_RESET = struct.pack("ii", 1, 0)
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)


class Chooser(Protocol):
    """What any listener asks of its owner. `pick` returns None when there is no endpoint
    (left to try): the connection is refused, the datagram dropped."""

    def pick(self, client_ip: str, tried: Sequence[Target]) -> Target | None: ...

    def source_ip(self, client_ip: str) -> str | None:
        """The address the upstream side binds before connecting (None: any)."""
        ...


class Route(Chooser, Protocol):
    """A TCP listener's owner: the choice, and what to hear of each connection."""

    connect_timeout: float

    def connect_failed(self, target: Target, error: BaseException) -> None: ...

    def opened(self, conn: Connection) -> None: ...

    def closed(self, conn: Connection) -> None: ...


# ---------------------------------------------------------------------------- TCP


class _Side(asyncio.BufferedProtocol):
    """One socket of a relayed connection; `peer` is the other one."""

    __slots__ = ("buffer", "conn", "count", "eof", "lent", "peer", "size", "transport")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self.buffer = memoryview(bytearray(0))  # allocated on the first read
        self.size = SMALL_BUFFER
        self.eof = False
        self.lent = False  # the buffer was handed to the peer's transport without a copy
        self.count = 0  # bytes read from this side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=HIGH_WATER)

    def itself(self) -> _Side:
        """The protocol factory for a transport that should use this very side."""
        return self

    def get_buffer(self, sizehint: int) -> memoryview:
        buffer = self.buffer
        if len(buffer) != self.size or (
            self.lent
            and (peer := self.peer) is not None
            and peer.transport is not None
            # The view we lent may still sit in the peer's queue: never read into it.
            and peer.transport.get_write_buffer_size()
        ):
            buffer = self.buffer = memoryview(bytearray(self.size))
        self.lent = False
        return buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.count += nbytes
        peer = self.peer
        if peer is not None and peer.transport is not None:
            transport = peer.transport
            if transport.get_write_buffer_size():
                # The peer is behind: copy just these bytes, rather than pin a whole
                # buffer per queued chunk (uvloop queues views, not copies).
                transport.write(self.buffer[:nbytes].tobytes())
            else:
                transport.write(self.buffer[:nbytes] if nbytes < self.size else self.buffer)
                self.lent = True
        else:
            self.conn.hold(self, self.buffer[:nbytes])
        if nbytes == self.size:
            self.size = LARGE_BUFFER  # reads fill the buffer: a bulk stream

    def eof_received(self) -> bool:
        self.eof = True
        peer = self.peer
        if peer is None and not self.conn.closed and self.conn.target is None:
            return True  # the client is done sending before upstream is there: pass it on then
        if peer is None or peer.transport is None or peer.transport.is_closing():
            return False
        if peer.eof:
            self.conn.close()
            return False
        if peer.transport.can_write_eof():
            peer.transport.write_eof()
        return True  # keep our transport open: the other direction may still flow

    def pause_writing(self) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.transport.is_closing():
            peer.transport.pause_reading()

    def resume_writing(self) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.transport.is_closing():
            peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.side_lost(self, exc)


class Connection:
    """A relayed TCP connection: client side, upstream side, where it went, byte counts."""

    __slots__ = (
        "_task",
        "client",
        "client_addr",
        "closed",
        "early",
        "route",
        "target",
        "upstream",
    )

    def __init__(self, route: Route) -> None:
        self.route = route
        self.client: _Side = _Accepted(self)
        self.upstream: _Side | None = None
        self.client_addr: tuple[str, int] = ("", 0)
        self.target: Target | None = None
        self.closed = False
        self.early = b""
        self._task: asyncio.Task[None] | None = None  # held: a task needs a reference

    @property
    def bytes_from_client(self) -> int:
        return self.client.count

    @property
    def bytes_to_client(self) -> int:
        return self.upstream.count if self.upstream is not None else 0

    def accepted(self, transport: asyncio.Transport) -> None:
        transport.pause_reading()
        peer = transport.get_extra_info("peername")
        self.client_addr = (peer[0], peer[1]) if peer else ("", 0)
        self._task = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        tried: list[Target] = []
        client_ip = self.client_addr[0]
        while len(tried) < MAX_CONNECT_TRIES and not self.closed:
            target = self.route.pick(client_ip, tried)
            if target is None:
                break
            tried.append(target)
            upstream = _Side(self)
            source = self.route.source_ip(client_ip)
            try:
                async with asyncio.timeout(self.route.connect_timeout):
                    if source is None:
                        await loop.create_connection(upstream.itself, target.ip, target.port)
                    else:
                        await _connect_from(loop, upstream, source, target)
            except (OSError, TimeoutError) as err:
                self.route.connect_failed(target, err)
                continue
            if self.closed:  # the client gave up while we connected
                assert upstream.transport is not None
                upstream.transport.abort()
                return
            self.target = target
            self.upstream = upstream
            self.client.peer, upstream.peer = upstream, self.client
            self.route.opened(self)
            assert self.client.transport is not None and upstream.transport is not None
            if self.early:
                upstream.transport.write(self.early)
                self.early = b""
            if self.client.eof:
                upstream.transport.write_eof()
            else:
                self.client.transport.resume_reading()
            return
        self.reset()

    def hold(self, side: _Side, data: memoryview) -> None:
        """Bytes the client sent before the upstream side was there: uvloop starts
        reading an accepted socket right after `connection_made`, whatever that asked."""
        self.early += data
        if side.transport is not None:
            side.transport.pause_reading()

    def side_lost(self, side: _Side, exc: Exception | None) -> None:
        other = side.peer
        if other is None or other.transport is None or other.transport.is_closing():
            self._finish()
            return
        if exc is None and side.eof:
            other.transport.close()  # a clean close: let queued bytes reach the other end
        else:
            other.transport.abort()
        self._finish()

    def _finish(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.target is not None:
            self.route.closed(self)

    def close(self) -> None:
        """Both directions are done: close both sockets, flushing what is queued."""
        for side in (self.client, self.upstream):
            if side is not None and side.transport is not None:
                side.transport.close()

    def reset(self) -> None:
        """End the connection now, with a reset on both sockets (an endpoint went away,
        or there was none to go to)."""
        if self.target is None:
            self.closed = True  # a connect still under way sees it and gives up
        for side in (self.client, self.upstream):
            if side is not None and side.transport is not None and not side.transport.is_closing():
                _set_linger_reset(side.transport)
                side.transport.abort()
        # A relayed connection is finished (and reported closed) by its sides'
        # connection_lost, which the aborts bring.


async def _connect_from(
    loop: asyncio.AbstractEventLoop, upstream: _Side, source_ip: str, target: Target
) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Leave the port to connect(): with bind()'s own choice every upstream socket
        # of one source address would need a distinct port.
        sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        _bind_source(sock, source_ip)
        await loop.sock_connect(sock, (target.ip, target.port))
        await loop.create_connection(upstream.itself, sock=sock)
    except BaseException:
        sock.close()
        raise


def _bind_source(sock: socket.socket, source_ip: str) -> None:
    """Send from `source_ip` when it is an address of this host; when it is not (lab
    mode, a remote client) the pod sees the proxy's address instead."""
    try:
        sock.bind((source_ip, 0))
    except OSError as err:
        if err.errno != errno.EADDRNOTAVAIL:
            raise


def _set_linger_reset(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        except OSError:
            pass


class _Accepted(_Side):
    """The client side: starts the upstream connect once accepted."""

    __slots__ = ()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert self.transport is not None
        self.conn.accepted(self.transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn.target is None:  # lost while connecting upstream
            self.conn.closed = True
            return
        super().connection_lost(exc)


def listening_socket(
    kind: socket.SocketKind, host: str, port: int, *, reuse_port: bool, free_bind: bool = False
) -> socket.socket:
    """A bound socket for a listener. `reuse_port`: several node agents sharing one
    network namespace (embedded mode) all bind a ClusterIP:port; the kernel spreads
    new connections and flows over them. `free_bind`: the address need not be on an
    interface (yet)."""
    sock = socket.socket(socket.AF_INET, kind)
    try:
        if kind == socket.SOCK_STREAM:
            # TCP: rebind past TIME_WAIT. Not for UDP, where it would let a second
            # socket bind a taken port without an error.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if free_bind:
            sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
        sock.setblocking(False)
        sock.bind((host, port))
        return sock
    except BaseException:
        sock.close()
        raise


async def serve_tcp(
    route: Route,
    host: str,
    port: int,
    *,
    reuse_port: bool = False,
    free_bind: bool = False,
    backlog: int = 1024,
) -> asyncio.Server:
    """Listen on host:port and relay every connection along `route`."""
    loop = asyncio.get_running_loop()
    sock = listening_socket(
        socket.SOCK_STREAM, host, port, reuse_port=reuse_port, free_bind=free_bind
    )

    def accept() -> _Side:
        return Connection(route).client

    try:
        return await loop.create_server(accept, sock=sock, backlog=backlog)
    except BaseException:
        sock.close()
        raise


# ---------------------------------------------------------------------------- UDP


class Flow:
    """One UDP client's traffic through a listener: its own socket to one endpoint."""

    __slots__ = (
        "bytes_from_client",
        "bytes_to_client",
        "client_addr",
        "listener",
        "seen",
        "sock",
        "target",
    )

    def __init__(
        self,
        listener: UdpListener,
        client_addr: tuple[str, int],
        target: Target,
        sock: socket.socket,
    ) -> None:
        self.listener = listener
        self.client_addr = client_addr
        self.target = target
        self.sock = sock
        self.seen = listener.generation
        self.bytes_from_client = 0
        self.bytes_to_client = 0

    def reset(self) -> None:
        self.listener.close_flow(self)


class UdpRoute(Chooser, Protocol):
    """A UDP listener's owner: the choice, and what to hear of each flow."""

    def flow_opened(self, flow: Flow) -> None: ...

    def flow_closed(self, flow: Flow) -> None: ...


class UdpListener:
    """A UDP frontend: datagrams from each client address go to that client's flow."""

    def __init__(self, route: UdpRoute, sock: socket.socket, *, idle_timeout: float = 30.0) -> None:
        self.route = route
        self.sock = sock
        self.idle_timeout = idle_timeout
        self.flows: dict[tuple[str, int], Flow] = {}
        self.generation = 0
        self._buffer = bytearray(65536)
        self._view = memoryview(self._buffer)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._from_clients)
        self._sweeper = self._loop.create_task(self._sweep())

    def _from_clients(self) -> None:
        sock, view, flows = self.sock, self._view, self.flows
        for _ in range(64):  # a bounded batch, so one busy listener cannot starve others
            try:
                size, addr = sock.recvfrom_into(view)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # an ICMP error for an earlier reply; nothing to do
            flow = flows.get(addr)
            if flow is None:
                flow = self._open_flow(addr)
                if flow is None:
                    continue
            flow.seen = self.generation
            flow.bytes_from_client += size
            try:
                flow.sock.send(view[:size])
            except (BlockingIOError, InterruptedError):
                pass  # the endpoint's socket is full: UDP drops, as the network would
            except OSError:
                # Refused (the pod's port is gone): let the next datagram pick again.
                self.close_flow(flow)

    def _open_flow(self, addr: tuple[str, int]) -> Flow | None:
        target = self.route.pick(addr[0], ())
        if target is None:
            return None
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            source = self.route.source_ip(addr[0])
            if source:
                _bind_source(sock, source)
            sock.connect((target.ip, target.port))
        except OSError:
            sock.close()
            return None
        flow = Flow(self, addr, target, sock)
        self.flows[addr] = flow
        self._loop.add_reader(sock.fileno(), self._from_endpoint, flow)
        self.route.flow_opened(flow)
        return flow

    def _from_endpoint(self, flow: Flow) -> None:
        view = self._view
        for _ in range(64):
            try:
                size = flow.sock.recv_into(view)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.close_flow(flow)
                return
            flow.seen = self.generation
            flow.bytes_to_client += size
            try:
                self.sock.sendto(view[:size], flow.client_addr)
            except OSError:
                pass

    def close_flow(self, flow: Flow) -> None:
        if self.flows.get(flow.client_addr) is not flow:
            return
        del self.flows[flow.client_addr]
        self._loop.remove_reader(flow.sock.fileno())
        flow.sock.close()
        self.route.flow_closed(flow)

    async def _sweep(self) -> None:
        # Coarse idleness: each flow notes the sweep generation it last moved a datagram
        # in, and sweeps come four per timeout. A flow last seen in generation g was
        # active at most until sweep g+1 began, so at sweep g+5 it has been idle at
        # least four periods (the timeout) and at most five.
        period = self.idle_timeout / 4
        while True:
            await asyncio.sleep(period)
            self.generation += 1
            cutoff = self.generation - 5
            for flow in [f for f in self.flows.values() if f.seen <= cutoff]:
                self.close_flow(flow)

    def close(self) -> None:
        self._sweeper.cancel()
        for flow in list(self.flows.values()):
            self.close_flow(flow)
        self._loop.remove_reader(self.sock.fileno())
        self.sock.close()


async def serve_udp(
    route: UdpRoute,
    host: str,
    port: int,
    *,
    reuse_port: bool = False,
    free_bind: bool = False,
    idle_timeout: float = 30.0,
) -> UdpListener:
    sock = listening_socket(
        socket.SOCK_DGRAM, host, port, reuse_port=reuse_port, free_bind=free_bind
    )
    return UdpListener(route, sock, idle_timeout=idle_timeout)
