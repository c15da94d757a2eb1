"""Cluster DNS records: Kubernetes' DNS spec as a pure function of Services and EndpointSlices.

`build_zone(services, slices, domain=..., ttl=...)` returns the `Zone` the DNS
actor serves: every record of "Kubernetes DNS-Based Service Discovery"
(kubernetes/dns docs/specification.md, schema 1.0.1, the records CoreDNS's
kubernetes plugin serves), and `Zone.lookup(qname, qtype)` answers one
question the way an authoritative server does. No I/O and no wire format here
(the actor renders `Answer`s with dnspython); names are lowercase, absolute,
in presentation form (`shop.default.svc.cluster.local.`).

Records, for Service `<svc>` in namespace `<ns>` and zone `<zone>`:

- ClusterIP (any type with a ClusterIP): `<svc>.<ns>.svc.<zone>` A (AAAA for
  an IPv6 ClusterIP) → each of `spec.clusterIPs` (else `spec.clusterIP`); for
  each *named* port `_<port>._<proto>.<svc>.<ns>.svc.<zone>` SRV
  `0 100 <port> <svc>.<ns>.svc.<zone>.`; PTR from the ClusterIP's reverse name.
- Headless (`clusterIP: None`): `<svc>.<ns>.svc.<zone>` A → every *ready*
  endpoint address of its slices (label `kubernetes.io/service-name`; unset
  `ready` counts as ready, `publishNotReadyAddresses` makes every endpoint
  count); each ready endpoint also gets `<host>.<svc>.<ns>.svc.<zone>` A, where
  `<host>` is its `hostname` or, without one, its address with dashes
  (`127-244-1-5`, CoreDNS's choice of the spec's "system-assigned
  identifier"), and a PTR from its address to that name; per named slice port
  one SRV per ready endpoint, `0 100 <endpoint port> <host>.<svc>...`. With no
  ready endpoint the name does not exist (NXDOMAIN: spec 2.4.1, as CoreDNS).
- ExternalName: `<svc>.<ns>.svc.<zone>` CNAME `spec.externalName.`; no SRV.
- The zone apex has an SOA (CoreDNS's shape: `ns.dns.<zone>.`
  `hostmaster.<zone>.`, refresh 7200, retry 1800, expire 86400, minimum = TTL)
  and `dns-version.<zone>` TXT "1.0.1" (spec 2.2).
- `<a>-<b>-<c>-<d>.<ns>.pod.<zone>` A → a.b.c.d for any address (the spec's
  deprecated pod records, CoreDNS's `pods insecure`): synthesized at lookup.

Answers, like CoreDNS: a name that exists but has no record of the asked type
is NOERROR with no answer (NODATA); a name under the zone that does not exist
is NXDOMAIN; both carry the SOA in the authority section (RFC 2308), so
resolvers cache the negative answer for the TTL. Empty non-terminals
(`default.svc.cluster.local`, `_tcp.shop...`) exist. A CNAME is followed
inside the zone (RFC 1034 4.3.2); SRV answers carry their targets' addresses
in the additional section (spec 2.3.2). Names outside the zone, and reverse
names that are not a ClusterIP's or an endpoint's, are REFUSED: kubelab's DNS
is authoritative for the cluster only and never forwards or recurses.

Not implemented: wildcard queries (`*.ns.svc...`, deprecated in CoreDNS),
namespace existence checks (kubelab has no Namespace objects, so `<ns>.svc`
exists only while it has a Service), FQDN-type slices, and `pod` records by
pod name (`endpoint_pod_names`).

Incremental rebuilds: `service_records` is the part owned by one Service
(`service_parts` the same split by slice), and
`services.dns.logic.dns_builder.ZoneBuilder` keeps a zone from such parts, each
change costing what changed. `build_zone` (`assemble` over every
Service) builds the zone whole: ~25 ms for 1,000 Services on the project's
2-core machine, `Zone.answers()` ~15 ms more; `changed_answers` compares two
zones' answers.
"""

from __future__ import annotations

