"""The TCP half of the relay: plain non-blocking sockets driven by loop readers and writers.

Why not asyncio transports: a transport per socket costs a protocol call chain, a
write queue and buffer bookkeeping for every chunk, and a Task per connect. Measured
on the project's 2-core machines (bench/dataplane.py), a relay on uvloop transports
reached ~9,500 new connections/s where this design reaches ~14,000 (HAProxy with one
thread: ~17,500), with the same keep-alive rate.

A connection is two `_Side`s, client and upstream. Each readable callback does one
`recv_into` into a buffer shared by every connection of the process, then one `send` of
those bytes to the other socket. Nothing is queued in user space unless the send was
partial: then the unsent rest is copied out (`pending`), the reading side stops reading
and the writing side waits until its socket is writable again. That is all the
back-pressure there is: at most one read (`READ_SIZE`) per direction waits in the
relay; the rest stays in the kernel's socket buffers, which is where TCP flow control
wants it.

Sockets are watched through the relay's own epoll set (`kubelab.relay.poller`), one
`epoll_ctl` each way, rather than one event-loop registration per socket.

Connect: non-blocking `connect_ex`, asked once more at once (on loopback and veth the
handshake has usually completed inside the first call); otherwise a writer callback for
completion and one timer for `connect_timeout`. Measured on the project's 2-core VM with
`bench/dataplane.py`, the poller and the early connect took the relay from 0.68x to
0.84x HAProxy's new connections per second (NodePort 0.61x to 0.79x).

The client's socket is not read until the upstream connect succeeded, so nothing can be
lost and a failed connect is retried on another endpoint (nothing was sent yet), up to
`MAX_CONNECT_TRIES`. No endpoint, or every try failed:
the client's socket is closed with a reset at once (SO_LINGER 0), so the client sees a
refusal, never a hang.

Half-close: an EOF read from one side is passed on with `shutdown(SHUT_WR)`; the
connection ends when both directions have, or when either socket fails (the other is
then reset, as a kernel would).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import socket
from typing import Protocol

from kubelab.core.endpoint_choice import Target
from kubelab.relay.poller import READ, WRITE, poller_for
from kubelab.relay.sockets import (
    IP_BIND_ADDRESS_NO_PORT,
    Chooser,
    bind_source,
    close_with_reset,
    set_relay_congestion,
)

log = logging.getLogger(__name__)

READ_SIZE = 256 * 1024
MAX_CONNECT_TRIES = 3
# Created non-blocking: no ioctl after socket().
_NONBLOCKING_STREAM = socket.SOCK_STREAM | getattr(socket, "SOCK_NONBLOCK", 0)
_CONNECTING = (errno.EINPROGRESS, errno.EALREADY)
# splice(2) is Linux's; elsewhere every stream is copied.
SPLICE = hasattr(os, "splice")
PIPE_SIZE = 1024 * 1024  # the most a pipe may hold without privileges (fs.pipe-max-size)
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_SPLICE_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)

# One loop per process runs every callback below to completion, so one read buffer
# serves every connection: a read is sent on (or copied out) before the callback ends.
_BUFFER = bytearray(READ_SIZE)
_VIEW = memoryview(_BUFFER)


class Route(Chooser, Protocol):
    """A TCP listener's owner: the choice, and what to hear of each connection."""

    connect_timeout: float

    def connect_failed(self, target: Target, error: BaseException) -> None: ...

    def opened(self, conn: Connection) -> None: ...

    def closed(self, conn: Connection) -> None: ...


