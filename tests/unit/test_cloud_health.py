"""The cloud-stub's health checker, with a scripted probe: shared keys are checked once,
one failure or pass flips a node, a relay-reported failure outranks an older probe."""

from __future__ import annotations

import asyncio
from collections import Counter

from kubelab.testing.wait import until_read
from services.cloud_stub.health import CheckState, HealthChecker
from services.cloud_stub.logic.load_balancers import CheckKey, CheckKind

A = CheckKey("127.10.0.1", CheckKind.TCP, 30080)
B = CheckKey("127.10.0.2", CheckKind.HTTP, 32000)


class Script:
    """A probe whose answer per key a test sets; counts calls; can hold a probe open."""

    def __init__(self) -> None:
        self.errors: dict[CheckKey, str | None] = {}
        self.calls: Counter[CheckKey] = Counter()
        self.gate: asyncio.Event | None = None

    async def __call__(self, key: CheckKey, timeout: float) -> str | None:
        self.calls[key] += 1
        if self.gate is not None:
            await self.gate.wait()
        return self.errors.get(key)


async def test_shared_keys_are_checked_once_and_forgotten_when_released() -> None:
    script = Script()
    checker = HealthChecker(interval=0.5, timeout=0.3, probe=script)
    assert checker.acquire([A, B]) == [A, B]
    assert checker.acquire([A]) == []  # a second load balancer on the same node and port
    await checker.check([A, B])
    assert script.calls == Counter({A: 1, B: 1})
    checker.release([A])
    assert A in checker.states
    checker.release([A, B])
    assert not checker.states


async def test_one_failure_takes_a_node_out_and_one_pass_brings_it_back() -> None:
    script = Script()
    changes: list[tuple[CheckKey, bool]] = []
    checker = HealthChecker(
        interval=0.5,
        timeout=0.3,
        probe=script,
        on_change=lambda key, state: changes.append((key, state.healthy)),
    )
    checker.acquire([A])
    await checker.check([A])
    assert checker.healthy(A) and changes == []
    script.errors[A] = "Connection refused"
    await checker.check([A])
    assert not checker.healthy(A)
    assert checker.state(A).error == "Connection refused"
    script.errors[A] = None
    await checker.check([A])
    assert checker.healthy(A)
    assert changes == [(A, False), (A, True)]
    assert checker.results == Counter({"pass": 2, "fail": 1})


async def test_a_relay_failure_outranks_a_probe_that_began_before_it() -> None:
    script = Script()
    checker = HealthChecker(interval=0.5, timeout=0.3, probe=script)
    checker.acquire([A])
    script.gate = asyncio.Event()
    probing = asyncio.create_task(checker.check([A]))
    await until_read("the probe under way", lambda: script.calls[A] == 1, timeout=5)
    checker.failed(A, "connect refused")
    script.gate.set()
    await probing
    assert not checker.healthy(A)
    script.gate = None
    await checker.check([A])  # a probe begun after the failure decides
    assert checker.healthy(A)


async def test_unknown_and_released_keys() -> None:
    checker = HealthChecker(interval=0.5, timeout=0.3, probe=Script())
    assert checker.healthy(A)
    assert checker.state(A) == CheckState()
    checker.failed(A, "nobody holds it")  # ignored: not held
    assert A not in checker.states


async def test_run_checks_every_interval() -> None:
    script = Script()
    checker = HealthChecker(interval=0.01, timeout=0.3, probe=script)
    checker.acquire([A])
    running = asyncio.create_task(checker.run())
    try:
        await until_read("three rounds of checks", lambda: script.calls[A] >= 3, timeout=5)
    finally:
        running.cancel()
