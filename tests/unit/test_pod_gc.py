"""Pod GC: pods bound to a node whose Node object is gone are deleted after the quarantine."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubelab.testing.pods import make_pod
from kubelab.v1 import objects_pb2
from services.controller.logic.pod_gc import plan_pod_gc

QUARANTINE = 5.0

PODS = [
    make_pod("a1", node="a"),
    make_pod("a2", node="a", namespace="shop", deleted=90.0),
    make_pod("b1", node="b"),
    make_pod("c1", node="c"),
    make_pod("pending"),
]


@pytest.mark.parametrize(
    ("existing", "missing", "now", "deleted", "remembered", "recheck"),
    [
        pytest.param({"a", "b", "c"}, {}, 100.0, [], {}, None, id="every-node-exists"),
        pytest.param(
            {"b", "c"}, {}, 100.0, [], {"a": 100.0}, 105.0, id="first-seen-missing-starts-now"
        ),
        pytest.param(
            {"b", "c"}, {"a": 97.0}, 100.0, [], {"a": 97.0}, 102.0, id="within-quarantine"
        ),
        pytest.param(
            {"b", "c"},
            {"a": 95.0},
            100.0,
            [("default", "a1"), ("shop", "a2")],
            {"a": 95.0},
            None,
            id="quarantine-over-at-exactly-now-terminating-included",
        ),
        pytest.param({"a", "b", "c"}, {"a": 10.0}, 100.0, [], {}, None, id="a-node-that-came-back"),
        pytest.param(
            {"a", "b", "c"}, {"z": 10.0}, 100.0, [], {}, None, id="missing-node-without-pods"
        ),
        pytest.param(
            {"a"},
            {"b": 10.0, "c": 98.0},
            100.0,
            [("default", "b1")],
            {"b": 10.0, "c": 98.0},
            103.0,
            id="only-the-due-node-and-the-next-one-to-wait-for",
        ),
        pytest.param(
            set(),
            {},
            100.0,
            [],
            {"a": 100.0, "b": 100.0, "c": 100.0},
            105.0,
            id="unbound-pods-are-never-orphans",
        ),
    ],
)
def test_orphans(
    existing: set[str],
    missing: dict[str, float],
    now: float,
    deleted: list[tuple[str, str]],
    remembered: dict[str, float],
    recheck: float | None,
) -> None:
    plan = plan_pod_gc(PODS, existing, missing, now=now, quarantine=QUARANTINE)
    assert list(plan.delete) == deleted
    assert dict(plan.missing_since) == remembered
    assert plan.recheck_at == recheck


def test_zero_quarantine_deletes_at_once() -> None:
    plan = plan_pod_gc(PODS, {"a", "b"}, {}, now=100.0, quarantine=0.0)
    assert plan.delete == (("default", "c1"),)


def _pods(nodes: list[str]) -> list[objects_pb2.Pod]:
    return [make_pod(f"p{i}", node=node) for i, node in enumerate(nodes)]


@given(
    st.lists(st.sampled_from(["", "a", "b", "c", "d"]), max_size=12),
    st.sets(st.sampled_from("abcd")),
    st.dictionaries(st.sampled_from("abcd"), st.floats(0, 1000, allow_nan=False)),
    st.floats(0, 1000, allow_nan=False),
    st.floats(0, 100, allow_nan=False),
)
def test_only_pods_of_missing_nodes_go_and_waking_when_told_finds_them_due(
    nodes: list[str],
    existing: set[str],
    missing: dict[str, float],
    now: float,
    quarantine: float,
) -> None:
    pods = _pods(nodes)
    plan = plan_pod_gc(pods, existing, missing, now=now, quarantine=quarantine)
    by_key = {(p.metadata.namespace, p.metadata.name): p for p in pods}
    for key in plan.delete:
        node = by_key[key].spec.node_name
        assert node and node not in existing
        assert plan.missing_since[node] + quarantine <= now
    assert all(since <= max(now, missing.get(n, now)) for n, since in plan.missing_since.items())
    if plan.recheck_at is not None:
        assert plan.recheck_at > now
        later = plan_pod_gc(
            pods, existing, plan.missing_since, now=plan.recheck_at, quarantine=quarantine
        )
        assert len(later.delete) > len(plan.delete)
    else:
        # Nothing waits: every pod of a missing node is deleted now.
        assert {k for k, p in by_key.items() if p.spec.node_name in plan.missing_since} == set(
            plan.delete
        )
