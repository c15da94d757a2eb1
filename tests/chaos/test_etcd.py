"""Scenario 7: one of three etcd members stops while Services are being created.

Two writers apply new ClusterIP Services through the apiserver back to back. The SDK
(`kubelab.client`) retries nothing, so the writers do what a client must: an UNAVAILABLE
answer (the store unreachable, DESIGN §4) is retried with the same manifest — Apply is
idempotent, so a write that did land is not doubled — and counted as absorbed. Any other
error is one the client's retry cannot absorb. etcd1 is stopped: the first member every
actor lists, so the one gRPC's pick_first has them all on.

Targets: every acknowledged write is in etcd afterwards (DESIGN §8.4), no error the retry
cannot absorb, no failed request through the NodePort or the LoadBalancer.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field

import grpc
import pytest

from kubelab.client import ApiError
from kubelab.core import kinds
from kubelab.v1 import objects_pb2
from tests.chaos.lab import NODES, Lab, service, wait_for
from tests.chaos.measure import check_row_invariants, finish, targets_for_traffic, traffic
from tests.chaos.report import Row

pytestmark = pytest.mark.chaos

VICTIM = "etcd1"
BEFORE = 20  # acknowledged writes before the stop
AFTER = 40  # and after it
PAUSE = 0.05  # between one writer's writes
RETRIES = 100
RETRIED = grpc.StatusCode.UNAVAILABLE


@dataclass
class Writers:
    lab: Lab
    acked: list[float] = field(default_factory=list)  # when each write was acknowledged
    names: list[str] = field(default_factory=list)  # what was
    absorbed: list[tuple[float, float, str]] = field(default_factory=list)  # began, took, why
    errors: list[str] = field(default_factory=list)  # not absorbed
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def write(self, prefix: str) -> None:
        n = 0
        while not self.stop.is_set():
            await self.apply(service(f"{prefix}-{n}", {"ports": [{"port": 80}]}))
            n += 1
            await asyncio.sleep(PAUSE)

    async def apply(self, obj: objects_pb2.Service) -> None:
        for _ in range(RETRIES):
            began = time.monotonic()
            try:
                await self.lab.apply(obj)
            except ApiError as err:
                if err.code != RETRIED:
                    self.errors.append(str(err))
                    return
                self.absorbed.append((began, time.monotonic() - began, str(err)))
                await asyncio.sleep(0.1)
                continue
            self.acked.append(time.monotonic())
            self.names.append(obj.metadata.name)
            return
        self.errors.append(f"still UNAVAILABLE after {RETRIES} tries")

    def since(self, moment: float) -> int:
        return sum(1 for t in self.acked if t >= moment)

    def longest_gap(self, around: float) -> float:
        """The longest time without an acknowledgement, from `around` on."""
        times = [around, *sorted(t for t in self.acked if t >= around)]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


async def raft_leader(lab: Lab) -> str:
    """The etcd member that leads raft (as etcd2 sees it), by name."""
    out = await lab.exec(
        "etcd2", "etcdctl", "--endpoints=http://127.0.0.1:2379",
        "endpoint", "status", "--cluster", "-w", "json",
    )  # fmt: skip
    members = await lab.exec(
        "etcd2", "etcdctl", "--endpoints=http://127.0.0.1:2379", "member", "list", "-w", "json"
    )
    leader = json.loads(out)[0]["Status"]["leader"]
    names = {m["ID"]: m["name"] for m in json.loads(members)["members"]}
    return str(names.get(leader, leader))


@pytest.mark.scenario("7. stop 1 of 3 etcd members mid-writes")
async def test_stop_an_etcd_member_while_services_are_created(lab: Lab, row: Row) -> None:
    writers = Writers(lab)
    leader = await raft_leader(lab)
    async with traffic(lab, NODES[0]) as loops:
        tasks = [asyncio.create_task(writers.write(p)) for p in ("write-a", "write-b")]
        try:

            async def warmed() -> bool:
                return len(writers.acked) >= BEFORE

            await wait_for(warmed, 30, f"{BEFORE} writes acknowledged")
            moment = (await lab.stop(VICTIM)).at

            async def written_after() -> bool:
                return writers.since(moment) >= AFTER and time.monotonic() > moment + 3

            await wait_for(written_after, 60, f"{AFTER} writes acknowledged after the stop")
        finally:
            writers.stop.set()
            await asyncio.gather(*tasks)
        await loops.settle()
    loops.record(row, moment)
    row.note(f"{VICTIM} stopped (raft leader before: {leader})")
    row.note(
        f"writes acked {len(writers.acked)}, {len(writers.absorbed)} UNAVAILABLE absorbed by"
        f" retry, {len(writers.errors)} not; longest write stall"
        f" {writers.longest_gap(moment):.2f} s"
    )
    for began, took, why in writers.absorbed[:2]:
        row.note(
            f"absorbed: a write begun {began - moment:+.2f} s failed after {took:.2f} s: {why[:90]}"
        )
    targets_for_traffic(row, nodeport_covered=True, lb_covered=True)
    row.target(not writers.errors, f"API errors no retry absorbs: {writers.errors[:3]}")
    lost = await missing_services(lab, writers.names)
    row.note(f"acknowledged writes lost: {len(lost)}")
    row.target(not lost, f"{len(lost)} acknowledged writes lost: {lost[:5]}")
    await check_row_invariants(lab, row)
    finish(row)


async def missing_services(lab: Lab, names: list[str]) -> list[str]:
    """Which of `names` etcd has no Service of (read straight from etcd)."""

    async def stored() -> set[str]:
        items, _ = await lab.store.list(kinds.SERVICES, "default")
        return {s.metadata.name for s in items}

    have = await wait_for(stored, 30, "the Services in etcd")
    return [name for name in names if name not in have]