import ipaddress
import operator
import re
import socket
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from enum import IntEnum
from itertools import chain, repeat
from typing import NamedTuple

from kubelab.core.keys import ObjectKey, key_of
from kubelab.core.kinds import SERVICE_NAME_LABEL
from kubelab.core.validation.services import EXTERNAL_NAME, HEADLESS
from kubelab.home import DEFAULT_CLUSTER_DOMAIN
from kubelab.v1 import objects_pb2

SCHEMA_VERSION = "1.0.1"
DEFAULT_DOMAIN = DEFAULT_CLUSTER_DOMAIN
DEFAULT_TTL = 5
# How many CNAMEs a lookup follows inside the zone before giving up (loops, long chains).
MAX_CHAIN = 8


class RType(IntEnum):
    A = 1
    NS = 2
    CNAME = 5
    SOA = 6
    PTR = 12
    TXT = 16
    AAAA = 28
    SRV = 33
    ANY = 255


class Rcode(IntEnum):
    NOERROR = 0
    FORMERR = 1
    SERVFAIL = 2
    NXDOMAIN = 3
    NOTIMP = 4
    REFUSED = 5
    BADVERS = 16


class Srv(NamedTuple):
    priority: int
    weight: int
    port: int
    target: str


class Soa(NamedTuple):
    mname: str
    rname: str
    serial: int
    refresh: int
    retry: int
    expire: int
    minimum: int


# A/AAAA: the address; CNAME/PTR: the target name; TXT: the one string.
RData = str | Srv | Soa


class Record(NamedTuple):
    name: str
    rtype: RType
    ttl: int
    data: RData


class Answer(NamedTuple):
    rcode: Rcode
    answer: tuple[Record, ...] = ()
    authority: tuple[Record, ...] = ()
    additional: tuple[Record, ...] = ()


# ---------------------------------------------------------------- names


def absolute(name: str) -> str:
    """Lowercase with the trailing dot: the one spelling names take inside a zone."""
    name = name.lower()
    return name if name.endswith(".") else name + "."


def service_name(name: str, namespace: str, domain: str) -> str:
    return f"{name}.{namespace}.svc.{absolute(domain)}"


def dashed(address: str) -> str:
    """An address as one DNS label, the spec's system-assigned endpoint name (CoreDNS)."""
    return address.replace(".", "-").replace(":", "-")


def reverse_name(address: str) -> str:
    if ":" not in address:
        return ".".join(reversed(address.split("."))) + ".in-addr.arpa."
    return ipaddress.ip_address(address).reverse_pointer + "."


def under(name: str, domain: str) -> bool:
    """`name` is `domain` or below it (both absolute). A dot escaped inside a label
    (`a\\.cluster.local.`) is not a label boundary."""
    if name == domain:
        return True
    if not name.endswith("." + domain):
        return False
    prefix = name[: -len(domain) - 1]
    backslashes = len(prefix) - len(prefix.rstrip("\\"))
    return backslashes % 2 == 0


# RFC 1035 2.3.4: a label is at most 63 octets, a name at most 255 on the wire.
MAX_LABEL = 63
MAX_NAME = 255


def fits_dns(name: str) -> bool:
    """`name` (absolute, presentation form) can be put on the wire: ASCII, no empty
    label, each label at most 63 octets, the whole at most 255. Objects the apiserver
    accepts can still make names that do not fit (a 63-character port name becomes the
    64-character label `_<name>`); such records are left out, never fatal."""
    # One C-level match, not a Python loop over labels: this runs for every name of
    # every record. A name of n label octets plus its dots takes n + 1 octets on the
    # wire (one length byte a label, the root's zero), so <= 255 is len(name) <= 254.
    return name == "." or (
        len(name) <= MAX_NAME - 1 and name.isascii() and _LABELS.fullmatch(name) is not None
    )


_LABELS = re.compile(rf"(?:[^.]{{1,{MAX_LABEL}}}\.)+")


def _names_of(record: Record) -> tuple[str, ...]:
    data = record.data
    if isinstance(data, Srv):
        return (record.name, data.target)
    if record.rtype in (RType.CNAME, RType.PTR) and isinstance(data, str):
        return (record.name, data)
    return (record.name,)


