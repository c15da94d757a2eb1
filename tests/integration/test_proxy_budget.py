"""The node proxy's file budget over real sockets, without etcd (issue 13): a Service whose
listeners do not fit is refused whole and holds nothing, the others keep serving, and
running out of descriptors mid-way is that one Service's failure."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import resource
import socket
from collections.abc import AsyncIterator, Iterator

import pytest

from kubelab.core.endpoint_choice import Backend, Target
from kubelab.core.keys import ObjectKey
from kubelab.core.proxy_rules import CLUSTER_IP, Frontend, PortRules
from kubelab.testing.fakes import FakeStore
from node_agent import proxy_report
from node_agent.logic.file_budget import FileBudget
from node_agent.proxy import (
    BIND_BATCH,
    BindError,
    BudgetError,
    OutOfFilesError,
    ServiceProxy,
)
from node_agent.proxy_report import ServiceProblems

pytestmark = pytest.mark.integration

SMALL = ObjectKey(("default", "small"))
BIG = ObjectKey(("default", "big"))


@pytest.fixture
def ip() -> str:
    """A loopback address of this test's own: its ports are all free."""
    return f"127.{random.randint(60, 90)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


@pytest.fixture
async def proxy() -> AsyncIterator[ServiceProxy]:
    proxy = ServiceProxy(
        FakeStore(),
        node_name="n1",
        node_ips=["127.0.0.1"],
        budget=FileBudget(limit=4096, listeners=6),
    )
    yield proxy
    await proxy.stop(grace=0)


def service(ip: str, count: int, first: int = 20000) -> tuple[PortRules, ...]:
    """`count` ports with one ClusterIP frontend each, all sent to one endpoint."""
    backend = Backend(Target("127.0.0.1", 9), "n1", True, True, False)
    return tuple(
        PortRules(
            f"p{n}",
            "TCP",
            n,
            0,
            (Frontend("TCP", ip, n, CLUSTER_IP),),
            (backend,),
            None,
            False,
            False,
        )
        for n in range(first, first + count)
    )


async def accepts(ip: str, port: int) -> bool:
    """Whether a listener takes the connection. Its relay may reset it at once (its
    endpoint refuses on loopback inside connect()), even before the client's own connect
    has returned: a reset is a listener's answer too; a refusal is nobody's."""
    try:
        _, writer = await asyncio.open_connection(ip, port)
    except ConnectionRefusedError:
        return False
    except ConnectionResetError:
        return True
    writer.close()
    return True


async def test_a_service_over_budget_holds_nothing_and_others_serve(
    proxy: ServiceProxy, ip: str
) -> None:
    await proxy._apply(SMALL, service(ip, 2))
    with pytest.raises(BudgetError) as refused:
        await proxy._apply(BIG, service(ip, 5, first=30000))
    assert (refused.value.refusal.needed, refused.value.refusal.available) == (5, 4)
    assert BIG not in proxy.services
    assert not await accepts(ip, 30000), "all or nothing: not one of its ports answers"
    assert await accepts(ip, 20000) and await accepts(ip, 20001)
    assert proxy.listeners_in_use() == 2

    # Shrunk below what is left, it is programmed whole.
    await proxy._apply(BIG, service(ip, 4, first=30000))
    assert all([await accepts(ip, port) for port in range(30000, 30004)])
    assert proxy.listeners_in_use() == 6


async def test_a_service_that_grows_past_the_budget_releases_what_it_held(
    proxy: ServiceProxy, ip: str
) -> None:
    await proxy._apply(BIG, service(ip, 3))
    assert await accepts(ip, 20000)
    with pytest.raises(BudgetError):
        await proxy._apply(BIG, service(ip, 7))
    assert not await accepts(ip, 20000)
    assert proxy.listeners_in_use() == 0
    # What it held was its own: it is not counted against it when it changes.
    await proxy._apply(BIG, service(ip, 6))
    await proxy._apply(BIG, service(ip, 6, first=20001))
    assert proxy.listeners_in_use() == 6


@pytest.fixture
def few_files() -> Iterator[int]:
    """This process's soft file limit lowered to 8 descriptors above what it has open."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    opened = len(os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (opened + 8, hard))
    try:
        yield opened + 8
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_running_out_of_files_fails_that_service_alone(ip: str, few_files: int) -> None:
    proxy = ServiceProxy(FakeStore(), node_name="n1", node_ips=["127.0.0.1"])
    try:
        await proxy._apply(SMALL, service(ip, 2))
        with pytest.raises(OutOfFilesError, match="out of file descriptors"):
            await proxy._apply(BIG, service(ip, 30, first=30000))
        assert BIG not in proxy.services, "all or nothing: its descriptors went back"
        assert not await accepts(ip, 30000)
        assert await accepts(ip, 20000) and await accepts(ip, 20001)
    finally:
        await proxy.stop(grace=0)


def test_a_problem_is_logged_once_per_change(caplog: pytest.LogCaptureFixture) -> None:
    problems = ServiceProblems("n1")
    with caplog.at_level(logging.INFO, logger="node_agent.proxy"):
        for available in (10, 9, 8):  # retries while the budget moves: one line
            problems.report(BIG, proxy_report.FILE_BUDGET, f"{available} left", same_as=20000)
        problems.report(BIG, proxy_report.FILE_BUDGET, "3 left", same_as=30000)
        for _ in range(3):
            problems.report(BIG, proxy_report.BIND, "port taken")
        problems.resolved(BIG, present=True)
        problems.resolved(BIG, present=True)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "svc=default/big: not programmed: 10 left",
        "svc=default/big: not programmed: 3 left",
        "svc=default/big: not programmed: port taken",
        "svc=default/big: programmed",
    ]
    assert problems.failures == {proxy_report.FILE_BUDGET: 4, proxy_report.BIND: 3}
    assert problems.problems == {}


async def test_a_bind_error_names_a_few_frontends_not_thousands(ip: str) -> None:
    proxy = ServiceProxy(FakeStore(), node_name="n1", node_ips=["127.0.0.1"])
    taken = [socket.create_server((ip, port)) for port in range(20000, 20012)]
    try:
        with pytest.raises(BindError) as failed:
            await proxy._apply(BIG, service(ip, 12))
        assert str(failed.value).count(ip) == 8
        assert str(failed.value).endswith(" and 4 more")
    finally:
        for sock in taken:
            sock.close()
        await proxy.stop(grace=0)


async def test_a_big_service_leaves_the_loop_to_others(ip: str) -> None:
    """Binding and closing hundreds of sockets is done in batches, between which the
    loop runs other work (the agent's lease renewal, other Services' traffic)."""
    proxy = ServiceProxy(FakeStore(), node_name="n1", node_ips=["127.0.0.1"])
    turns = 0

    async def other_work() -> None:
        nonlocal turns
        while True:
            await asyncio.sleep(0)
            turns += 1

    ticker = asyncio.create_task(other_work())
    try:
        await asyncio.sleep(0)
        for desired in (service(ip, 640), ()):
            turns = 0
            await proxy._apply(BIG, desired)
            assert turns >= 640 // BIND_BATCH
    finally:
        ticker.cancel()
        await proxy.stop(grace=0)
