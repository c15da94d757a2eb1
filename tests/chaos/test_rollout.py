"""Scenario 9: a rolling update of the Deployment under steady traffic through a NodePort
and the LoadBalancer (`kubectl rollout restart`: a new template annotation, so every pod
is replaced, maxSurge and maxUnavailable at their defaults).

An old pod is deleted gracefully: its endpoint turns terminating (not ready) before the
pod stops, proxies stop choosing it, and the echo pod still answers a connection that
was already on its way. Target: not one failed request. Measured: the rollout's
duration until every replica is new and Ready and no old pod is left.
"""

from __future__ import annotations

import datetime
import time

import pytest

from kubelab.core.pods import is_ready, is_terminating
from kubelab.v1 import objects_pb2
from tests.chaos.lab import NODES, Lab, owned_by_deployment, wait_for
from tests.chaos.measure import check_row_invariants, finish, targets_for_traffic, traffic
from tests.chaos.report import Row

pytestmark = pytest.mark.chaos

HASH_LABEL = "pod-template-hash"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


async def template_hashes(lab: Lab) -> tuple[set[str], int, bool]:
    """The Deployment's pods' template hashes, how many there are, and whether every one
    is Ready and none is terminating."""
    pods = [p for p in await lab.pods() if owned_by_deployment(p)]
    settled = all(is_ready(p) and not is_terminating(p) for p in pods)
    return {p.metadata.labels.get(HASH_LABEL, "") for p in pods}, len(pods), settled


@pytest.mark.scenario("9. rolling update under load")
async def test_rolling_update(lab: Lab, row: Row) -> None:
    old, _, _ = await template_hashes(lab)
    replicas = (await lab.deployment()).spec.replicas

    def restart(deployment: objects_pb2.Deployment) -> None:
        now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        deployment.spec.template.metadata.annotations[RESTARTED_AT] = now

    async with traffic(lab, NODES[0]) as loops:
        moment = time.monotonic()
        await lab.change_deployment(restart)

        async def rolled_out() -> bool:
            hashes, count, settled = await template_hashes(lab)
            return settled and count == replicas and len(hashes) == 1 and not hashes & old

        await wait_for(rolled_out, 60, "the rollout to finish")
        rollout = time.monotonic() - moment
        lab.note(f"rolled out ({rollout:.2f}s)")
        await loops.settle()
    loops.record(row, moment)
    row.replacements_ready_s = rollout
    row.note(f"rollout of {replicas} replicas done in {rollout:.2f} s")
    targets_for_traffic(row, nodeport_covered=True, lb_covered=True)
    for name, loop in (("NodePort", row.nodeport), ("LB", row.lb)):
        assert loop is not None  # the new ones are counted above
        row.target(loop.failed == loop.new, f"{name}: {loop.failed - loop.new} failed before")
    await check_row_invariants(lab, row)
    finish(row)
