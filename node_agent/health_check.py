"""kube-proxy's service health server: what a node says on a Service's healthCheckNodePort.

A `LoadBalancer` Service with `externalTrafficPolicy: Local` sends outside
traffic only to nodes that have a ready endpoint of it (so the pod sees the
client's address and no second hop is taken). The load balancer learns which
nodes those are by health-checking each node's healthCheckNodePort, and every
node proxy answers there (kube-proxy's `pkg/proxy/healthcheck/service_health.go`):

* a GET of any path: `200` when this node has at least one ready endpoint of the Service,
  else `503`; body `{"service": {"namespace", "name"}, "localEndpoints": N,
  "serviceProxyHealthy": true}`, `Content-Type: application/json`,
  `X-Content-Type-Options: nosniff`, `X-Load-Balancing-Endpoint-Weight: N`.
  HEAD gets the same head without the body. `serviceProxyHealthy` is always
  true: the proxy serves nothing before its first full sync.
* One answer per connection (`Connection: close`): health checkers open a
  connection per check, and as no request body is ever read, none can
  desynchronise a kept-alive stream. A request line that is not HTTP/1.x gets
  400 at once, a method other than GET and HEAD 405 (kube-proxy answers any
  method; nothing checks with one), a head longer than 8 KiB 431; then the
  connection closes. A client whose head has not ended after `idle_timeout`
  seconds is dropped. Nothing a client sends raises out of the protocol.

`ServiceHealth` is one Service's listeners on this node, one per node address.
The node proxy programs it in the same per-Service sync as the Service's other
listeners: it is bound or closed only when those addresses or the port change;
the count is read live at each request (`count`, from the proxy's current
endpoints), so an endpoint change never rebinds. A bind failure is returned to
the caller, which retries like any listener it could not bind.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import cast

from kubelab.core.keys import ObjectKey
from kubelab.core.proxy_rules import Frontend

log = logging.getLogger("node_agent.health_check")

MAX_HEAD = 8192
# The end of a request head; bare LF line ends are accepted, as Go's net/http does.
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_REQUEST_LINE = re.compile(rb"([A-Z]+) (\S+) HTTP/1\.[0-9]")
_REASONS = {
    200: "OK",
    400: "Bad Request",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


def _response(status: int, headers: dict[str, str], body: bytes, *, head_only: bool) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS[status]}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
    return "\r\n".join(lines).encode() + (b"" if head_only else body)


def _plain(status: int, extra: dict[str, str] | None = None) -> bytes:
    text = f"{_REASONS[status]}\n".encode()
    headers = {"Content-Type": "text/plain; charset=utf-8", **(extra or {})}
    return _response(status, headers, text, head_only=False)


def _method(request_line: bytes) -> tuple[bytes, tuple[int, bytes] | None]:
    """The request's method, or the answer that refuses it: 400 for a request line that
    is not HTTP/1.x, 405 for a method other than GET and HEAD."""
    match = _REQUEST_LINE.fullmatch(request_line)
    if match is None:
        return b"", (400, _plain(400))
    if match[1] not in (b"GET", b"HEAD"):
        return match[1], (405, _plain(405, {"Allow": "GET, HEAD"}))
    return match[1], None


class _HealthServer:
    """What both health servers share: the request handling around their own report,
    the count of answers by status, and binding a listener."""

    def __init__(self, idle_timeout: float) -> None:
        self.idle_timeout = idle_timeout
        self.answered: Counter[int] = Counter()  # status code → answers, for the metrics

    def _report(self) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, JSON body) of a GET right now."""
        raise NotImplementedError

    def answer(self, request_line: bytes) -> bytes:
        """The whole response to one request, from its request line."""
        method, refusal = _method(request_line)
        if refusal is not None:
            status, response = refusal
        else:
            status, headers, body = self._report()
            response = _response(status, headers, body, head_only=method == b"HEAD")
        self.answered[status] += 1
        return response

    def refuse(self, status: int) -> bytes:
        """A plain answer that refuses the request (a head too long, say)."""
        self.answered[status] += 1
        return _plain(status)

    async def _bind(self, host: str, port: int) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        return await loop.create_server(
            lambda: _HealthProtocol(self), host, port, reuse_address=True
        )


