"""DESIGN §8's invariants, checked after every scenario, straight from etcd (the Store):

1. no ClusterIP, NodePort (per protocol) or LoadBalancer IP is held by two Services, and
   every claim names a Service that exists and holds that value;
2. every Service's EndpointSlices list exactly the pods its selector matches that have a
   reported status (so: on a live node; a dead node's statuses go with its lease), each
   once, at the pod's IP, ready exactly when the pod is Ready and not terminating;
4. every write the API acknowledged during the scenario is in etcd (same uid, at least
   the generation acknowledged).

Slices follow pods through watches, so 2 is eventually true: `check_invariants` waits
(with a deadline) until all of them hold at once, and reports what still did not.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict

from kubelab.core import kinds
from kubelab.core.allocators import Claim, ClaimKind
from kubelab.core.endpointslices import SERVICE_NAME_LABEL
from kubelab.core.keys import key_of
from kubelab.core.pods import TERMINAL_PHASES, is_ready, is_terminating
from kubelab.core.selectors import from_match_labels
from kubelab.store import NotFoundError, Store, StoreError
from kubelab.v1 import objects_pb2
from tests.chaos.lab import Ack

CONVERGE_TIMEOUT = 20.0


async def check_invariants(
    store: Store, acked: dict[tuple[str, str, str], Ack], timeout: float = CONVERGE_TIMEOUT
) -> float:
    """Seconds until every invariant held; AssertionError naming the violations if they
    still did not after `timeout`."""
    started = time.monotonic()
    while True:
        try:
            problems = await violations(store, acked)
        except StoreError as err:  # a member going away mid-read: read again
            problems = [f"etcd: {err}"]
        if not problems:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            shown = "\n  ".join(problems[:20])
            raise AssertionError(f"invariants violated after {timeout:g}s:\n  {shown}")
        await asyncio.sleep(0.2)


async def violations(store: Store, acked: dict[tuple[str, str, str], Ack]) -> list[str]:
    services_raw, _ = await store.list(kinds.SERVICES)
    services = [s for s in services_raw if isinstance(s, objects_pb2.Service)]
    return [
        *await allocation_problems(store, services),
        *await slice_problems(store, services),
        *await lost_writes(store, acked),
    ]


async def allocation_problems(store: Store, services: list[objects_pb2.Service]) -> list[str]:
    held: dict[Claim, list[str]] = defaultdict(list)
    uids: dict[str, str] = {}
    for svc in services:
        name = f"{svc.metadata.namespace}/{svc.metadata.name}"
        uids[svc.metadata.uid] = name
        for claim in service_claims(svc):
            held[claim].append(name)
    problems = [f"{claim} held by {owners}" for claim, owners in held.items() if len(owners) > 1]
    claims, _ = await store.list_claims()
    lb_claims = await store.lb_claims()
    for claim, owners in held.items():
        if claim.kind == ClaimKind.LB_IP:
            lb = lb_claims.get(claim.name)
            if lb is None or lb.holder not in owners:
                problems.append(f"{claim} of {owners}: claimed by {lb}")
        elif claim not in claims or uids.get(claims[claim]) not in owners:
            problems.append(f"{claim} of {owners}: claim names {claims.get(claim, 'nobody')}")
    for claim, uid in claims.items():
        if claim.kind != ClaimKind.LB_IP and uid not in uids:
            problems.append(f"{claim} claimed by uid {uid!r}, no such Service")
    for ip, lb in lb_claims.items():
        if lb.uid not in uids:
            problems.append(f"LB address {ip} claimed for {lb.holder} ({lb.uid}), no such Service")
    return problems


def service_claims(svc: objects_pb2.Service) -> list[Claim]:
    claims = []
    if svc.spec.cluster_ip and svc.spec.cluster_ip != "None":
        claims.append(Claim.cluster_ip(svc.spec.cluster_ip))
    claims += [Claim.node_port(p.protocol, p.node_port) for p in svc.spec.ports if p.node_port]
    if svc.spec.health_check_node_port:
        claims.append(Claim.node_port("TCP", svc.spec.health_check_node_port))
    claims += [Claim.lb_ip(i.ip) for i in svc.status.load_balancer.ingress if i.ip]
    return claims


async def slice_problems(store: Store, services: list[objects_pb2.Service]) -> list[str]:
    pods_raw, _ = await store.list(kinds.PODS)
    statuses, _ = await store.list_pod_statuses()
    slices_raw, _ = await store.list(kinds.ENDPOINTSLICES)
    listed: dict[tuple[str, str], list[objects_pb2.Endpoint]] = defaultdict(list)
    for eps in slices_raw:
        assert isinstance(eps, objects_pb2.EndpointSlice)
        owner = (eps.metadata.namespace, eps.metadata.labels.get(SERVICE_NAME_LABEL, ""))
        listed[owner] += eps.endpoints
    problems = []
    known = set()
    for svc in services:
        key = (svc.metadata.namespace, svc.metadata.name)
        known.add(key)
        if not svc.spec.selector:
            continue
        selector = from_match_labels(svc.spec.selector)
        want: dict[str, tuple[str, bool]] = {}
        for pod in pods_raw:
            assert isinstance(pod, objects_pb2.Pod)
            status = statuses.get(key_of(pod))
            if (
                pod.metadata.namespace != key[0]
                or not selector.matches(pod.metadata.labels)
                or status is None
                or not status.pod_ip
                or status.phase in TERMINAL_PHASES
            ):
                continue
            live = objects_pb2.Pod()
            live.CopyFrom(pod)
            live.status.CopyFrom(status)
            want[pod.metadata.name] = (status.pod_ip, is_ready(live) and not is_terminating(live))
        endpoints = listed.get(key, [])
        names = Counter(ep.target_ref.name for ep in endpoints)
        problems += [f"{key[1]}: {n} listed {c} times" for n, c in names.items() if c > 1]
        got = {
            ep.target_ref.name: (
                ep.addresses[0] if ep.addresses else "",
                # unset ready means ready (Kubernetes)
                ep.conditions.ready if ep.conditions.HasField("ready") else True,
            )
            for ep in endpoints
        }
        if got != want:
            problems.append(f"{key[1]}: slices {sorted(got.items())}, want {sorted(want.items())}")
    problems += [f"slices of {owner}, no such Service" for owner in listed if owner not in known]
    return problems


async def lost_writes(store: Store, acked: dict[tuple[str, str, str], Ack]) -> list[str]:
    problems = []
    for ack in acked.values():
        try:
            obj = await store.get(ack.info, ack.namespace, ack.name)
        except NotFoundError:
            problems.append(f"acknowledged {ack.info.resource}/{ack.name} is gone")
            continue
        meta = obj.metadata
        if meta.uid != ack.uid or meta.generation < ack.generation:
            problems.append(
                f"acknowledged {ack.info.resource}/{ack.name} uid {ack.uid} generation"
                f" {ack.generation}: etcd has uid {meta.uid} generation {meta.generation}"
            )
    return problems
