"""kubelab.testing.wait: what a wait returns, and what its timeout says."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kubelab.testing.wait import (
    LogTail,
    WaitTimeout,
    until,
    until_blocking,
    until_logged,
    until_read,
)


def counter() -> list[int]:
    return [0]


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as out:
        out.write(data)


async def test_until_returns_the_value_that_held() -> None:
    reads = counter()

    async def probe() -> int:
        reads[0] += 1
        return reads[0]

    assert await until("three reads", probe, lambda n: n >= 3, interval=0) == 3


async def test_a_timeout_names_what_was_awaited_and_the_last_value_seen() -> None:
    async def probe() -> list[str]:
        return ["pod-a"]

    with pytest.raises(WaitTimeout) as caught:
        await until("two pods", probe, lambda pods: len(pods) == 2, timeout=0.05, interval=0.01)
    assert str(caught.value) == "timed out after 0.05s waiting for two pods; last seen: ['pod-a']"
    assert caught.value.last == ["pod-a"]
    assert isinstance(caught.value, TimeoutError), "callers that catch TimeoutError still do"


async def test_describe_shapes_the_last_value_and_a_bare_false_is_left_out() -> None:
    async def probe() -> dict[str, int]:
        return {"ready": 1, "total": 3}

    with pytest.raises(WaitTimeout, match=r"for all ready; last seen: 1/3$"):
        await until(
            "all ready",
            probe,
            lambda s: s["ready"] == s["total"],
            timeout=0.02,
            describe=lambda s: f"{s['ready']}/{s['total']}",
        )
    with pytest.raises(WaitTimeout, match=r"waiting for never$"):
        await until_read("never", lambda: False, timeout=0.02)


async def test_retry_on_errors_count_as_not_yet_and_the_last_one_is_the_cause() -> None:
    reads = counter()

    async def flaky() -> str:
        reads[0] += 1
        if reads[0] < 3:
            raise ConnectionRefusedError("not listening yet")
        return "up"

    assert await until("a listener", flaky, retry_on=(OSError,), interval=0) == "up"

    async def down() -> str:
        raise ConnectionRefusedError("not listening")

    with pytest.raises(WaitTimeout, match="last error: ConnectionRefusedError") as caught:
        await until("a listener", down, retry_on=(OSError,), timeout=0.02)
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)


async def test_an_error_not_in_retry_on_ends_the_wait_at_once() -> None:
    async def broken() -> int:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        await until("anything", broken, retry_on=(OSError,), timeout=5)


async def test_until_read_sees_what_another_task_changes() -> None:
    state = {"done": False}

    async def finish() -> None:
        await asyncio.sleep(0.01)
        state["done"] = True

    task = asyncio.create_task(finish())
    assert await until_read("the task done", lambda: state["done"], timeout=5) is True
    await task


def test_until_blocking_reads_at_least_once_even_with_no_time() -> None:
    assert until_blocking("already true", lambda: "yes", timeout=0) == "yes"
    with pytest.raises(WaitTimeout, match="last seen: 0"):
        until_blocking("positive", lambda: 0, timeout=0)


async def test_a_log_tail_sees_only_new_complete_lines_and_keeps_the_rest(tmp_path: Path) -> None:
    log = tmp_path / "actor.log"
    log.write_bytes(b"12:00:00 I controller synced seconds=1\n")  # an earlier run's
    tail = LogTail(log)
    assert tail.next_line() is None
    append(log, b"12:00:01 I controller started\n12:00:02 I controller synced\n12:00:03 I con")
    found = await until_logged("synced", tail, lambda line: b"synced" in line, timeout=1)
    assert found == b"12:00:02 I controller synced"
    assert tail.next_line() is None, "a partial line waits for its newline"
    append(log, b"troller next\n")
    assert tail.next_line() == b"12:00:03 I controller next"


async def test_a_log_tail_waits_for_a_file_that_does_not_exist_yet(tmp_path: Path) -> None:
    tail = LogTail(tmp_path / "later.log")
    assert tail.next_line() is None
    with pytest.raises(WaitTimeout, match=r"waiting for a line$"):
        await until_logged("a line", tail, lambda line: True, timeout=0.02)
