"""Measurements a scenario takes while it breaks something: steady request loops through
a NodePort and the LoadBalancer, the time until a dead node's endpoints are gone, the
time until the Deployment has its replicas Ready again. Every wait has a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from kubelab.core import kinds
from kubelab.testing.traffic import Failure, RequestLoop
from kubelab.v1 import objects_pb2
from tests.chaos.invariants import check_invariants
from tests.chaos.lab import LB_PORT, NODE_PORT, NODES, Lab, LabNode, owned_by_deployment, wait_for
from tests.chaos.report import Loop, Row

LATE = 3.0  # failures of requests begun this long after the failure moment miss the target
SETTLE_REQUESTS = 200  # each loop answers this many more after recovery before it stops
RECOVERY_TIMEOUT = 30.0


def loop_outcome(loop: RequestLoop, moment: float, new_from: float) -> Loop:
    """Requests begun at `new_from` (the failure complete) or later are new: one begun
    earlier may have been inside a dying node already, where no retry can save it."""
    new = loop.failed_since(new_from)
    late = loop.failed_since(moment + LATE)
    return Loop(
        requests=loop.attempts,
        failed=len(loop.failures),
        new=len(new),
        late=len(late),
        errors=failure_kinds(loop.failures, moment),
    )


def failure_kinds(failures: list[Failure], moment: float) -> list[str]:
    """Failures grouped by kind: "2 TimeoutError (+0.35..+0.36 s)"."""
    groups: dict[str, list[float]] = {}
    for failure in failures:
        groups.setdefault(failure_kind(failure.error), []).append(failure.started - moment)
    return [
        f"{len(times)} {kind} ({min(times):+.2f}..{max(times):+.2f} s)"
        for kind, times in groups.items()
    ]


def failure_kind(error: str) -> str:
    """ "1.2.3.4:80: ConnectionResetError: [Errno 104] ..." → "ConnectionResetError"."""
    _, _, what = error.partition(": ")
    if what.startswith("b'HTTP/1.1 "):
        return "HTTP " + what.split()[1]
    return what.split(":")[0] or error


@dataclass
class Traffic:
    """New-connection GETs through one node's NodePort and through the LoadBalancer."""

    nodeport: RequestLoop
    lb: RequestLoop

    @property
    def loops(self) -> dict[str, RequestLoop]:
        return {"NodePort": self.nodeport, "LB": self.lb}

    async def settle(self, requests: int = SETTLE_REQUESTS, timeout: float = 30.0) -> None:
        """Wait until each loop has made `requests` more requests (the recovered state
        carries traffic, not just the moments around the failure)."""
        marks = {name: loop.attempts for name, loop in self.loops.items()}
        deadline = time.monotonic() + timeout
        for name, loop in self.loops.items():
            while loop.attempts < marks[name] + requests:
                assert time.monotonic() < deadline, f"the {name} loop stalled: {loop.attempts}"
                await asyncio.sleep(0.05)

    def record(self, row: Row, moment: float, new_from: float | None = None) -> None:
        """The loops' outcome: `moment` the failure, `new_from` when it was complete."""
        new_from = moment if new_from is None else new_from
        row.nodeport = loop_outcome(self.nodeport, moment, new_from)
        row.lb = loop_outcome(self.lb, moment, new_from)


@asynccontextmanager
async def traffic(lab: Lab, via: LabNode) -> AsyncIterator[Traffic]:
    """Request loops through `via`'s public address and the LB for the `async with` body."""
    loops = Traffic(RequestLoop(via.public_ip, NODE_PORT), RequestLoop(lab.lb_ip, LB_PORT))
    for loop in loops.loops.values():
        loop.start()
    lab.note(f"request loops: {via.public_ip}:{NODE_PORT} and {lab.lb_ip}:{LB_PORT}")
    try:
        await loops.settle(50)  # both answer before anything breaks
        yield loops
    finally:
        for loop in loops.loops.values():
            await loop.stop()
        lab.note("request loops stopped")


def targets_for_traffic(row: Row, *, nodeport_covered: bool, lb_covered: bool) -> None:
    """The data-plane targets: no failed new request 3 s after the failure on, and none at
    all among requests begun after it where connect-retry can cover the failure."""
    for name, loop, covered in (
        ("NodePort", row.nodeport, nodeport_covered),
        ("LB", row.lb, lb_covered),
    ):
        if loop is None:
            continue
        row.target(loop.late == 0, f"{name}: {loop.late} failed ≥{LATE:g} s after the failure")
        if covered:
            row.target(loop.new == 0, f"{name}: {loop.new} failed new requests")
        if loop.failed:
            row.note(f"{name} failures: {', '.join(loop.errors)}")


async def check_row_invariants(lab: Lab, row: Row) -> None:
    try:
        took = await check_invariants(lab.store, lab.acked)
    except AssertionError as err:
        row.invariants = "VIOLATED"
        row.misses.append(str(err))
        return
    row.invariants = "hold" if took < 0.5 else f"hold (converged in {took:.1f} s)"


def finish(row: Row) -> None:
    """The scenario passes when every target it recorded was met."""
    assert not row.misses, "targets missed:\n" + "\n".join(row.misses)


async def endpoints_on(lab: Lab, node: LabNode) -> int:
    """How many endpoints of any EndpointSlice name `node` (read from etcd)."""
    slices, _ = await lab.store.list(kinds.ENDPOINTSLICES)
    return sum(
        1
        for s in slices
        if isinstance(s, objects_pb2.EndpointSlice)
        for ep in s.endpoints
        if ep.node_name == node.name
    )


async def until_endpoints_gone(lab: Lab, node: LabNode) -> float:
    """When (time.monotonic()) no slice lists an endpoint on `node` any more."""

    async def gone() -> bool:
        return await endpoints_on(lab, node) == 0

    await wait_for(gone, RECOVERY_TIMEOUT, f"no endpoint on {node.name}", interval=0.02)
    lab.note(f"no endpoint on {node.name}")
    return time.monotonic()


async def until_replacements_ready(lab: Lab, node: LabNode) -> float:
    """When (time.monotonic()) the Deployment has its replicas Ready off `node`."""
    replicas = (await lab.deployment()).spec.replicas

    async def ready() -> bool:
        return await lab.ready_replicas(avoid=node.name) >= replicas

    await wait_for(ready, RECOVERY_TIMEOUT, f"{replicas} replicas Ready off {node.name}", 0.05)
    lab.note(f"{replicas} replicas Ready off {node.name}")
    return time.monotonic()


async def victim_and_via(lab: Lab) -> tuple[LabNode, LabNode]:
    """The node to break (node2 or node3, whichever runs more of the Deployment's pods) and
    a surviving node to send NodePort traffic through (node1)."""
    pods = await lab.pods()
    counts = {
        node: sum(1 for p in pods if owned_by_deployment(p) and p.spec.node_name == node.name)
        for node in NODES[1:]
    }
    victim = max(counts, key=lambda node: (counts[node], node.name))
    assert counts[victim] > 0, f"no Deployment pod on node-2 or node-3: {counts}"
    return victim, NODES[0]
