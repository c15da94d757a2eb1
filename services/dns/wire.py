"""Answering from memory: one `Zone`'s replies pre-rendered, negatives templated.

Answering a query by building a dnspython message costs ~100 µs; a Python
UDP server doing that reaches a twentieth of dnsmasq's rate. Almost every
query a cluster sees asks one question about a name the zone knows, so a
`Table` renders those answers ahead, when the zone changes, and a query
costs a dict lookup:

- **Positive answers** (`Table.positive`): for every question in
  `Zone.answers()` the key is the question section as it appears on the wire
  after the 12-byte header (lowercase qname, qtype, class IN) and the value a
  tuple of ready responses *without their 2-byte id*: UDP without EDNS
  (truncated the way the slow path truncates when over 512 bytes), TCP, and
  with an OPT record (ARCOUNT + 1, OPT appended: its place in the additional
  section is free), each with RD clear and set (RD is copied from the query,
  the only other per-query header bit). A reply is `query[:2] + variant`.
  With EDNS (dig sends an OPT, with a cookie) the question ends at the first
  zero byte, which gives the key without walking the labels (a zero inside a
  label gives a slice that is no key, so a hit is a real hit). A query in
  mixed case (0x20 randomisation) finds the same entry through its
  lowercased qname, and gets its own question spliced in: the question has
  the same length, and every compressed name in the answer points into it,
  so the answer names come back in the asker's case, as from the slow path.
  A headless Service's several addresses are rendered in up to
  `MAX_ROTATIONS` rotations, served in turn, so clients that take the first
  address spread over the endpoints (CoreDNS's `loadbalance`).
- **Negative answers** (NXDOMAIN, NODATA, REFUSED) are templates: header +
  the query's own question + a pre-rendered tail (the SOA, uncompressed so it
  fits any question; the OPT). Which one applies is read off the qname's
  labels: under the zone or not, in `Table.names` or not.
- **Everything else** goes through `messages.slow_reply`, dnspython end to end:
  several questions, other opcodes (NOTIMP), EDNS versions other than 0
  (BADVERS), classes other than IN, ANY, the rarer types at a CNAME owner,
  the pod subtree, reverse names, EDNS answers larger than the asker's
  buffer, malformed queries (FORMERR; dropped when not even the header
  parses, and responses are never answered). The pre-rendered variants are
  produced by this same code, so the fast answers are the slow ones, cached
  (tests/unit/test_dns_wire.py checks it question by question).

Measured with dnsperf against dnsmasq serving the same 1,000 names on the
same 2-core machine (bench/dns.py): 0.9x dnsmasq's rate for plain A
queries, 0.7-0.8x with EDNS, 0.7-0.9x for NXDOMAIN.

`Table.build(zone, previous)` reuses the previous table's rendering of every
question whose `Answer` did not change, so a Service created in a zone of a
thousand re-renders only its own few questions; `Table.update(zone, previous,
answers, removed)` does the same without looking at the other questions
(`ZoneBuilder.update` says which may have changed), and updates the
previous table's name sets by the names that came or went. A table is
immutable once built (but for its render-on-first-query caches, `pending`:
the first table renders nothing ahead); the server swaps whole tables.
"""

from __future__ import annotations

import io
import logging
import operator
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import dns.message
import dns.rdatatype

from services.dns.logic.dns_records import Answer, Rcode, RType, Zone
from services.dns.messages import (
    AA,
    OPT_TYPE,
    OUR_PAYLOAD,
    QR,
    RD,
    REFUSED_TEXT,
    TCP_LIMIT,
    UDP_LIMIT,
    ede_option,
    name,
    name_wire,
    opt_rr,
    reply_message,
    rrsets,
    slow_reply,
)
from services.dns.render import Rendered as Whole
from services.dns.render import render, render_rotations

log = logging.getLogger("dns.wire")

MAX_ROTATIONS = 8

# Variant indexes in a positive entry (each rotation holds these eight): without EDNS
# over UDP (512 bytes) and TCP; with EDNS in full (TCP, or a large enough UDP buffer)
# and cut to OUR_PAYLOAD (the common UDP buffer).
UDP, TCP, EDNS, EDNS_UDP = 0, 2, 4, 6
VARIANTS = 8

