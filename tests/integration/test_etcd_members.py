"""A Store given every member of a three-member etcd cluster keeps working when the member
it talks to goes away: the lab's etcd runs three members (DESIGN §5), and the chaos suite
stops one while Services are being created."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubelab.core import kinds
from kubelab.etcd_process import EtcdConfig
from kubelab.store import NotFoundError, Store, StoreUnavailableError
from kubelab.store.etcd import channel_target
from kubelab.testing.processes import free_port
from kubelab.testing.wait import until_passes
from kubelab.v1 import objects_pb2

pytestmark = pytest.mark.integration


class Member:
    def __init__(self, config: EtcdConfig, log: Path) -> None:
        self.config = config
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(self.config.command(), stdout=out, stderr=out)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def members(tmp_path: Path) -> Iterator[list[Member]]:
    ports = [(free_port(), free_port()) for _ in range(3)]
    cluster = ",".join(f"m{i}=http://127.0.0.1:{peer}" for i, (_, peer) in enumerate(ports))
    found = [
        Member(
            EtcdConfig(tmp_path / f"m{i}", client, peer, name=f"m{i}", initial_cluster=cluster),
            tmp_path / f"m{i}.log",
        )
        for i, (client, peer) in enumerate(ports)
    ]
    for member in found:
        member.start()  # all at once: a member waits for a quorum before it serves
    try:
        yield found
    finally:
        for member in found:
            member.stop()


def headless_service(name: str) -> objects_pb2.Service:
    svc = objects_pb2.Service(api_version="v1", kind="Service")
    svc.metadata.namespace = "default"
    svc.metadata.name = name
    svc.spec.type = "ClusterIP"
    svc.spec.cluster_ip = "None"
    return svc


async def create_retrying(store: Store, name: str, deadline: float) -> float:
    """Create one object, retrying while the store says etcd is unavailable; the seconds
    it took."""
    started = time.monotonic()
    await until_passes(
        f"{name} created",
        lambda: store.create(headless_service(name)),
        timeout=deadline,
        interval=0.05,
        retry_on=(StoreUnavailableError,),
    )
    return time.monotonic() - started


def test_channel_target_lists_every_member() -> None:
    assert channel_target("127.0.0.1:2379") == ("127.0.0.1", 2379)
    assert channel_target(":2379") == ("127.0.0.1", 2379)
    assert channel_target("10.0.0.1:1,10.0.0.2:2, 10.0.0.3:3") == (
        "ipv4:10.0.0.1:1,10.0.0.2:2,10.0.0.3",
        3,
    )
    with pytest.raises(ValueError, match="not host:port"):
        channel_target("10.0.0.1:1,nonsense")
    with pytest.raises(ValueError, match="no etcd endpoint"):
        channel_target(" , ")


def test_a_stopped_member_is_left_for_another(members: list[Member]) -> None:
    endpoints = ",".join(m.config.client_address for m in members)

    async def main() -> None:
        store = Store(endpoints)
        try:
            await create_retrying(store, "before", deadline=20)  # the cluster has formed
            members[0].stop()  # pick_first talks to the first member listed
            took = [await create_retrying(store, f"after-{i}", deadline=10) for i in range(20)]
            assert max(took) < 10
            items, _ = await store.list(kinds.SERVICES, "default")
            names = {i.metadata.name for i in items}
            assert names == {"before", *(f"after-{i}" for i in range(20))}
            with pytest.raises(NotFoundError):
                await store.get(kinds.SERVICES, "default", "never-created")
        finally:
            await store.close()

    asyncio.run(main())
