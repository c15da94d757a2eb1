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
TIME_WAIT after a `down` counts as free.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence

from kubelab.lab.errors import LabError
from kubelab.lab.specs import LabConfig, ProcessSpec


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers themselves bind: a port in TIME_WAIT is free to them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str, taken: set[int]) -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in taken:
            return port


def resolve_ports(
    config: LabConfig, specs: Sequence[ProcessSpec], note: Callable[[str], None]
) -> dict[str, int]:
    ports: dict[str, int] = {}
    for spec in specs:
        for wish in spec.ports:
            taken = set(ports.values())
            asked = config.ports.get(wish.name)
            if asked is None:
                if wish.default not in taken and port_free(config.host, wish.default):
                    port = wish.default
                else:
                    port = free_port(config.host, taken)
                    note(
                        f"port {wish.default} is in use; {spec.name} will use "
                        f"{config.host}:{port} instead ({wish.option} to choose)"
                    )
            elif asked == 0:
                port = free_port(config.host, taken)
            elif asked in taken or not port_free(config.host, asked):
                raise LabError(f"{config.host}:{asked} ({wish.option}) is already in use")
            else:
                port = asked
            ports[wish.name] = port
    return ports
