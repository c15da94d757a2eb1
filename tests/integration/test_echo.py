"""The kubelab/echo image as a real process: HTTP keep-alive, the healthz switch, TCP and
UDP echo, graceful SIGTERM. It binds 127.244.202.2 on free ports."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from kubelab.testing.echo_client import http_request, tcp_roundtrip, udp_roundtrip
from kubelab.testing.processes import REPO_ROOT, free_port
from kubelab.testing.wait import until_passes
from workloads.echo.server import LISTEN_GRACE, NEW_CONNECTION_GRACE

pytestmark = pytest.mark.integration

IP = "127.244.202.2"


@dataclass
class Echo:
    process: subprocess.Popen[bytes]
    http: int
    tcp: int
    udp: int
    bulk: int


def start_echo(*args: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "POD_NAME": "echo-1",
        "POD_NAMESPACE": "shop",
        "NODE_NAME": "node-9",
        "POD_IP": IP,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "workloads.echo", *args],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


@pytest.fixture
async def echo() -> AsyncIterator[Echo]:
    http, tcp, udp, bulk = free_port(IP), free_port(IP), free_port(IP), free_port(IP)
    process = start_echo(
        *("--http", str(http), "--tcp", str(tcp), "--udp", str(udp), "--bulk", str(bulk))
    )
    server = Echo(process, http, tcp, udp, bulk)
    try:
        await until_passes("echo to serve HTTP", lambda: http_request(IP, http))
        yield server
    finally:
        process.kill()
        process.wait(5)
        assert process.stdout is not None
        process.stdout.close()


async def exchange(port: int, raw: bytes, responses: int = 1) -> list[tuple[bytes, bytes]]:
    """Send `raw` on one connection and read `responses` answers: (head, body) each."""
    reader, writer = await asyncio.open_connection(IP, port)
    try:
        writer.write(raw)
        answers = []
        for _ in range(responses):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            if raw.startswith(b"HEAD"):
                length = 0
            answers.append((head, await reader.readexactly(length)))
        return answers
    finally:
        writer.close()


def json_of(body: bytes) -> dict[str, Any]:
    doc = json.loads(body)
    assert isinstance(doc, dict)
    return doc


async def test_any_path_answers_json_naming_the_pod(echo: Echo) -> None:
    answer = await http_request(IP, echo.http, '/a/b?c="d"', method="PUT")
    assert answer.status == 200 and answer.headers["content-type"] == "application/json"
    body = answer.json()
    client = body.pop("client")
    assert body == {
        "pod": "echo-1",
        "namespace": "shop",
        "node": "node-9",
        "podIP": IP,
        "path": '/a/b?c="d"',
        "method": "PUT",
    }
    host, port = client.rsplit(":", 1)
    assert host.startswith("127.") and int(port) > 0


async def test_keep_alive_and_pipelining_on_one_connection(echo: Echo) -> None:
    raw = b"GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\n"
    answers = await exchange(echo.http, raw, responses=2)
    assert [json_of(body)["path"] for _, body in answers] == ["/one", "/two"]
    assert all(b"connection: close" not in head.lower() for head, _ in answers)
    assert len({json_of(body)["client"] for _, body in answers}) == 1


async def test_request_bodies_are_skipped_not_parsed(echo: Echo) -> None:
    post = b"GET /x HTTP/1.1\r\n"  # looks like a request, but it is the POST's body
    raw = b"POST /form HTTP/1.1\r\nContent-Length: %d\r\n\r\n%sGET /after HTTP/1.1\r\n\r\n" % (
        len(post),
        post,
    )
    answers = await exchange(echo.http, raw, responses=2)
    assert [json_of(body)["path"] for _, body in answers] == ["/form", "/after"]


async def test_head_and_http_1_0(echo: Echo) -> None:
    [(head, body)] = await exchange(echo.http, b"HEAD /x HTTP/1.1\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and body == b""
    [(head, _)] = await exchange(echo.http, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert b"Connection: keep-alive" in head
    [(head, _)] = await exchange(echo.http, b"GET / HTTP/1.0\r\n\r\n")
    assert b"Connection: close" in head


async def test_healthz_switch(echo: Echo) -> None:
    assert (await http_request(IP, echo.http, "/healthz")).status == 200
    assert (await http_request(IP, echo.http, "/healthz/fail")).status == 405  # GET: no flip
    assert (await http_request(IP, echo.http, "/healthz")).status == 200
    assert (await http_request(IP, echo.http, "/healthz/fail", "POST")).status == 200
    assert (await http_request(IP, echo.http, "/healthz")).status == 503
    assert (await http_request(IP, echo.http, "/other")).status == 200  # still serves
    assert (await http_request(IP, echo.http, "/healthz/pass", "POST")).status == 200
    assert (await http_request(IP, echo.http, "/healthz")).status == 200


async def test_malformed_requests_get_4xx_5xx_and_a_close(echo: Echo) -> None:
    [(head, _)] = await exchange(echo.http, b"NONSENSE\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"Connection: close" in head
    chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    [(head, _)] = await exchange(echo.http, chunked)
    assert head.startswith(b"HTTP/1.1 501")


async def test_tcp_echoes_bytes_with_back_pressure(echo: Echo) -> None:
    payload = os.urandom(4 * 1024 * 1024)
    assert await tcp_roundtrip(IP, echo.tcp, payload, timeout=10) == payload


async def test_udp_echoes_datagrams(echo: Echo) -> None:
    for payload in (b"one", b"two" * 100):
        assert await udp_roundtrip(IP, echo.udp, payload) == payload


async def bulk_exchange(port: int, line: bytes, body: bytes = b"") -> bytes:
    """Send a bulk command (and a body), half-close, and read to the pod's close."""
    reader, writer = await asyncio.open_connection(IP, port)
    try:
        writer.write(line + body)
        await writer.drain()
        writer.write_eof()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


