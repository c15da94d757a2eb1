"""LoadBalancer IP pool: which external address a load balancer gets. Pure, no I/O.

The cloud-stub owns a pool (`--pool`, 127.200.0.0/24 in embedded mode). Every
address handed out is one etcd claim (`/registry/allocations/lbips/<ip>`) whose
value names the holding Service; the store writes it in the same transaction
as the load balancer's record, comparing `version == 0`, so two cloud-stubs can
never hand out the same address. This module only decides what to ask for,
given who holds what (`holders`: ip → "namespace/name"):

* an address, once held, is sticky: a load balancer keeps it across Ensures,
  across a re-created Service (another uid, same name) and across restarts;
* a requested address (`spec.loadBalancerIP`) must be in the pool and not held
  by another Service; a changed request moves the load balancer there and
  releases the old address;
* otherwise the lowest free address: a user's first load balancer answers on
  the pool's first address, which makes walkthroughs reproducible (racing
  cloud-stubs may pick the same one; the loser's transaction fails and it picks
  again);
* a held address whose claim has gone missing (a hand edit, an allocation repair
  that ran while its Service was away) is claimed again; one another Service
  holds by now is lost, and a new one is picked.

Usable addresses: the whole prefix minus the network and broadcast addresses,
except for /31 and /32, which have neither (RFC 3021).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass

from kubelab.core import errors
from kubelab.core.errors import FieldError

# The pool of embedded mode (the cloud-stub's `--pool` default and `kubelab up --lb-pool`).
DEFAULT_POOL = "127.200.0.0/24"
REQUESTED_IP_FIELD = "spec.loadBalancerIP"


class PoolExhaustedError(Exception):
    def __init__(self, pool: str) -> None:
        super().__init__(f"no free address in pool {pool}")
        self.pool = pool


class AddressTakenError(Exception):
    """The requested address is held by another Service (`holder`: "namespace/name")."""

    def __init__(self, ip: str, holder: str) -> None:
        super().__init__(
            f'{REQUESTED_IP_FIELD}: Invalid value: "{ip}": already allocated to Service {holder}'
        )
        self.ip = ip
        self.holder = holder


class LbPool:
    """The addresses a cloud-stub may hand out."""

    def __init__(self, cidr: str) -> None:
        self.network = ipaddress.IPv4Network(cidr, strict=False)
        first = int(self.network.network_address)
        size = self.network.num_addresses
        if self.network.prefixlen < 31:
            first, size = first + 1, size - 2
        self._first = first
        self.size = size

    def __str__(self) -> str:
        return str(self.network)

    def __contains__(self, ip: object) -> bool:
        try:
            value = int(ipaddress.IPv4Address(str(ip)))
        except ValueError:
            return False
        return self._first <= value < self._first + self.size

    def addresses(self) -> Iterator[str]:
        for value in range(self._first, self._first + self.size):
            yield str(ipaddress.IPv4Address(value))

    def check_requested(self, ip: str) -> FieldError | None:
        try:
            ipaddress.IPv4Address(ip)
        except ValueError:
            return errors.invalid(
                REQUESTED_IP_FIELD, ip, "must be a valid IPv4 address, (e.g. 127.200.0.7)"
            )
        if ip not in self:
            return errors.invalid(
                REQUESTED_IP_FIELD, ip, f"provided IP is not in the load balancer pool {self}"
            )
        return None

    def pick(self, taken: Collection[str]) -> str:
        """The lowest address not in `taken`; PoolExhaustedError when there is none."""
        for ip in self.addresses():
            if ip not in taken:
                return ip
        raise PoolExhaustedError(str(self))

    def used(self, taken: Collection[str]) -> int:
        """How many of `taken` are addresses of this pool."""
        return sum(1 for ip in taken if ip in self)


@dataclass(frozen=True, slots=True)
class AddressPlan:
    """Where a load balancer answers after this Ensure."""

    ip: str
    # The address the load balancer held until now and gives back ("" none).
    release: str = ""
    # True when `ip`'s claim must be written (new to it, or its claim went missing).
    claim: bool = False


def plan_address(
    pool: LbPool,
    *,
    me: str,
    current: str,
    requested: str,
    holders: Mapping[str, str],
) -> AddressPlan:
    """The address for load balancer `me` ("namespace/name"), which holds `current` ("" for
    a new one). `requested` must have passed `pool.check_requested`. Raises
    AddressTakenError or PoolExhaustedError."""
    owner = holders.get(current) if current else None
    held = current if current and owner in (None, me) else ""
    if requested:
        if requested == held:
            return AddressPlan(held, claim=owner is None)
        holder = holders.get(requested)
        if holder is not None and holder != me:
            raise AddressTakenError(requested, holder)
        release = held if held and owner == me else ""
        return AddressPlan(requested, release=release, claim=True)
    if held:
        return AddressPlan(held, claim=owner is None)
    return AddressPlan(pool.pick(holders.keys()), claim=True)
