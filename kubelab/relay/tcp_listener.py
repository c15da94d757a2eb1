"""The TCP half of the relay's front: a listener that accepts and starts a `Connection`
(`kubelab.relay.tcp`) along its route for each client."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket

from kubelab.relay.poller import poller_for
from kubelab.relay.sockets import listening_socket
from kubelab.relay.tcp import Connection, Route

log = logging.getLogger(__name__)

# Accepts per readable callback: enough to drain a burst, bounded so that one busy
# listener cannot starve the connections it already has.
ACCEPT_BATCH = 32
# Running out of file descriptors: stop accepting for a while instead of spinning.
ACCEPT_PAUSE = 1.0
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


class TcpListener:
    """A TCP frontend: accepts, and starts a `Connection` along `route` for each client."""

    def __init__(self, route: Route, sock: socket.socket, *, backlog: int = 1024) -> None:
        self.route = route
        self.sock = sock
        self._loop = asyncio.get_running_loop()
        poller_for(self._loop)  # its epoll descriptor lives as long as the loop, from now
        self._paused: asyncio.TimerHandle | None = None
        self._open = True
        self._backlog = backlog
        sock.listen(backlog)
        self._loop.add_reader(sock.fileno(), self._accept)

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return (self.sock,) if self._open else ()

    def _accept(self) -> None:
        self._accept_some(ACCEPT_BATCH)

    def _accept_some(self, limit: int) -> None:
        """Accept up to `limit` waiting connections, each starting its `Connection`."""
        route, loop, listener = self.route, self._loop, self.sock
        for _ in range(limit):
            try:
                # socket.accept() without its wrapper's work: the enum conversions of the
                # listener's family and type, and a setblocking call per connection.
                fd, addr = listener._accept()  # type: ignore[attr-defined]
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:
                if err.errno in _OUT_OF_RESOURCES:
                    log.warning(
                        "listener %s: %s; accepting again in %.0f s",
                        addr_of(listener),
                        err,
                        ACCEPT_PAUSE,
                    )
                    loop.remove_reader(listener.fileno())
                    self._paused = loop.call_later(ACCEPT_PAUSE, self._resume)
                    return
                continue  # the client gave up before we accepted (ECONNABORTED)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0, fd)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            Connection(route, loop, sock, addr).connect_next()

    def _resume(self) -> None:
        self._paused = None
        if self._open:
            self._loop.add_reader(self.sock.fileno(), self._accept)

    def close(self) -> None:
        """Stop accepting; connections already accepted go on, and so do those the kernel
        accepted that we had not taken yet: closing a listening socket resets what waits
        in its accept queue, and the client already saw its connect succeed."""
        if not self._open:
            return
        if self._paused is None:  # paused: out of descriptors, nothing more to take
            self._accept_some(self._backlog)
        self._open = False
        if self._paused is not None:
            self._paused.cancel()
        else:
            self._loop.remove_reader(self.sock.fileno())
        self.sock.close()

    async def wait_closed(self) -> None:
        """For symmetry with asyncio.Server: closing takes effect at once."""


def addr_of(sock: socket.socket) -> str:
    try:
        host, port = sock.getsockname()[:2]
    except OSError:
        return "?"
    return f"{host}:{port}"


async def serve_tcp(
    route: Route,
    host: str,
    port: int,
    *,
    reuse_port: bool = False,
    free_bind: bool = False,
    backlog: int = 1024,
) -> TcpListener:
    """Listen on host:port and relay every connection along `route`."""
    sock = listening_socket(
        socket.SOCK_STREAM, host, port, reuse_port=reuse_port, free_bind=free_bind
    )
    try:
        return TcpListener(route, sock, backlog=backlog)
    except BaseException:
        sock.close()
        raise
