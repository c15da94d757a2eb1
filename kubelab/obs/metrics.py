"""Prometheus metrics over HTTP, served from the actor's own event loop.

prometheus-client's `start_http_server` runs a thread; actors are one event
loop each, so this serves `/metrics` with asyncio streams instead (the
exposition format comes from prometheus-client's `generate_latest`).
"""

from __future__ import annotations

import asyncio

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        request_line = await asyncio.wait_for(reader.readline(), 5)
        while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
            pass
        path = request_line.split(b" ")[1] if request_line.count(b" ") >= 2 else b"/"
        if path.split(b"?")[0] == b"/metrics":
            body = generate_latest()
            head = f"HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE_LATEST}\r\n"
        else:
            body = b"not found; try /metrics\n"
            head = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
        head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        writer.write(head.encode() + body)
        await writer.drain()
    except (TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve_metrics(host: str, port: int) -> asyncio.Server:
    """Start serving /metrics; port 0 picks a free port (see `server.sockets`)."""
    return await asyncio.start_server(_handle, host, port)