_IN = b"\x00\x01"
# QDCOUNT 1, ANCOUNT 0, NSCOUNT 0, and the high byte of ARCOUNT.
_ONE_QUESTION = b"\x00\x01\x00\x00\x00\x00\x00"
_ANY = b"\x00\xff"
_OPT = opt_rr()  # the OPT of every EDNS answer (no options)


# ---------------------------------------------------------------- pre-rendered answers


_OWNER = operator.attrgetter("name")
_TYPE = operator.attrgetter("rtype")


def _turns(answer: Answer) -> int:
    """How many rotations of `answer` are served: up to `MAX_ROTATIONS` for an answer
    that is one RRset of several addresses (a headless Service), else 1."""
    records = answer.answer
    if len(records) < 2 or records[0].rtype not in (RType.A, RType.AAAA):
        return 1
    # One owner, one type; checked in C (`map`), the answer may hold 5,000 records.
    if len(set(map(_OWNER, records))) != 1 or len(set(map(_TYPE, records))) != 1:
        return 1
    return min(len(records), MAX_ROTATIONS)


def _rotations(answer: Answer, turns: int) -> list[Answer]:
    """The `turns` rotations of `answer`: rotation k starts at record k * (len // turns)."""
    records = answer.answer
    step = len(records) // turns
    return [answer._replace(answer=records[k * step :] + records[: k * step]) for k in range(turns)]


def _with_rd(reply: bytes, rd: int) -> bytes:
    """`reply` (without id) with the RD bit as asked."""
    return bytes([reply[0] & 0xFE | rd]) + reply[1:]


def _dnspython_replies(owner: str, rtype: RType, answer: Answer, domain: str) -> tuple[bytes, ...]:
    """(UDP, TCP, EDNS, EDNS over UDP) through dnspython, for what `render` does not
    handle (names with escapes)."""
    query = dns.message.make_query(name(owner), dns.rdatatype.RdataType(rtype), use_edns=False)
    message = reply_message(query, answer, domain)
    # In order: the rotation is ours (dnspython would shuffle each RRset).
    full = message.to_wire(max_size=TCP_LIMIT, prefer_truncation=True, want_shuffle=False)[2:]
    udp = full
    if len(full) + 2 > UDP_LIMIT:
        udp = message.to_wire(max_size=UDP_LIMIT, prefer_truncation=True, want_shuffle=False)[2:]
    additional = struct.unpack_from("!H", full, 8)[0]
    edns = full[:8] + struct.pack("!H", additional + 1) + full[10:] + opt_rr()
    return udp, full, edns, edns


def _cuts(whole: Whole) -> list[bytes]:
    """The eight variants of one rendered reply (see `UDP`...`EDNS_UDP`), RD clear then set."""
    if len(whole.wire) + 2 + len(_OPT) <= UDP_LIMIT:
        # All of it fits everywhere (most answers: one address, one PTR): every cut is
        # the whole, with the OPT or without; no cutting to do.
        additional = struct.unpack_from("!H", whole.wire, 8)[0] + 1
        edns = whole.wire[:8] + struct.pack("!H", additional) + whole.wire[10:] + _OPT
        return [
            _with_rd(reply, rd) for reply in (whole.wire, whole.wire, edns, edns) for rd in (0, 1)
        ]
    # Cut with RD as asked: each reply made in one copy (they run to 64 KiB).
    cuts = ((UDP_LIMIT, b""), (TCP_LIMIT, b""), (TCP_LIMIT, _OPT), (OUR_PAYLOAD, _OPT))
    return [whole.cut(limit, opt, rd=rd) for limit, opt in cuts for rd in (False, True)]


def _variants(owner: str, rtype: RType, answer: Answer, domain: str) -> tuple[bytes, ...]:
    found: list[bytes] = []
    count = _turns(answer)
    wholes = render_rotations(owner, rtype, answer, count) if count > 1 else None
    if wholes is not None:
        for whole in wholes:
            found += _cuts(whole)
        return tuple(found)
    for turn in _rotations(answer, count):
        rendered = render(owner, rtype, turn)
        if rendered is None:
            replies = _dnspython_replies(owner, rtype, turn, domain)
            found += [_with_rd(reply, rd) for reply in replies for rd in (0, 1)]
        else:
            found += _cuts(rendered)
    return tuple(found)


@dataclass(frozen=True, slots=True)
class Rendered:
    answer: Answer
    question: bytes
    variants: tuple[bytes, ...]


def question_wire(owner: str, rtype: int) -> bytes:
    """A question section as a query carries it: name, type, class IN."""
    return name_wire(owner) + struct.pack("!HH", rtype, 1)


