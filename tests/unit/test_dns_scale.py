"""DNS at scale: the pieces that make a change cost what changed, each equal to the
plain computation it replaces.

- `service_parts` splits `service_records` by slice; `ZoneBuilder` fed parts (as
  `services.dns.sync` feeds it) keeps the zone `build_zone` computes.
- `Table.update` keeps the name sets `Table.build` computes, and a lazy first
  table (`Table.build(..., lazy=True)`) answers every query byte for byte as an
  eager one, before and after updates.
- `render_rotations` is `render` of each rotation; `Zone._srv_glue` is `_glue`;
  `name_wire` is dnspython's; `fits_dns` is the label-by-label definition.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import dns.message
import dns.name
import dns.rdatatype
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubelab.core.keys import ObjectKey
from services.dns import render as render_module
from services.dns.logic.dns_builder import ZoneBuilder
from services.dns.logic.dns_records import (
    Answer,
    Rcode,
    Record,
    RType,
    build_zone,
    fits_dns,
    group_slices,
    service_parts,
    service_records,
)
from services.dns.messages import name_wire
from services.dns.render import render, render_rotations
from services.dns.wire import MAX_ROTATIONS, Table, _rotations
from tests.unit.test_dns_records import (
    _OPS,
    ZONE,
    Key,
    endpoint,
    endpoint_slice,
    replay,
    service,
)


def _parts(
    last: dict[Key, dict[str, list[Record]]],
    changed: set[Key],
    services: dict[Key, Any],
    slices: dict[Key, Any],
) -> dict[tuple[str, str, str], list[Record]]:
    """The builder's input as `ZoneSync._records` makes it: changed parts, [] for gone ones."""
    groups = group_slices(slices.values())
    out: dict[tuple[str, str, str], list[Record]] = {}
    for key in changed:
        svc = services.get(key)
        new = (
            {}
            if svc is None
            else service_parts(svc, groups.get(ObjectKey(key), []), domain=ZONE, ttl=5)
        )
        for part in last.pop(key, {}).keys() - new.keys():
            out[(*key, part)] = []
        out.update({(*key, part): records for part, records in new.items()})
        last[key] = new
    return out


@settings(max_examples=80, deadline=None)
@given(_OPS)
def test_parts_keep_the_zone_and_tables_a_full_build_gives(ops: list[Any]) -> None:
    builder = ZoneBuilder(domain=ZONE, ttl=5)
    last: dict[Key, dict[str, list[Record]]] = {}
    zone, _, _ = builder.update({}, 1)
    table = Table.build(zone)
    lazy = Table.build(zone, answers=builder.answers, lazy=True)
    for serial, (changed, services, slices) in enumerate(replay(ops), start=2):
        zone, answers, removed = builder.update(_parts(last, changed, services, slices), serial)
        full = build_zone(services.values(), slices.values(), domain=ZONE, ttl=5, serial=serial)
        assert (zone.rrsets, zone.names, zone.aliases) == (full.rrsets, full.names, full.aliases)
        assert zone.addresses == full.addresses
        assert builder.answers == full.answers()
        table = Table.update(zone, table, answers, removed)
        lazy = Table.update(zone, lazy, answers, removed)
        whole = Table.build(full)
        assert table.positive == whole.positive
        assert (table.names, table.special) == (whole.names, whole.special)
        assert (lazy.names, lazy.special) == (whole.names, whole.special)
        for owner, rtype in full.answers():
            query = dns.message.make_query(owner, dns.rdatatype.RdataType(rtype))
            query.id = 7
            data = query.to_wire()
            assert lazy.answer(data, udp=True) == whole.answer(data, udp=True), (owner, rtype)


def test_service_parts_are_service_records_by_slice() -> None:
    headless = service("db", clusterIP="None")
    slices = [
        endpoint_slice(f"db-{n}", "db", [endpoint(f"10.0.{n}.1"), endpoint(f"10.0.{n}.2")])
        for n in range(3)
    ]
    parts = service_parts(headless, slices, domain=ZONE, ttl=5)
    assert parts.keys() == {"db-0", "db-1", "db-2"}
    assert sorted(r for p in parts.values() for r in p) == sorted(
        service_records(headless, slices, domain=ZONE, ttl=5)
    )
    plain = service("shop", clusterIP="10.96.0.5", ports=[{"name": "http", "port": 80}])
    assert service_parts(plain, [], domain=ZONE) == {"": service_records(plain, [], domain=ZONE)}


def _big(addresses: list[str]) -> Answer:
    base = "big.default.svc.cluster.local."
    rtype = RType.AAAA if ":" in addresses[0] else RType.A
    return Answer(Rcode.NOERROR, tuple(Record(base, rtype, 5, a) for a in addresses))


