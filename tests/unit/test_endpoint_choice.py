"""Which endpoint a new connection goes to: candidates, round robin, affinity, suspects.

Kubernetes is the reference for the candidates (kube-proxy's `CategorizeEndpoints`:
the ready endpoints, else the serving-and-terminating ones; a Local policy applies
the same rule to this node's endpoints and never falls back to another node's) and
for `sessionAffinity: ClientIP` (sticky while the client comes back within the
timeout, measured from its last new connection). Suspects and `exclude` are
kubelab's own. The clock is injected everywhere: nothing here sleeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubelab.core.endpoint_choice import Backend, Balancer, Target, candidates

NODES = ("n1", "n2", "n3")


def t(n: int, port: int = 8080) -> Target:
    return Target(f"10.244.0.{n}", port)


def be(
    n: int,
    *,
    node: str = "n1",
    ready: bool = True,
    serving: bool | None = None,
    terminating: bool = False,
) -> Backend:
    """Endpoint `n`; `serving` defaults to `ready`, as the slice controller writes it."""
    return Backend(
        target=t(n),
        node=node,
        ready=ready,
        serving=ready if serving is None else serving,
        terminating=terminating,
        pod=f"default/pod-{n}",
    )


def not_ready(n: int, *, node: str = "n1") -> Backend:
    return be(n, node=node, ready=False)


def draining(n: int, *, node: str = "n1") -> Backend:
    """A terminating pod that still passes its readiness probe."""
    return be(n, node=node, ready=False, serving=True, terminating=True)


def gone(n: int, *, node: str = "n1") -> Backend:
    """A terminating pod that no longer passes its readiness probe."""
    return be(n, node=node, ready=False, serving=False, terminating=True)


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def balancer(
    backends: Sequence[Backend], *, affinity: float | None = None, clock: FakeClock | None = None
) -> Balancer:
    b = Balancer(affinity_timeout=affinity, clock=clock or FakeClock())
    b.update(backends, affinity_timeout=affinity)
    return b


def picks(b: Balancer, count: int, client: str = "10.0.0.1", **kwargs: Any) -> list[Target | None]:
    return [b.pick(client, **kwargs) for _ in range(count)]


def test_target_prints_as_address_and_port() -> None:
    assert str(Target("10.244.1.7", 8080)) == "10.244.1.7:8080"


# ---------------------------------------------------------------- candidates


@pytest.mark.parametrize(
    ("backends", "node", "expected"),
    [
        pytest.param([], None, [], id="none"),
        pytest.param([be(1), be(2), be(3)], None, [1, 2, 3], id="all-ready-in-order"),
        pytest.param([be(1), not_ready(2), be(3)], None, [1, 3], id="not-ready-left-out"),
        pytest.param(
            [draining(1), be(2), draining(3)],
            None,
            [2],
            id="serving-terminating-unused-while-one-is-ready",
        ),
        pytest.param(
            [draining(1), not_ready(2), draining(3), gone(4)],
            None,
            [1, 3],
            id="none-ready-falls-back-to-serving-terminating",
        ),
        pytest.param([gone(1), not_ready(2)], None, [], id="none-ready-none-serving"),
        pytest.param(
            [be(1, ready=False, serving=True, terminating=False)],
            None,
            [],
            id="serving-but-not-terminating-is-no-fallback",
        ),
        pytest.param(
            [be(1, ready=True, terminating=True), draining(2)],
            None,
            [1],
            id="ready-counts-even-when-terminating",
        ),
        pytest.param(
            [be(1, node="n1"), be(2, node="n2"), be(3, node="n1")],
            "n1",
            [1, 3],
            id="local-only-this-node",
        ),
        pytest.param(
            [be(1, node="n2"), draining(2, node="n1")],
            "n1",
            [2],
            id="local-falls-back-to-local-serving-terminating-not-remote-ready",
        ),
        pytest.param(
            [be(1, node="n2"), be(2, node="n3")], "n1", [], id="local-never-uses-another-node"
        ),
        pytest.param(
            [not_ready(1, node="n1"), be(2, node="n2")],
            "n1",
            [],
            id="local-not-ready-is-not-rescued-by-remote",
        ),
        pytest.param(
            [draining(1, node="n1"), be(2, node="n1"), be(3, node="n2")],
            "n1",
            [2],
            id="local-ready-beats-local-serving-terminating",
        ),
        pytest.param(
            [draining(1, node="n2"), be(2, node="n1")],
            None,
            [2],
            id="cluster-ready-anywhere-beats-serving-terminating",
        ),
    ],
)
def test_candidates(backends: list[Backend], node: str | None, expected: list[int]) -> None:
    assert [c.target for c in candidates(backends, node)] == [t(n) for n in expected]


_CONDITIONS = st.tuples(st.sampled_from(NODES), st.booleans(), st.booleans(), st.booleans())
BACKENDS = st.lists(_CONDITIONS, max_size=8).map(
    lambda rows: [
        Backend(t(i), node, ready, serving, terminating)
        for i, (node, ready, serving, terminating) in enumerate(rows)
    ]
)
NODE_FILTER = st.sampled_from([None, *NODES])


@settings(max_examples=150, deadline=None)
@given(BACKENDS, NODE_FILTER)
def test_candidates_follow_categorize_endpoints(backends: list[Backend], node: str | None) -> None:
    chosen = candidates(backends, node)
    pool = [b for b in backends if node is None or b.node == node]
    ready = [b for b in pool if b.ready]
    # A subsequence of the input, in its order.
    assert [b for b in backends if b in chosen] == list(chosen)
    if node is not None:
        assert all(b.node == node for b in chosen)
    if ready:
        assert list(chosen) == ready
    else:
        assert list(chosen) == [b for b in pool if b.serving and b.terminating]
    # Never a not-ready endpoint while this pool has a ready one.
    assert not (ready and any(not b.ready for b in chosen))


# ---------------------------------------------------------------- round robin


def test_round_robin_cycles_in_order() -> None:
    b = balancer([be(1), be(2), be(3)])
    assert picks(b, 7) == [t(1), t(2), t(3), t(1), t(2), t(3), t(1)]


@pytest.mark.parametrize(
    ("backends", "expected"),
    [
        pytest.param([], None, id="no-endpoints"),
        pytest.param([not_ready(1), gone(2)], None, id="nothing-serving"),
        pytest.param([not_ready(1), be(2)], t(2), id="the-only-ready-one"),
        pytest.param([gone(1), draining(2)], t(2), id="serving-terminating-fallback"),
    ],
)
def test_pick_uses_candidates_only(backends: list[Backend], expected: Target | None) -> None:
    b = balancer(backends)
    assert picks(b, 4) == [expected] * 4


def test_no_client_affinity_without_timeout() -> None:
    b = balancer([be(1), be(2)])
    assert picks(b, 4, client="10.0.0.9") == [t(1), t(2), t(1), t(2)]


def test_local_pick_never_uses_another_node() -> None:
    b = balancer([be(1, node="n1"), be(2, node="n2"), be(3, node="n1")])
    assert picks(b, 4, node="n1") == [t(1), t(3), t(1), t(3)]
    assert picks(b, 2, node="n2") == [t(2), t(2)]
    assert b.pick("10.0.0.1", node="n3") is None


def test_each_pool_keeps_its_own_turn() -> None:
    """Cluster-wide picks in between do not skip anyone in a Local pool's rotation."""
    b = balancer([be(1, node="n1"), be(2, node="n2"), be(3, node="n1"), be(4, node="n2")])
    local = []
    for _ in range(4):
        local.append(b.pick("10.0.0.1", node="n1"))
        b.pick("10.0.0.1")
    assert local == [t(1), t(3), t(1), t(3)]


