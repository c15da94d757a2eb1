"""The UDP half of the relay.

A flow per client address, each with its own connected socket to the endpoint the
route chose; replies go back through the listening socket, so they come from the
address the client sent to. Datagrams move synchronously in reader callbacks through
one shared buffer (`recvfrom_into` / `send`). Flows idle longer than `idle_timeout`
are closed by a sweep.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Protocol

from kubelab.core.endpoint_choice import Target
from kubelab.relay.sockets import IP_FREEBIND, Chooser, bind_source, listening_socket


class Flow:
    """One UDP client's traffic through a listener: its own socket to one endpoint."""

    __slots__ = (
        "bytes_from_client",
        "bytes_to_client",
        "client_addr",
        "front",
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
        self.front: socket.socket | None = None
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
        self.address = sock.getsockname()
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
                bind_source(sock, source)
            sock.connect((target.ip, target.port))
        except OSError:
            sock.close()
            return None
        flow = Flow(self, addr, target, sock)
        self.flows[addr] = flow
        self._loop.add_reader(sock.fileno(), self._from_endpoint, flow)
        flow.front = self._front(addr)
        if flow.front is not None:
            self._loop.add_reader(flow.front.fileno(), self._from_client, flow)
        self.route.flow_opened(flow)
        return flow

    def _front(self, addr: tuple[str, int]) -> socket.socket | None:
        front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            front.setblocking(False)
            front.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            front.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
            front.bind(self.address)
            front.connect(addr)
        except OSError:
            front.close()
            return None
        return front

    def _from_client(self, flow: Flow) -> None:
        view = self._view
        front = flow.front
        assert front is not None
        for _ in range(64):
            try:
                size = front.recv_into(view)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            flow.seen = self.generation
            flow.bytes_from_client += size
            try:
                flow.sock.send(view[:size])
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self.close_flow(flow)
                return

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
                if flow.front is not None:
                    flow.front.send(view[:size])
                else:
                    self.sock.sendto(view[:size], flow.client_addr)
            except OSError:
                pass

    def close_flow(self, flow: Flow) -> None:
        if self.flows.get(flow.client_addr) is not flow:
            return
        del self.flows[flow.client_addr]
        self._loop.remove_reader(flow.sock.fileno())
        flow.sock.close()
        if flow.front is not None:
            self._loop.remove_reader(flow.front.fileno())
            flow.front.close()
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
        """Stop listening and close every flow; closing again does nothing."""
        if self.sock.fileno() < 0:
            return
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
    sock = listening_socket(socket.SOCK_DGRAM, host, port, reuse_port=True, free_bind=free_bind)
    return UdpListener(route, sock, idle_timeout=idle_timeout)