def _render(key: tuple[str, RType], answer: Answer, domain: str) -> Rendered | None:
    """The question's pre-rendered replies. An answer that cannot be rendered is that
    question's problem (logged): it is answered SERVFAIL, and no other question is held
    back by it; None for a name that has no wire form at all."""
    owner, rtype = key
    try:
        question = question_wire(owner, rtype)
    except Exception as err:
        log.warning("question %s %s not served: %r", owner, rtype.name, err)
        return None
    try:
        return Rendered(answer, question, _variants(owner, rtype, answer, domain))
    except Exception as err:
        log.warning("question %s %s answered SERVFAIL: %r", owner, rtype.name, err)
        return Rendered(answer, question, _variants(owner, rtype, Answer(Rcode.SERVFAIL), domain))


def _name_sets(zone: Zone, names: Iterable[str]) -> tuple[frozenset[bytes], frozenset[bytes]]:
    """`names` (of `zone`) in wire form, split into those a template may answer NODATA
    for (they exist, under the zone, and own no CNAME) and the rest (aliases, and
    reverse names: the slow path answers those)."""
    plain: list[bytes] = []
    special: list[bytes] = []
    for n in names:
        wire = name_wire(n)
        (special if n in zone.aliases or not zone.in_zone(n) else plain).append(wire)
    return frozenset(plain), frozenset(special)


def _unpend(
    pending: Pending,
    previous: Table,
    key: tuple[str, RType],
    positive: dict[bytes, tuple[bytes, ...]],
) -> Pending:
    """`pending` without `key`'s question, nor its rendering in `positive`: copied
    first if it is still `previous`'s (that table may still be answering), so the
    copy is made once an update, and only by updates that meet a pending question."""
    try:
        question = question_wire(*key)
    except Exception:
        return pending
    if question not in pending:
        return pending
    positive.pop(question, None)
    if pending is previous.pending:
        pending = dict(pending)
    del pending[question]
    return pending


@dataclass(frozen=True, slots=True)
class Negative:
    """One negative answer as a template: header (without id) by [edns * 2 + rd],
    then the query's question, then `tails[edns]`."""

    rcode: Rcode
    heads: tuple[bytes, bytes, bytes, bytes]
    tails: tuple[bytes, bytes]

    @classmethod
    def make(cls, rcode: Rcode, authority: bytes, refused_text: str) -> Negative:
        flags = QR | rcode | (0 if rcode == Rcode.REFUSED else AA)
        ns = 1 if authority else 0
        heads = tuple(
            struct.pack("!HHHHH", flags | rd * RD, 1, 0, ns, edns)
            for edns in (0, 1)
            for rd in (0, 1)
        )
        options = ede_option(refused_text) if rcode == Rcode.REFUSED else b""
        return cls(rcode, heads, (authority, authority + opt_rr(options)))  # type: ignore[arg-type]