def test_update_takes_the_new_endpoint_set() -> None:
    b = balancer([be(1), be(2)])
    assert b.pool() == (t(1), t(2))
    b.update([be(2), not_ready(1), be(3)], affinity_timeout=None)
    assert b.pool() == (t(2), t(3))
    assert set(picks(b, 4)) == {t(2), t(3)}
    assert b.backends == (be(2), not_ready(1), be(3))
    b.update([], affinity_timeout=None)
    assert b.pick("10.0.0.1") is None


@settings(max_examples=100, deadline=None)
@given(size=st.integers(1, 8), warmup=st.integers(0, 20), start=st.integers(0, 20))
def test_round_robin_visits_every_ready_endpoint_once_per_round(
    size: int, warmup: int, start: int
) -> None:
    b = balancer([be(n) for n in range(size)])
    for _ in range(warmup):
        b.pick(f"10.0.1.{start % 250}")
    window = picks(b, size, client=f"10.0.2.{start % 250}")
    assert sorted(window, key=str) == sorted((t(n) for n in range(size)), key=str)


@settings(max_examples=100, deadline=None)
@given(rows=BACKENDS, node=NODE_FILTER, count=st.integers(1, 12))
def test_a_pick_is_always_a_candidate(rows: list[Backend], node: str | None, count: int) -> None:
    b = balancer(rows)
    pool = {c.target for c in candidates(rows, node)}
    for target in picks(b, count, node=node):
        if pool:
            assert target in pool
        else:
            assert target is None


