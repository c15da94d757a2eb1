"""Scenarios 5, 6 and 8: the control plane loses an actor (the controller leader, the
apiserver, the cloud-stub) under steady traffic through a NodePort and the
LoadBalancer. None of them is on the NodePort path, so no request through it may fail;
the LoadBalancer's own restart may fail requests until it listens again, never 3 s after.
Each scenario then proves the actor's job is done again (a scale change reconciled, a
write accepted, a new load balancer provisioned), and checks DESIGN §8's invariants.
"""

from __future__ import annotations

import time

import pytest

from kubelab.client import Client
from kubelab.v1 import objects_pb2
from tests.chaos.lab import API, CONTROLLERS, LB_PORT, NODES, Lab, service, wait_for
from tests.chaos.measure import check_row_invariants, finish, targets_for_traffic, traffic
from tests.chaos.report import Row

pytestmark = pytest.mark.chaos

FAILOVER = 5.0  # target: the standby controller leads within this long


async def restart_times(lab: Lab, service: str, moment: float) -> str:
    """When, after `moment`, the restarted container exited and started again."""
    started, exited = await lab.container_times(service)
    exit_s = f"+{exited - moment:.2f} s" if exited is not None else "?"
    start_s = f"+{started - moment:.2f} s" if started is not None else "?"
    return f"{service} exited {exit_s}, started {start_s}"


@pytest.mark.scenario("5. kill the controller leader")
async def test_kill_the_controller_leader(lab: Lab, row: Row) -> None:
    leader = await wait_for(lab.leader, 10, "a controller leader")
    standby = next(c for c in CONTROLLERS if c != leader)
    replicas = (await lab.deployment()).spec.replicas
    async with traffic(lab, NODES[0]) as loops:
        killed = await lab.kill(leader)
        moment = killed.at

        async def standby_leads() -> bool:
            return await lab.leader() == standby

        await wait_for(standby_leads, 30, f"{standby} to lead", interval=0.02)
        failover = time.monotonic() - moment
        lab.note(f"{standby} leads ({failover:.2f}s)")
        # It acts: a scale change is reconciled (pods created, scheduled, Ready).
        scaled = time.monotonic()
        await lab.change_deployment(lambda d: setattr(d.spec, "replicas", replicas + 1))

        async def all_ready() -> bool:
            return await lab.ready_replicas() >= replicas + 1

        await wait_for(all_ready, 30, f"{replicas + 1} replicas Ready")
        acted = time.monotonic() - scaled
        await loops.settle()
    loops.record(row, moment, killed.complete)
    row.note(f"failover {failover:.2f} s ({leader} killed, {standby} leads)")
    row.note(f"then scale {replicas}→{replicas + 1} Ready in {acted:.2f} s")
    targets_for_traffic(row, nodeport_covered=True, lb_covered=True)
    row.target(failover <= FAILOVER, f"failover {failover:.2f} s > {FAILOVER:g} s")
    await check_row_invariants(lab, row)
    finish(row)


@pytest.mark.scenario("6. restart the apiserver")
async def test_restart_the_apiserver(lab: Lab, row: Row) -> None:
    async with traffic(lab, NODES[0]) as loops:
        moment = (await lab.restart("apiserver")).at
        restarted = await restart_times(lab, "apiserver", moment)

        async def serves_a_new_client() -> bool:
            async with Client.connect(API, timeout=1.0) as fresh:
                await fresh.list("nodes")
            return True

        async def serves() -> bool:
            await lab.api.list("nodes")
            return True

        await wait_for(serves_a_new_client, 30, "the apiserver to serve", interval=0.02)
        fresh_back = time.monotonic() - moment
        await wait_for(serves, 30, "the apiserver to serve the lab's client", interval=0.02)
        back = time.monotonic() - moment
        # It writes: a new Service is stored, with its ClusterIP allocated.
        created = await lab.apply(
            service("after-restart", {"selector": {"app": "shop"}, "ports": [{"port": 80}]})
        )
        assert isinstance(created, objects_pb2.Service) and created.spec.cluster_ip
        await loops.settle()
    loops.record(row, moment)
    row.note(restarted)
    row.note(f"API answers a new client {fresh_back:.2f} s after the restart began")
    row.note(f"and a connected client (its reconnect back-off) {back:.2f} s after")
    targets_for_traffic(row, nodeport_covered=True, lb_covered=True)
    await check_row_invariants(lab, row)
    finish(row)


@pytest.mark.scenario("8. restart the cloud-stub")
async def test_restart_the_cloud_stub(lab: Lab, row: Row) -> None:
    async with traffic(lab, NODES[0]) as loops:
        moment = (await lab.restart("cloud-stub")).at
        restarted = await restart_times(lab, "cloud-stub", moment)

        await wait_for(
            lambda: lab.answers(lab.lb_ip, LB_PORT),
            30,
            "the LoadBalancer to answer again",
            interval=0.02,
        )
        back = time.monotonic() - moment
        # It provisions: a second LoadBalancer Service gets an address of its own, which
        # answers.
        spec = {
            "type": "LoadBalancer",
            "selector": {"app": "shop", "env": "prod"},
            "ports": [{"name": "http", "port": LB_PORT, "targetPort": 8080}],
        }
        provisioned = time.monotonic()
        await lab.apply(service("shop-lb2", spec))

        ip = await wait_for(lambda: lab.lb_address("shop-lb2"), 30, "shop-lb2's address")
        assert ip != lab.lb_ip, f"shop-lb2 got shop-lb's address {ip}"

        await wait_for(lambda: lab.answers(ip, LB_PORT), 30, f"shop-lb2 to answer on {ip}")
        second = time.monotonic() - provisioned
        await loops.settle()
    loops.record(row, moment)
    row.note(restarted)
    row.note(f"LB answers again {back:.2f} s after the restart began")
    row.note(f"a new LB Service answers {second:.2f} s after its Apply")
    # The restarting LB itself cannot be covered by a retry, only bounded in time.
    targets_for_traffic(row, nodeport_covered=True, lb_covered=False)
    await check_row_invariants(lab, row)
    finish(row)