def _pick(
    variants: tuple[bytes, ...], turn: int, edns: int, udp: bool, rd: int, limit: int
) -> bytes | None:
    """The pre-rendered reply for this kind of query that fits the asker's `limit`
    (None: none does, the slow path answers)."""
    base = (turn % (len(variants) // VARIANTS)) * VARIANTS
    reply = variants[base + (EDNS if edns else UDP if udp else TCP) + rd]
    if len(reply) + 2 <= limit:
        return reply
    if edns and udp:
        reply = variants[base + EDNS_UDP + rd]
        if len(reply) + 2 <= limit:
            return reply
    return None


def _rest(data: bytes, end: int, udp: bool) -> tuple[int, int] | None:
    """What follows a question ending at `end`: (1 if an EDNS 0 OPT else 0, the
    largest reply the asker takes), or None when the slow path must look (bytes
    that are not an OPT, an OPT the header does not count, another EDNS version)."""
    rest = data[end:]
    if not rest:
        return (0, UDP_LIMIT if udp else TCP_LIMIT) if data[11] == 0 else None
    if data[11] != 1 or rest[:3] != OPT_TYPE or len(rest) < 11 or rest[6] != 0:
        return None
    if len(rest) != 11 + (rest[9] << 8 | rest[10]):
        return None
    return 1, max(UDP_LIMIT, rest[3] << 8 | rest[4]) if udp else TCP_LIMIT


Pending = dict[bytes, tuple[tuple[str, RType], Answer]]


class Table:
    """Everything a query is answered from, for one zone. Immutable once built, but
    for `pending`: questions known but not rendered yet (the first table's, so a cold
    start serves without rendering twenty thousand answers first), each rendered by
    the first query that asks it and kept in `positive` and `rendered` (caches: a
    question is in `pending` for good, so a table built from this one meanwhile still
    has it)."""

    def __init__(
        self,
        zone: Zone,
        rendered: dict[tuple[str, RType], Rendered],
        previous: Table | None = None,
        positive: dict[bytes, tuple[bytes, ...]] | None = None,
        pending: Pending | None = None,
    ) -> None:
        self.zone = zone
        self.rendered = rendered
        self.pending: Pending = pending or {}
        self.positive: dict[bytes, tuple[bytes, ...]] = (
            positive
            if positive is not None
            else {r.question: r.variants for r in rendered.values()}
        )
        self.names: frozenset[bytes]  # names a template may answer NODATA for
        self.special: frozenset[bytes]  # existing names the templates leave to the slow path
        if previous is None:
            self.names, self.special = _name_sets(zone, zone.names)
        elif previous.zone.names is zone.names and previous.zone.aliases == zone.aliases:
            self.names, self.special = previous.names, previous.special
        else:
            # Only the names that came, went or turned alias are looked at (the set
            # differences run in C): one endpoint leaving a 5,000-endpoint Service
            # changes one name of ten thousand.
            old, now = previous.zone, zone
            redo = (old.names ^ now.names) | (old.aliases ^ now.aliases)
            drop = {name_wire(n) for n in redo}
            names, special = _name_sets(now, redo & now.names)
            self.names = previous.names.difference(drop).union(names)
            self.special = previous.special.difference(drop).union(special)
        self.domain = name_wire(zone.domain)
        self.pods = name_wire("pod." + zone.domain)
        out = io.BytesIO()
        rrsets([zone.soa])[0].to_wire(out)  # uncompressed: the tail fits any question
        authority = out.getvalue()
        text = REFUSED_TEXT.format(domain=zone.domain[:-1])
        self.nxdomain = Negative.make(Rcode.NXDOMAIN, authority, text)
        self.nodata = Negative.make(Rcode.NOERROR, authority, text)
        self.refused = Negative.make(Rcode.REFUSED, b"", text)

    @classmethod
    def build(
        cls,
        zone: Zone,
        previous: Table | None = None,
        answers: Mapping[tuple[str, RType], Answer] | None = None,
        *,
        lazy: bool = False,
    ) -> Table:
        """The table of `zone`, reusing `previous`'s renderings of unchanged answers.
        `answers`: `zone.answers()` when the caller has them (`ZoneBuilder.answers`).
        `lazy`: render each answer when first asked, not now (`pending`)."""
        answers = zone.answers() if answers is None else answers
        if lazy and previous is None:
            pending: Pending = {}
            for key, answer in answers.items():
                try:
                    pending[question_wire(*key)] = (key, answer)
                except Exception as err:
                    log.warning("question %s %s not served: %r", key[0], key[1].name, err)
            return cls(zone, {}, None, {}, pending)
        old = previous.rendered if previous is not None else {}
        rendered: dict[tuple[str, RType], Rendered] = {}
        for key, answer in answers.items():
            before = old.get(key)
            fresh = (
                before
                if before is not None and before.answer == answer
                else _render(key, answer, zone.domain)
            )
            if fresh is not None:
                rendered[key] = fresh
        return cls(zone, rendered, previous)

    @classmethod
    def update(
        cls,
        zone: Zone,
        previous: Table,
        answers: Mapping[tuple[str, RType], Answer],
        removed: Iterable[tuple[str, RType]],
    ) -> Table:
        """`previous` with these questions' answers replaced (rendered again only when
        they differ) and `removed` gone: `ZoneBuilder.update`'s results. The previous
        table is left as it was (the server may still be answering from it)."""
        rendered = dict(previous.rendered)
        positive = dict(previous.positive)
        pending = previous.pending
        for key in removed:
            gone = rendered.pop(key, None)
            if gone is not None:
                positive.pop(gone.question, None)
            if pending:
                # A first query may have rendered it between the two copies above
                # (into `positive`, not yet `rendered`): dropped by its question too.
                pending = _unpend(pending, previous, key, positive)
        for key, answer in answers.items():
            before = rendered.get(key)
            if before is None or before.answer != answer:
                if before is not None:
                    del rendered[key]
                    positive.pop(before.question, None)
                if pending:
                    pending = _unpend(pending, previous, key, positive)
                fresh = _render(key, answer, zone.domain)
                if fresh is not None:
                    rendered[key] = fresh
                    positive[fresh.question] = fresh.variants
        return cls(zone, rendered, previous, positive, pending)

    def variants(self, question: bytes) -> tuple[bytes, ...] | None:
        """The pre-rendered replies to `question` (wire, lowercase), rendering them now
        if they are pending; None when the zone has no positive answer to it."""
        found = self.positive.get(question)
        if found is None and self.pending:
            waiting = self.pending.get(question)
            if waiting is not None:
                key, answer = waiting
                fresh = _render(key, answer, self.zone.domain)
                if fresh is not None:
                    self.rendered[key] = fresh
                    self.positive[question] = found = fresh.variants
        return found

    def template(self, data: bytes, udp: bool, turn: int) -> tuple[bytes, int] | None:
        """The reply to a one-question QUERY (header already checked) from the
        pre-rendered answers or a negative template; None when the slow path must
        answer. `turn` picks the rotation of a multi-address answer."""
        # First guess: the qname ends at the first zero byte. Wrong only for a label
        # holding a zero byte, and then the slice is no key (the bytes before it parse
        # the same way in both), so a hit is a real hit.
        end = data.find(0, 12) + 5
        variants = self.variants(data[12:end]) if end > 16 else None
        if variants is not None:
            rest = _rest(data, end, udp)
            if rest is None:
                return None
            edns, limit = rest
            reply = _pick(variants, turn, edns, udp, data[2] & 1, limit)
            return (data[:2] + reply, Rcode.NOERROR) if reply is not None else None
        return self._walk(data, udp, turn)

    def _walk(self, data: bytes, udp: bool, turn: int) -> tuple[bytes, int] | None:
        """`template` for the rest: mixed case, and names with no pre-rendered answer."""
        n = len(data)
        i = 12
        starts: list[int] = []
        while i < n:
            length = data[i]
            if length == 0:
                break
            if length > 63:
                return None  # a compression pointer in a question: legal, rare, slow
            starts.append(i)
            i += length + 1
        end = i + 5
        if end > n:
            return None
        rest = _rest(data, end, udp)
        if rest is None:
            return None
        edns, limit = rest
        qname, qtype, qclass = data[12 : i + 1], data[i + 1 : i + 3], data[i + 3 : end]
        if qclass != _IN or qtype == _ANY:
            return None
        lower = qname.lower()  # the name only: a type byte may look like a letter
        rd = data[2] & 1
        variants = self.variants(lower + qtype + qclass)
        if variants is not None:
            reply = _pick(variants, turn, edns, udp, rd, limit)
            if reply is None:
                return None
            # Same length: the answer's compressed names point into the asker's spelling.
            reply = reply[:10] + data[12:end] + reply[10 + end - 12 :]
            return data[:2] + reply, Rcode.NOERROR
        if lower in self.special:
            return None
        cut = len(lower) - len(self.domain)
        in_zone = cut >= 0 and cut + 12 in starts and lower.endswith(self.domain)
        if not in_zone:
            negative = self.refused
        else:
            cut = len(lower) - len(self.pods)
            if cut >= 0 and cut + 12 in starts and lower.endswith(self.pods):
                return None  # the pod records are synthesized by Zone.lookup
            negative = self.nodata if lower in self.names else self.nxdomain
        head = negative.heads[edns * 2 + rd]
        return data[:2] + head + data[12:end] + negative.tails[edns], negative.rcode

    def answer(self, data: bytes, *, udp: bool, turn: int = 0) -> tuple[bytes | None, int]:
        """Any query: (reply or None to drop it, rcode or -1)."""
        if len(data) >= 17 and not data[2] & 0xF8 and data[4:11] == _ONE_QUESTION:
            if data[11] <= 1:
                found = self.template(data, udp, turn)
                if found is not None:
                    return found
        return slow_reply(data, self.zone, udp=udp)


def summary(table: Table) -> dict[str, int]:
    """Sizes for logs: questions pre-rendered, names, bytes held."""
    held = sum(len(v) for variants in table.positive.values() for v in variants)
    return {"questions": len(table.positive), "names": len(table.zone.names), "bytes": held}
