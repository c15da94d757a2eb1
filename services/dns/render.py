"""Positive answers to wire format, fast and whole-record truncated.

dnspython renders a reply in ~100 µs plus ~70 µs a record: fine for a few
records, ~1 s for the 5,000 addresses of a big headless Service, and the
pre-rendered table holds several renderings of each answer. This module
writes the same messages directly: a reply is rendered once, in full, and
every smaller variant (512 bytes without EDNS, `OUR_PAYLOAD` with it) is a
prefix of it. That works because a DNS message only ever points backwards
(compression pointers refer to earlier names), so cutting it after any
record leaves a message that parses, once the header's counts say so.

Truncation, as CoreDNS does it: as many whole records as fit, not whole
RRsets (dnspython drops an RRset that does not fit entirely, which left a
5,000-address TCP answer with no address at all). TC is set when a record
of the answer or authority section was left out; additional records are
optional and dropped silently (RFC 2181 9).

`render_rotations` renders the rotations of a big address answer (a
headless Service's) from one buffer of pre-encoded records: every A (AAAA)
record at the question's name is the same 16 (28) bytes wherever it lands,
so a rotation is two slices of that buffer, not a rendering.

Names are compressed as dnspython compresses them: owners, CNAME/PTR
targets and SOA names point to earlier occurrences; SRV targets are written
whole (RFC 2782) but may be pointed to. Only names without escapes are
handled here (every name kubelab makes: Kubernetes names, IP addresses);
`render` returns None for anything else and the caller uses dnspython.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import operator
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from services.dns.logic.dns_records import Answer, Rcode, Record, RType, Soa, Srv

AA, TC, RD = 0x0400, 0x0200, 0x0100
QR = 0x8000
_HEADER = struct.Struct("!HHHHH")  # flags, QD, AN, NS, AR: the header without its id
_RR = struct.Struct("!HHIH")  # type, class IN, TTL, RDLENGTH
_POINTER_LIMIT = 0x4000  # a pointer holds 14 bits of offset


class Unrenderable(Exception):
    """A name or record this writer does not handle; dnspython will."""


@dataclass(frozen=True, slots=True)
class Rendered:
    """One reply without its id, in full, and where each of its records ends."""

    wire: bytes
    question_end: int  # offset (with the id counted) after the question
    ends: Sequence[int]  # offset (id counted) after each record, in message order
    sections: tuple[int, int, int]  # records in answer, authority, additional (all of them)

    def cut(self, limit: int, opt: bytes = b"", *, rd: bool = False) -> bytes:
        """The reply (without id) in at most `limit` bytes with `opt` appended: whole
        records, as many as fit; TC when an answer or authority record is left out;
        RD as the query had it."""
        kept = bisect.bisect_right(self.ends, limit - len(opt))
        an, ns, _ = self.sections
        truncated = kept < an + ns
        counts = (min(kept, an), min(max(kept - an, 0), ns), max(kept - an - ns, 0))
        flags = _HEADER.unpack_from(self.wire)[0] | (TC if truncated else 0) | (RD if rd else 0)
        end = self.ends[kept - 1] if kept else self.question_end
        additional = counts[2] + (1 if opt else 0)
        head = _HEADER.pack(flags, 1, counts[0], counts[1], additional)
        # One copy (a view, joined): a big answer is cut into 64 KiB replies 8 times a rotation.
        return b"".join((head, memoryview(self.wire)[_HEADER.size : end - 2], opt))


class _Writer:
    def __init__(self) -> None:
        self.out = bytearray()
        self.offsets: dict[str, int] = {}  # a name suffix -> where it was written (id counted)

    def name(self, text: str, *, compress: bool = True) -> None:
        """An absolute name; pointing to an earlier suffix when `compress`. Every label
        written is remembered, so later names can point into this one."""
        if "\\" in text or not text.endswith(".") or not text.isascii():
            raise Unrenderable(text)
        out = self.out
        if text == ".":
            out.append(0)
            return
        offsets = self.offsets
        lower = text.lower()  # names compare case-insensitively: "Shop." may point to "shop."
        start, end = 0, len(text)
        while start < end:
            suffix = lower[start:]  # the rest of the name, from this label on
            at = offsets.get(suffix) if compress else None
            if at is not None:
                out += struct.pack("!H", 0xC000 | at)
                return
            dot = text.index(".", start)
            if not 0 < dot - start <= 63:
                raise Unrenderable(text)
            here = len(out) + 2
            if here < _POINTER_LIMIT:
                offsets.setdefault(suffix, here)
            out.append(dot - start)
            out += text[start:dot].encode()
            start = dot + 1
        out.append(0)

    def record(self, record: Record) -> None:
        self.name(record.name)
        start = len(self.out)
        self.out += _RR.pack(record.rtype, 1, record.ttl, 0)
        data = record.data
        if record.rtype == RType.A and isinstance(data, str):
            self.out += socket.inet_pton(socket.AF_INET, data)
        elif record.rtype == RType.AAAA and isinstance(data, str):
            self.out += socket.inet_pton(socket.AF_INET6, data)
        elif isinstance(data, Srv):
            self.out += struct.pack("!HHH", data.priority, data.weight, data.port)
            self.name(data.target, compress=False)
        elif isinstance(data, Soa):
            self.name(data.mname)
            self.name(data.rname)
            self.out += struct.pack("!IIIII", *data[2:])
        elif record.rtype == RType.TXT and isinstance(data, str):
            text = data.encode()
            if len(text) > 255:
                raise Unrenderable(data)
            self.out.append(len(text))
            self.out += text
        elif record.rtype in (RType.CNAME, RType.PTR) and isinstance(data, str):
            self.name(data)
        else:
            raise Unrenderable(repr(record))
        length = len(self.out) - start - _RR.size
        struct.pack_into("!H", self.out, start + _RR.size - 2, length)


_LIMIT = 65535  # no message is longer (TCP's length prefix); records past it are never sent


@functools.lru_cache(maxsize=1 << 16)
def _at_question(record: Record) -> bytes | None:
    """A record owned by the question's name, as wire bytes that hold wherever it lands:
    its owner is the pointer to the question (offset 12) and its data names nothing
    compressed (addresses; an SRV's target is written whole anyway). None otherwise.
    Cached: a big headless answer is rendered in several rotations, and again after
    every change, from mostly the same records."""
    data = record.data
    if record.rtype == RType.A and isinstance(data, str):
        rdata = socket.inet_pton(socket.AF_INET, data)
    elif record.rtype == RType.AAAA and isinstance(data, str):
        rdata = socket.inet_pton(socket.AF_INET6, data)
    elif isinstance(data, Srv):
        writer = _Writer()
        writer.name(data.target, compress=False)
        rdata = struct.pack("!HHH", data.priority, data.weight, data.port) + bytes(writer.out)
    else:
        return None
    return b"\xc0\x0c" + _RR.pack(record.rtype, 1, record.ttl, len(rdata)) + rdata


_OWNER = operator.attrgetter("name")


def _answer_only(owner: str, rtype: int, answer: Answer) -> Rendered | None:
    """`render` for the big cases, in C (the records' cached bytes, joined): an answer
    of records at the question's name (a headless Service's addresses, or its SRV
    records) and no authority, with additional records only when the answer alone
    overflows the largest message, so none of them would be written anyway."""
    if answer.authority or answer.rcode != Rcode.NOERROR:
        return None
    if len(set(map(_OWNER, answer.answer))) != 1 or answer.answer[0].name != owner.lower():
        return None
    found = list(map(_at_question, answer.answer))
    if None in found:
        return None
    pieces = cast(list[bytes], found)
    writer = _Writer()
    writer.name(owner)
    head = _HEADER.pack(QR | AA, 1, len(pieces), 0, 0) + writer.out + struct.pack("!HH", rtype, 1)
    question_end = len(head) + 2
    ends = list(itertools.accumulate(map(len, pieces), initial=question_end))[1:]
    if answer.additional and ends[-1] <= _LIMIT:
        return None  # room left for additional records: `render` writes them
    kept = bisect.bisect_right(ends, _LIMIT)
    wire = head + b"".join(pieces[:kept])
    sections = (len(pieces), 0, len(answer.additional))
    return Rendered(wire, question_end, tuple(ends[:kept]), sections)


def render_rotations(owner: str, rtype: int, answer: Answer, turns: int) -> list[Rendered] | None:
    """`render` of `turns` rotations of an answer of addresses of one type at the
    question's name (a headless Service): rotation k starts at record
    k * (len // turns). Each record is encoded once and, all being the same size,
    every rotation is two slices of one buffer and its record ends a `range`: a
    change to a 5,000-address answer costs a few copies of 64 KiB, not 8 x 5,000
    records. None when the answer is anything else (`render` then, rotation by
    rotation)."""
    records = answer.answer
    if answer.authority or answer.additional or answer.rcode != Rcode.NOERROR or not records:
        return None
    names = set(map(_OWNER, records))
    if len(names) != 1 or names.pop() != owner.lower():
        return None
    found = list(map(_at_question, records))  # the loop in C: 5,000 records a change
    if None in found:
        return None
    pieces = cast(list[bytes], found)
    body = b"".join(pieces)
    size = len(pieces[0])
    if len(body) != size * len(pieces):
        return None  # mixed sizes (A with AAAA): not one RRset
    writer = _Writer()
    try:
        writer.name(owner)
    except Unrenderable:
        return None
    head = _HEADER.pack(QR | AA, 1, len(pieces), 0, 0) + writer.out + struct.pack("!HH", rtype, 1)
    question_end = len(head) + 2
    kept = min(len(pieces), (_LIMIT - question_end) // size)  # past 64 KiB: never sent
    ends = range(question_end + size, question_end + size * kept + 1, size)
    step = len(pieces) // turns
    whole = kept * size  # bytes of records kept, from wherever a rotation starts
    view = memoryview(body)
    rotations = []
    for k in range(turns):
        at = k * step * size
        first = view[at : at + whole]
        rest = view[: whole - len(first)]  # wrapped around to the start
        wire = b"".join((head, first, rest))
        rotations.append(Rendered(wire, question_end, ends, (len(pieces), 0, 0)))
    return rotations


def render(owner: str, rtype: int, answer: Answer) -> Rendered | None:
    """The whole reply to (owner, rtype, IN) carrying `answer`, RD clear, without id
    and without OPT; None when something in it is not for this writer (see the
    module). `owner` is spelled as the asker spelled it: answer names point into it."""
    if len(answer.answer) > 16:
        try:
            fast = _answer_only(owner, rtype, answer)
        except Unrenderable:
            return None
        if fast is not None:
            return fast
    writer = _Writer()
    out = writer.out
    flags = QR | int(answer.rcode) | (0 if answer.rcode == Rcode.REFUSED else AA)
    sections: Sequence[tuple[Record, ...]] = (answer.answer, answer.authority, answer.additional)
    out += _HEADER.pack(flags, 1, *(len(s) for s in sections))
    try:
        writer.name(owner)
        out += struct.pack("!HH", rtype, 1)
        question_end = len(out) + 2
        ends: list[int] = []
        lower = owner.lower()
        for section in sections:
            for record in section:
                if len(out) + 2 > _LIMIT:
                    break
                piece = _at_question(record) if record.name == lower else None
                if piece is None:
                    writer.record(record)
                else:
                    target = len(out) + 2 + 18  # after the pointer, RR fields and SRV numbers
                    if isinstance(record.data, Srv) and target < _POINTER_LIMIT:
                        # Written whole at a known place: the additional section's owners
                        # point to it.
                        writer.offsets.setdefault(record.data.target, target)
                    out += piece
                ends.append(len(out) + 2)
    except (Unrenderable, OSError, struct.error):
        return None
    # The sections' full sizes, not what was rendered: a record left out past the
    # largest message still makes a reply truncated.
    totals = (len(answer.answer), len(answer.authority), len(answer.additional))
    return Rendered(bytes(out), question_end, tuple(ends), totals)
