"""Scenarios 1-4: a node goes away (stopped, killed, frozen, cut off) under steady
traffic through a surviving node's NodePort and through the LoadBalancer.

Measured from the failure moment (when Docker says the fault took effect: the signal
sent, the container frozen, the network endpoint removed): until no EndpointSlice lists
an endpoint on the node (target ≤ 3 s: its lease, 2 s, takes its pod statuses with it),
until the Deployment has its replicas Ready off the node (node lifecycle evicts after
its grace, the scheduler places replacements), and the request loops' failures (target:
none begun 3 s after the failure on; none at all where a connect retry can cover it). A
frozen or cut-off node comes back after 10 s, and the loops keep running until it has
rejoined. Then DESIGN §8's invariants.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from tests.chaos.lab import Done, Lab, LabNode, wait_for
from tests.chaos.measure import (
    check_row_invariants,
    finish,
    targets_for_traffic,
    traffic,
    until_endpoints_gone,
    until_replacements_ready,
    victim_and_via,
)
from tests.chaos.report import Row

pytestmark = pytest.mark.chaos

ENDPOINTS_GONE = 3.0
OUTAGE = 10.0  # a frozen or cut-off node comes back after this long


Fault = Callable[[Lab, LabNode], Awaitable[Done]]


async def node_failure(
    lab: Lab, row: Row, fault: Fault, *, repair: Fault | None = None, covered: bool
) -> None:
    """Break `victim` with `fault` (and mend it with `repair` after OUTAGE), measure from
    the moment the fault took effect (Docker's event for it)."""
    victim, via = await victim_and_via(lab)
    row.note(f"{victim.name} down, NodePort via {via.name}")
    async with traffic(lab, via) as loops:
        moment = complete = time.monotonic()  # until the fault says when it took effect

        async def outage() -> None:
            nonlocal moment, complete
            done = await fault(lab, victim)
            moment, complete = done.at, done.complete
            if repair is None:
                return
            await asyncio.sleep(max(0.0, moment + OUTAGE - time.monotonic()))
            back = (await repair(lab, victim)).at
            await wait_for(lambda: lab.node_alive(victim), 30, f"{victim.name} back")
            row.note(f"{victim.name} Ready {time.monotonic() - back:.1f} s after it returned")

        async with asyncio.TaskGroup() as group:
            group.create_task(outage())
            gone = group.create_task(until_endpoints_gone(lab, victim))
            ready = group.create_task(until_replacements_ready(lab, victim))
        row.endpoints_gone_s = gone.result() - moment
        row.replacements_ready_s = ready.result() - moment
        await loops.settle()
    loops.record(row, moment, complete)
    if complete > moment + 0.005:
        row.note(f"dying {complete - moment:.2f} s (in flight then: not new)")
    targets_for_traffic(row, nodeport_covered=covered, lb_covered=covered)
    row.target(
        row.endpoints_gone_s <= ENDPOINTS_GONE,
        f"endpoints gone in {row.endpoints_gone_s:.2f} s > {ENDPOINTS_GONE:g} s",
    )
    await check_row_invariants(lab, row)
    finish(row)


async def stop(lab: Lab, node: LabNode) -> Done:
    return await lab.stop(node.service)


async def kill(lab: Lab, node: LabNode) -> Done:
    return await lab.kill(node.service)


async def pause(lab: Lab, node: LabNode) -> Done:
    return await lab.pause(node.service)


async def unpause(lab: Lab, node: LabNode) -> Done:
    return await lab.unpause(node.service)


async def disconnect(lab: Lab, node: LabNode) -> Done:
    return await lab.disconnect(node.service)


async def reconnect(lab: Lab, node: LabNode) -> Done:
    return await lab.connect(node.service, node.cluster_ip)


@pytest.mark.scenario("1. stop a node")
async def test_stop_a_node(lab: Lab, row: Row) -> None:
    # SIGTERM: the agent stops its pods gracefully and revokes its lease.
    await node_failure(lab, row, stop, covered=True)


@pytest.mark.scenario("2. kill -9 a node")
async def test_kill_a_node(lab: Lab, row: Row) -> None:
    # Its addresses vanish with it: a connect to them fails, and is retried elsewhere.
    await node_failure(lab, row, kill, covered=True)


@pytest.mark.scenario("3. pause a node 10 s")
async def test_pause_a_node(lab: Lab, row: Row) -> None:
    # A frozen node's kernel still completes handshakes, so a connect retry cannot tell:
    # requests fail until its endpoints are gone and the LB's health check drops it.
    await node_failure(lab, row, pause, repair=unpause, covered=False)


@pytest.mark.scenario("4. cut a node off 10 s")
async def test_cut_a_node_off(lab: Lab, row: Row) -> None:
    # Off the cluster network: connects to it and its pods fail and are retried elsewhere.
    await node_failure(lab, row, disconnect, repair=reconnect, covered=True)
