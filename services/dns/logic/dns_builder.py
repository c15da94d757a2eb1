"""`ZoneBuilder`: a cluster DNS zone kept up to date part by part.

`services.dns.logic.dns_records` says what the zone of a set of Services is
(`build_zone`, whole); this keeps one from changes: `update` takes the records
of the Services, or parts of Services (`service_parts`: a headless Service's
slices), that changed and returns the same `Zone` `build_zone` would, with the
answers of the questions the change touches (a server that pre-renders
answers re-renders only those). Pure: no I/O, no wire format.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

from services.dns.logic.dns_records import (
    DEFAULT_DOMAIN,
    DEFAULT_TTL,
    SCHEMA_VERSION,
    Answer,
    Question,
    Record,
    RType,
    Srv,
    Zone,
    absolute,
    addresses_of,
    soa_record,
    sort_key,
    under,
)

# Questions an alias (CNAME owner) is asked most, answered through the CNAME.
ALIAS_TYPES = (RType.A, RType.AAAA, RType.SRV)
# What `ZoneBuilder` keeps records by: a Service, or a part of one.
_Key = TypeVar("_Key", bound=Hashable)


class ZoneBuilder:
    """A zone kept up to date part by part: what `build_zone` computes whole.

    `update({key: records}, serial)` replaces the records of those keys (an empty
    list removes one; a key is a Service, or a part of one: `service_parts`) and
    returns the new `Zone` (equal to `build_zone` over the same Services), the
    questions whose answer may have changed with their answers, and the questions
    no longer answered: the owners the changed records touch, the SRV owners whose
    targets they touch (glue), every alias (a CNAME may lead anywhere, and its
    negative answers carry the SOA) and the apex (the serial). Records are counted,
    so two owners of the same record both have to let go of it.

    A change costs what changed, not the size of the RRsets it lands in: each
    owner's records are kept sorted (a record is inserted or removed by bisection,
    where sorting a 5,000-address RRset again took milliseconds), and the zone's
    name set is updated by the names that appear or disappear, not recomputed."""

    def __init__(self, *, domain: str = DEFAULT_DOMAIN, ttl: int = DEFAULT_TTL) -> None:
        self.domain = absolute(domain)
        self.ttl = ttl
        self.owned: dict[Hashable, list[Record]] = {}
        self.answers: dict[Question, Answer] = {}
        self.zone: Zone | None = None
        # name -> type -> record -> how many owners have it (insertion ordered: the
        # first CNAME wins, as in `assemble`)
        self._merged: dict[str, dict[RType, dict[Record, int]]] = {}
        self._sorted: dict[str, dict[RType, list[Record]]] = {}  # the same, in answer order
        self._rrsets: dict[str, dict[RType, tuple[Record, ...]]] = {}
        self._addresses: dict[str, tuple[Record, ...]] = {}  # `Zone.addresses`
        self._below: dict[str, int] = {}  # name -> owners at or below it
        self._flipped: set[str] = set()  # names whose existence changed this update
        self._unsorted: set[tuple[str, RType]] = set()  # RRsets new this update, not sorted yet
        self._names: frozenset[str] = frozenset()
        self._aliases: set[str] = set()
        self._srv_owners: dict[str, dict[str, int]] = {}  # SRV target -> SRV owners
        self._soa: Record | None = None

    def _add(self, record: Record) -> None:
        node = self._merged.setdefault(record.name, {}).setdefault(record.rtype, {})
        count = node.get(record, 0)
        node[record] = count + 1
        if not count:
            node_sorted = self._sorted.setdefault(record.name, {})
            ordered = node_sorted.get(record.rtype)
            if ordered is None:
                # A new RRset (all of them, the first time): filled unsorted, sorted
                # once by `_node`, rather than bisected into record by record.
                node_sorted[record.rtype] = [record]
                self._unsorted.add((record.name, record.rtype))
            elif (record.name, record.rtype) in self._unsorted:
                ordered.append(record)
            else:
                bisect.insort(ordered, record, key=sort_key)
        if isinstance(record.data, Srv):
            owners = self._srv_owners.setdefault(record.data.target, {})
            owners[record.name] = owners.get(record.name, 0) + 1

    def _remove(self, record: Record) -> None:
        node = self._merged[record.name]
        found = node[record.rtype]
        found[record] -= 1
        if not found[record]:
            del found[record]
            ordered = self._sorted[record.name][record.rtype]
            if (record.name, record.rtype) in self._unsorted:
                ordered.remove(record)
            else:
                at = bisect.bisect_left(ordered, sort_key(record), key=sort_key)
                while ordered[at] != record:  # equal keys (none so far): the record itself
                    at += 1
                del ordered[at]
            if not found:
                del node[record.rtype]
                del self._sorted[record.name][record.rtype]
                self._unsorted.discard((record.name, record.rtype))
                if not node:
                    del self._merged[record.name]
                    del self._sorted[record.name]
        if isinstance(record.data, Srv):
            owners = self._srv_owners[record.data.target]
            owners[record.name] -= 1
            if not owners[record.name]:
                del owners[record.name]
                if not owners:
                    del self._srv_owners[record.data.target]

    def _exists(self, name: str, delta: int) -> None:
        """Count an owner in or out of `name` and its ancestors, noting the names that
        came to exist or stopped existing."""
        chain = [name]
        if under(name, self.domain):
            chain = []
            while name != self.domain and name:
                chain.append(name)
                name = name.partition(".")[2]
        for step in chain:
            count = self._below.get(step, 0) + delta
            if count:
                self._below[step] = count
            else:
                del self._below[step]
            if (count == 0) != (count - delta == 0):
                self._flipped.add(step)

    def _questions(self, name: str) -> list[Question]:
        node = self._rrsets.get(name)
        if node is None:
            return []
        keys = [(name, rtype) for rtype in node]
        if name in self._aliases:
            keys += [(name, rtype) for rtype in ALIAS_TYPES]
        return keys

    def _apply(self, key: Hashable, records: Sequence[Record], touched: set[str]) -> None:
        """Replace one key's records by applying only the difference: one endpoint of
        a 5,000-endpoint headless Service changes three records."""
        old = Counter(self.owned.pop(key, ()))
        new = Counter(records)
        for record, count in (old - new).items():
            for _ in range(count):
                self._remove(record)
            touched.add(record.name)
        for record, count in (new - old).items():
            for _ in range(count):
                self._add(record)
            touched.add(record.name)
        if records:
            self.owned[key] = list(records)

    def _node(self, name: str) -> dict[RType, tuple[Record, ...]]:
        merged = self._merged[name]
        if RType.CNAME in merged:
            # A CNAME owner has nothing else (RFC 1034 3.6.2); only ExternalName makes one.
            self._aliases.add(name)
            return {RType.CNAME: (next(iter(merged[RType.CNAME])),)}
        self._aliases.discard(name)
        node = self._sorted[name]
        for rtype, found in node.items():
            if (name, rtype) in self._unsorted:
                if len(found) > 1:
                    found.sort(key=sort_key)
                self._unsorted.discard((name, rtype))
        return {rtype: tuple(found) for rtype, found in sorted(node.items())}

    def update(
        self, changed: Mapping[_Key, Sequence[Record]], serial: int
    ) -> tuple[Zone, dict[Question, Answer], set[Question]]:
        touched: set[str] = set()
        soa = soa_record(self.domain, self.ttl, serial)
        if soa != self._soa:
            if self._soa is None:
                self._add(Record(f"dns-version.{self.domain}", RType.TXT, self.ttl, SCHEMA_VERSION))
                touched.add(f"dns-version.{self.domain}")
            else:
                self._remove(self._soa)
            self._add(soa)
            self._soa = soa
            touched.add(self.domain)
        for key, records in changed.items():
            self._apply(key, records, touched)
        before: set[Question] = set()
        for name in touched:
            before.update(self._questions(name))
            existed = name in self._rrsets
            if name not in self._merged:
                if existed:
                    del self._rrsets[name]
                    self._addresses.pop(name, None)
                    self._aliases.discard(name)
                    self._exists(name, -1)
                continue
            node = self._rrsets[name] = self._node(name)
            addresses = addresses_of(node)
            if addresses:
                self._addresses[name] = addresses
            else:
                self._addresses.pop(name, None)
            if not existed:
                self._exists(name, 1)
        if self.zone is None:
            self._names = frozenset(self._below) | {self.domain}
        elif self._flipped:
            # Set operations in C over the names that changed, not a Python pass over
            # every name of the zone.
            gone = {n for n in self._flipped if n not in self._below and n != self.domain}
            self._names = self._names.difference(gone).union(self._flipped - gone)
        self._flipped.clear()
        zone = Zone(
            self.domain,
            self.ttl,
            serial,
            dict(self._rrsets),
            self._names,
            frozenset(self._aliases),
            dict(self._addresses),
        )
        self.zone = zone
        affected = set(touched) | self._aliases
        for name in touched:
            affected.update(self._srv_owners.get(name, ()))
        after = [key for name in affected for key in self._questions(name)]
        answers = {key: zone.lookup(*key) for key in after}
        removed = before - answers.keys()
        for question in removed:
            self.answers.pop(question, None)
        self.answers.update(answers)
        return zone, answers, removed