def split_servable(records: Iterable[Record]) -> tuple[list[Record], list[Record]]:
    """(records whose every name fits DNS, the rest). The DNS serves the first and
    reports the second; one record that cannot be served never stops the others."""
    records = list(records)
    # Most records share their names (a Service's, its SRV owner): each name checked
    # once, and when all fit (the rule), no record looked at twice.
    names = set(map(_OWNER, records))
    names.update(n for r in records if r.rtype != RType.A for n in _names_of(r)[1:])
    if all(map(fits_dns, names)):
        return records, []
    servable: list[Record] = []
    unfit: list[Record] = []
    for record in records:
        (servable if all(fits_dns(n) for n in _names_of(record)) else unfit).append(record)
    return servable, unfit


def _address(text: str) -> tuple[RType, str] | None:
    """(A or AAAA, canonical text), None for what is not an address. inet_pton, not
    ipaddress: this runs for every endpoint and ipaddress is most of a build's time."""
    try:
        if ":" not in text:
            socket.inet_pton(socket.AF_INET, text)
            return RType.A, text
        packed = socket.inet_pton(socket.AF_INET6, text)
        return RType.AAAA, socket.inet_ntop(socket.AF_INET6, packed)
    except OSError:
        return None


def sort_key(record: Record) -> tuple[int, bytes | int, str]:
    data = record.data
    if record.rtype == RType.A and isinstance(data, str):
        return (record.rtype, socket.inet_pton(socket.AF_INET, data), "")
    if record.rtype == RType.AAAA and isinstance(data, str):
        return (record.rtype, socket.inet_pton(socket.AF_INET6, data), "")
    if isinstance(data, Srv):
        return (record.rtype, data.port, data.target)
    return (record.rtype, 0, str(data))


# ---------------------------------------------------------------- per Service


def is_ready(endpoint: objects_pb2.Endpoint, publish_not_ready: bool) -> bool:
    """Unset `ready` means ready (Kubernetes' consumers read it so)."""
    if publish_not_ready:
        return True
    return not endpoint.conditions.HasField("ready") or endpoint.conditions.ready


def service_records(
    svc: objects_pb2.Service,
    slices: Sequence[objects_pb2.EndpointSlice],
    *,
    domain: str = DEFAULT_DOMAIN,
    ttl: int = DEFAULT_TTL,
    per_slice: SliceRecords | None = None,
) -> list[Record]:
    """Every record one Service owns (its slices: those labelled with its name), whether
    or not its names fit DNS (`split_servable` says which do). A headless Service's
    come slice by slice from `per_slice`, which a caller may memoize: a change to one
    slice of fifty need not recompute the other forty-nine."""
    spec = svc.spec
    base = service_name(svc.metadata.name, svc.metadata.namespace, domain)
    if spec.type == EXTERNAL_NAME:
        if not spec.external_name:
            return []
        return [Record(base, RType.CNAME, ttl, absolute(spec.external_name))]
    if spec.cluster_ip == HEADLESS:
        return _headless_records(base, spec, slices, ttl, per_slice or headless_slice_records)
    records: list[Record] = []
    for text in spec.cluster_ips or [spec.cluster_ip]:
        parsed = _address(text)
        if parsed is None:
            continue
        rtype, ip = parsed
        records.append(Record(base, rtype, ttl, ip))
        records.append(Record(reverse_name(ip), RType.PTR, ttl, base))
    if not records:
        return []  # no ClusterIP yet: nothing to answer with
    for port in spec.ports:
        if port.name:
            proto = (port.protocol or "TCP").lower()
            srv = Srv(0, 100, port.port, base)
            records.append(Record(f"_{port.name.lower()}._{proto}.{base}", RType.SRV, ttl, srv))
    return records


SliceRecords = Callable[[str, objects_pb2.EndpointSlice, bool, int], list[Record]]


