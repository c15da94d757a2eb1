"""Container logs in the CRI format, written and read as the kubelet's runtime does.

Each line a container prints is stored with the time the agent read it, its
stream and whether it is whole (containerd's CRI logger, read back by the kubelet's
`kuberuntime/logs`):

    2026-12-07T10:47:14.123456789Z stdout F listening on :8080
    2026-12-07T10:47:15.000000001Z stderr P a line longer than 16 KiB is cut in
    2026-12-07T10:47:15.000000001Z stderr F to pieces: P, P, ..., then F

Writing (`LineFramer`, one per stream): complete lines become `F` records; a line
longer than `MAX_LINE` goes out in `P` pieces as it grows; what is left without a
newline when the stream ends is one last `P` record (containerd's rule). A partial
line is held until its newline, so a prompt without one shows when the line ends.

Reading (`Renderer`): the records back to the container's output, `F` records
ending their line, `P` ones not. `timestamps` puts the record's time (RFC 3339,
nanoseconds, UTC: the kubelet's `RFC3339NanoFixed`) and a space before each line;
`since_ns` drops records older than it (kubelet: `since` is the later of now minus
sinceSeconds and sinceTime). A line that is not a record (a log written before this
format) is shown as it is, with no time, and is never dropped by `since`.
`tail_records` keeps the last N records, as the kubelet's tail counts file lines.

Pure: no I/O.
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass

# containerd's default maximum log line (the kubelet's --container-log-max-line-size).
MAX_LINE = 16 * 1024
STREAMS = (b"stdout", b"stderr")
_FULL, _PARTIAL = b"F", b"P"


def format_time(ns: int) -> bytes:
    """`2026-12-07T10:47:14.123456789Z` (the kubelet's RFC3339NanoFixed, in UTC)."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z").encode()


def parse_time(text: bytes) -> int | None:
    """Nanoseconds since the epoch of an RFC 3339 time with up to 9 fractional digits
    and a `Z` or `±hh:mm` offset; None when it is not one."""
    try:
        raw = text.decode("ascii")
    except UnicodeDecodeError:
        return None
    if len(raw) < 20 or raw[10] not in "Tt":
        return None
    if raw[-1] in "Zz":
        body, offset = raw[:-1], 0
    elif len(raw) >= 25 and raw[-6] in "+-" and raw[-3] == ":":
        body = raw[:-6]
        try:
            offset = int(raw[-5:-3]) * 3600 + int(raw[-2:]) * 60
        except ValueError:
            return None
        offset = -offset if raw[-6] == "+" else offset
    else:
        return None
    whole, _, fraction = body.partition(".")
    if (fraction and (len(fraction) > 9 or not fraction.isdigit())) or len(whole) != 19:
        return None
    try:
        parsed = time.strptime(whole, "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None
    seconds = calendar.timegm(parsed) + offset
    return seconds * 1_000_000_000 + int(fraction.ljust(9, "0") or "0")


class LineFramer:
    """One stream's output cut into CRI records (see the module doc)."""

    __slots__ = ("_pending", "_stream")

    def __init__(self, stream: bytes) -> None:
        if stream not in STREAMS:
            raise ValueError(f"not a CRI stream: {stream!r}")
        self._stream = stream
        self._pending = b""

    def feed(self, data: bytes, now_ns: int) -> bytes:
        """The records for `data`, read at `now_ns`: its complete lines, and pieces of
        a line that grew past MAX_LINE."""
        stamp = format_time(now_ns)
        buffered = self._pending + data
        lines = buffered.split(b"\n")
        self._pending = lines.pop()
        out = []
        for line in lines:
            while len(line) > MAX_LINE:
                out.append(self._record(stamp, _PARTIAL, line[:MAX_LINE]))
                line = line[MAX_LINE:]
            out.append(self._record(stamp, _FULL, line))
        while len(self._pending) >= MAX_LINE:
            piece, self._pending = self._pending[:MAX_LINE], self._pending[MAX_LINE:]
            out.append(self._record(stamp, _PARTIAL, piece))
        return b"".join(out)

    def finish(self, now_ns: int) -> bytes:
        """What is left without a newline at the end of the stream, as one P record."""
        if not self._pending:
            return b""
        piece, self._pending = self._pending, b""
        return self._record(format_time(now_ns), _PARTIAL, piece)

    def _record(self, stamp: bytes, tag: bytes, content: bytes) -> bytes:
        return b"%s %s %s %s\n" % (stamp, self._stream, tag, content)


@dataclass(frozen=True, slots=True)
class Record:
    time_ns: int | None  # None: not a CRI record (shown as it is)
    stream: bytes
    partial: bool
    content: bytes  # without the record's newline


def parse_record(line: bytes) -> Record:
    """One line of a log file (without its newline)."""
    parts = line.split(b" ", 3)
    if len(parts) == 4 and parts[1] in STREAMS:
        stamp = parse_time(parts[0])
        tag = parts[2].split(b":", 1)[0]  # tags may grow `:`-separated fields (CRI)
        if stamp is not None and tag in (_FULL, _PARTIAL):
            return Record(stamp, parts[1], tag == _PARTIAL, parts[3])
    return Record(None, b"stdout", False, line)


def tail_records(data: bytes, count: int) -> bytes:
    """The last `count` lines of a log file's bytes (all of them for count <= 0)."""
    if count <= 0:
        return data
    # Records end with b"\n" alone: a container's b"\r" is content, not a line end.
    lines = data.split(b"\n")
    ended = lines[-1] == b""
    kept = lines[:-1] if ended else lines
    return b"\n".join(kept[-count:]) + (b"\n" if ended else b"")


class Renderer:
    """Log file bytes in, container output out, across reads (a followed log)."""

    __slots__ = ("_buffer", "_line_start", "since_ns", "timestamps")

    def __init__(self, *, timestamps: bool = False, since_ns: int = 0) -> None:
        self.timestamps = timestamps
        self.since_ns = since_ns
        self._buffer = b""
        self._line_start = True  # the next record begins a line of output

    def feed(self, data: bytes) -> bytes:
        """The output of the complete records in `data` (a record cut by the read is
        kept until the rest of it arrives)."""
        buffered = self._buffer + data
        cut = buffered.rfind(b"\n") + 1
        self._buffer = buffered[cut:]
        return self._render(buffered[:cut])

    def finish(self) -> bytes:
        """The output of a last record that never got its newline."""
        rest, self._buffer = self._buffer, b""
        if not rest:
            return b""
        out = self._render(rest + b"\n")
        if parse_record(rest).time_ns is None:
            out = out.removesuffix(b"\n")  # not a record: shown as it is, no newline added
        return out

    def _render(self, data: bytes) -> bytes:
        out = []
        for line in data.split(b"\n")[:-1]:  # `data` ends with a newline
            record = parse_record(line)
            if record.time_ns is not None and record.time_ns < self.since_ns:
                continue
            if self.timestamps and self._line_start and record.time_ns is not None:
                out.append(format_time(record.time_ns) + b" ")
            out.append(record.content if record.partial else record.content + b"\n")
            self._line_start = not record.partial
        return b"".join(out)
