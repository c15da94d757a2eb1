"""DNS messages through dnspython: a zone's `Answer`s as records, and the slow path.

`slow_reply(query bytes, zone)` answers anything a client may send, correct
first and fast second (~100 µs a query): it parses the query, refuses what
it must (responses are dropped; malformed queries get FORMERR, several
questions FORMERR (RFC 9619), other opcodes NOTIMP, EDNS versions above 0
BADVERS, classes other than IN REFUSED), asks `Zone.lookup`, and renders
the reply: AA set (REFUSED aside), RA never (not a recursor), RD copied, an
OPT when the query had one (payload `OUR_PAYLOAD`, no padding), truncated
to 512 bytes without EDNS or to the asker's buffer with it (whole RRsets,
TC set when the answer section was cut: dnspython's `prefer_truncation`).
REFUSED carries, when the query has EDNS, an Extended DNS Error (RFC 8914,
code 20 Not Authoritative) saying that kubelab's DNS serves the cluster
domain only and does not forward: `dig` prints it.

`wire.Table` renders its pre-built replies with `reply_message`, the same
code, so the fast answers are these answers, cached.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Iterable

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.PTR
import dns.rdtypes.ANY.SOA
import dns.rdtypes.ANY.TXT
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.SRV
import dns.rrset

from services.dns.logic.dns_records import Answer, Rcode, Record, RType, Soa, Srv, Zone
from services.dns.render import render

OUR_PAYLOAD = 1232  # DNS flag day 2020: no fragmentation
UDP_LIMIT = 512  # without EDNS (RFC 1035)
TCP_LIMIT = 65535
REFUSED_TEXT = "kubelab DNS answers only for {domain}; it does not forward or recurse"

OPT_TYPE = b"\x00\x00\x29"  # root owner, type OPT
QR, AA, TC, RD = 0x8000, 0x0400, 0x0200, 0x0100


def opt_rr(options: bytes = b"") -> bytes:
    """Our OPT record: payload OUR_PAYLOAD, version 0, no flags."""
    return OPT_TYPE + struct.pack("!HIH", OUR_PAYLOAD, 0, len(options)) + options


def ede_option(text: str) -> bytes:
    """EDNS option 15, Extended DNS Error 20 (Not Authoritative), with text."""
    body = struct.pack("!H", dns.edns.EDECode.NOT_AUTHORITATIVE) + text.encode()
    return struct.pack("!HH", dns.edns.OptionType.EDE, len(body)) + body


# ---------------------------------------------------------------- records to dnspython


@functools.lru_cache(maxsize=65536)
def name(text: str) -> dns.name.Name:
    """A name from its text, cached: a zone's names recur in every rendering."""
    return dns.name.from_text(text)


# The rdata classes, typed for the call sites (dnspython's constructors are untyped).
_RDATA: dict[RType, Callable[..., dns.rdata.Rdata]] = {
    RType.A: dns.rdtypes.IN.A.A,
    RType.AAAA: dns.rdtypes.IN.AAAA.AAAA,
    RType.CNAME: dns.rdtypes.ANY.CNAME.CNAME,
    RType.PTR: dns.rdtypes.ANY.PTR.PTR,
    RType.TXT: dns.rdtypes.ANY.TXT.TXT,
    RType.SRV: dns.rdtypes.IN.SRV.SRV,
    RType.SOA: dns.rdtypes.ANY.SOA.SOA,
}


def _rdata(record: Record) -> dns.rdata.Rdata:
    make = _RDATA[record.rtype]
    head = (dns.rdataclass.IN, dns.rdatatype.RdataType(record.rtype))
    data = record.data
    if isinstance(data, Srv):
        return make(*head, data.priority, data.weight, data.port, name(data.target))
    if isinstance(data, Soa):
        mname, rname = name(data.mname), name(data.rname)
        return make(*head, mname, rname, *data[2:])
    if record.rtype in (RType.A, RType.AAAA):
        return make(*head, data)
    if record.rtype == RType.TXT:
        return make(*head, [data.encode()])
    return make(*head, name(data))