class _Side:
    """One socket of a relayed connection and the bytes on their way *to* it.

    `pending`: bytes read from the peer (copied) that this socket has not taken yet;
    the peer does not read meanwhile. A bulk stream from this socket moves through its
    pipe with splice(2) instead, in the kernel, without the two copies through user
    space: the peer's socket is fed from `pipe_r` while this socket still fills
    `pipe_w`, and reading stops only when the pipe is full."""

    __slots__ = (
        "conn",
        "count",
        "done",
        "eof",
        "fd",
        "loop",
        "peer",
        "pending",
        "pipe_r",
        "pipe_w",
        "piped",
        "poller",
        "reading",
        "sock",
        "writing",
    )

    def __init__(self, conn: Connection, sock: socket.socket) -> None:
        self.conn = conn
        self.loop = conn.loop
        self.poller = conn.poller
        self.sock = sock
        self.fd = sock.fileno()
        self.peer: _Side = self
        self.count = 0  # bytes read from this socket
        self.pending: memoryview | None = None
        self.eof = False  # read EOF from this socket
        self.done = False  # ... and every byte before it reached the peer, then its EOF
        self.reading = False  # a reader callback is registered
        self.writing = False  # a writer callback is registered: the socket was full
        self.pipe_r = self.pipe_w = -1  # -1: no pipe (yet)
        self.piped = 0  # bytes in the pipe, not yet taken by the peer's socket

    def _watch(self) -> None:
        mask = (READ if self.reading else 0) | (WRITE if self.writing else 0)
        self.poller.set(self.fd, self, mask)

    def start_reading(self) -> None:
        self.reading = True
        self._watch()

    def stop_reading(self) -> None:
        self.reading = False
        self._watch()

    def wait_writable(self) -> None:
        self.writing = True
        self._watch()

    def readable(self) -> None:
        if self.pipe_r >= 0:
            self._splice_in()
            return
        try:
            size = self.sock.recv_into(_VIEW)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.conn.abort()
            return
        if not size:
            self._eof()
            return
        self.count += size
        peer = self.peer
        try:
            sent = peer.sock.send(_VIEW[:size] if size < READ_SIZE else _VIEW)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self.conn.abort()
            return
        if sent < size:
            peer.pending = memoryview(_VIEW[sent:size].tobytes())
            self.stop_reading()
            peer.wait_writable()
        if size == READ_SIZE and SPLICE:
            self._open_pipe()  # reads fill the buffer: a bulk stream

    def _open_pipe(self) -> None:
        try:
            self.pipe_r, self.pipe_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return  # out of fds: copying works too
        with contextlib.suppress(OSError):
            fcntl.fcntl(self.pipe_w, F_SETPIPE_SZ, PIPE_SIZE)

    def _splice_in(self) -> None:
        try:
            size = os.splice(self.fd, self.pipe_w, PIPE_SIZE - self.piped, flags=_SPLICE_FLAGS)
        except (BlockingIOError, InterruptedError):
            if self.piped:
                # The pipe is out of slots before PIPE_SIZE bytes (each holds one
                # segment's piece, however small): wait for the peer to drain it, or the
                # readable socket would call us again at once, forever.
                self.stop_reading()
            return
        except OSError:
            self.conn.abort()
            return
        if not size:
            self._eof()
            return
        self.count += size
        self.piped += size
        peer = self.peer
        if not peer.writing:
            if self._splice_out():
                return
            peer.wait_writable()
        if self.piped >= PIPE_SIZE:
            self.stop_reading()

    def _splice_out(self) -> bool:
        """Move what the pipe holds to the peer's socket; True when it took it all (or
        the connection ended trying)."""
        try:
            self.piped -= os.splice(self.pipe_r, self.peer.fd, self.piped, flags=_SPLICE_FLAGS)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self.conn.abort()
            return True
        return not self.piped

    def writable(self) -> None:
        """This socket has room again: feed it what waits for it, then let the peer go on."""
        pending = self.pending
        if pending is not None:
            try:
                sent = self.sock.send(pending)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.conn.abort()
                return
            if sent < len(pending):
                self.pending = pending[sent:]
                return
            self.pending = None
        peer = self.peer
        if peer.piped and not peer._splice_out():
            return
        if self.conn.closed:
            return
        self.writing = False
        self._watch()
        if peer.eof:
            peer._pass_eof()
        elif not peer.reading:
            peer.start_reading()

    def _eof(self) -> None:
        self.eof = True
        self.stop_reading()
        if not self.peer.writing:
            self._pass_eof()
        # else: the peer's writable passes it on, once the bytes before it are through

    def _pass_eof(self) -> None:
        self.done = True
        peer = self.peer
        if peer.done:
            self.conn.finish()
            return
        try:
            peer.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.conn.abort()

    def release(self) -> None:
        """Leave the loop and close the pipe; the socket is the caller's to close."""
        if self.reading or self.writing:
            self.reading = self.writing = False
            self._watch()
        self.pending = None
        if self.pipe_r >= 0:
            os.close(self.pipe_r)
            os.close(self.pipe_w)
            self.pipe_r = self.pipe_w = -1


