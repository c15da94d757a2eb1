"""`spec.loadBalancerSourceRanges`: a client outside every range is refused; no ranges
lets everyone in (Kubernetes' semantics).

Its own module, free of protobuf, because the cloud-stub's early forwarding
(`services.cloud_stub.early`) checks sources before the heavy imports are done.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

SourceRanges = tuple[ipaddress.IPv4Network, ...]


def parse_ranges(cidrs: Iterable[str]) -> SourceRanges:
    """Validated CIDRs (see `validate_spec`) as networks; host bits are ignored."""
    return tuple(ipaddress.IPv4Network(c, strict=False) for c in cidrs)


def source_allowed(client_ip: str, ranges: SourceRanges) -> bool:
    if not ranges:
        return True
    try:
        address = ipaddress.IPv4Address(client_ip)
    except ValueError:
        return False
    return any(address in network for network in ranges)
