"""Which asyncio HTTP server the apiserver's Kubernetes API runs on: aiohttp or uvicorn.

    .venv/bin/pip install 'uvicorn[standard]'   # the alternative; not a kubelab dependency
    .venv/bin/python bench/http_servers.py [--rounds 5] [--seconds 2] [--connections 32]

Both serve the same small JSON GET (a Service as `kubectl get svc -o json` shows it,
serialized per request as the apiserver will) from a child process of their own on
loopback, with uvloop. One client, written on raw asyncio streams so it favours neither,
keeps `--connections` HTTP/1.1 keep-alive connections busy for `--seconds` per round;
rounds alternate between the servers so both see the same machine. Prints requests/s
(median of the rounds) and the ratio uvicorn/aiohttp.

The candidates: aiohttp (server and client in one well-kept asyncio package, streaming
responses for watch, a request size limit built in) and uvicorn + httptools (the fastest
well-kept asyncio HTTP/1.1 server, bare ASGI; streaming and limits would be ours).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

BODY: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {
        "name": "shop",
        "namespace": "default",
        "uid": "0b6f0f47-9c5e-4d1b-8f5e-2b4a8f0c2d11",
        "resourceVersion": "1042",
        "creationTimestamp": "2026-12-07T07:00:00Z",
        "labels": {"app": "shop"},
    },
    "spec": {
        "type": "ClusterIP",
        "clusterIP": "127.96.0.12",
        "selector": {"app": "shop"},
        "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
    },
    "status": {"loadBalancer": {}},
}
PATH = "/api/v1/namespaces/default/services/shop"


def serve_aiohttp(port: int) -> None:
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=json.dumps(BODY).encode(), content_type="application/json")

    app = web.Application()
    app.router.add_get(PATH, handler)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, loop=_loop())


def serve_uvicorn(port: int) -> None:
    # Imported by name: uvicorn is installed only to run this comparison.
    uvicorn = importlib.import_module("uvicorn")

    Send = Callable[[dict[str, Any]], Awaitable[None]]

    async def app(scope: dict[str, Any], receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = json.dumps(BODY).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(
        app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", access_log=False,
        log_level="warning", lifespan="off",
    )  # fmt: skip


def _loop() -> asyncio.AbstractEventLoop:
    import uvloop

    return uvloop.new_event_loop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _one_connection(port: int, until: float) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\r\n"
    done = 0
    try:
        while time.perf_counter() < until:
            writer.write(request.encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            done += 1
    finally:
        writer.close()
    return done


async def _round(port: int, connections: int, seconds: float) -> float:
    began = time.perf_counter()
    until = began + seconds
    counts = await asyncio.gather(*(_one_connection(port, until) for _ in range(connections)))
    return sum(counts) / (time.perf_counter() - began)


async def _wait_open(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return
    raise SystemExit(f"server on {port} did not start")


async def measure(
    servers: dict[str, int], rounds: int, seconds: float, connections: int
) -> dict[str, list[float]]:
    for port in servers.values():
        await _wait_open(port)
    for port in servers.values():  # warm up both
        await _round(port, connections, 0.5)
    results: dict[str, list[float]] = {name: [] for name in servers}
    for _ in range(rounds):
        for name, port in servers.items():
            results[name].append(await _round(port, connections, seconds))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--serve", nargs=2, metavar=("SERVER", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        name, port = args.serve
        (serve_aiohttp if name == "aiohttp" else serve_uvicorn)(int(port))
        return
    servers = {name: _free_port() for name in ("aiohttp", "uvicorn")}
    children = [
        subprocess.Popen([sys.executable, __file__, "--serve", name, str(port)])
        for name, port in servers.items()
    ]
    try:
        results = asyncio.run(measure(servers, args.rounds, args.seconds, args.connections))
    finally:
        for child in children:
            child.terminate()
            child.wait(10)
    medians = {name: statistics.median(values) for name, values in results.items()}
    for name, median in medians.items():
        spread = ", ".join(f"{v:,.0f}" for v in results[name])
        print(f"{name:8} {median:10,.0f} requests/s (median of {args.rounds}: {spread})")
    print(f"uvicorn/aiohttp: {medians['uvicorn'] / medians['aiohttp']:.2f}x")


if __name__ == "__main__":
    main()