def service_parts(
    svc: objects_pb2.Service,
    slices: Sequence[objects_pb2.EndpointSlice],
    *,
    domain: str = DEFAULT_DOMAIN,
    ttl: int = DEFAULT_TTL,
    per_slice: SliceRecords | None = None,
) -> dict[str, list[Record]]:
    """`service_records` by where they come from: a headless Service's by slice name,
    any other Service's under "". A change to one slice of fifty then gives
    `ZoneBuilder` one part of fifty to compare, not the Service's every record."""
    spec = svc.spec
    if spec.cluster_ip != HEADLESS or spec.type == EXTERNAL_NAME:
        return {"": service_records(svc, slices, domain=domain, ttl=ttl)}
    base = service_name(svc.metadata.name, svc.metadata.namespace, domain)
    compute = per_slice or headless_slice_records
    publish = spec.publish_not_ready_addresses
    return {eps.metadata.name: compute(base, eps, publish, ttl) for eps in slices}


def headless_slice_records(
    base: str, eps: objects_pb2.EndpointSlice, publish_not_ready: bool, ttl: int
) -> list[Record]:
    """The records one slice gives a headless Service named `base`."""
    if eps.address_type not in ("IPv4", "IPv6", ""):
        return []  # FQDN slices name no address
    records: list[Record] = []
    ports = [
        (f"_{p.name.lower()}._{(p.protocol or 'TCP').lower()}.{base}", p.port)
        for p in eps.ports
        if p.name and p.HasField("port")
    ]
    for endpoint in eps.endpoints:
        if not is_ready(endpoint, publish_not_ready):
            continue
        for text in endpoint.addresses:
            parsed = _address(text)
            if parsed is None:
                continue
            rtype, ip = parsed
            host = f"{(endpoint.hostname or dashed(ip)).lower()}.{base}"
            records.append(Record(base, rtype, ttl, ip))
            records.append(Record(host, rtype, ttl, ip))
            records.append(Record(reverse_name(ip), RType.PTR, ttl, host))
            for owner, number in ports:
                records.append(Record(owner, RType.SRV, ttl, Srv(0, 100, number, host)))
    return records


def _headless_records(
    base: str,
    spec: objects_pb2.ServiceSpec,
    slices: Sequence[objects_pb2.EndpointSlice],
    ttl: int,
    per_slice: SliceRecords,
) -> list[Record]:
    records: list[Record] = []
    for eps in sorted(slices, key=lambda s: s.metadata.name):
        records += per_slice(base, eps, spec.publish_not_ready_addresses, ttl)
    return records


def group_slices(
    slices: Iterable[objects_pb2.EndpointSlice],
) -> dict[ObjectKey, list[objects_pb2.EndpointSlice]]:
    """Slices by the key of the Service their label names."""
    groups: dict[ObjectKey, list[objects_pb2.EndpointSlice]] = defaultdict(list)
    for eps in slices:
        owner = eps.metadata.labels.get(SERVICE_NAME_LABEL)
        if owner:
            groups[ObjectKey((eps.metadata.namespace, owner))].append(eps)
    return groups


# ---------------------------------------------------------------- the zone


def soa_record(domain: str, ttl: int, serial: int) -> Record:
    apex = absolute(domain)
    soa = Soa(f"ns.dns.{apex}", f"hostmaster.{apex}", serial % 2**32, 7200, 1800, 86400, ttl)
    return Record(apex, RType.SOA, ttl, soa)