# ---------------------------------------------------------------- exclude


def test_exclude_skips_endpoints_the_connection_already_failed() -> None:
    b = balancer([be(1), be(2), be(3)])
    assert picks(b, 4, exclude={t(1)}) == [t(2), t(3), t(2), t(3)]
    assert b.pick("10.0.0.1", exclude=[t(1), t(3)]) == t(2)


def test_exclude_everything_is_none() -> None:
    b = balancer([be(1), be(2)])
    assert b.pick("10.0.0.1", exclude=(t(1), t(2))) is None


def test_exclude_is_not_remembered() -> None:
    b = balancer([be(1), be(2)])
    assert b.pick("10.0.0.1", exclude={t(1)}) == t(2)
    assert picks(b, 2) == [t(1), t(2)]
    assert b.suspects == frozenset()


# ---------------------------------------------------------------- suspects


def test_suspect_is_skipped_while_another_candidate_exists() -> None:
    b = balancer([be(1), be(2), be(3)])
    b.connect_failed(t(2))
    assert b.suspects == {t(2)}
    assert picks(b, 6) == [t(1), t(3)] * 3


def test_suspects_are_tried_when_nothing_else_is_left() -> None:
    b = balancer([be(1), be(2)])
    b.connect_failed(t(1))
    b.connect_failed(t(2))
    assert all(p in (t(1), t(2)) for p in picks(b, 3))


def test_suspect_is_tried_when_the_others_are_excluded() -> None:
    b = balancer([be(1), be(2), be(3)])
    b.connect_failed(t(3))
    assert b.pick("10.0.0.1", exclude={t(1), t(2)}) == t(3)
    assert b.pick("10.0.0.1", exclude={t(1), t(2), t(3)}) is None


def test_a_successful_connect_clears_a_suspect() -> None:
    b = balancer([be(1), be(2)])
    b.connect_failed(t(1))
    assert picks(b, 2) == [t(2), t(2)]
    b.connected(t(1))
    assert b.suspects == frozenset()
    assert set(picks(b, 2)) == {t(1), t(2)}


@pytest.mark.parametrize(
    ("after", "still_suspect"),
    [
        pytest.param([be(1), be(2)], True, id="unchanged-stays-suspect"),
        pytest.param([be(2), be(1)], True, id="reordered-stays-suspect"),
        pytest.param([be(1), be(2), be(3)], True, id="another-endpoint-changed-stays-suspect"),
        pytest.param([not_ready(1), be(2)], False, id="ready-changed-clears"),
        pytest.param([be(1, serving=False), be(2)], False, id="serving-changed-clears"),
        pytest.param([be(1, terminating=True), be(2)], False, id="terminating-changed-clears"),
        pytest.param([be(1, node="n2"), be(2)], False, id="node-changed-clears"),
        pytest.param([be(2)], False, id="removed-clears"),
    ],
)
def test_update_clears_suspects_whose_conditions_changed(
    after: list[Backend], still_suspect: bool
) -> None:
    b = balancer([be(1), be(2)])
    b.connect_failed(t(1))
    b.update(after, affinity_timeout=None)
    assert (t(1) in b.suspects) is still_suspect


def test_a_removed_suspect_comes_back_clean() -> None:
    b = balancer([be(1), be(2)])
    b.connect_failed(t(1))
    b.update([be(2)], affinity_timeout=None)
    b.update([be(1), be(2)], affinity_timeout=None)
    assert b.suspects == frozenset()
    assert set(picks(b, 2)) == {t(1), t(2)}


def test_a_suspect_unknown_to_the_balancer_goes_at_the_next_update() -> None:
    b = balancer([be(1)])
    b.connect_failed(t(9))
    assert t(9) in b.suspects
    b.update([be(1), be(9)], affinity_timeout=None)
    assert b.suspects == frozenset()


