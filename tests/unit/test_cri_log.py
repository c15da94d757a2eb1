"""Container logs as CRI records: written line by line with the time each was read,
read back to the exact output, with the kubelet's timestamps, since and tail; and the
agent's pipe reader writing them (real pipes, no process)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubelab.testing.wait import until_read
from node_agent.container_log import ContainerOutput
from node_agent.logic.cri_log import (
    MAX_LINE,
    LineFramer,
    Record,
    Renderer,
    format_time,
    parse_record,
    parse_time,
    tail_records,
)

T0 = 1_796_640_434_123_456_789  # 2026-12-07T10:47:14.123456789Z
T1 = T0 + 1_000_000_000


def test_times_are_rfc3339_with_nine_digits_in_utc() -> None:
    assert format_time(T0) == b"2026-12-07T10:47:14.123456789Z"
    assert format_time(1_796_640_434_000_000_000) == b"2026-12-07T10:47:14.000000000Z"


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        pytest.param(b"2026-12-07T10:47:14.123456789Z", T0, id="fixed"),
        pytest.param(b"2026-12-07T10:47:14.1234Z", T0 - 56_789, id="lenient-fraction"),
        pytest.param(b"2026-12-07T10:47:14Z", T0 - 123_456_789, id="no-fraction"),
        pytest.param(b"2026-12-07T11:47:14.123456789+01:00", T0, id="offset"),
        pytest.param(b"2026-12-07 10:47:14Z", None, id="space"),
        pytest.param(b"2026-12-07T10:47:14.1234567891Z", None, id="ten-digits"),
        pytest.param(b"yesterday", None, id="words"),
        pytest.param(b"2026-13-07T10:47:14Z", None, id="month-13"),
    ],
)
def test_parse_time(text: bytes, ns: int | None) -> None:
    assert parse_time(text) == ns


@given(st.integers(min_value=0, max_value=253_402_300_799 * 10**9))
def test_a_written_time_reads_back(ns: int) -> None:
    assert parse_time(format_time(ns)) == ns


def test_lines_become_full_records_and_a_held_partial_ends_as_p() -> None:
    framer = LineFramer(b"stderr")
    assert framer.feed(b"one\ntw", T0) == b"2026-12-07T10:47:14.123456789Z stderr F one\n"
    assert framer.feed(b"o\r\n", T1) == b"2026-12-07T10:47:15.123456789Z stderr F two\r\n"
    assert framer.feed(b"prompt> ", T1) == b""
    assert framer.finish(T1) == b"2026-12-07T10:47:15.123456789Z stderr P prompt> \n"
    assert framer.finish(T1) == b""


def test_a_line_longer_than_the_limit_goes_out_in_pieces() -> None:
    framer = LineFramer(b"stdout")
    records = framer.feed(b"x" * (2 * MAX_LINE + 5) + b"\n", T0)
    tags = [parse_record(r) for r in records.split(b"\n")[:-1]]
    assert [(r.partial, len(r.content)) for r in tags] == [
        (True, MAX_LINE),
        (True, MAX_LINE),
        (False, 5),
    ]
    growing = LineFramer(b"stdout")
    pieces = growing.feed(b"y" * (MAX_LINE + 1), T0) + growing.feed(b"z\n", T1)
    parsed = [parse_record(r) for r in pieces.split(b"\n")[:-1]]
    assert [(r.partial, len(r.content)) for r in parsed] == [(True, MAX_LINE), (False, 2)]


@pytest.mark.parametrize(
    ("line", "record"),
    [
        pytest.param(
            b"2026-12-07T10:47:14.123456789Z stdout F hello world",
            Record(T0, b"stdout", False, b"hello world"),
            id="full",
        ),
        pytest.param(
            b"2026-12-07T10:47:14.123456789Z stderr P:extra part",
            Record(T0, b"stderr", True, b"part"),
            id="partial-with-more-tags",
        ),
        pytest.param(
            b"plain old output", Record(None, b"stdout", False, b"plain old output"), id="raw"
        ),
        pytest.param(
            b"2026-12-07T10:47:14Z stdin F x",
            Record(None, b"stdout", False, b"2026-12-07T10:47:14Z stdin F x"),
            id="unknown-stream",
        ),
    ],
)
def test_parse_record(line: bytes, record: Record) -> None:
    assert parse_record(line) == record


def _records(chunks: list[tuple[bytes, bytes]]) -> bytes:
    framers = {b"stdout": LineFramer(b"stdout"), b"stderr": LineFramer(b"stderr")}
    out = b"".join(framers[stream].feed(data, T0 + i) for i, (stream, data) in enumerate(chunks))
    return out + b"".join(f.finish(T1) for f in framers.values())


@given(st.lists(st.binary(max_size=40), max_size=12), st.integers(min_value=1, max_value=64))
def test_records_read_back_to_exactly_the_output_whatever_the_reads(
    chunks: list[bytes], read_size: int
) -> None:
    file = _records([(b"stdout", c) for c in chunks])
    renderer = Renderer()
    pieces = [renderer.feed(file[i : i + read_size]) for i in range(0, len(file), read_size)]
    assert b"".join(pieces) + renderer.finish() == b"".join(chunks)


def test_timestamps_start_each_line_and_since_drops_older_records() -> None:
    framer = LineFramer(b"stdout")
    file = framer.feed(b"early\n", T0) + framer.feed(b"half", T0) + framer.feed(b" line\n", T1)
    file += framer.feed(b"late\n", T1)
    stamped = Renderer(timestamps=True).feed(file)
    assert stamped == (
        b"2026-12-07T10:47:14.123456789Z early\n"
        b"2026-12-07T10:47:15.123456789Z half line\n"  # one line, one time: its end's
        b"2026-12-07T10:47:15.123456789Z late\n"
    )
    assert Renderer(since_ns=T1).feed(file) == b"half line\nlate\n"
    assert Renderer(since_ns=T1 + 1).feed(file) == b""
    old_format = b"written before times were kept\n"
    assert Renderer(timestamps=True, since_ns=T1).feed(old_format + file) == (
        old_format
        + b"2026-12-07T10:47:15.123456789Z half line\n"
        + b"2026-12-07T10:47:15.123456789Z late\n"
    )


def test_tail_counts_records() -> None:
    file = _records([(b"stdout", b"a\nb\r\nc\n")])
    assert Renderer().feed(tail_records(file, 2)) == b"b\r\nc\n"
    assert tail_records(file, 0) == file
    assert tail_records(file, 10) == file


# ---------------------------------------------------------------- the agent's pipe reader


async def test_container_output_writes_both_streams_with_times_and_drains_on_close(
    tmp_path: Path,
) -> None:
    log = tmp_path / "app.log"
    clock = iter(range(T0, T0 + 1000))
    output = ContainerOutput(log, clock_ns=lambda: next(clock))
    out, err = output.child_fds
    # The "process" keeps its own copies of the write ends, as a child would.
    child_out, child_err = os.dup(out), os.dup(err)
    output.start()
    os.write(child_out, b"hello\n")
    await until_read("the line in the log", lambda: b" stdout F hello\n" in log.read_bytes())
    os.write(child_err, b"oops\nno newline")
    os.write(child_out, b"last\n")
    os.close(child_out)
    os.close(child_err)
    output.close()  # as the runner does once the process exited: nothing is lost
    records = [parse_record(r) for r in log.read_bytes().split(b"\n")[:-1]]
    assert sorted((r.stream, r.partial, r.content) for r in records) == [
        (b"stderr", False, b"oops"),
        (b"stderr", True, b"no newline"),
        (b"stdout", False, b"hello"),
        (b"stdout", False, b"last"),
    ]
    assert all(r.time_ns is not None and T0 <= r.time_ns < T0 + 1000 for r in records)
    assert log.stat().st_mode & 0o777 == 0o600


def test_container_output_refuses_a_symlinked_log(tmp_path: Path) -> None:
    (tmp_path / "app.log").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError):
        ContainerOutput(tmp_path / "app.log")
    assert not (tmp_path / "elsewhere").exists()
