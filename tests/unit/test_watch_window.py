"""The watch cache's pure rules: the ring's window, where a watch starts, what a
filtered watcher is sent (services.apiserver.watch_window)."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.apiserver.watch_window import Interest, Ring, StartPlan, start_plan, watch_type

# ---------------------------------------------------------------------- the ring


@pytest.mark.parametrize(
    ("capacity", "appended", "asked", "expected"),
    [
        pytest.param(4, [11, 12], 10, ["e11", "e12"], id="from-the-start"),
        pytest.param(4, [11, 12], 11, ["e12"], id="after-one"),
        pytest.param(4, [11, 12], 12, [], id="at-the-head"),
        pytest.param(4, [11, 12], 50, [], id="ahead-of-the-head"),
        pytest.param(4, [11, 12], 9, None, id="before-the-cache-started"),
        pytest.param(2, [11, 12, 13], 10, None, id="first-event-dropped"),
        pytest.param(2, [11, 12, 13], 11, ["e12", "e13"], id="exactly-the-floor"),
        pytest.param(1, [13, 12], 13, [], id="out-of-order-merge"),
        pytest.param(1, [13, 12], 12, None, id="out-of-order-floor-is-the-highest-dropped"),
    ],
)
def test_ring_replays_what_it_covers(
    capacity: int, appended: list[int], asked: int, expected: list[str] | None
) -> None:
    ring: Ring[str] = Ring(capacity, 10)
    for revision in appended:
        ring.append(revision, f"e{revision}")
    assert ring.since(asked) == expected
    assert ring.covers(asked) is (expected is not None)


def test_ring_head_and_size() -> None:
    ring: Ring[str] = Ring(2, 10)
    assert (ring.head, ring.floor, len(ring)) == (10, 10, 0)
    for revision in (11, 12, 13):
        ring.append(revision, "x")
    assert (ring.head, ring.floor, len(ring)) == (13, 11, 2)


def test_ring_refuses_no_capacity() -> None:
    with pytest.raises(ValueError, match="at least one event"):
        Ring(0, 1)


@given(
    capacity=st.integers(1, 8),
    steps=st.lists(st.integers(1, 5), max_size=40),
    shuffle=st.randoms(use_true_random=False),
    asked=st.integers(0, 120),
)
def test_ring_never_misses_an_event_it_claims_to_cover(
    capacity: int, steps: list[int], shuffle: random.Random, asked: int
) -> None:
    """Whatever arrived, in whatever order: a covered revision replays exactly the
    events after it, and the ring stays within its capacity."""
    revisions, at = [], 0
    for step in steps:
        at += step
        revisions.append(at)
    # Two merged watches may interleave: swap neighbours now and then.
    for i in range(len(revisions) - 1):
        if shuffle.random() < 0.2:
            revisions[i], revisions[i + 1] = revisions[i + 1], revisions[i]
    ring: Ring[int] = Ring(capacity, 0)
    for revision in revisions:
        ring.append(revision, revision)
        assert len(ring) <= capacity
    replay = ring.since(asked)
    if replay is not None:
        assert replay == [r for r in revisions if r > asked]
    assert ring.covers(ring.head)
    assert ring.head == max([0, *revisions])


# ---------------------------------------------------------------------- where a watch starts


@pytest.mark.parametrize(
    ("requested", "floor", "head", "plan"),
    [
        pytest.param(20, 10, 20, StartPlan(from_ring=True, check_history=False), id="at-head"),
        pytest.param(25, 10, 20, StartPlan(from_ring=True, check_history=False), id="ahead"),
        pytest.param(15, 10, 20, StartPlan(from_ring=True, check_history=True), id="in-window"),
        pytest.param(10, 10, 20, StartPlan(from_ring=True, check_history=True), id="at-floor"),
        pytest.param(5, 10, 20, StartPlan(from_ring=False, check_history=True), id="too-old"),
    ],
)
def test_start_plan(requested: int, floor: int, head: int, plan: StartPlan) -> None:
    assert start_plan(requested, floor=floor, head=head) == plan


# ---------------------------------------------------------------------- what a watcher sees


@pytest.mark.parametrize(
    ("event", "now", "before", "previous_known", "sent"),
    [
        pytest.param("ADDED", True, False, False, "ADDED", id="added-matching"),
        pytest.param("ADDED", False, False, False, None, id="added-not-matching"),
        pytest.param("MODIFIED", True, True, True, "MODIFIED", id="still-matching"),
        pytest.param("MODIFIED", True, False, True, "ADDED", id="starts-matching"),
        pytest.param("MODIFIED", False, True, True, "DELETED", id="stops-matching"),
        pytest.param("MODIFIED", False, False, True, None, id="never-matching"),
        pytest.param("MODIFIED", True, False, False, "MODIFIED", id="previous-compacted"),
        pytest.param("DELETED", True, True, True, "DELETED", id="deleted-matching"),
        pytest.param("DELETED", False, False, True, None, id="deleted-not-matching"),
    ],
)
def test_watch_type(
    event: str, now: bool, before: bool, previous_known: bool, sent: str | None
) -> None:
    assert watch_type(event, now, before, previous_known) == sent


@dataclass(frozen=True)
class Obj:
    namespace: str
    name: str
    env: str


def prod(obj: Obj) -> bool:
    return obj.env == "prod"


@pytest.mark.parametrize(
    ("interest", "revision", "namespace", "sent"),
    [
        pytest.param(Interest("", 10, prod), 11, "a", "ADDED", id="all-namespaces"),
        pytest.param(Interest("a", 10, prod), 11, "a", "ADDED", id="its-namespace"),
        pytest.param(Interest("b", 10, prod), 11, "a", None, id="other-namespace"),
        pytest.param(Interest("a", 11, prod), 11, "a", None, id="already-seen-revision"),
    ],
)
def test_interest_filters_namespace_and_revision(
    interest: Interest[Obj], revision: int, namespace: str, sent: str | None
) -> None:
    obj = Obj(namespace, "x", "prod")
    assert interest.sees("ADDED", revision, namespace, obj, None) == sent


ops = st.lists(
    st.tuples(st.sampled_from("abc"), st.sampled_from(["prod", "dev", None])), max_size=30
)


@given(ops)
def test_a_filtered_watcher_ends_with_exactly_the_matching_objects(
    changes: list[tuple[str, str | None]],
) -> None:
    """Applying what a selector's watcher is sent to an empty map gives exactly the
    objects that match now: none missed, none left behind, no ADDED for one it already
    has, no MODIFIED or DELETED for one it never had."""
    interest = Interest("", 0, prod)
    stored: dict[str, Obj] = {}
    seen: dict[str, Obj] = {}
    for revision, (name, env) in enumerate(changes, start=1):
        previous = stored.get(name)
        if env is None:
            if previous is None:
                continue
            event, obj = "DELETED", previous
            del stored[name]
        else:
            event = "MODIFIED" if previous is not None else "ADDED"
            obj = stored[name] = Obj("ns", name, env)
        sent = interest.sees(event, revision, "ns", obj, previous)
        if sent == "ADDED":
            assert name not in seen
            seen[name] = obj
        elif sent == "MODIFIED":
            assert name in seen
            seen[name] = obj
        elif sent == "DELETED":
            assert seen.pop(name, None) is not None
    assert seen == {name: obj for name, obj in stored.items() if prod(obj)}