@settings(max_examples=100, deadline=None)
@given(
    rows=BACKENDS,
    before=st.lists(_CONDITIONS, max_size=8),
    failed=st.sets(st.integers(0, 9)),
)
def test_suspects_survive_an_update_exactly_when_their_endpoint_is_unchanged(
    rows: list[Backend], before: list[tuple[str, bool, bool, bool]], failed: set[int]
) -> None:
    old = [Backend(t(i), *row) for i, row in enumerate(before)]
    b = balancer(old)
    for n in failed:
        b.connect_failed(t(n))
    b.update(rows, affinity_timeout=None)
    old_by_target = {x.target: x for x in old}
    new_by_target = {x.target: x for x in rows}
    assert b.suspects == {
        t(n)
        for n in failed
        if t(n) in old_by_target and old_by_target[t(n)] == new_by_target.get(t(n))
    }


# ---------------------------------------------------------------- affinity


def test_affinity_keeps_a_client_on_its_endpoint() -> None:
    b = balancer([be(1), be(2), be(3)], affinity=60)
    first = b.pick("10.0.0.1")
    second = b.pick("10.0.0.2")
    assert first != second
    assert picks(b, 5, client="10.0.0.1") == [first] * 5
    assert picks(b, 5, client="10.0.0.2") == [second] * 5


def test_affinity_timeout_runs_from_the_last_new_connection() -> None:
    clock = FakeClock(0.0)
    b = balancer([be(1), be(2)], affinity=10, clock=clock)
    assert b.pick("c") == t(1)
    clock.now = 9.0
    assert b.pick("c") == t(1)
    clock.now = 18.0  # 18 s after the first, 9 s after the last: still sticky
    assert b.pick("c") == t(1)
    clock.now = 28.5  # 10.5 s after the last: free again, round robin moves on
    assert b.pick("c") == t(2)
    clock.now = 30.0
    assert b.pick("c") == t(2)  # and sticks to the new one


def test_a_lowered_affinity_timeout_applies_to_clients_already_pinned() -> None:
    clock = FakeClock(0.0)
    b = balancer([be(1), be(2)], affinity=10800, clock=clock)
    assert b.pick("c") == t(1)
    b.update([be(1), be(2)], affinity_timeout=10)
    clock.now = 11.0
    assert b.pick("c") == t(2), "pinned under the old 3 h timeout, free under the new 10 s"
    clock.now = 30.0
    assert b.expire_affinity() == 1


def test_affinity_gives_way_when_its_endpoint_stops_being_a_candidate() -> None:
    clock = FakeClock()
    b = balancer([be(1), be(2)], affinity=60, clock=clock)
    assert b.pick("c") == t(1)
    b.update([not_ready(1), be(2)], affinity_timeout=60)
    assert b.pick("c") == t(2)
    b.update([be(1), be(2)], affinity_timeout=60)
    assert picks(b, 3, client="c") == [t(2)] * 3  # re-pinned to where it went


def test_affinity_gives_way_to_a_suspect_and_to_exclude() -> None:
    b = balancer([be(1), be(2), be(3)], affinity=60)
    assert b.pick("c") == t(1)
    b.connect_failed(t(1))
    moved = b.pick("c")
    assert moved in (t(2), t(3))
    assert b.pick("c", exclude={moved}) not in (moved, None)


def test_affinity_does_not_cross_the_local_filter() -> None:
    b = balancer([be(1, node="n1"), be(2, node="n2")], affinity=60)
    assert b.pick("c") == t(1)
    assert b.pick("c", node="n2") == t(2)


def test_turning_affinity_off_forgets_every_client() -> None:
    clock = FakeClock()
    b = balancer([be(1), be(2)], affinity=60, clock=clock)
    assert b.pick("c") == t(1)
    b.update([be(1), be(2)], affinity_timeout=None)
    assert b.affinity_timeout is None
    assert b.expire_affinity() == 0
    clock.now += 1
    assert picks(b, 2, client="c") == [t(2), t(1)]
    b.update([be(1), be(2)], affinity_timeout=60)
    assert picks(b, 2, client="c") == [t(2), t(2)]  # a fresh pin, not the old one


def test_expire_affinity_sweeps_only_expired_clients() -> None:
    clock = FakeClock(0.0)
    b = balancer([be(1), be(2), be(3)], affinity=10, clock=clock)
    b.pick("a")
    clock.now = 4.0
    b.pick("b")
    clock.now = 8.0
    b.pick("c")
    assert b.expire_affinity() == 0
    clock.now = 14.0  # a's pin ran out at 10, b's at exactly 14
    assert b.expire_affinity() == 2
    assert b.expire_affinity() == 0
    clock.now = 100.0
    assert b.expire_affinity() == 1


