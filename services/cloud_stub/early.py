"""Forwarding from the snapshot, before the cloud-stub's control side is up.

`start_early` runs first in a new cloud-stub process, with nothing imported but the
relay: it reads the snapshot file (`services.cloud_stub.logic.snapshot`) and binds every
listener in it, each forwarding round robin to its snapshot targets (a connect that
fails moves on to the next, as the relay does). When the load balancers resumed from
etcd bind their listeners, `adopt` hands each one the bound socket with its connections
and flows: the kernel's accept queue is never closed, so no client sees a refusal at
the restart. What no load balancer adopts (deleted while the process was down) is
closed by `close_rest`.

The snapshot is written (`SnapshotWriter`) after every change to what is forwarded:
whole, to a temporary file renamed over the old one, so a crash leaves the previous
snapshot or the new one, never half of one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from kubelab.core.endpoint_choice import Target
from kubelab.relay import TcpListener, UdpListener, serve_tcp, serve_udp
from kubelab.relay.static import StaticRoute
from services.cloud_stub.logic.snapshot import (
    ForwardingEntry,
    SnapshotError,
    decode,
    encode,
)
from services.cloud_stub.logic.source_ranges import parse_ranges, source_allowed

log = logging.getLogger("cloud_stub.early")

ListenerKey = tuple[str, str, int]  # (ip, protocol, port)


class _SnapshotRoute(StaticRoute):
    """Round robin over one snapshot entry's targets, sources checked; like a static
    route, it keeps no count of what it carries."""

    def __init__(self, entry: ForwardingEntry, connect_timeout: float) -> None:
        super().__init__(entry.targets[0] if entry.targets else Target("", 0))
        self.connect_timeout = connect_timeout
        self.targets = entry.targets
        self.ranges = parse_ranges(entry.source_ranges)
        self.keep_client_ip = entry.keep_client_ip
        self._next = 0

    def pick(self, client_ip: str, tried: Sequence[Target]) -> Target | None:
        if not source_allowed(client_ip, self.ranges):
            return None
        for _ in range(len(self.targets)):
            target = self.targets[self._next % len(self.targets)]
            self._next += 1
            if target not in tried:
                return target
        return None

    def source_ip(self, client_ip: str) -> str | None:
        return client_ip if self.keep_client_ip else None

    def connect_failed(self, target: Target, error: BaseException) -> None:
        log.info("connect to %s failed: %s", target, error)


class EarlyForwarding:
    """The listeners bound from the snapshot, until the load balancers take them."""

    def __init__(self) -> None:
        self.listeners: dict[ListenerKey, TcpListener | UdpListener] = {}

    def adopt(self, key: ListenerKey) -> TcpListener | UdpListener | None:
        """The bound listener for `key`, now the caller's (None: there is none)."""
        return self.listeners.pop(key, None)

    def close_rest(self) -> None:
        """Close what no load balancer took over (its load balancer is gone)."""
        for key, listener in self.listeners.items():
            log.info("closing %s:%s/%s: no load balancer has it now", key[0], key[2], key[1])
            listener.close()
        self.listeners.clear()


def read_snapshot(path: Path) -> list[ForwardingEntry]:
    """The snapshot at `path`; none (logged) when it is missing or unreadable."""
    try:
        return decode(path.read_bytes())
    except FileNotFoundError:
        return []
    except (OSError, SnapshotError) as err:
        log.warning("forwarding snapshot %s not used: %s", path, err)
        return []


async def start_early(
    entries: list[ForwardingEntry], *, connect_timeout: float, udp_idle_timeout: float
) -> EarlyForwarding:
    """Bind what the snapshot lists. A listener that cannot be bound is logged and left
    out: the load balancers resumed from etcd bind it then."""
    early = EarlyForwarding()
    for entry in entries:
        route = _SnapshotRoute(entry, connect_timeout)
        listener: TcpListener | UdpListener
        try:
            if entry.protocol == "UDP":
                listener = await serve_udp(
                    route, entry.ip, entry.port, free_bind=True, idle_timeout=udp_idle_timeout
                )
            else:
                listener = await serve_tcp(route, entry.ip, entry.port, free_bind=True)
        except OSError as err:
            log.warning("snapshot listener %s:%d/%s: %s", entry.ip, entry.port, entry.protocol, err)
            continue
        early.listeners[entry.key] = listener
    if early.listeners:
        log.info("forwarding %d listeners from the snapshot", len(early.listeners))
    return early


class SnapshotWriter:
    """Replaces the snapshot at `path` whenever what is forwarded changed: whole, by
    rename. An Ensure that changed nothing writes nothing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._written: bytes | None = None

    def __call__(self, entries: list[ForwardingEntry]) -> None:
        data = encode(entries)
        if data == self._written:
            return
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            # Private, as everything in a kubelab home is (it names the nodes' addresses).
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(temporary, self.path)
        except OSError as err:
            log.warning("could not write the forwarding snapshot %s: %s", self.path, err)
            temporary.unlink(missing_ok=True)
            return
        self._written = data
