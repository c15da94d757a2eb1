"""Probe executors against real sockets and processes: what passes, what fails, timeouts."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from google.protobuf import json_format

from kubelab.testing.processes import free_port
from kubelab.v1 import objects_pb2
from node_agent.probes import exec_command, http_get, resolve_port, run_probe, tcp_socket

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}

Serve = Callable[[bytes], Awaitable[int]]


@pytest.fixture
async def http_server() -> AsyncIterator[Serve]:
    """`await serve(status_line)`: a port whose server answers every request with it."""
    servers: list[asyncio.Server] = []

    async def serve(status_line: bytes) -> int:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(status_line + b"\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer, HOST, 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield serve
    for server in servers:
        server.close()


@pytest.mark.parametrize(
    ("status_line", "ok"),
    [
        pytest.param(b"HTTP/1.1 200 OK", True, id="200"),
        pytest.param(b"HTTP/1.1 302 Found", True, id="redirect-passes"),
        pytest.param(b"HTTP/1.0 399 Odd", True, id="399"),
        pytest.param(b"HTTP/1.1 404 Not Found", False, id="404"),
        pytest.param(b"HTTP/1.1 503 Service Unavailable", False, id="503"),
        pytest.param(b"garbage", False, id="not-http"),
    ],
)
async def test_http_get_status_ranges(http_server: Serve, status_line: bytes, ok: bool) -> None:
    port = await http_server(status_line)
    result = await http_get(HOST, port, "/healthz", timeout=2)
    assert result.ok is ok, result.message


async def test_http_get_refused_and_silent_servers_fail_within_the_timeout() -> None:
    refused = await http_get(HOST, free_port(), "/", timeout=1)
    assert not refused.ok

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers

    server = await asyncio.start_server(silent, HOST, 0)
    try:
        started = time.monotonic()
        result = await http_get(HOST, server.sockets[0].getsockname()[1], "/", timeout=0.3)
        assert not result.ok and "timeout" in result.message
        assert time.monotonic() - started < 1.5
    finally:
        server.close()


async def test_tcp_socket_open_and_closed() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), HOST, 0)
    try:
        assert (await tcp_socket(HOST, server.sockets[0].getsockname()[1], timeout=1)).ok
    finally:
        server.close()
    assert not (await tcp_socket(HOST, free_port(), timeout=1)).ok


@pytest.mark.parametrize(
    ("argv", "ok"),
    [
        pytest.param(["true"], True, id="exit-0"),
        pytest.param(["false"], False, id="exit-1"),
        pytest.param(["sh", "-c", 'test "$PROBE_VAR" = yes'], True, id="sees-the-env"),
        pytest.param(["/no/such/program"], False, id="missing-program"),
    ],
)
async def test_exec_exit_codes(argv: list[str], ok: bool) -> None:
    result = await exec_command(argv, env={**ENV, "PROBE_VAR": "yes"}, timeout=5)
    assert result.ok is ok, result.message


async def test_exec_timeout_fails() -> None:
    started = time.monotonic()
    result = await exec_command(["sleep", "30"], env=ENV, timeout=0.3)
    assert not result.ok and "timed out" in result.message
    assert time.monotonic() - started < 2


def container(**fields: object) -> objects_pb2.Container:
    return json_format.ParseDict({"name": "c", **fields}, objects_pb2.Container())


def test_resolve_port_numbers_and_names() -> None:
    c = container(ports=[{"name": "http", "containerPort": 8080}])
    assert resolve_port("9090", c) == 9090
    assert resolve_port("http", c) == 8080
    with pytest.raises(ValueError, match="not a named port"):
        resolve_port("admin", c)


async def test_run_probe_resolves_a_named_port(
    http_server: Serve,
) -> None:
    port = await http_server(b"HTTP/1.1 200 OK")
    c = container(ports=[{"name": "web", "containerPort": port}])
    probe = objects_pb2.Probe(timeout_seconds=1)
    probe.http_get.path, probe.http_get.port = "/", "web"
    assert (await run_probe(probe, pod_ip=HOST, container=c, env=ENV)).ok
    probe.http_get.port = "nope"
    result = await run_probe(probe, pod_ip=HOST, container=c, env=ENV)
    assert not result.ok and "nope" in result.message
