"""What the TCP and UDP halves of the relay share: the choice protocol and socket set-up."""

from __future__ import annotations

import errno
import functools
import socket
import struct
from collections.abc import Sequence
from typing import Protocol

from kubelab.core.endpoint_choice import Target

LINGER_RESET = struct.pack("ii", 1, 0)
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)
TCP_CONGESTION: int | None = getattr(socket, "TCP_CONGESTION", None)  # Linux only
# Congestion control for the relay's own TCP sockets, in order of preference, when the
# host's default is another (typically BBR). BBR paces every socket with its own timer;
# a relay's hops are the node's loopback, its pods and its cluster network, where pacing
# buys nothing and its timers cost more CPU than moving the bytes: on the project's
# 2-core machines, one relayed 1 GiB stream went from ~2.3 to ~4 GB/s (bench/dataplane.py).
# CUBIC is what most hosts default to; Reno is the one every user may set.
RELAY_CONGESTION = (b"cubic", b"reno")


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


@functools.cache
def relay_congestion() -> bytes | None:
    """The congestion control to set on the relay's TCP sockets: None when the host's
    default is already one of RELAY_CONGESTION, or none of them may be set here."""
    if TCP_CONGESTION is None:
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            default = probe.getsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, 16).rstrip(b"\0")
        except OSError:
            return None
        if default in RELAY_CONGESTION:
            return None
        for name in RELAY_CONGESTION:
            try:
                probe.setsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, name)
            except OSError:
                continue  # not available, or not allowed without privileges
            return name
    return None


def set_relay_congestion(sock: socket.socket) -> None:
    """Give a TCP socket the relay's congestion control (a listener's accepted sockets
    inherit it)."""
    name = relay_congestion()
    if name is not None and TCP_CONGESTION is not None:
        sock.setsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, name)


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
            set_relay_congestion(sock)
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
