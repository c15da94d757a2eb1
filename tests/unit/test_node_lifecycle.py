"""Node lifecycle: pods of a node gone for the grace period are evicted, on time."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubelab.testing.pods import make_pod
from kubelab.v1 import objects_pb2
from services.controller.logic.node_lifecycle import next_eviction_due, pods_to_evict

GRACE = 40.0

PODS = [
    make_pod("a1", node="a"),
    make_pod("a2", node="a", namespace="shop", deleted=90.0),
    make_pod("b1", node="b"),
    make_pod("c1", node="c"),
    make_pod("pending"),
]


@pytest.mark.parametrize(
    ("gone", "now", "evicted", "due"),
    [
        pytest.param({}, 100.0, [], None, id="all-nodes-alive"),
        pytest.param({"a": 70.0}, 100.0, [], 110.0, id="within-grace"),
        pytest.param(
            {"a": 60.0},
            100.0,
            [("default", "a1"), ("shop", "a2")],
            None,
            id="grace-over-at-exactly-now-terminating-included",
        ),
        pytest.param(
            {"a": 10.0, "b": 80.0, "c": 70.0},
            100.0,
            [("default", "a1"), ("shop", "a2")],
            110.0,
            id="due-is-the-next-node-to-run-out",
        ),
        pytest.param({"z": 95.0}, 100.0, [], None, id="gone-node-without-pods"),
        pytest.param({"": 0.0}, 100.0, [], None, id="unbound-pods-are-never-evicted"),
    ],
)
def test_eviction(
    gone: dict[str, float], now: float, evicted: list[tuple[str, str]], due: float | None
) -> None:
    assert pods_to_evict(PODS, gone, now=now, grace=GRACE) == evicted
    assert next_eviction_due(PODS, gone, now=now, grace=GRACE) == due


@given(
    st.dictionaries(st.sampled_from("abcd"), st.floats(0, 1000, allow_nan=False)),
    st.floats(0, 1000, allow_nan=False),
    st.floats(0, 300, allow_nan=False),
)
def test_waking_when_due_finds_the_pods_due(
    gone: dict[str, float], now: float, grace: float
) -> None:
    """Sleeping until each `next_eviction_due` in turn evicts everything, never early."""
    pods: list[objects_pb2.Pod] = [make_pod(f"{n}{i}", node=n) for n in "abcd" for i in range(2)]
    clock = now
    while True:
        for namespace, name in pods_to_evict(pods, gone, now=clock, grace=grace):
            victim = next(p for p in pods if p.metadata.name == name)
            assert clock - gone[victim.spec.node_name] >= grace - 1e-9
            assert namespace == "default"
            pods.remove(victim)
        due = next_eviction_due(pods, gone, now=clock, grace=grace)
        if due is None:
            break
        assert due > clock
        clock = due
    assert all(p.spec.node_name not in gone for p in pods)