def rrsets(records: Iterable[Record]) -> list[dns.rrset.RRset]:
    """Records as RRsets, keeping their order (consecutive records of one name and
    type form one RRset)."""
    found: list[dns.rrset.RRset] = []
    for record in records:
        last = found[-1] if found else None
        rtype = dns.rdatatype.RdataType(record.rtype)
        if last is None or last.rdtype != rtype or last.name != name(record.name):
            last = dns.rrset.RRset(name(record.name), dns.rdataclass.IN, rtype)
            last.update_ttl(record.ttl)
            found.append(last)
        last.add(_rdata(record))
    return found


# ---------------------------------------------------------------- the slow path


def header_only(data: bytes, rcode: Rcode) -> bytes:
    """A reply with no sections: for what cannot be parsed or is not a QUERY."""
    flags = QR | (data[2] << 8 & 0x7900) | rcode  # opcode and RD copied
    return data[:2] + struct.pack("!HHHHH", flags, 0, 0, 0, 0)


def reply_message(query: dns.message.Message, answer: Answer, domain: str) -> dns.message.Message:
    """The response to `query` carrying `answer` (AA unless REFUSED; RA never)."""
    response = dns.message.make_response(query, our_payload=OUR_PAYLOAD, pad=0)
    response.set_rcode(dns.rcode.Rcode(answer.rcode))
    if answer.rcode == Rcode.REFUSED:
        if query.edns >= 0:
            ede = dns.edns.EDEOption(
                dns.edns.EDECode.NOT_AUTHORITATIVE, REFUSED_TEXT.format(domain=domain[:-1])
            )
            response.use_edns(0, 0, OUR_PAYLOAD, options=[ede])
        return response
    response.flags |= dns.flags.AA
    response.answer = rrsets(answer.answer)
    response.authority = rrsets(answer.authority)
    response.additional = rrsets(answer.additional)
    return response


def slow_reply(data: bytes, zone: Zone, *, udp: bool) -> tuple[bytes | None, int]:
    """Any query, through dnspython: (reply or None to drop, rcode)."""
    try:
        query = dns.message.from_wire(data)
    except dns.message.ShortHeader:
        return None, -1
    except dns.exception.DNSException:
        if data[2] & 0x80:
            return None, -1  # a response, not a query: never answer those
        return header_only(data, Rcode.FORMERR), Rcode.FORMERR
    if query.flags & dns.flags.QR:
        return None, -1
    if query.opcode() != dns.opcode.QUERY:
        return header_only(data, Rcode.NOTIMP), Rcode.NOTIMP
    if query.edns > 0:
        response = dns.message.make_response(query, our_payload=OUR_PAYLOAD, pad=0)
        response.set_rcode(dns.rcode.BADVERS)
        return response.to_wire(), Rcode.BADVERS
    if len(query.question) != 1:
        return header_only(data, Rcode.FORMERR), Rcode.FORMERR
    question = query.question[0]
    if question.rdclass != dns.rdataclass.IN:
        answer = zone.refused()
    else:
        answer = zone.lookup(question.name.to_text(), question.rdtype)
    limit = TCP_LIMIT
    if udp:
        limit = max(UDP_LIMIT, query.payload) if query.edns >= 0 else UDP_LIMIT
    whole = None
    if question.rdclass == dns.rdataclass.IN:
        whole = render(question.name.to_text(), question.rdtype, answer)
    if whole is not None:
        opt = b""
        if query.edns >= 0:
            refused = answer.rcode == Rcode.REFUSED
            opt = opt_rr(
                ede_option(REFUSED_TEXT.format(domain=zone.domain[:-1])) if refused else b""
            )
        rd = bool(query.flags & dns.flags.RD)
        return data[:2] + whole.cut(limit, opt, rd=rd), answer.rcode
    response = reply_message(query, answer, zone.domain)
    return response.to_wire(max_size=limit, prefer_truncation=True), answer.rcode


def name_wire(text: str) -> bytes:
    """A name in wire form, uncompressed. Plain names (every name kubelab makes) are
    encoded here, ~20x faster than through dnspython: a zone's every name and question
    is encoded when the first table is built. Anything else goes through dnspython,
    which also says what is wrong with a name that has no wire form."""
    if text.endswith(".") and text.isascii() and "\\" not in text and len(text) <= 254:
        labels = text[:-1].split(".") if text != "." else []
        if all(0 < len(label) <= 63 for label in labels):
            return b"".join(bytes((len(label),)) + label.encode() for label in labels) + b"\0"
    wire = name(text).to_wire()
    assert wire is not None
    return wire
