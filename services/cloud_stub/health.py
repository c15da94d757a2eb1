"""Active node health checks, shared by every load balancer of the cloud-stub.

A check is a value (`CheckKey`: address, tcp|http, port), so each distinct one
runs once per interval however many load balancers use it; load balancers
`acquire` the keys their nodes need and `release` them, and a key nobody holds
is forgotten. Every `interval` all keys are probed concurrently, each bounded by
`timeout`.

Thresholds are one and one, and deliberately so: a node leaves rotation after
one failed check and comes back after one passing check (cloud load balancers
default to 2 or 3 of each; with a half-second interval one is enough to be fast and
the relay's connect retry absorbs a wrong guess). A connect the relay reports
failed takes the node out at once (`failed`), until a check that *started after*
that failure passes — an older probe still in flight cannot undo it.

A key never checked yet counts as healthy, but a load balancer awaits `check` of
the keys it adds before it routes to them, so in practice it is never guessed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from services.cloud_stub.logic.load_balancers import HEALTHZ_PATH, CheckKey, CheckKind

log = logging.getLogger("cloud_stub.health")

# None when the check passed, else why it did not.
Probe = Callable[[CheckKey, float], Awaitable[str | None]]
OnChange = Callable[[CheckKey, "CheckState"], None]


async def probe(key: CheckKey, timeout: float) -> str | None:
    """One check: a TCP connect, or an HTTP GET of /healthz that must answer 200."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(key.address, key.port)
            try:
                if key.kind == CheckKind.TCP:
                    return None
                writer.write(
                    f"GET {HEALTHZ_PATH} HTTP/1.1\r\nHost: {key.address}:{key.port}\r\n"
                    "User-Agent: kubelab-cloud-stub\r\nConnection: close\r\n\r\n".encode()
                )
                status_line = await reader.readline()
            finally:
                writer.close()
    except TimeoutError:
        return f"no answer within {timeout:g}s"
    except OSError as err:
        return err.strerror or str(err)
    parts = status_line.split()
    if len(parts) >= 2 and parts[1] == b"200":
        return None
    return f"HTTP {parts[1].decode(errors='replace') if len(parts) >= 2 else 'garbage'}"


@dataclass(slots=True)
class CheckState:
    healthy: bool = True
    error: str = ""
    # Bumped by every failure the relay reports: a passing probe that began before the
    # last one (saw an older value) does not count.
    failures: int = 0


class HealthChecker:
    def __init__(
        self,
        *,
        interval: float,
        timeout: float,
        probe: Probe = probe,
        on_change: OnChange | None = None,
    ) -> None:
        self.interval = interval
        self.timeout = timeout
        self._probe = probe
        self.on_change = on_change
        self.states: dict[CheckKey, CheckState] = {}
        self._users: Counter[CheckKey] = Counter()
        self.results: Counter[str] = Counter()  # "pass" / "fail", for the metrics

    # ------------------------------------------------------------------ holders

    def acquire(self, keys: Iterable[CheckKey]) -> list[CheckKey]:
        """Hold `keys`; returns the ones nobody held before (never checked yet)."""
        new = []
        for key in keys:
            if not self._users[key]:
                new.append(key)
                self.states[key] = CheckState()
            self._users[key] += 1
        return new

    def release(self, keys: Iterable[CheckKey]) -> None:
        for key in keys:
            self._users[key] -= 1
            if self._users[key] <= 0:
                del self._users[key]
                self.states.pop(key, None)

    # ------------------------------------------------------------------ state

    def healthy(self, key: CheckKey) -> bool:
        state = self.states.get(key)
        return state is None or state.healthy

    def state(self, key: CheckKey) -> CheckState:
        return self.states.get(key) or CheckState()

    def failed(self, key: CheckKey, error: str) -> None:
        """The relay could not connect through this node: out of rotation now."""
        state = self.states.get(key)
        if state is None:
            return
        state.failures += 1
        self._set(key, state, healthy=False, error=error)

    def _set(self, key: CheckKey, state: CheckState, *, healthy: bool, error: str) -> None:
        changed = state.healthy != healthy
        state.healthy, state.error = healthy, error
        if changed and self.on_change is not None:
            self.on_change(key, state)

    # ------------------------------------------------------------------ checking

    async def check(self, keys: Iterable[CheckKey]) -> None:
        """Probe `keys` now, concurrently; their states reflect the answers on return."""
        await asyncio.gather(*(self._check_one(key) for key in keys))

    async def _check_one(self, key: CheckKey) -> None:
        state = self.states.get(key)
        if state is None:
            return
        seen = state.failures
        error = await self._probe(key, self.timeout)
        if self.states.get(key) is not state:  # released while we probed
            return
        self.results["pass" if error is None else "fail"] += 1
        if error is None and state.failures != seen:
            return  # a connect failed after this probe began: it has the last word
        self._set(key, state, healthy=error is None, error=error or "")

    async def run(self) -> None:
        """Check every held key every `interval`, forever."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await self.check(list(self._users))
            await asyncio.sleep(max(0.0, self.interval - (loop.time() - started)))