class _HealthProtocol(asyncio.Protocol):
    """One connection: read a request head, answer once, close."""

    def __init__(self, server: _HealthServer) -> None:
        self._server = server
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._server.idle_timeout, self._transport.abort)

    def data_received(self, data: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        self._buffer += data
        newline = self._buffer.find(b"\n")
        line = bytes(self._buffer[:newline]).rstrip(b"\r") if newline >= 0 else b""
        # A bad request line is answered at once, without waiting for the head's end.
        malformed = newline >= 0 and _REQUEST_LINE.fullmatch(line) is None
        if malformed or _HEAD_END.search(self._buffer) is not None:
            self._finish(self._server.answer(line))
        elif len(self._buffer) > MAX_HEAD:
            self._finish(self._server.refuse(431))

    def eof_received(self) -> bool:
        return False  # a client that stops sending before its head ends gets nothing

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._transport = None

    def _finish(self, response: bytes) -> None:
        assert self._transport is not None
        self._transport.write(response)
        self._transport.close()  # after the write buffer drains


class ServiceHealth(_HealthServer):
    """The health check listeners of one Service on this node."""

    def __init__(
        self, service: ObjectKey, count: Callable[[], int], *, idle_timeout: float = 10.0
    ) -> None:
        super().__init__(idle_timeout)
        self.service = service
        self.count = count
        self.listeners: dict[Frontend, asyncio.Server] = {}

    def _report(self) -> tuple[int, dict[str, str], bytes]:
        count = self.count()
        namespace, name = self.service
        body = json.dumps(
            {
                "service": {"namespace": namespace, "name": name},
                "localEndpoints": count,
                "serviceProxyHealthy": True,
            }
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Content-Type-Options": "nosniff",
            "X-Load-Balancing-Endpoint-Weight": str(count),
        }
        return (200 if count else 503), headers, body

    async def ensure(self, frontends: Iterable[Frontend]) -> list[tuple[Frontend, OSError]]:
        """Listen on exactly `frontends` (idempotent); returns the ones that could not be
        bound, to be tried again by the next call."""
        wanted = list(dict.fromkeys(frontends))
        for frontend in [f for f in self.listeners if f not in wanted]:
            self.listeners.pop(frontend).close()
            log.info("svc=%s/%s: stopped answering health checks on %s", *self.service, frontend)
        failed: list[tuple[Frontend, OSError]] = []
        for frontend in wanted:
            if frontend in self.listeners:
                continue
            try:
                server = await self._bind(frontend.ip, frontend.port)
            except OSError as err:
                failed.append((frontend, err))
                continue
            self.listeners[frontend] = server
            log.info("svc=%s/%s: answering health checks on %s", *self.service, frontend)
        return failed

    def close(self) -> None:
        """Stop listening; a connection already accepted still gets its one answer."""
        for server in self.listeners.values():
            server.close()
        self.listeners.clear()


class ProxyHealth(_HealthServer):
    """kube-proxy's healthz server (port 10256): is this node's proxy up? Load balancers
    check it to keep a node in rotation for Cluster-policy Services. Any GET answers
    `200` while `healthy()` (the proxy has synced and is not stopping), else `503`;
    body `{"lastUpdated", "currentTime", "nodeName", "nodeEligible"}` as kube-proxy's. A
    frozen or cut-off node answers nothing, and a stopping one 503 before its listeners
    close, so a load balancer takes it out of rotation in one check either way."""

    def __init__(
        self, node_name: str, healthy: Callable[[], bool], *, idle_timeout: float = 10.0
    ) -> None:
        super().__init__(idle_timeout)
        self.node_name = node_name
        self.healthy = healthy
        self.server: asyncio.Server | None = None
        self.last_healthy = 0.0

    def _report(self) -> tuple[int, dict[str, str], bytes]:
        now = time.time()
        healthy = self.healthy()
        if healthy:
            self.last_healthy = now
        body = json.dumps(
            {
                "lastUpdated": _rfc3339(self.last_healthy) if self.last_healthy else "",
                "currentTime": _rfc3339(now),
                "nodeName": self.node_name,
                "nodeEligible": healthy,
            }
        ).encode()
        headers = {"Content-Type": "application/json", "X-Content-Type-Options": "nosniff"}
        return (200 if healthy else 503), headers, body

    async def start(self, host: str, port: int) -> None:
        self.server = await self._bind(host, port)
        log.info("proxy health on http://%s:%d/healthz", host, port)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None


def _rfc3339(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
