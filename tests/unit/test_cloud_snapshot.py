"""The cloud-stub's forwarding snapshot: what is written reads back the same; anything
else is refused with what is wrong, never half-read."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubelab.core.endpoint_choice import Target
from services.cloud_stub.logic.snapshot import ForwardingEntry, SnapshotError, decode, encode

SHOP = ForwardingEntry(
    "127.201.0.1",
    "TCP",
    8080,
    (Target("127.10.0.1", 30080), Target("127.10.0.2", 30080)),
    ("10.0.0.0/8",),
    True,
)


def test_entries_read_back_as_written_in_key_order() -> None:
    udp = ForwardingEntry("127.201.0.1", "UDP", 53, (Target("127.10.0.1", 30053),))
    assert decode(encode([udp, SHOP])) == [SHOP, udp]


octets = st.integers(0, 255)
ips = st.builds(lambda *o: ".".join(map(str, o)), octets, octets, octets, octets)
ports = st.integers(1, 65535)
entries = st.builds(
    ForwardingEntry,
    ips,
    st.sampled_from(["TCP", "UDP"]),
    ports,
    st.lists(st.builds(Target, ips, ports), max_size=4).map(tuple),
    st.lists(st.builds(lambda ip, n: f"{ip}/{n}", ips, st.integers(0, 32)), max_size=2).map(tuple),
    st.booleans(),
)


@given(st.lists(entries, max_size=5, unique_by=lambda e: e.key))
def test_any_snapshot_round_trips(written: list[ForwardingEntry]) -> None:
    assert decode(encode(written)) == sorted(written, key=lambda e: e.key)


def listener(**changes: object) -> bytes:
    item = json.loads(encode([SHOP]))["listeners"][0]
    item.update(changes)
    return json.dumps({"version": 1, "listeners": [item]}).encode()


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"{half", "not JSON"),
        (b"[]", "not a version 1 snapshot"),
        (b'{"version": 2, "listeners": []}', "not a version 1 snapshot"),
        (b'{"version": 1, "listeners": {}}', "listeners: not a list"),
        (b'{"version": 1, "listeners": [7]}', "listeners[0]: not an object"),
        (listener(ip="shop"), "listeners[0].ip: not an IPv4 address"),
        (listener(protocol="SCTP"), "listeners[0].protocol: not one of TCP, UDP"),
        (listener(port=0), "listeners[0].port: not a port number"),
        (listener(port=True), "listeners[0].port: not a port number"),
        (listener(port="80"), "listeners[0].port: not a port number"),
        (listener(targets="x"), "listeners[0].targets: not a list"),
        (listener(targets=["127.0.0.1"]), "listeners[0].targets[0]: not IP:PORT"),
        (listener(targets=["127.0.0.1:99999"]), "listeners[0].targets[0]: not IP:PORT"),
        (listener(sourceRanges=["nope"]), "listeners[0].sourceRanges: not a list of CIDRs"),
        (listener(keepClientIP="yes"), "listeners[0].keepClientIP: not a boolean"),
    ],
)
def test_a_damaged_snapshot_is_refused_naming_what_is_wrong(data: bytes, problem: str) -> None:
    with pytest.raises(SnapshotError) as refused:
        decode(data)
    assert str(refused.value).startswith(problem)
