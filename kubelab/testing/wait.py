"""Waiting on a condition with a deadline: the one way tests and benchmarks wait.

A wait reads something (`probe`), asks whether it `holds`, and reads again after
`interval` until it does or `timeout` seconds have passed; it returns the value that
held, so a caller asserts on what it waited for. It always reads at least once and
once more at the deadline, so a slow read cannot make a wait fail without a last
look. Running out of time raises `WaitTimeout`, whose message names what was
awaited and the last value seen (or the last error, when `retry_on` lets a probe
fail while the world is still getting there), because "timed out" alone sends the
reader to the logs.

- `until`: an async probe (I/O: a list call, a DNS question, a connection);
- `until_passes`: an async check that asserts, until it stops failing;
- `until_read`: a plain function over state other tasks change, polled from async code;
- `until_blocking`: the same in synchronous code (process helpers, CLI tests);
- `LogTail` and `until_logged`: a line in a process's log (an actor's "synced").

A wait that must observe an *absence* cannot be written this way: wait for a signal
that the work which could have broken it is done (a controller's "synced" line), then
assert.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0
DEFAULT_INTERVAL = 0.02
# Reading memory other tasks write costs nothing: look twice as often.
READ_INTERVAL = 0.01

_NO_ERRORS: tuple[type[BaseException], ...] = ()


class WaitTimeout(TimeoutError):
    """A wait ran out of time. `last` is the last value read, or the last error a
    probe raised (one of `retry_on`), chained as the cause."""

    def __init__(self, what: str, timeout: float, last: object, *, seen: str) -> None:
        super().__init__(f"timed out after {timeout:g}s waiting for {what}{seen}")
        self.what = what
        self.timeout = timeout
        self.last = last


def _seen(last: object, describe: Callable[[Any], object] | None) -> str:
    if isinstance(last, BaseException):
        return f"; last error: {last!r}"
    if (last is None or isinstance(last, bool)) and describe is None:
        return ""  # a bare predicate's False (or None) says nothing the message does not
    shown = describe(last) if describe is not None else last
    return f"; last seen: {shown}"


class _Wait:
    """One wait's deadline and its last reading (shared by the sync and async loops)."""

    def __init__(self, what: str, timeout: float) -> None:
        self.what = what
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.last: object = None

    def over(self) -> bool:
        return time.monotonic() >= self.deadline

    def fail(self, describe: Callable[[Any], object] | None) -> WaitTimeout:
        error = WaitTimeout(self.what, self.timeout, self.last, seen=_seen(self.last, describe))
        if isinstance(self.last, BaseException):
            error.__cause__ = self.last
        return error


async def until(
    what: str,
    probe: Callable[[], Awaitable[T]],
    holds: Callable[[T], object] = bool,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = DEFAULT_INTERVAL,
    retry_on: tuple[type[BaseException], ...] = _NO_ERRORS,
    describe: Callable[[T], object] | None = None,
) -> T:
    """`await probe()` until `holds(value)`; that value. An error in `retry_on` counts
    as "not yet"; `describe` turns the last value into the timeout's message."""
    wait = _Wait(what, timeout)
    while True:
        try:
            value = await probe()
        except retry_on as err:
            wait.last = err
        else:
            if holds(value):
                return value
            wait.last = value
        if wait.over():
            raise wait.fail(describe)
        await asyncio.sleep(interval)


async def until_passes(
    what: str,
    check: Callable[[], Awaitable[T]],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = DEFAULT_INTERVAL,
    retry_on: tuple[type[BaseException], ...] = (AssertionError, OSError, TimeoutError),
) -> T:
    """`await check()` until it returns instead of raising (an assert in it failing, a
    connection refused, a timeout: not yet); what it returned."""
    return await until(
        what, check, lambda _: True, timeout=timeout, interval=interval, retry_on=retry_on
    )


async def until_read(
    what: str,
    read: Callable[[], T],
    holds: Callable[[T], object] = bool,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = READ_INTERVAL,
    describe: Callable[[T], object] | None = None,
) -> T:
    """`read()` (no I/O: state other tasks update) until `holds(value)`; that value."""

    async def probe() -> T:
        return read()

    return await until(what, probe, holds, timeout=timeout, interval=interval, describe=describe)


def until_blocking(
    what: str,
    read: Callable[[], T],
    holds: Callable[[T], object] = bool,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = DEFAULT_INTERVAL,
    retry_on: tuple[type[BaseException], ...] = _NO_ERRORS,
    describe: Callable[[T], object] | None = None,
) -> T:
    """`until` for synchronous code: `read()` until `holds(value)`, sleeping between."""
    wait = _Wait(what, timeout)
    while True:
        try:
            value = read()
        except retry_on as err:
            wait.last = err
        else:
            if holds(value):
                return value
            wait.last = value
        if wait.over():
            raise wait.fail(describe)
        time.sleep(interval)


class LogTail:
    """A log file's lines one at a time, from where the file ended when this was made
    (made before a process starts, it sees that run's lines only; the file need not
    exist yet). A line still being written waits for its newline."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pending: deque[bytes] = deque()
        try:
            self._offset = path.stat().st_size
        except FileNotFoundError:
            self._offset = 0

    def next_line(self) -> bytes | None:
        """The next complete line not returned yet; None when there is none so far."""
        if not self._pending:
            try:
                with open(self.path, "rb") as log:
                    log.seek(self._offset)
                    chunk = log.read()
            except FileNotFoundError:
                return None
            complete = chunk.rfind(b"\n") + 1
            self._offset += complete
            self._pending.extend(chunk[:complete].splitlines())
        return self._pending.popleft() if self._pending else None

    def find(self, match: Callable[[bytes], bool]) -> bytes | None:
        """The first line from here on that matches, or None after reading every complete
        line so far."""
        while (line := self.next_line()) is not None:
            if match(line):
                return line
        return None


async def until_logged(
    what: str,
    log: LogTail,
    match: Callable[[bytes], bool],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = READ_INTERVAL,
) -> bytes:
    """Until a new line of `log` matches; that line (the lines after it stay unread)."""
    found = await until_read(
        what,
        lambda: log.find(match),
        lambda line: line is not None,
        timeout=timeout,
        interval=interval,
    )
    assert found is not None
    return found