def test_no_affinity_records_nothing_to_expire() -> None:
    clock = FakeClock()
    b = balancer([be(1), be(2)], clock=clock)
    picks(b, 5)
    clock.now += 1e6
    assert b.expire_affinity() == 0


# ---------------------------------------------------------------- a random workload


CLIENTS = ("c1", "c2", "c3")
_OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("pick"),
            st.sampled_from(CLIENTS),
            NODE_FILTER,
            st.sets(st.integers(0, 7), max_size=3),
        ),
        st.tuples(st.just("fail"), st.integers(0, 7)),
        st.tuples(st.just("ok"), st.integers(0, 7)),
        st.tuples(st.just("tick"), st.sampled_from([0.5, 3.0, 7.0, 20.0])),
        st.tuples(st.just("update"), BACKENDS, st.sampled_from([None, 10.0])),
        st.tuples(st.just("expire")),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(first=BACKENDS, affinity=st.sampled_from([None, 10.0]), ops=_OPS)
def test_random_workload_keeps_every_promise(
    first: list[Backend], affinity: float | None, ops: list[tuple[Any, ...]]
) -> None:
    """Any mix of picks, failures, successes, updates, time and sweeps: a pick is a
    candidate, honours exclude, avoids suspects while it can, and keeps affinity."""
    clock = FakeClock(0.0)
    b = balancer(first, affinity=affinity, clock=clock)
    backends = first
    pinned: dict[str, tuple[Target, float]] = {}  # client -> (target, until)
    for op in ops:
        if op[0] == "pick":
            _, client, node, excluded = op
            exclude = {t(n) for n in excluded}
            suspects = b.suspects
            allowed = [c.target for c in candidates(backends, node) if c.target not in exclude]
            chosen = b.pick(client, node=node, exclude=exclude)
            if not allowed:
                assert chosen is None
                continue
            assert chosen in allowed
            if chosen in suspects:
                assert set(allowed) <= suspects
            pin = pinned.get(client)
            if (
                affinity is not None
                and pin is not None
                and clock.now < pin[1]
                and pin[0] in allowed
                and pin[0] not in suspects
            ):
                assert chosen == pin[0]
            if affinity is not None:
                pinned[client] = (chosen, clock.now + affinity)
        elif op[0] == "fail":
            b.connect_failed(t(op[1]))
            assert t(op[1]) in b.suspects
        elif op[0] == "ok":
            b.connected(t(op[1]))
            assert t(op[1]) not in b.suspects
        elif op[0] == "tick":
            clock.now += op[1]
        elif op[0] == "update":
            backends, affinity = op[1], op[2]
            b.update(backends, affinity_timeout=affinity)
            if affinity is None:
                pinned.clear()
        else:
            b.expire_affinity()


@settings(max_examples=100, deadline=None)
@given(
    size=st.integers(1, 6),
    steps=st.lists(st.tuples(st.sampled_from(CLIENTS), st.floats(0, 9.5)), max_size=30),
)
def test_a_client_within_its_timeout_always_gets_the_same_endpoint(
    size: int, steps: list[tuple[str, float]]
) -> None:
    clock = FakeClock(0.0)
    b = balancer([be(n) for n in range(size)], affinity=10, clock=clock)
    pinned: dict[str, tuple[Target, float]] = {}
    for client, gap in steps:
        clock.now += gap
        got = b.pick(client)
        assert got is not None
        pin = pinned.get(client)
        if pin is not None and clock.now < pin[1]:
            assert got == pin[0]
        pinned[client] = (got, clock.now + 10)


@settings(max_examples=100, deadline=None)
@given(
    rows=BACKENDS,
    clients=st.lists(st.tuples(st.sampled_from(CLIENTS), st.floats(0, 15)), max_size=25),
)
def test_sweeping_never_changes_a_pick(
    rows: list[Backend], clients: list[tuple[str, float]]
) -> None:
    """expire_affinity only drops what pick would ignore anyway."""
    clock_a, clock_b = FakeClock(0.0), FakeClock(0.0)
    swept = balancer(rows, affinity=10, clock=clock_a)
    kept = balancer(rows, affinity=10, clock=clock_b)
    for client, gap in clients:
        clock_a.now += gap
        clock_b.now += gap
        swept.expire_affinity()
        assert swept.pick(client) == kept.pick(client)
