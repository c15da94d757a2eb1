"""Scheduling: filters, spreading, order, and the FailedScheduling message."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubelab.testing.pods import make_pod
from kubelab.v1 import objects_pb2
from services.controller.logic.scheduling import Binding, NodeInfo, schedule, why_unschedulable


def node(name: str, *, ready: bool = True, schedulable: bool = True, **labels: str) -> NodeInfo:
    return NodeInfo(name, ready, schedulable, {"kubernetes.io/hostname": name, **labels})


THREE = [node("n1"), node("n2"), node("n3")]


def replicas(count: int, *, uid: str = "web", start: int = 0) -> list[objects_pb2.Pod]:
    return [
        make_pod(f"{uid}-{i}", owner_uid=uid, labels={"app": uid}, created=float(i))
        for i in range(start, start + count)
    ]


def placement(bindings: Sequence[Binding]) -> dict[str, int]:
    return dict(sorted(Counter(b.node for b in bindings).items()))


@pytest.mark.parametrize(
    ("pending", "nodes", "bound", "expected"),
    [
        pytest.param(replicas(4), THREE, [], {"n1": 2, "n2": 1, "n3": 1}, id="4-over-3"),
        pytest.param(replicas(30), THREE, [], {"n1": 10, "n2": 10, "n3": 10}, id="30-over-3"),
        pytest.param(
            replicas(2, start=4),
            THREE,
            [make_pod("web-0", owner_uid="web", node=n) for n in ("n1", "n1", "n2", "n3")],
            {"n2": 1, "n3": 1},
            id="scale-4-to-6-fills-the-thin-nodes",
        ),
        pytest.param(
            replicas(1),
            THREE,
            [make_pod("other", owner_uid="db", node="n1")],
            {"n2": 1},
            id="fewest-pods-in-total-breaks-a-tie",
        ),
        pytest.param(
            replicas(1),
            THREE,
            [make_pod(f"db-{i}", owner_uid="db", node="n1") for i in range(5)]
            + [make_pod("web-x", owner_uid="web", node=n) for n in ("n2", "n3")],
            {"n1": 1},
            id="own-group-first-whatever-else-runs",
        ),
        pytest.param(
            replicas(3),
            [node("n1"), node("n2", ready=False), node("n3", schedulable=False)],
            [],
            {"n1": 3},
            id="only-ready-schedulable-nodes",
        ),
        pytest.param(
            replicas(2),
            THREE,
            [make_pod("web-old", owner_uid="web", node="n1", deleted=1.0)],
            {"n2": 1, "n3": 1},
            id="terminating-bound-pods-still-count",
        ),
        pytest.param(
            replicas(1),
            THREE,
            [make_pod("web-done", owner_uid="web", node="n1", phase="Failed")],
            {"n1": 1},
            id="finished-bound-pods-do-not-count",
        ),
        pytest.param(
            [make_pod(f"bare-{i}", labels={"app": "bare"}) for i in range(3)],
            THREE,
            [],
            {"n1": 1, "n2": 1, "n3": 1},
            id="bare-pods-spread-by-label-set",
        ),
        pytest.param(
            [make_pod("bare", labels={"app": "a"})],
            THREE,
            [
                make_pod("x", labels={"app": "a"}, node="n1", namespace="other"),
                make_pod("y", labels={"app": "b"}, node="n2"),
            ],
            {"n3": 1},
            id="bare-groups-are-per-namespace-and-labels",
        ),
    ],
)
def test_spreading(
    pending: list[objects_pb2.Pod],
    nodes: list[NodeInfo],
    bound: list[objects_pb2.Pod],
    expected: dict[str, int],
) -> None:
    assert placement(schedule(pending, nodes, bound)) == expected


@pytest.mark.parametrize(
    ("pod", "nodes", "expected"),
    [
        pytest.param(
            make_pod("p", node_selector={"kubernetes.io/hostname": "n2"}),
            THREE,
            ["n2"],
            id="hostname-selector",
        ),
        pytest.param(
            make_pod("p", node_selector={"disk": "ssd"}),
            [node("n1"), node("n2", disk="ssd"), node("n3", disk="hdd")],
            ["n2"],
            id="label-selector",
        ),
        pytest.param(
            make_pod("p", node_selector={"disk": "ssd", "zone": "a"}),
            [node("n1", disk="ssd"), node("n2", disk="ssd", zone="a")],
            ["n2"],
            id="every-selector-label-must-match",
        ),
        pytest.param(make_pod("p", node_selector={"disk": "ssd"}), THREE, [], id="no-match"),
        pytest.param(make_pod("p", node="n1"), THREE, [], id="already-bound"),
        pytest.param(make_pod("p", deleted=1.0), THREE, [], id="terminating"),
        pytest.param(make_pod("p", phase="Succeeded"), THREE, [], id="finished"),
        pytest.param(make_pod("p"), [], [], id="no-nodes"),
    ],
)
def test_which_pods_and_nodes(
    pod: objects_pb2.Pod, nodes: list[NodeInfo], expected: list[str]
) -> None:
    assert [b.node for b in schedule([pod], nodes, [])] == expected


def test_bindings_name_the_pod_oldest_first() -> None:
    young = make_pod("a-young", namespace="ns", created=20.0)
    old = make_pod("z-old", namespace="ns", created=10.0)
    assert schedule([young, old], [node("n1")], []) == [
        Binding("ns", "z-old", "n1"),
        Binding("ns", "a-young", "n1"),
    ]


@pytest.mark.parametrize(
    ("pod", "nodes", "message"),
    [
        pytest.param(
            make_pod("p", node_selector={"disk": "ssd"}),
            THREE,
            "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.",
            id="selector",
        ),
        pytest.param(
            make_pod("p", node_selector={"disk": "ssd"}),
            [node("n1", schedulable=False), node("n2", ready=False), node("n3")],
            "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
            "1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, "
            "1 node(s) were unschedulable.",
            id="one-reason-per-node-sorted",
        ),
        pytest.param(
            make_pod("p"),
            [node("n1", schedulable=False, ready=False), node("n2", schedulable=False)],
            "0/2 nodes are available: 2 node(s) were unschedulable.",
            id="cordon-reported-before-not-ready",
        ),
        pytest.param(make_pod("p"), [], "no nodes available to schedule pods", id="no-nodes"),
    ],
)
def test_why_unschedulable(pod: objects_pb2.Pod, nodes: list[NodeInfo], message: str) -> None:
    assert schedule([pod], nodes, []) == []
    assert why_unschedulable(pod, nodes) == message


# ---------------------------------------------------------------- properties

_NODES = st.lists(
    st.builds(
        node,
        st.sampled_from(["n1", "n2", "n3", "n4", "n5"]),
        ready=st.booleans(),
        schedulable=st.booleans(),
        disk=st.sampled_from(["ssd", "hdd"]),
    ),
    max_size=5,
    unique_by=lambda n: n.name,
)
_PODS = st.lists(
    st.builds(
        lambda i, owner, disk, created: make_pod(
            f"p{i}",
            owner_uid=owner,
            node_selector={"disk": disk} if disk else None,
            created=created,
        ),
        st.integers(0, 10**6),
        st.sampled_from(["a", "b"]),
        st.sampled_from(["", "ssd", "hdd"]),
        st.sampled_from([1.0, 2.0, 3.0]),
    ),
    max_size=25,
    unique_by=lambda p: p.metadata.name,
)


def _fits(pod: objects_pb2.Pod, n: NodeInfo) -> bool:
    selector = pod.spec.node_selector
    return n.ready and n.schedulable and all(n.labels.get(k) == v for k, v in selector.items())


@given(_PODS, _NODES, st.randoms(use_true_random=False))
def test_every_pod_that_fits_somewhere_is_bound_to_a_node_it_fits(
    pods: list[objects_pb2.Pod], nodes: list[NodeInfo], shuffler: random.Random
) -> None:
    bindings = schedule(pods, nodes, [])
    by_name = {n.name: n for n in nodes}
    placed = {b.pod: b.node for b in bindings}
    for pod in pods:
        if any(_fits(pod, n) for n in nodes):
            assert _fits(pod, by_name[placed[pod.metadata.name]])
        else:
            assert pod.metadata.name not in placed
            assert why_unschedulable(pod, nodes).startswith(("0/", "no nodes"))
    shuffled = list(pods)
    shuffler.shuffle(shuffled)
    assert schedule(shuffled, nodes, []) == bindings


@given(st.integers(0, 40), st.integers(1, 5), st.integers(0, 40))
def test_one_owner_is_spread_evenly_over_equal_nodes(
    count: int, node_count: int, others: int
) -> None:
    nodes = [node(f"n{i}") for i in range(node_count)]
    # Other owners' pods on the first node change nothing for this owner's spread.
    bound = [make_pod(f"db-{i}", owner_uid="db", node="n0") for i in range(others)]
    per_node = Counter(b.node for b in schedule(replicas(count), nodes, bound))
    spread = [per_node[n.name] for n in nodes]
    assert sum(spread) == count
    assert max(spread) - min(spread) <= 1