@pytest.mark.parametrize(
    "addresses",
    [
        pytest.param([f"10.0.{n // 256}.{n % 256}" for n in range(5000)], id="a-5000-past-64k"),
        pytest.param([f"10.0.0.{n}" for n in range(2, 40)], id="a-38"),
        pytest.param([f"fd00::{n:x}" for n in range(1, 20)], id="aaaa-19"),
        pytest.param(["10.0.0.1", "10.0.0.2", "10.0.0.3"], id="a-3-fewer-than-rotations"),
    ],
)
@pytest.mark.parametrize(
    "owner", ["big.default.svc.cluster.local.", "Big.Default.svc.cluster.local."]
)
def test_render_rotations_is_render_of_each_rotation(addresses: list[str], owner: str) -> None:
    answer = _big(addresses)
    turns = min(len(addresses), MAX_ROTATIONS)
    rtype = answer.answer[0].rtype
    found = render_rotations(owner, rtype, answer, turns)
    assert found is not None and len(found) == turns
    for fast, turn in zip(found, _rotations(answer, turns), strict=True):
        slow = render(owner, rtype, turn)
        assert slow is not None
        assert (fast.wire, fast.question_end, list(fast.ends), fast.sections) == (
            slow.wire,
            slow.question_end,
            list(slow.ends),
            slow.sections,
        )
        for limit in (512, 1232, 65535):
            assert fast.cut(limit, b"\x00" * 11, rd=True) == slow.cut(limit, b"\x00" * 11, rd=True)


def test_render_rotations_leaves_mixed_answers_to_render() -> None:
    base = "big.default.svc.cluster.local."
    mixed = Answer(
        Rcode.NOERROR,
        (Record(base, RType.A, 5, "10.0.0.1"), Record(base, RType.AAAA, 5, "fd00::1")),
    )
    elsewhere = Answer(
        Rcode.NOERROR,
        (Record(base, RType.A, 5, "10.0.0.1"), Record("x." + base, RType.A, 5, "10.0.0.2")),
    )
    assert render_rotations(base, RType.A, mixed, 2) is None
    assert render_rotations(base, RType.A, elsewhere, 2) is None


def test_srv_glue_is_the_glue_loop() -> None:
    headless = service("db", clusterIP="None")
    body = [endpoint(f"10.0.0.{n}", hostname=f"h{n % 3}") for n in range(1, 9)]
    body.append(endpoint("fd00::7", hostname="h1"))
    slices = [endpoint_slice("db-a", "db", body, [{"name": "pg", "protocol": "TCP", "port": 5432}])]
    zone = build_zone([headless], slices, domain=ZONE)
    owner = "_pg._tcp.db.default.svc.cluster.local."
    fast = zone.lookup(owner, RType.SRV)
    slow = dataclasses.replace(zone, addresses={}).lookup(owner, RType.SRV)
    assert fast == slow and len(fast.additional) == 9


_LABEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABC0123456789-_", min_size=1, max_size=70)


@settings(max_examples=300, deadline=None)
@given(st.lists(_LABEL, max_size=6))
def test_name_wire_and_fits_dns_agree_with_their_definitions(labels: list[str]) -> None:
    text = ".".join(labels) + "."
    expected = all(len(label) <= 63 for label in labels) and len(text) + 1 <= 255
    assert fits_dns(text) is expected or text == "."
    if expected:
        assert name_wire(text) == dns.name.from_text(text).to_wire()
    else:
        with pytest.raises(dns.name.NameTooLong if len(text) + 1 > 255 else dns.name.LabelTooLong):
            name_wire(text)


def test_a_question_rendered_by_its_first_query_goes_when_its_name_does() -> None:
    """The first query renders a pending question into `positive` and `rendered`; an
    update copying those two while it happens may see it in the first only."""
    builder = ZoneBuilder(domain=ZONE, ttl=5)
    shop = service("shop", clusterIP="10.96.0.5")
    zone, _, _ = builder.update({("default", "shop"): service_records(shop, [], domain=ZONE)}, 1)
    table = Table.build(zone, answers=builder.answers, lazy=True)
    query = dns.message.make_query("shop.default.svc.cluster.local.", "A")
    data = query.to_wire()
    assert table.answer(data, udp=True)[1] == Rcode.NOERROR
    del table.rendered[("shop.default.svc.cluster.local.", RType.A)]  # the copy's view
    zone, answers, removed = builder.update({("default", "shop"): []}, 2)
    after = Table.update(zone, table, answers, removed)
    assert after.answer(data, udp=True)[1] == Rcode.NXDOMAIN
    assert table.answer(data, udp=True)[1] == Rcode.NOERROR  # the previous table as it was


@pytest.mark.parametrize("endpoints", [5000, 1150, 600, 20], ids=lambda n: f"srv-{n}")
@pytest.mark.parametrize(
    "owner", ["_pg._tcp.db.default.svc.cluster.local.", "_PG._tcp.DB.default.svc.cluster.local."]
)
def test_a_big_srv_answer_renders_as_record_by_record(
    endpoints: int, owner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The joined fast path (an answer that alone overflows 64 KiB, its glue never
    written) cuts to the same bytes as the record-by-record writer."""
    headless = service("db", clusterIP="None")
    body = [endpoint(f"10.0.{n // 250}.{n % 250 + 1}") for n in range(endpoints)]
    pg = [{"name": "pg", "protocol": "TCP", "port": 5432}]
    zone = build_zone([headless], [endpoint_slice("db-a", "db", body, pg)], domain=ZONE)
    answer = zone.lookup(owner.lower(), RType.SRV)
    fast = render(owner, RType.SRV, answer)
    monkeypatch.setattr(render_module, "_answer_only", lambda *_: None)
    slow = render(owner, RType.SRV, answer)
    assert fast is not None and slow is not None
    for limit, opt in ((512, b""), (1232, b"\x00" * 11), (65535, b""), (65535, b"\x00" * 11)):
        assert fast.cut(limit, opt) == slow.cut(limit, opt), limit
