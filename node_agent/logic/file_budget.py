"""How many listeners a node proxy may hold, and whether one Service's fit (issue 13).

Every listener is a file descriptor, and a process has RLIMIT_NOFILE of them for
everything: its etcd and gRPC connections, its pods' log files and pipes, probes,
health and metrics servers, and two sockets (plus up to two splice pipes) per
relayed connection. A Service with 20,000 ports (valid in Kubernetes) once took
every descriptor a node agent had: its lease renewal failed, the node went
NotReady and every pod on it was evicted. So the proxy gets a budget, `limit`
minus a reserve for everything else, and programs a Service only if all of its
listeners fit in what the other Services left: all or nothing, because a Service
that answers on some of its ports and not others is worse than one reported as
not served.

The reserve is a quarter of the limit for relayed connections plus a fixed
`BASE_RESERVE` for the agent's own needs, but never more than half the limit, so
a small limit still serves small Services. kube-proxy's iptables and nftables
modes need no such budget (their rules live in the kernel); a userspace proxy such
as kubelab's relay holds a socket per frontend, so it must count them.

Pure: numbers in, a decision out.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BASE_RESERVE", "FileBudget", "Refusal", "admit", "file_budget"]

BASE_RESERVE = 512


@dataclass(frozen=True, slots=True)
class FileBudget:
    """The process's file limit and the part of it listeners may use."""

    limit: int
    listeners: int

    @property
    def reserved(self) -> int:
        return self.limit - self.listeners


def file_budget(limit: int) -> FileBudget:
    """The budget for a process whose RLIMIT_NOFILE (soft) is `limit`."""
    limit = max(limit, 0)
    reserve = min(limit // 2, BASE_RESERVE + limit // 4)
    return FileBudget(limit=limit, listeners=limit - reserve)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a Service is not programmed: it needs more listeners than are left."""

    needed: int
    available: int
    budget: FileBudget

    def __str__(self) -> str:
        return (
            f"needs {self.needed} listeners, the node's file budget has {self.available} left "
            f"({self.budget.listeners} for listeners of RLIMIT_NOFILE {self.budget.limit})"
        )


def admit(budget: FileBudget, *, needed: int, used_by_others: int) -> Refusal | None:
    """None when a Service needing `needed` listeners fits beside the `used_by_others`
    that other Services hold; else the refusal to report. What the Service itself
    holds now does not count against it: it is replaced, not added to."""
    available = max(budget.listeners - used_by_others, 0)
    if needed <= available:
        return None
    return Refusal(needed=needed, available=available, budget=budget)