class Connection:
    """A relayed TCP connection: client side, upstream side, where it went, byte counts."""

    __slots__ = (
        "_connecting",
        "_timer",
        "_tried",
        "client",
        "client_addr",
        "closed",
        "loop",
        "poller",
        "route",
        "target",
        "upstream",
    )

    def __init__(
        self,
        route: Route,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        client_addr: tuple[str, int],
    ) -> None:
        self.route = route
        self.loop = loop
        self.poller = poller_for(loop)
        self.client = _Side(self, sock)
        self.upstream: _Side | None = None
        self.client_addr = client_addr
        self.target: Target | None = None
        self.closed = False
        self._tried: list[Target] = []
        self._connecting: tuple[socket.socket, Target] | None = None
        self._timer: asyncio.TimerHandle | None = None

    @property
    def bytes_from_client(self) -> int:
        return self.client.count

    @property
    def bytes_to_client(self) -> int:
        return self.upstream.count if self.upstream is not None else 0

    # ------------------------------------------------------------------ connect

    def connect_next(self) -> None:
        """Try the next endpoint the route picks; refuse the client when there is none."""
        route, tried = self.route, self._tried
        client_ip = self.client_addr[0]
        while len(tried) < MAX_CONNECT_TRIES and not self.closed:
            target = route.pick(client_ip, tried)
            if target is None:
                break
            tried.append(target)
            sock = socket.socket(socket.AF_INET, _NONBLOCKING_STREAM)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                set_relay_congestion(sock)
                source = route.source_ip(client_ip)
                if source is not None:
                    # Leave the port to connect(): with bind()'s own choice every upstream
                    # socket of one source address would need a distinct port.
                    sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                    bind_source(sock, source)
                code = sock.connect_ex((target.ip, target.port))
                if code == errno.EINPROGRESS:
                    # On loopback and a node's veth pairs the handshake usually completes
                    # inside connect() itself: asking again costs one syscall and saves a
                    # writer registration, a timer and a loop turn per connection.
                    code = sock.connect_ex((target.ip, target.port))
            except OSError as err:
                sock.close()
                route.connect_failed(target, err)
                continue
            if code == 0 or code == errno.EISCONN:
                self._established(sock, target)
                return
            if code in _CONNECTING:
                self._connecting = (sock, target)
                self.poller.set(sock.fileno(), self, WRITE)
                self._timer = self.loop.call_later(route.connect_timeout, self._connect_timed_out)
                return
            sock.close()
            route.connect_failed(target, OSError(code, os.strerror(code)))
        self.reset()

    def _stop_connecting(self) -> tuple[socket.socket, Target]:
        assert self._connecting is not None and self._timer is not None
        sock, target = self._connecting
        self._connecting = None
        self._timer.cancel()
        self._timer = None
        self.poller.set(sock.fileno(), self, 0)
        return sock, target

    def readable(self) -> None:
        """Never asked for: only the connecting socket is watched as the connection's."""

    def writable(self) -> None:
        """The connecting socket is writable: the connect ended, one way or the other."""
        assert self._connecting is not None
        sock, target = self._connecting
        try:
            code = sock.connect_ex((target.ip, target.port))
        except OSError as err:
            code = err.errno or errno.ECONNREFUSED
        if code in _CONNECTING:
            return  # a stale report for a descriptor number reused in one batch
        sock, target = self._stop_connecting()
        if code == 0 or code == errno.EISCONN:
            self._established(sock, target)
            return
        sock.close()
        self.route.connect_failed(target, OSError(code, os.strerror(code)))
        self.connect_next()

    def _connect_timed_out(self) -> None:
        sock, target = self._stop_connecting()
        sock.close()
        self.route.connect_failed(target, TimeoutError(f"connect to {target} timed out"))
        self.connect_next()

    def _established(self, sock: socket.socket, target: Target) -> None:
        self.target = target
        client = self.client
        upstream = self.upstream = _Side(self, sock)
        client.peer, upstream.peer = upstream, client
        self.route.opened(self)
        if self.closed:  # the route reset it
            return
        client.start_reading()
        upstream.start_reading()

    # ------------------------------------------------------------------ ends

    def finish(self) -> None:
        """Both directions are done: close both sockets (the kernel still delivers what
        they hold)."""
        if self.closed:
            return
        self.closed = True
        for side in (self.client, self.upstream):
            if side is not None:
                side.release()
                side.sock.close()
        self.route.closed(self)

    def abort(self) -> None:
        """A socket failed: reset both, as a kernel would."""
        if self.closed:
            return
        self._reset_sockets()
        self.route.closed(self)

    def reset(self) -> None:
        """End the connection now, with a reset on both sockets (an endpoint went away,
        or there was none to go to)."""
        if self.closed:
            return
        self._reset_sockets()
        if self.target is not None:
            # Told later, as when the sockets' own ends bring it: the caller may be
            # walking the very sets `closed` changes.
            self.loop.call_soon(self.route.closed, self)

    def _reset_sockets(self) -> None:
        self.closed = True
        if self._connecting is not None:
            self._stop_connecting()[0].close()
        for side in (self.client, self.upstream):
            if side is not None:
                side.release()
                close_with_reset(side.sock)
