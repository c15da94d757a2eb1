"""What the TCP and UDP halves of the relay share: the choice protocol and socket set-up."""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Sequence
from typing import Protocol

from kubelab.core.endpoint_choice import Target

LINGER_RESET = struct.pack("ii", 1, 0)
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)


class Chooser(Protocol):
    """What any listener asks of its owner. `pick` returns None when there is no endpoint
    (left to try): the connection is refused, the datagram dropped."""

    def pick(self, client_ip: str, tried: Sequence[Target]) -> Target | None: ...

    def source_ip(self, client_ip: str) -> str | None:
        """The address the upstream side binds before connecting (None: any)."""
        ...


def bind_source(sock: socket.socket, source_ip: str) -> None:
    """Send from `source_ip` when it is an address of this host; when it is not (lab
    mode, a remote client) the pod sees the proxy's address instead."""
    try:
        sock.bind((source_ip, 0))
    except OSError as err:
        if err.errno != errno.EADDRNOTAVAIL:
            raise


def close_with_reset(sock: socket.socket) -> None:
    """Close so that the peer sees a reset (RST), not an orderly end (FIN)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
    except OSError:
        pass
    sock.close()


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
