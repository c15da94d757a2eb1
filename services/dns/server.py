"""The DNS listeners: UDP and TCP on one address, answering from the current `Table`.

`Responder` holds the table the server answers from (`swap` replaces it in
one assignment, so a query sees one whole zone, never half of two) and the
query counters. UDP (`UdpProtocol`) answers the common query inline, in the
few steps the pre-rendered table allows: the header says one question,
nothing else, opcode QUERY; the rest of the datagram is the dict key; the
reply is the query's id + the entry for its RD bit; `sendto`. Anything else
(EDNS, mixed case, negative answers, the odd query) goes to
`Table.answer`. TCP (`TcpProtocol`) is RFC 1035 4.2.2 / RFC 7766 framing
(two-byte length, several queries per connection, pipelined, answered in
order) over the same `Table.answer`, without UDP's size limit; an idle
connection is closed after `TCP_IDLE_SECONDS`, and reading pauses while the
peer does not read its answers.

Counters are plain ints on the responder (a prometheus-client `inc()` takes
a lock: a measurable share of a fast-path query); `kubelab.obs` reads them
at scrape time through `QueryCollector`.

`listen(responder, host, port, fallback)` binds UDP and TCP on the same
port (port 0: the first free port both can take). A privileged port refused
for lack of privilege (EACCES, not root and no CAP_NET_BIND_SERVICE) is
retried on `fallback`, said loudly in the log; the caller learns the port it
got from the returned `Listeners`.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from services.dns.logic.dns_records import Rcode
from services.dns.messages import header_only
from services.dns.wire import VARIANTS, Table

log = logging.getLogger("dns.server")

TCP_IDLE_SECONDS = 10.0
_PLAIN = b"\x00\x01\x00\x00\x00\x00\x00\x00"  # QD 1, AN 0, NS 0, AR 0
_RCODES = {code.value: code.name for code in Rcode}


class Responder:
    """The table in use and what was answered (by rcode; -1: dropped)."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.fast = 0  # inline UDP answers: all NOERROR
        self.counts: dict[int, int] = {}
        self.turn = 0
        self.failures = 0

    def swap(self, table: Table) -> None:
        self.table = table

    def answer(self, data: bytes, *, udp: bool) -> bytes | None:
        self.turn += 1
        try:
            reply, rcode = self.table.answer(data, udp=udp, turn=self.turn)
        except Exception:
            # A query this server cannot answer is that query's problem: SERVFAIL
            # (dropped when not even the header is there), never the server's end.
            self.failures += 1
            if self.failures & (self.failures - 1) == 0:  # 1st, 2nd, 4th, 8th...: bounded log
                log.exception("query not answered (%d so far): %r", self.failures, data[:64])
            reply, rcode = None, -1
            if len(data) >= 12 and not data[2] & 0x80:
                reply, rcode = header_only(data, Rcode.SERVFAIL), Rcode.SERVFAIL
        self.counts[rcode] = self.counts.get(rcode, 0) + 1
        return reply

    def totals(self) -> dict[str, int]:
        """Queries by rcode name ("dropped" for those not answered)."""
        found: dict[str, int] = {"NOERROR": self.fast}
        for rcode, count in self.counts.items():
            name = _RCODES.get(rcode, str(rcode)) if rcode >= 0 else "dropped"
            found[name] = found.get(name, 0) + count
        return found


class QueryCollector(Collector):
    """`kubelab_dns_queries_total{rcode=...}` from a responder's counters."""

    def __init__(self, responder: Responder) -> None:
        self.responder = responder

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "kubelab_dns_queries", "DNS queries answered, by response code", labels=["rcode"]
        )
        for rcode, count in sorted(self.responder.totals().items()):
            family.add_metric([rcode], count)
        yield family