async def test_bulk_put_counts_every_byte_then_answers(echo: Echo) -> None:
    size = 3 * 1024 * 1024 + 17  # more than one read, not a multiple of one
    assert await bulk_exchange(echo.bulk, b"PUT %d\n" % size, os.urandom(size)) == (
        b"OK %d\n" % size
    )
    assert await bulk_exchange(echo.bulk, b"PUT 0\n") == b"OK 0\n"


async def test_bulk_get_sends_exactly_what_was_asked(echo: Echo) -> None:
    reader, writer = await asyncio.open_connection(IP, echo.bulk)
    try:
        writer.write(b"GET 5000000\n")
        data = await asyncio.wait_for(reader.read(), 10)  # to the pod's close
    finally:
        writer.close()
    assert data == bytes(5_000_000)


@pytest.mark.parametrize(
    ("line", "body", "why"),
    [
        (b"POST 10\n", b"", b"unknown command 'POST'"),
        (b"PUT ten\n", b"", b"bytes: 'ten' is not a count"),
        (b"GET -1\n", b"", b"bytes: '-1' is not a count"),
        (b"PUT %d\n" % (2**40 + 1), b"", b"is not a count from 0 to"),
        (b"PUT 10\n", b"x" * 11, b"1 bytes beyond the 10 announced"),
        (b"PUT 10\n", b"x" * 4, b"EOF after 4 of 10 bytes"),
        (b"GET 10\nmore", b"", b"GET takes nothing after its line"),
        (b"P" * 100, b"", b"command line too long"),
    ],
)
async def test_bulk_refuses_bad_commands_naming_what_is_wrong(
    echo: Echo, line: bytes, body: bytes, why: bytes
) -> None:
    answer = await bulk_exchange(echo.bulk, line, body)
    assert answer.startswith(b"ERR ") and why in answer, answer
    assert answer.endswith(b"\n") and answer.count(b"\n") == 1


async def test_sigterm_finishes_in_flight_requests_then_exits_0(echo: Echo) -> None:
    busy_reader, busy = await asyncio.open_connection(IP, echo.http)
    idle_reader, idle = await asyncio.open_connection(IP, echo.http)
    fresh_reader, fresh = await asyncio.open_connection(IP, echo.http)
    silent_reader, silent = await asyncio.open_connection(IP, echo.http)
    busy.write(b"GET /in-flight HTTP/1.1\r\n")  # half a request
    idle.write(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n")  # kept alive afterwards
    assert b'"path":"/first"' in await asyncio.wait_for(idle_reader.readuntil(b"}\n"), 2)
    await http_request(IP, echo.http, "/")  # every connection above is accepted by now
    echo.process.send_signal(signal.SIGTERM)

    signalled = time.monotonic()
    assert await asyncio.wait_for(idle_reader.read(), 1) == b""  # idle: closed at once
    # The listener still accepts for LISTEN_GRACE (proxies may not know yet that the pod
    # is terminating): a new connection is answered once, and closed.
    during_reader, during = await asyncio.open_connection(IP, echo.http)
    during.write(b"GET /during HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = await asyncio.wait_for(during_reader.read(), 2)
    assert answer.startswith(b"HTTP/1.1 200") and b"Connection: close" in answer
    assert time.monotonic() - signalled < LISTEN_GRACE  # answered within the grace
    during.close()

    async def refused() -> None:
        try:
            await http_request(IP, echo.http)
        except ConnectionRefusedError:
            return
        raise AssertionError("the listener still accepts")

    await until_passes("the listener to close", refused)
    assert time.monotonic() - signalled >= LISTEN_GRACE
    assert echo.process.poll() is None  # still waiting for the request in flight
    # A connection accepted before the signal whose request comes after it (a proxy
    # picked the pod just before it left the endpoints) is still answered.
    fresh.write(b"GET /late HTTP/1.1\r\nHost: x\r\n\r\n")
    late = await asyncio.wait_for(fresh_reader.read(), 2)
    assert late.startswith(b"HTTP/1.1 200") and b"Connection: close" in late
    # One that never sends anything is closed once that grace is over.
    assert await asyncio.wait_for(silent_reader.read(), NEW_CONNECTION_GRACE + 2) == b""
    busy.write(b"Host: x\r\n\r\n")
    answer = await asyncio.wait_for(busy_reader.read(), 2)
    assert answer.startswith(b"HTTP/1.1 200") and b"Connection: close" in answer
    assert b'"path":"/in-flight"' in answer

    async def exited() -> int:
        code = echo.process.poll()
        assert code is not None
        return code

    assert await until_passes("echo to exit", exited) == 0
    for writer in (busy, idle, fresh, silent):
        writer.close()


async def test_a_port_it_cannot_bind_exits_1() -> None:
    http = free_port(IP)
    first = start_echo("--http", str(http))
    try:
        await until_passes("the first echo to serve", lambda: http_request(IP, http))
        second = start_echo("--http", str(http))
        out, _ = second.communicate(timeout=10)
        assert second.returncode == 1
        assert b"cannot listen" in out
    finally:
        first.kill()
        first.wait(5)
        assert first.stdout is not None
        first.stdout.close()
