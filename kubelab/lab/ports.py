"""Port resolution: turning a config's port wishes into the `Layout`'s ports.

Each `PortSpec` has a default (etcd 2379/2380, apiserver 6443). A port left
unset takes its default, or any free port when the default is taken (the
reporter is told, naming the option that would choose one). An explicit 0
means "any free port" (tests); any other explicit port must be free or `up`
fails with a `LabError`. Ports are resolved in spec order and never handed out
twice within one cluster.

Free ports are found by binding before the actor starts; the gap until the
actor binds is a race we accept in a lab (nothing else here allocates ports).
A port is "free" as the servers themselves see it: SO_REUSEADDR, so one in
TIME_WAIT after a `down` counts as free; a UDP port (DNS) must be free for
both UDP and TCP, on the address it binds (`PortSpec.host`). A default that
needs privileges we lack (DNS's 53 when not root) moves to the spec's
`fallback` (10053) when that is free, with a note; an explicit privileged
port fails saying what it needs.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence

from kubelab.lab.errors import LabError
from kubelab.lab.specs import LabConfig, ProcessSpec


def _bind_error(host: str, port: int, udp: bool = False) -> OSError | None:
    """Why `port` cannot be bound on `host` (TCP, and UDP too when asked), or None."""
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM) if udp else (socket.SOCK_STREAM,):
        with socket.socket(socket.AF_INET, kind) as sock:
            if kind == socket.SOCK_STREAM:
                # As the servers themselves bind: a port in TIME_WAIT is free to them.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as err:
                return err
    return None


def port_free(host: str, port: int, *, udp: bool = False) -> bool:
    return _bind_error(host, port, udp) is None


def free_port(host: str, taken: set[int], *, udp: bool = False) -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in taken and (not udp or port_free(host, port, udp=True)):
            return port


def _privilege_hint(host: str, port: int, option: str) -> str:
    return (
        f"{host}:{port} ({option}) needs root or CAP_NET_BIND_SERVICE (ports below "
        "1024 are privileged)"
    )


def resolve_ports(
    config: LabConfig, specs: Sequence[ProcessSpec], note: Callable[[str], None]
) -> dict[str, int]:
    ports: dict[str, int] = {}
    for spec in specs:
        for wish in spec.ports:
            taken = set(ports.values())
            asked = config.ports.get(wish.name)
            host = wish.bind_host(config)
            if asked is None:
                error = None if wish.default in taken else _bind_error(host, wish.default, wish.udp)
                if wish.default not in taken and error is None:
                    port = wish.default
                elif (
                    isinstance(error, PermissionError)
                    and wish.fallback is not None
                    and wish.fallback not in taken
                    and port_free(host, wish.fallback, udp=wish.udp)
                ):
                    port = wish.fallback
                    note(
                        f"port {wish.default} needs root or CAP_NET_BIND_SERVICE; {spec.name} "
                        f"will use {host}:{port} instead ({wish.option} to choose)"
                    )
                else:
                    port = free_port(host, taken, udp=wish.udp)
                    note(
                        f"port {wish.default} is in use; {spec.name} will use "
                        f"{host}:{port} instead ({wish.option} to choose)"
                    )
            elif asked == 0:
                port = free_port(host, taken, udp=wish.udp)
            else:
                error = None if asked not in taken else OSError("taken")
                error = error or _bind_error(host, asked, wish.udp)
                if isinstance(error, PermissionError):
                    raise LabError(_privilege_hint(host, asked, wish.option))
                if error is not None:
                    raise LabError(f"{host}:{asked} ({wish.option}) is already in use")
                port = asked
            ports[wish.name] = port
    return ports