class UdpProtocol(asyncio.DatagramProtocol):
    transport: asyncio.DatagramTransport  # set by connection_made, before any datagram

    def __init__(self, responder: Responder) -> None:
        self.responder = responder

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio's: a cast, not an isinstance.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        responder = self.responder
        # The fast path: one question in lowercase, no EDNS, a QUERY.
        if data[4:12] == _PLAIN and not data[2] & 0xF8:
            variants = responder.table.positive.get(data[12:])
            if variants is not None and len(variants) == VARIANTS:
                self.transport.sendto(data[:2] + variants[data[2] & 1], addr)
                responder.fast += 1
                return
        if len(data) < 12:
            responder.counts[-1] = responder.counts.get(-1, 0) + 1
            return
        reply = responder.answer(data, udp=True)
        if reply is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a client that left: nothing to do.
        log.debug("udp error: %s", exc)


class TcpProtocol(asyncio.Protocol):
    def __init__(self, responder: Responder) -> None:
        self.responder = responder
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self._touch()

    def _touch(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
        assert self.transport is not None
        self.idle = asyncio.get_running_loop().call_later(TCP_IDLE_SECONDS, self.transport.close)

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        assert transport is not None
        self.buffer += data
        buffer = self.buffer
        answered = False
        while len(buffer) >= 2:
            size = buffer[0] << 8 | buffer[1]
            if len(buffer) < 2 + size:
                break
            message = bytes(buffer[2 : 2 + size])
            del buffer[: 2 + size]
            reply = self.responder.answer(message, udp=False) if size >= 12 else None
            if reply is None:
                transport.close()  # unparseable: a TCP peer gets no second guess
                return
            transport.write(len(reply).to_bytes(2, "big") + reply)
            answered = True
        # Only a whole query counts as activity: a peer trickling a byte at a time
        # would otherwise hold the connection open for ever (RFC 7766 6.2.3).
        if answered:
            self._touch()

    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.idle is not None:
            self.idle.cancel()


@dataclass
class Listeners:
    host: str
    port: int
    udp: asyncio.DatagramTransport
    tcp: asyncio.Server

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def close(self) -> None:
        self.udp.close()
        self.tcp.close()
        await self.tcp.wait_closed()


def _sockets(host: str, port: int) -> tuple[socket.socket, socket.socket]:
    """UDP and TCP sockets bound to host:port (port 0: UDP picks, TCP follows). Bound
    here, not by the loop, so a refusal keeps its errno (uvloop rewords it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    udp = socket.socket(family, socket.SOCK_DGRAM)
    tcp = socket.socket(family, socket.SOCK_STREAM)
    try:
        udp.bind((host, port))
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((host, udp.getsockname()[1]))
    except OSError:
        udp.close()
        tcp.close()
        raise
    udp.setblocking(False)
    tcp.setblocking(False)
    return udp, tcp


async def _bind(responder: Responder, host: str, port: int) -> Listeners:
    udp_sock, tcp_sock = _sockets(host, port)
    loop = asyncio.get_running_loop()
    bound = int(udp_sock.getsockname()[1])
    udp, _ = await loop.create_datagram_endpoint(lambda: UdpProtocol(responder), sock=udp_sock)
    tcp = await loop.create_server(lambda: TcpProtocol(responder), sock=tcp_sock, backlog=1024)
    return Listeners(host, bound, udp, tcp)


async def listen(responder: Responder, host: str, port: int, fallback: int = 0) -> Listeners:
    """UDP and TCP on host:port; on EACCES for a privileged port, on host:fallback
    (when fallback is not 0). Raises OSError when neither can be bound."""
    attempts = 5 if port == 0 else 1
    for attempt in range(attempts):
        try:
            return await _bind(responder, host, port)
        except PermissionError as err:
            if not fallback or port == fallback:
                raise OSError(
                    f"cannot listen on {host}:{port}: {err.strerror} (ports below 1024 need "
                    "root or CAP_NET_BIND_SERVICE; --fallback-port picks another)"
                ) from None
            log.warning(
                "cannot bind %s:%d (%s: ports below 1024 need root or CAP_NET_BIND_SERVICE); "
                "serving DNS on %s:%d instead",
                host,
                port,
                err.strerror,
                host,
                fallback,
            )
            return await listen(responder, host, fallback)
        except OSError as err:
            # Port 0: UDP took a port whose TCP twin is taken; draw again.
            if port == 0 and err.errno == errno.EADDRINUSE and attempt + 1 < attempts:
                continue
            raise OSError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    raise AssertionError("unreachable")
