"""The TCP and UDP relay under every node proxy and the cloud-stub (DESIGN §2.4, §6).

A listener asks its `Route` where each new connection (or UDP flow) goes, then
moves bytes. The route owns the policy (which endpoint, what source address,
what to track); this package owns the sockets:

* `tcp` — connections over plain non-blocking sockets, with connect retry,
  back-pressure and half-close; `tcp_listener` accepts them;
* `poller` — the relay's own epoll set, which the event loop watches as one descriptor;
* `udp` — per-client flows with idle timeouts;
* `sockets` — the choice protocol and socket set-up both share.

Counters (bytes, per connection and flow) are plain ints on the objects; the
route reads them when a connection closes. Nothing on the hot path logs or
allocates beyond the slice of one read.
"""

from kubelab.relay.sockets import Chooser, listening_socket
from kubelab.relay.tcp import (
    MAX_CONNECT_TRIES,
    PIPE_SIZE,
    READ_SIZE,
    Connection,
    Route,
)
from kubelab.relay.tcp_listener import TcpListener, serve_tcp
from kubelab.relay.udp import Flow, UdpListener, UdpRoute, serve_udp

__all__ = [
    "MAX_CONNECT_TRIES",
    "PIPE_SIZE",
    "READ_SIZE",
    "Chooser",
    "Connection",
    "Flow",
    "Route",
    "TcpListener",
    "UdpListener",
    "UdpRoute",
    "listening_socket",
    "serve_tcp",
    "serve_udp",
]