@dataclass(frozen=True)
class Zone:
    """The records of one cluster domain, and how questions about it are answered.

    `rrsets` maps owner name → type → records (sorted, no duplicates); `names`
    is every name that exists in the zone (owners and their ancestors down to
    the apex: empty non-terminals answer NODATA, not NXDOMAIN; reverse names
    with a PTR are in it too, though outside the zone); `aliases` are the
    owners of a CNAME (they answer every type)."""

    domain: str
    ttl: int
    serial: int
    rrsets: Mapping[str, Mapping[RType, tuple[Record, ...]]]
    names: AbstractSet[str]
    aliases: frozenset[str] = field(default=frozenset())
    # Owner -> its A records then its AAAA records (owners with either), for glue.
    addresses: Mapping[str, tuple[Record, ...]] = field(default_factory=dict)

    @property
    def soa(self) -> Record:
        return self.rrsets[self.domain][RType.SOA][0]

    def in_zone(self, name: str) -> bool:
        return under(name, self.domain)

    def refused(self) -> Answer:
        return Answer(Rcode.REFUSED)

    def nxdomain(self, answer: tuple[Record, ...] = ()) -> Answer:
        return Answer(Rcode.NXDOMAIN, answer, (self.soa,))

    def nodata(self, answer: tuple[Record, ...] = (), *, in_zone: bool = True) -> Answer:
        return Answer(Rcode.NOERROR, answer, (self.soa,) if in_zone else ())

    def lookup(self, qname: str, qtype: int) -> Answer:
        """Answer one question. `qname` any case, absolute or not; `qtype` a type number."""
        name = absolute(qname)
        if not self.in_zone(name) and name not in self.rrsets:
            return self.refused()
        answer: list[Record] = []
        seen = {name}
        for _ in range(MAX_CHAIN):
            node = self.rrsets.get(name)
            if node is None:
                node = self._pod_record(name)
            if node is None:
                if not self.in_zone(name):
                    return Answer(Rcode.NOERROR, tuple(answer))  # a CNAME left the zone
                if name in self.names or self._pod_subtree(name):
                    return self.nodata(tuple(answer))
                return self.nxdomain(tuple(answer))
            if qtype == RType.ANY:
                answer += [r for rrset in node.values() for r in rrset]
                break
            if qtype in node:
                found = node[RType(qtype)]
                answer += found
                if qtype == RType.SRV:
                    return Answer(Rcode.NOERROR, tuple(answer), (), self._srv_glue(found))
                break
            cname = node.get(RType.CNAME)
            if not cname:
                return self.nodata(tuple(answer), in_zone=self.in_zone(name))
            answer += cname
            if qtype == RType.CNAME:
                break
            target = cname[0].data
            assert isinstance(target, str)
            if target in seen or (not self.in_zone(target) and target not in self.rrsets):
                break  # out of the zone (the client's resolver follows it), or a loop
            seen.add(target)
            name = target
        # Only an SRV answer has glue: no pass over a 5,000-address answer looking for it.
        glue = self._glue(answer) if qtype == RType.ANY else ()
        return Answer(Rcode.NOERROR, tuple(answer), (), glue)

    def _srv_glue(self, srvs: tuple[Record, ...]) -> tuple[Record, ...]:
        """`_glue` of one SRV RRset, the common case, with its loops in C (`addresses`
        holds each target's A and AAAA records already joined): an SRV answer of a
        5,000-endpoint Service is looked up again after each change to it."""
        if not self.addresses:
            return self._glue(srvs)
        targets = dict.fromkeys(map(_SRV_TARGET, srvs))
        return tuple(chain.from_iterable(map(self.addresses.get, targets, repeat(()))))

    def _glue(self, answer: Sequence[Record]) -> tuple[Record, ...]:
        """Addresses of SRV targets, for the additional section (spec 2.3.2, 2.4.2)."""
        glue: list[Record] = []
        seen: set[str] = set()
        rrsets = self.rrsets
        for record in answer:
            data = record.data
            if isinstance(data, Srv) and data.target not in seen:
                seen.add(data.target)
                node = rrsets.get(data.target)
                if node is not None:
                    glue += node.get(RType.A, ())
                    glue += node.get(RType.AAAA, ())
        return tuple(glue)

    def _pod_subtree(self, name: str) -> bool:
        """`pod.<zone>` and `<ns>.pod.<zone>` exist: the deprecated pod records live below."""
        pods = "pod." + self.domain
        return name == pods or (under(name, pods) and name[: -len(pods) - 1].count(".") == 0)

    def _pod_record(self, name: str) -> dict[RType, tuple[Record, ...]] | None:
        pods = "." + "pod." + self.domain
        if not name.endswith(pods):
            return None
        labels = name[: -len(pods)].split(".")
        if len(labels) != 2 or not labels[1]:
            return None
        octets = labels[0].split("-")
        if len(octets) != 4 or not all(o.isdigit() and len(o) <= 3 for o in octets):
            return None
        if any(int(o) > 255 for o in octets):
            return None
        address = ".".join(str(int(o)) for o in octets)
        return {RType.A: (Record(name, RType.A, self.ttl, address),)}

    def answers(self) -> dict[tuple[str, RType], Answer]:
        """Every positive question with its answer: each owner and type it has, and
        for CNAME owners the types clients ask for most (A, AAAA, SRV). A server may
        pre-render these; any other question goes through `lookup`."""
        found: dict[tuple[str, RType], Answer] = {}
        for name, node in self.rrsets.items():
            for rtype in node:
                found[(name, rtype)] = self.lookup(name, rtype)
        for name in self.aliases:
            for rtype in (RType.A, RType.AAAA, RType.SRV):
                found[(name, rtype)] = self.lookup(name, rtype)
        return found

    def records(self) -> Iterator[Record]:
        for node in self.rrsets.values():
            for rrset in node.values():
                yield from rrset


