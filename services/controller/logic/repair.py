"""Allocation repair (DESIGN §8 invariant 1): claims without owners, owners without claims.

Claims and their Service are written in one transaction, so they cannot
disagree through kubelab's own writes; repair exists for what happens
outside them (a hand edit in etcd, a restored backup, a bug). Like
Kubernetes' repair loops for ClusterIPs and NodePorts it compares the two
sides and plans the fix; the caller applies it with compare-and-swap writes.

The caller lists claims *before* Services. Then a Service created in between
can only look like "claim missing" (and restoring a claim that exists is
refused by its `version == 0` compare), and a Service deleted in between can
only look like "claim orphaned" (and releasing checks the owner uid, which
the delete already removed). Neither race leads to a wrong write.

LoadBalancer address claims (`lbips`) are left out entirely: they belong to the
cloud-stub, which writes each in one transaction with its load balancer record
(keyed by the Service's namespace/name) and releases it when the controller
deletes the load balancer. A Service that is gone does not mean its address is
free: until the controller's DeleteLoadBalancer, the cloud-stub still listens on
it, and repair releasing the claim would let another Service be handed the same
address (DESIGN §8 invariant 1). Nor does a Service's spec name its address, so
there is nothing for repair to restore.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kubelab.core.allocators import Claim, ClaimKind, service_claims
from kubelab.v1 import objects_pb2


@dataclass(frozen=True, slots=True)
class RepairPlan:
    # Claims whose owner no longer exists: release (claim → the owner uid it names).
    orphaned: Mapping[Claim, str]
    # Claims a Service holds in its spec but etcd has no key for: restore.
    missing: tuple[tuple[objects_pb2.Service, Claim], ...]
    # Claims held under another Service's uid: report, never steal.
    contested: tuple[tuple[objects_pb2.Service, Claim, str], ...]

    @property
    def empty(self) -> bool:
        return not (self.orphaned or self.missing or self.contested)


def plan_repair(services: Sequence[objects_pb2.Service], claims: Mapping[Claim, str]) -> RepairPlan:
    owners = {svc.metadata.uid for svc in services}
    orphaned = {
        claim: uid
        for claim, uid in claims.items()
        if uid not in owners and claim.kind is not ClaimKind.LB_IP
    }
    missing: list[tuple[objects_pb2.Service, Claim]] = []
    contested: list[tuple[objects_pb2.Service, Claim, str]] = []
    for svc in services:
        for claim in sorted(service_claims(svc)):
            holder = claims.get(claim)
            if holder is None:
                missing.append((svc, claim))
            elif holder != svc.metadata.uid:
                contested.append((svc, claim, holder))
    return RepairPlan(orphaned, tuple(missing), tuple(contested))
