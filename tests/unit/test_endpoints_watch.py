"""An Endpoints watch kept from EndpointSlice events: which events a watcher is sent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from services.apiserver.k8s.endpoints_mirror import Endpoints, ready_addresses
from services.apiserver.k8s.endpoints_watch import EndpointsWatch, SliceEvent
from tests.unit.slice_builders import eps, pod


def everything(_: Endpoints) -> bool:
    return True


def labelled(key: str, value: str) -> Callable[[Endpoints], bool]:
    return lambda e: e["metadata"].get("labels", {}).get(key) == value


def seen(changes: list[Any]) -> list[tuple[str, str, list[str], str]]:
    return [
        (
            c.type,
            c.object["metadata"]["name"],
            ready_addresses(c.object),
            c.object["metadata"]["resourceVersion"],
        )
        for c in changes
    ]


def test_the_initial_state_is_every_matching_endpoints_by_name() -> None:
    watch = EndpointsWatch(
        [
            eps("shop-a", [pod("10.0.0.1")], labels={"tier": "web"}),
            eps("cart-a", [pod("10.0.0.2")], service="cart", labels={"tier": "web"}),
            eps("db-a", [pod("10.0.0.3")], service="db"),
            eps("hand-made", [pod("10.0.0.4")], service="x", managed_by="me"),
        ],
        labelled("tier", "web"),
    )
    assert [e["metadata"]["name"] for e in watch.current()] == ["cart", "shop"]


def test_a_slice_change_is_one_event_at_its_revision() -> None:
    watch = EndpointsWatch([eps("shop-a", [pod("10.0.0.1")])], everything)
    changed = eps("shop-a", [pod("10.0.0.1"), pod("10.0.0.2")], revision=20)
    assert seen(watch.apply([SliceEvent("MODIFIED", changed)], 20)) == [
        ("MODIFIED", "shop", ["10.0.0.1", "10.0.0.2"], "20")
    ]
    # The same content written again: nothing to tell.
    again = eps("shop-a", [pod("10.0.0.1"), pod("10.0.0.2")], revision=21)
    assert watch.apply([SliceEvent("MODIFIED", again)], 21) == []


def test_one_transaction_over_several_slices_is_one_event_or_none() -> None:
    a = eps("shop-a", [pod("10.0.0.1"), pod("10.0.0.2")])
    b = eps("shop-b", [pod("10.0.0.3")])
    watch = EndpointsWatch([a, b], everything)
    # A pod moved from one slice to the other: the Endpoints are the same.
    moved = [
        SliceEvent("MODIFIED", eps("shop-a", [pod("10.0.0.1")], revision=30)),
        SliceEvent("MODIFIED", eps("shop-b", [pod("10.0.0.2"), pod("10.0.0.3")], revision=30)),
    ]
    assert watch.apply(moved, 30) == []
    # Both slices change at once: one event, their joint result.
    both = [
        SliceEvent("MODIFIED", eps("shop-a", [pod("10.0.0.4")], revision=31)),
        SliceEvent("DELETED", eps("shop-b", revision=31)),
    ]
    assert seen(watch.apply(both, 31)) == [("MODIFIED", "shop", ["10.0.0.4"], "31")]


def test_first_slice_adds_last_slice_deletes() -> None:
    watch = EndpointsWatch([], everything)
    first = eps("shop-a", [pod("10.0.0.1")], revision=5)
    assert seen(watch.apply([SliceEvent("ADDED", first)], 5)) == [
        ("ADDED", "shop", ["10.0.0.1"], "5")
    ]
    second = eps("shop-b", [pod("10.0.0.2")], [{"name": "x", "port": 1}], revision=6)
    assert [c.type for c in watch.apply([SliceEvent("ADDED", second)], 6)] == ["MODIFIED"]
    assert [c.type for c in watch.apply([SliceEvent("DELETED", first)], 7)] == ["MODIFIED"]
    # The last one: DELETED, with the last state, at the deletion's revision.
    assert seen(watch.apply([SliceEvent("DELETED", second)], 8)) == [
        ("DELETED", "shop", ["10.0.0.2"], "8")
    ]
    assert watch.current() == []


def test_services_in_one_batch_each_get_their_event_by_name() -> None:
    watch = EndpointsWatch([], everything)
    events = [
        SliceEvent("ADDED", eps("shop-a", [pod("10.0.0.1")])),
        SliceEvent("ADDED", eps("cart-a", [pod("10.0.0.2")], service="cart")),
        SliceEvent("ADDED", eps("mine", [pod("10.0.0.3")], service="x", managed_by="me")),
    ]
    assert [(c.type, c.object["metadata"]["name"]) for c in watch.apply(events, 9)] == [
        ("ADDED", "cart"),
        ("ADDED", "shop"),
    ]


def test_a_slice_that_stops_being_mirrored_takes_its_addresses_away() -> None:
    watch = EndpointsWatch(
        [eps("shop-a", [pod("10.0.0.1")]), eps("shop-b", [pod("10.0.0.2")])], everything
    )
    relabelled = eps("shop-b", [pod("10.0.0.2")], managed_by="me", revision=12)
    assert seen(watch.apply([SliceEvent("MODIFIED", relabelled)], 12)) == [
        ("MODIFIED", "shop", ["10.0.0.1"], "12")
    ]


@pytest.mark.parametrize(
    ("tier", "expected"),
    [
        pytest.param("db", [("DELETED", "web")], id="stops-matching-deleted-as-last-seen"),
        pytest.param("web", [("MODIFIED", "web")], id="still-matching-modified"),
    ],
)
def test_a_selector_watcher_sees_endpoints_leave_and_enter(
    tier: str, expected: list[tuple[str, str]]
) -> None:
    watch = EndpointsWatch([eps("shop-a", labels={"tier": "web"})], labelled("tier", "web"))
    relabelled = eps("shop-a", [pod("10.0.0.1")], labels={"tier": tier}, revision=40)
    changes = watch.apply([SliceEvent("MODIFIED", relabelled)], 40)
    assert [(c.type, c.object["metadata"]["labels"]["tier"]) for c in changes] == expected
    assert changes[0].object["metadata"]["resourceVersion"] == "40"
    back = eps("shop-a", labels={"tier": "web"}, revision=41)
    if tier == "db":
        assert [c.type for c in watch.apply([SliceEvent("MODIFIED", back)], 41)] == ["ADDED"]


def test_a_non_matching_endpoints_is_never_sent() -> None:
    watch = EndpointsWatch([], labelled("tier", "web"))
    added = eps("shop-a", [pod("10.0.0.1")], labels={"tier": "db"})
    assert watch.apply([SliceEvent("ADDED", added)], 3) == []
    assert watch.apply([SliceEvent("DELETED", added)], 4) == []