def assemble(
    records: Iterable[Record],
    *,
    domain: str = DEFAULT_DOMAIN,
    ttl: int = DEFAULT_TTL,
    serial: int = 1,
) -> Zone:
    """A zone from Services' records (`service_records`) plus the apex's own."""
    apex = absolute(domain)
    merged: dict[str, dict[RType, dict[Record, None]]] = defaultdict(lambda: defaultdict(dict))
    extra = (
        soa_record(apex, ttl, serial),
        Record(f"dns-version.{apex}", RType.TXT, ttl, SCHEMA_VERSION),
    )
    for record in (*extra, *records):
        merged[record.name][record.rtype][record] = None
    rrsets: dict[str, dict[RType, tuple[Record, ...]]] = {}
    names: set[str] = set()
    aliases: set[str] = set()
    for name, node in merged.items():
        if RType.CNAME in node:
            # A CNAME owner has nothing else (RFC 1034 3.6.2); only ExternalName makes one.
            node = {RType.CNAME: dict.fromkeys([next(iter(node[RType.CNAME]))])}
            aliases.add(name)
        rrsets[name] = {
            rtype: tuple(found) if len(found) == 1 else tuple(sorted(found, key=sort_key))
            for rtype, found in sorted(node.items())
        }
        if under(name, apex):
            while name not in names and name != apex:
                names.add(name)
                name = name.partition(".")[2]
        else:
            names.add(name)
    names.add(apex)
    addresses = {name: a for name, node in rrsets.items() if (a := addresses_of(node))}
    return Zone(apex, ttl, serial, rrsets, frozenset(names), frozenset(aliases), addresses)


def addresses_of(node: Mapping[RType, tuple[Record, ...]]) -> tuple[Record, ...]:
    return node.get(RType.A, ()) + node.get(RType.AAAA, ())


_SRV_TARGET = operator.attrgetter("data.target")
_OWNER = operator.attrgetter("name")


def build_zone(
    services: Iterable[objects_pb2.Service],
    slices: Iterable[objects_pb2.EndpointSlice],
    *,
    domain: str = DEFAULT_DOMAIN,
    ttl: int = DEFAULT_TTL,
    serial: int = 1,
) -> Zone:
    """The whole zone for these Services and slices (slices of other Services are ignored)."""
    groups = group_slices(slices)
    records: list[Record] = []
    for svc in services:
        key = key_of(svc)
        records += service_records(svc, groups.get(key, []), domain=domain, ttl=ttl)
    return assemble(split_servable(records)[0], domain=domain, ttl=ttl, serial=serial)


def changed_answers(
    old: Mapping[tuple[str, RType], Answer], new: Mapping[tuple[str, RType], Answer]
) -> tuple[set[tuple[str, RType]], set[tuple[str, RType]]]:
    """(questions whose answer is new or different, questions no longer answered)."""
    changed = {key for key, answer in new.items() if old.get(key) != answer}
    return changed, old.keys() - new.keys()


Question = tuple[str, RType]
