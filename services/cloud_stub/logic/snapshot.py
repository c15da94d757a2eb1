"""What the cloud-stub forwards, as a small file it reads first thing after a restart.

A cloud's load balancers keep forwarding while its controller restarts. The cloud-stub
is both, in one process, and a new process needs about a second (more on a busy machine)
to import gRPC and protobuf, read etcd and re-ensure every load balancer. So it also
keeps, beside etcd's records, a snapshot of its data plane: per listener its address,
protocol and port, the node targets it forwards to, its source ranges and whether it
keeps the client's address. A restarted process binds those listeners before anything
else (`services.cloud_stub.early`), and the load balancers it resumes from etcd take the
bound listeners over. etcd stays the truth: the snapshot only bridges the restart.

Pure: encoding and decoding, no I/O. The format is JSON with a version; anything
unreadable decodes to an error, and the caller then starts without it.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

from kubelab.core.endpoint_choice import Target

VERSION = 1
_PROTOCOLS = ("TCP", "UDP")


@dataclass(frozen=True, slots=True)
class ForwardingEntry:
    """One listener of one load balancer and where it forwards."""

    ip: str
    protocol: str
    port: int
    targets: tuple[Target, ...]
    source_ranges: tuple[str, ...] = ()
    keep_client_ip: bool = False

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.ip, self.protocol, self.port)


class SnapshotError(ValueError):
    """The snapshot cannot be read; what is wrong, for one log line."""


def encode(entries: list[ForwardingEntry]) -> bytes:
    doc = {
        "version": VERSION,
        "listeners": [
            {
                "ip": e.ip,
                "protocol": e.protocol,
                "port": e.port,
                "targets": [f"{t.ip}:{t.port}" for t in e.targets],
                "sourceRanges": list(e.source_ranges),
                "keepClientIP": e.keep_client_ip,
            }
            for e in sorted(entries, key=lambda e: e.key)
        ],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def decode(data: bytes) -> list[ForwardingEntry]:
    """The entries of a snapshot; SnapshotError names the first thing wrong."""
    try:
        doc = json.loads(data)
    except ValueError as err:
        raise SnapshotError(f"not JSON: {err}") from None
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        raise SnapshotError(f"not a version {VERSION} snapshot")
    listeners = doc.get("listeners")
    if not isinstance(listeners, list):
        raise SnapshotError("listeners: not a list")
    return [_entry(i, item) for i, item in enumerate(listeners)]


def _entry(index: int, item: object) -> ForwardingEntry:
    where = f"listeners[{index}]"
    if not isinstance(item, dict):
        raise SnapshotError(f"{where}: not an object")
    ip, protocol, port = item.get("ip"), item.get("protocol"), item.get("port")
    if not isinstance(ip, str) or not _is_ipv4(ip):
        raise SnapshotError(f"{where}.ip: not an IPv4 address")
    if protocol not in _PROTOCOLS:
        raise SnapshotError(f"{where}.protocol: not one of {', '.join(_PROTOCOLS)}")
    if not _is_port(port):
        raise SnapshotError(f"{where}.port: not a port number")
    targets = item.get("targets")
    if not isinstance(targets, list):
        raise SnapshotError(f"{where}.targets: not a list")
    ranges = item.get("sourceRanges", [])
    if not isinstance(ranges, list) or not all(_is_network(r) for r in ranges):
        raise SnapshotError(f"{where}.sourceRanges: not a list of CIDRs")
    keep = item.get("keepClientIP", False)
    if not isinstance(keep, bool):
        raise SnapshotError(f"{where}.keepClientIP: not a boolean")
    assert isinstance(port, int) and isinstance(protocol, str)
    return ForwardingEntry(
        ip,
        protocol,
        port,
        tuple(_target(f"{where}.targets[{n}]", t) for n, t in enumerate(targets)),
        tuple(ranges),
        keep,
    )


def _target(where: str, text: object) -> Target:
    if isinstance(text, str):
        ip, _, port = text.rpartition(":")
        if _is_ipv4(ip) and port.isdigit() and _is_port(int(port)):
            return Target(ip, int(port))
    raise SnapshotError(f"{where}: not IP:PORT")


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _is_network(text: object) -> bool:
    if not isinstance(text, str):
        return False
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def _is_port(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536
