"""The built-in image `kubelab/echo`: an HTTP, TCP and UDP echo server for one pod.

    POD_NAME=web-1 POD_NAMESPACE=default NODE_NAME=node-1 POD_IP=127.244.1.2 \\
        python -m workloads.echo --http 8080 --tcp 9000 --udp 5353

Every port binds POD_IP (so two pods on one host can both serve 8080):

- `--http PORT` (repeatable): HTTP/1.1 with keep-alive and pipelining. Any
  path answers 200 and a JSON body naming the pod, so a test or a user can see
  which endpoint a Service picked:
  `{"pod", "namespace", "node", "podIP", "path", "method", "client": "ip:port"}`.
  `HEAD` gets the headers only. The readiness switch, shared by every port of
  the process: `GET /healthz` answers 200, or 503 once `POST /healthz/fail`
  flipped it (`POST /healthz/pass` flips it back).
- `--tcp PORT`: bytes echoed back (reading pauses while the peer is slow).
- `--udp PORT`: datagrams echoed back to their sender.
- `--bulk PORT`: one-way streams of a size the client names (`PUT <n>` sends the
  pod n bytes, `GET <n>` fetches n bytes): workloads/echo/bulk.py.

It is a backend in data-plane benchmarks, so the request path is lean: asyncio
Protocols on uvloop (`kubelab.runtime.loop.run_actor`), no per-request log
line, the constant part of every response encoded once, a connection's client
address encoded once. Bodies are read by Content-Length; a chunked request gets
501 and the connection closes (no client of kubelab's sends one).

SIGTERM (or SIGINT) is a graceful stop, what a Deployment's rolling update
expects of a pod: idle keep-alive connections close at once, a connection in
the middle of a request gets its response (with `Connection: close`) and then
closes, and a connection that has not sent its first request yet gets up to 2 s
to send it (as Go's http.Server.Shutdown treats new connections). The listeners
stay open for `LISTEN_GRACE` more, answering each new connection once with
`Connection: close`: the pod is signalled as it turns terminating, and the node
proxies stop picking it only once the EndpointSlice change reaches them, a few
milliseconds later; a listener closed at once would reset the connections they
sent meanwhile, still in its accept queue (the well-behaved pod a `preStop`
sleep makes). The process exits 0 once no connection is left. The kubelet's
grace period bounds the wait from outside.

A port that cannot be bound (taken, or below the host's unprivileged port
start without privileges) ends the process with exit code 1 and a message on
stderr; the runtime reports that as a crash and backs off.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import signal
import sys
from dataclasses import dataclass
from typing import Any, cast

from kubelab.runtime.loop import run_actor
from workloads.echo.bulk import BulkProtocol

__all__ = ["EchoConfig", "EchoServer", "main", "parse_args"]

_MAX_HEAD = 64 * 1024
# On a graceful stop, how long a connection that has not sent its first request yet
# may still send it.
NEW_CONNECTION_GRACE = 2.0
# On a graceful stop, how long the listeners still accept (see the module's doc): well
# above the data plane's propagation (p99 ~10 ms embedded, more in containers).
LISTEN_GRACE = 1.0
_JSON_TYPE = b"application/json"
_TEXT_TYPE = b"text/plain; charset=utf-8"
_CLOSE = b"Connection: close\r\n"
_KEEP_ALIVE = b"Connection: keep-alive\r\n"
_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    405: b"Method Not Allowed",
    431: b"Request Header Fields Too Large",
    501: b"Not Implemented",
    503: b"Service Unavailable",
}


@dataclass(frozen=True, slots=True)
class EchoConfig:
    pod: str
    namespace: str
    node: str
    pod_ip: str
    http: tuple[int, ...] = ()
    tcp: tuple[int, ...] = ()
    udp: tuple[int, ...] = ()
    bulk: tuple[int, ...] = ()


class EchoServer:
    """The listeners, the readiness switch and the open connections of one echo pod."""

    def __init__(self, config: EchoConfig) -> None:
        self.config = config
        self.healthy = True
        identity = {
            "pod": config.pod,
            "namespace": config.namespace,
            "node": config.node,
            "podIP": config.pod_ip,
        }
        # `{"pod":...,"podIP":"...",` — every echo body starts with these bytes.
        self.body_prefix = json.dumps(identity, separators=(",", ":"))[:-1].encode() + b","
        self.connections: set[HttpProtocol | TcpEchoProtocol | BulkProtocol] = set()
        self.draining = False
        self._servers: list[asyncio.Server] = []
        self._udp: list[asyncio.DatagramTransport] = []
        self._drained = asyncio.Event()
        self._listening = True

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        ip = self.config.pod_ip
        for port in self.config.http:
            server = await loop.create_server(
                lambda: HttpProtocol(self), ip, port, reuse_address=True, backlog=1024
            )
            self._servers.append(server)
        for port in self.config.tcp:
            server = await loop.create_server(
                lambda: TcpEchoProtocol(self), ip, port, reuse_address=True, backlog=1024
            )
            self._servers.append(server)
        for port in self.config.bulk:
            server = await loop.create_server(
                lambda: BulkProtocol(self), ip, port, reuse_address=True
            )
            self._servers.append(server)
        for port in self.config.udp:
            transport, _ = await loop.create_datagram_endpoint(
                UdpEchoProtocol, local_addr=(ip, port)
            )
            self._udp.append(transport)

    def add(self, connection: HttpProtocol | TcpEchoProtocol | BulkProtocol) -> None:
        self.connections.add(connection)

    def forget(self, connection: HttpProtocol | TcpEchoProtocol | BulkProtocol) -> None:
        self.connections.discard(connection)
        if not self._listening and not self.connections:
            self._drained.set()

    async def drain(self, listen_grace: float = LISTEN_GRACE) -> None:
        """Finish every connection's work, accept for `listen_grace` more, stop
        accepting, wait for every connection to go."""
        self.draining = True
        early = list(self.connections)
        for connection in early:
            connection.drain()
        await asyncio.sleep(listen_grace)
        self._listening = False
        for server in self._servers:
            server.close()
        for transport in self._udp:
            transport.close()
        for connection in self.connections - set(early):
            connection.drain()  # those accepted during the grace
        if not self.connections:
            self._drained.set()
        await self._drained.wait()


class HttpProtocol(asyncio.Protocol):
    __slots__ = ("buffer", "client", "served", "server", "transport")

    def __init__(self, server: EchoServer) -> None:
        self.server = server
        self.buffer = b""
        self.client = b""
        self.served = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        host, port = transport.get_extra_info("peername")[:2]
        self.client = b'"client":"' + f"{host}:{port}".encode() + b'"}\n'
        self.server.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.forget(self)

    def drain(self) -> None:
        if self.buffer or self.transport is None:
            return  # a request is in progress: it is answered, with Connection: close
        if self.served:
            self.transport.close()  # an idle keep-alive connection
            return
        # A new connection whose request has not arrived yet: its client (or a proxy
        # that picked this pod just before it left the endpoints) is about to send it,
        # so wait for it a little, as Go's http.Server.Shutdown does for new connections.
        asyncio.get_running_loop().call_later(NEW_CONNECTION_GRACE, self._close_if_idle)

    def _close_if_idle(self) -> None:
        if not self.buffer and self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.buffer and self.transport is not None and not self.transport.is_closing():
            if not self._one_request():
                return

    def _one_request(self) -> bool:
        """Answer the first complete request in the buffer; False when it is incomplete."""
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > _MAX_HEAD:
                self._respond(431, b"", _TEXT_TYPE, b"request head too large\n")
            return False
        lines = self.buffer[:end].split(b"\r\n")
        request = lines[0].split(b" ")
        if len(request) != 3 or not request[2].startswith(b"HTTP/1."):
            self._respond(400, b"", _TEXT_TYPE, b"malformed request line\n")
            return False
        method, target, version = request
        length = 0
        keep_alive = version == b"HTTP/1.1"
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = -1
            elif name == b"connection":
                token = value.strip().lower()
                keep_alive = token == b"keep-alive" or (keep_alive and token != b"close")
            elif name == b"transfer-encoding":
                self._respond(501, method, _TEXT_TYPE, b"chunked bodies: no\n")
                return False
        if length < 0:
            self._respond(400, method, _TEXT_TYPE, b"bad content-length\n")
            return False
        if len(self.buffer) < end + 4 + length:
            return False  # the body is still coming
        self.buffer = self.buffer[end + 4 + length :]
        self.served += 1
        if not keep_alive or self.server.draining:
            self._route(method, target, _CLOSE)
        else:
            # An HTTP/1.0 client (ab -k) keeps the connection only when told so.
            self._route(method, target, _KEEP_ALIVE if version == b"HTTP/1.0" else b"")
        return True

    def _route(self, method: bytes, target: bytes, connection: bytes) -> None:
        path = target.split(b"?", 1)[0]
        if path == b"/healthz" and method in (b"GET", b"HEAD"):
            if self.server.healthy:
                self._respond(200, method, _TEXT_TYPE, b"ok\n", connection)
            else:
                self._respond(503, method, _TEXT_TYPE, b"failing\n", connection)
        elif path in (b"/healthz/fail", b"/healthz/pass"):
            if method != b"POST":
                self._respond(405, method, _TEXT_TYPE, b"use POST\n", connection)
                return
            self.server.healthy = path == b"/healthz/pass"
            answer = b"passing\n" if self.server.healthy else b"failing\n"
            self._respond(200, method, _TEXT_TYPE, answer, connection)
        else:
            body = b"".join(
                (
                    self.server.body_prefix,
                    b'"path":',
                    _json_str(target),
                    b',"method":',
                    _json_str(method),
                    b",",
                    self.client,
                )
            )
            self._respond(200, method, _JSON_TYPE, body, connection)

    def _respond(
        self, code: int, method: bytes, kind: bytes, body: bytes, connection: bytes = _CLOSE
    ) -> None:
        assert self.transport is not None
        head = b"".join((_status_head(code, kind), b"%d\r\n" % len(body), connection, b"\r\n"))
        self.transport.write(head if method == b"HEAD" else head + body)
        if connection is _CLOSE:
            self.buffer = b""
            self.transport.close()


@functools.cache
def _status_head(code: int, kind: bytes) -> bytes:
    """The constant start of a response, up to the Content-Length value."""
    reason = _REASONS[code]
    return b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: " % (code, reason, kind)


def _json_str(raw: bytes) -> bytes:
    text = raw.decode("latin-1")
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return b'"' + raw + b'"'  # the common case needs no escaping
    return json.dumps(text).encode()


class TcpEchoProtocol(asyncio.Protocol):
    __slots__ = ("server", "transport")

    def __init__(self, server: EchoServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.server.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.forget(self)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def eof_received(self) -> bool:
        return False  # the peer finished sending: close once the echo is flushed

    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()

    def drain(self) -> None:
        if self.transport is not None:
            self.transport.close()  # raw bytes have no request boundary to wait for


class UdpEchoProtocol(asyncio.DatagramProtocol):
    __slots__ = ("transport",)

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if self.transport is not None:
            self.transport.sendto(data, addr)


def parse_args(argv: list[str] | None = None) -> EchoConfig:
    parser = argparse.ArgumentParser(
        prog="python -m workloads.echo", description="kubelab/echo: HTTP, TCP and UDP echo"
    )
    parser.add_argument("--http", type=int, action="append", default=[], metavar="PORT")
    parser.add_argument("--tcp", type=int, action="append", default=[], metavar="PORT")
    parser.add_argument("--udp", type=int, action="append", default=[], metavar="PORT")
    parser.add_argument("--bulk", type=int, action="append", default=[], metavar="PORT")
    args = parser.parse_args(argv)
    env = os.environ
    return EchoConfig(
        pod=env.get("POD_NAME", "echo"),
        namespace=env.get("POD_NAMESPACE", "default"),
        node=env.get("NODE_NAME", ""),
        pod_ip=env.get("POD_IP", "127.0.0.1"),
        http=tuple(args.http),
        tcp=tuple(args.tcp),
        udp=tuple(args.udp),
        bulk=tuple(args.bulk),
    )


async def serve(config: EchoConfig) -> int:
    server = EchoServer(config)
    try:
        await server.start()
    except OSError as err:
        print(f"echo: cannot listen on {config.pod_ip}: {err}", file=sys.stderr, flush=True)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    kinds = ("http", "tcp", "udp", "bulk")
    ports = [f"{kind}/{p}" for kind in kinds for p in getattr(config, kind)]
    print(
        f"echo: pod {config.namespace}/{config.pod} on {config.pod_ip}: {' '.join(ports)}",
        flush=True,
    )
    await stop.wait()
    await server.drain()
    print("echo: stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> None:
    sys.exit(run_actor(serve(parse_args(argv))))


if __name__ == "__main__":
    main()
