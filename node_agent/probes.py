"""Probe executors: httpGet, tcpSocket and exec, each bounded by the probe's timeout.

Each executor answers a `ProbeResult` and never raises for a failing
container: refused, reset, timed out, garbage or a non-zero exit are all just
failures with a message (what `kubectl describe` would show in an event).
The semantics are the kubelet's (`pkg/kubelet/prober`, `pkg/probe/*`):

- httpGet: `GET scheme://host:port/path` with `User-Agent: kube-probe/...`
  and `Accept: */*` (custom headers override them); any status from 200 to
  399 passes, as a redirect does in the kubelet. The host defaults to the
  pod IP. HTTPS skips certificate checks, as the kubelet does. Only the status
  line is read; the connection is closed right after.
- tcpSocket: the connection opens within the timeout.
- exec: the command runs as a process with the container's environment and
  working directory; exit 0 passes; on timeout it is killed and fails
  (Kubernetes enforces exec probe timeouts since 1.20).

Named ports (`port: http`) resolve against the container's ports
(`resolve_port`); validation already rejects names no port carries.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kubelab.core.validation.syntax import parse_int_or_string
from kubelab.v1 import objects_pb2
from node_agent.process import spawn

__all__ = ["ProbeResult", "exec_command", "http_get", "resolve_port", "run_probe", "tcp_socket"]

USER_AGENT = "kube-probe/kubelab"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    message: str = ""


def resolve_port(value: str, container: objects_pb2.Container) -> int:
    """A probe's int-or-string port as a number; ValueError when no port has that name."""
    parsed = parse_int_or_string(value)
    if isinstance(parsed, int):
        return parsed
    for port in container.ports:
        if port.name == parsed:
            return port.container_port
    raise ValueError(f"port {parsed!r} is not a named port of container {container.name!r}")


async def run_probe(
    probe: objects_pb2.Probe,
    *,
    pod_ip: str,
    container: objects_pb2.Container,
    env: Mapping[str, str],
    cwd: Path | None = None,
) -> ProbeResult:
    """Run whichever handler `probe` has."""
    timeout = float(probe.timeout_seconds or 1)
    try:
        if probe.HasField("http_get"):
            action = probe.http_get
            return await http_get(
                action.host or pod_ip,
                resolve_port(action.port, container),
                action.path or "/",
                timeout=timeout,
                https=action.scheme.upper() == "HTTPS",
                headers=[(h.name, h.value) for h in action.http_headers],
            )
        if probe.HasField("tcp_socket"):
            action_tcp = probe.tcp_socket
            port = resolve_port(action_tcp.port, container)
            return await tcp_socket(action_tcp.host or pod_ip, port, timeout=timeout)
        if probe.HasField("exec"):
            return await exec_command(probe.exec.command, env=env, cwd=cwd, timeout=timeout)
    except ValueError as err:
        return ProbeResult(False, str(err))
    return ProbeResult(False, "probe has no handler")


async def http_get(
    host: str,
    port: int,
    path: str,
    *,
    timeout: float,
    https: bool = False,
    headers: Sequence[tuple[str, str]] = (),
) -> ProbeResult:
    url = f"{'https' if https else 'http'}://{host}:{port}{path}"
    context: ssl.SSLContext | None = None
    if https:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    fields = {"host": f"{host}:{port}", "user-agent": USER_AGENT, "accept": "*/*"}
    fields.update((name.lower(), value) for name, value in headers)
    target = path if path.startswith("/") else f"/{path}"
    request = f"GET {target} HTTP/1.1\r\n"
    request += "".join(f"{name}: {value}\r\n" for name, value in fields.items())
    request += "connection: close\r\n\r\n"
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port, ssl=context)
            writer.write(request.encode("latin-1"))
            status_line = await reader.readline()
    except TimeoutError:
        return ProbeResult(False, f"Get {url}: timeout after {timeout:g}s")
    except (OSError, UnicodeError, ssl.SSLError) as err:
        return ProbeResult(False, f"Get {url}: {err}")
    finally:
        if writer is not None:
            writer.close()
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return ProbeResult(False, f"Get {url}: malformed response {status_line[:80]!r}")
    code = int(parts[1])
    if 200 <= code < 400:
        return ProbeResult(True)
    return ProbeResult(False, f"HTTP probe failed with statuscode: {code}")


async def tcp_socket(host: str, port: int, *, timeout: float) -> ProbeResult:
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return ProbeResult(False, f"dial tcp {host}:{port}: i/o timeout")
    except OSError as err:
        return ProbeResult(False, f"dial tcp {host}:{port}: {err}")
    writer.close()
    return ProbeResult(True)


async def exec_command(
    argv: Sequence[str], *, env: Mapping[str, str], timeout: float, cwd: Path | None = None
) -> ProbeResult:
    if not argv:
        return ProbeResult(False, "exec probe has no command")
    try:
        process = spawn(argv, env=env, cwd=cwd)
    except OSError as err:
        return ProbeResult(False, f"exec {argv[0]}: {err}")
    try:
        code = await asyncio.wait_for(process.wait(), timeout)
    except TimeoutError:
        return ProbeResult(False, f"command timed out after {timeout:g}s")
    finally:
        if process.returncode is None:  # timed out, or the prober was cancelled
            process.kill_group()
    if code == 0:
        return ProbeResult(True)
    return ProbeResult(False, f"command exited with {code}")
