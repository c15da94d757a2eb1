"""Event correlation (count repeats within a window, drop spam), the notes actors record,
and the TTL lease reuse: table-driven and with hypothesis."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubelab.core import event_notes as notes
from kubelab.core.events import (
    Correlator,
    Occurrence,
    Source,
    event_name,
    reference,
)
from kubelab.store import Lease
from kubelab.store.ttl_leases import TtlLeases
from kubelab.v1 import meta_pb2, objects_pb2

T0 = 1_700_000_000.0


def ref(
    name: str = "shop-1", uid: str = "u1", kind: str = "Pod", ns: str = "default"
) -> meta_pb2.ObjectReference:
    return meta_pb2.ObjectReference(kind=kind, name=name, namespace=ns, uid=uid, api_version="v1")


def occ(
    reason: str = "Unhealthy",
    message: str = "probe failed",
    involved: meta_pb2.ObjectReference | None = None,
) -> Occurrence:
    return Occurrence(involved or ref(), "Warning", reason, message)


def correlator(**options: float) -> Correlator:
    return Correlator(Source("kubelet", "node-1"), **options)  # type: ignore[arg-type]


# ---------------------------------------------------------------- correlation, by table


@pytest.mark.parametrize(
    ("second", "delay", "same"),
    [
        pytest.param(occ(), 1.0, True, id="repeat-counts-up"),
        pytest.param(occ(), 599.0, True, id="repeat-just-inside-the-window"),
        pytest.param(occ(), 601.0, False, id="repeat-after-the-window-is-new"),
        pytest.param(occ(message="other"), 1.0, False, id="another-message"),
        pytest.param(occ(reason="BackOff"), 1.0, False, id="another-reason"),
        pytest.param(occ(involved=ref(uid="u2")), 1.0, False, id="another-uid"),
        pytest.param(occ(involved=ref(name="shop-2")), 1.0, False, id="another-object"),
    ],
)
def test_what_counts_as_the_same_event(second: Occurrence, delay: float, same: bool) -> None:
    c = correlator()
    first = c.observe(occ(), T0)
    again = c.observe(second, T0 + delay)
    assert first is not None and again is not None
    assert (again.metadata.name == first.metadata.name) is same
    assert again.count == (2 if same else 1)
    assert again.first_timestamp.seconds == (int(T0) if same else int(T0 + delay))
    assert again.last_timestamp.seconds == int(T0 + delay)


def test_an_event_carries_its_source_and_kubernetes_shape() -> None:
    event = correlator().observe(occ(), T0)
    assert event is not None
    assert (event.api_version, event.kind) == ("v1", "Event")
    assert event.metadata.namespace == "default"
    assert event.metadata.name.startswith("shop-1.")
    assert (event.source.component, event.source.host) == ("kubelet", "node-1")
    assert (event.reporting_component, event.reporting_instance) == ("kubelet", "node-1")
    assert (event.type, event.reason, event.message) == ("Warning", "Unhealthy", "probe failed")
    assert event.involved_object == ref()


def test_a_cluster_scoped_objects_events_go_to_default() -> None:
    event = correlator().observe(occ(involved=ref(name="node-1", kind="Node", ns="")), T0)
    assert event is not None
    assert event.metadata.namespace == "default"
    assert event.involved_object.namespace == ""


def test_a_long_name_still_makes_a_valid_event_name() -> None:
    name = event_name("a" * 253, int(T0 * 1e9))
    assert len(name) <= 253
    assert name.startswith("a" * 200)


@pytest.mark.parametrize(
    ("burst", "refill", "times", "allowed"),
    [
        pytest.param(3, 300.0, [0, 0, 0, 0], [True, True, True, False], id="burst-then-drop"),
        pytest.param(2, 10.0, [0, 0, 0, 10], [True, True, False, True], id="one-token-back-later"),
        pytest.param(1, 10.0, [0, 5, 10], [True, False, True], id="half-a-token-is-not-one"),
        pytest.param(2, 1.0, [0, 100, 100, 100], [True, True, True, False], id="never-past-burst"),
    ],
)
def test_the_spam_filter(burst: int, refill: float, times: list[int], allowed: list[bool]) -> None:
    c = correlator(burst=burst, refill_seconds=refill)
    got = [c.observe(occ(message=f"m{i}"), T0 + t) is not None for i, t in enumerate(times)]
    assert got == allowed


def test_the_spam_filter_is_per_object() -> None:
    c = correlator(burst=1)
    assert c.observe(occ(involved=ref(name="a", uid="a")), T0) is not None
    assert c.observe(occ(involved=ref(name="a", uid="a")), T0) is None
    assert c.observe(occ(involved=ref(name="b", uid="b")), T0) is not None


def test_the_caches_stay_bounded() -> None:
    c = correlator(cache_size=3, burst=1000)
    first = c.observe(occ(message="m0"), T0)
    for i in range(1, 5):
        c.observe(occ(message=f"m{i}"), T0)
    again = c.observe(occ(message="m0"), T0 + 1)
    assert first is not None and again is not None
    assert again.count == 1  # m0 was evicted: a new event
    assert again.metadata.name != first.metadata.name


# ---------------------------------------------------------------- correlation, by property

keys = st.sampled_from([("Unhealthy", "a"), ("Unhealthy", "b"), ("Started", "a")])


@given(st.lists(st.tuples(keys, st.floats(0, 30)), min_size=1, max_size=40))
def test_counts_add_up_per_event_within_the_window(
    steps: list[tuple[tuple[str, str], float]],
) -> None:
    c = correlator(burst=10_000)
    now = T0
    counts: dict[tuple[str, str], int] = {}
    names: dict[tuple[str, str], str] = {}
    for (reason, message), gap in steps:
        now += gap
        event = c.observe(occ(reason=reason, message=message), now)
        assert event is not None
        counts[(reason, message)] = counts.get((reason, message), 0) + 1
        assert event.count == counts[(reason, message)]
        assert names.setdefault((reason, message), event.metadata.name) == event.metadata.name
        assert event.first_timestamp.seconds <= event.last_timestamp.seconds == int(now)
    assert len(set(names.values())) == len(names)


@settings(max_examples=200)
@given(
    burst=st.integers(1, 10),
    refill=st.floats(1, 100),
    gaps=st.lists(st.floats(0, 50), max_size=60),
)
def test_the_spam_filter_never_lets_through_more_than_it_earned(
    burst: int, refill: float, gaps: list[float]
) -> None:
    c = correlator(burst=burst, refill_seconds=refill)
    now = T0
    allowed = 0
    for i, gap in enumerate(gaps):
        now += gap
        allowed += c.observe(occ(message=str(i)), now) is not None
    assert allowed <= burst + (now - T0) / refill + 1e-9
    # And it never drops while tokens are left: the first `burst` always pass.
    fresh = correlator(burst=burst, refill_seconds=refill)
    assert all(fresh.observe(occ(message=str(i)), T0) is not None for i in range(burst))


# ---------------------------------------------------------------- references and notes


def test_a_reference_names_the_kind_from_the_type_not_the_object() -> None:
    pod = objects_pb2.Pod(
        metadata=meta_pb2.ObjectMeta(name="p", namespace="ns", uid="u", resource_version="7")
    )
    got = reference(pod, field_path="spec.containers{c}")
    assert got == meta_pb2.ObjectReference(
        kind="Pod",
        api_version="v1",
        name="p",
        namespace="ns",
        uid="u",
        resource_version="7",
        field_path="spec.containers{c}",
    )
    deployment = objects_pb2.Deployment(metadata=meta_pb2.ObjectMeta(name="d"))
    assert (reference(deployment).kind, reference(deployment).api_version) == (
        "Deployment",
        "apps/v1",
    )


def _pods(active: int, terminating: int = 0) -> list[objects_pb2.Pod]:
    pods = [objects_pb2.Pod() for _ in range(active + terminating)]
    for pod in pods[active:]:
        pod.metadata.deletion_timestamp.seconds = 1
    return pods


@pytest.mark.parametrize(
    ("owned", "created", "deleted", "message"),
    [
        pytest.param(_pods(0), 2, 0, "Scaled up pods of deployment shop to 2 from 0", id="up"),
        pytest.param(_pods(4), 0, 2, "Scaled down pods of deployment shop to 2 from 4", id="down"),
        pytest.param(
            _pods(2, 3), 2, 0, "Scaled up pods of deployment shop to 4 from 2", id="ignores-leaving"
        ),
        pytest.param(_pods(3), 1, 1, None, id="replaced-one-same-count"),
        pytest.param(_pods(3), 0, 0, None, id="nothing"),
    ],
)
def test_scaling_says_what_kubelab_does(
    owned: list[objects_pb2.Pod], created: int, deleted: int, message: str | None
) -> None:
    note = notes.scaled("shop", owned, [objects_pb2.Pod()] * created, ["x"] * deleted)
    if message is None:
        assert note is None
    else:
        assert note is not None
        assert (note.type, note.reason, note.message) == ("Normal", "ScalingReplicaSet", message)


@pytest.mark.parametrize(
    ("note", "expected"),
    [
        pytest.param(
            notes.scheduled("default", "shop-x", "node-1"),
            ("Normal", "Scheduled", "Successfully assigned default/shop-x to node-1", ""),
            id="scheduled",
        ),
        pytest.param(
            notes.unhealthy("web", "readiness", "HTTP probe failed with statuscode: 503"),
            (
                "Warning",
                "Unhealthy",
                "Readiness probe failed: HTTP probe failed with statuscode: 503",
                "spec.containers{web}",
            ),
            id="unhealthy",
        ),
        pytest.param(
            notes.failed_probe("web", "liveness"),
            (
                "Normal",
                "Killing",
                "Container web failed liveness probe, will be restarted",
                "spec.containers{web}",
            ),
            id="liveness-kill",
        ),
        pytest.param(
            notes.back_off("web", "default", "shop-x", "u1"),
            (
                "Warning",
                "BackOff",
                "Back-off restarting failed container web in pod shop-x_default(u1)",
                "spec.containers{web}",
            ),
            id="back-off",
        ),
        pytest.param(
            notes.node_status("node-1", False),
            ("Normal", "NodeNotReady", "Node node-1 status is now: NodeNotReady", ""),
            id="node-not-ready",
        ),
        pytest.param(
            notes.load_balancer_failed("pool exhausted"),
            (
                "Warning",
                "SyncLoadBalancerFailed",
                "Error syncing load balancer: pool exhausted",
                "",
            ),
            id="lb-failed",
        ),
    ],
)
def test_notes_in_kubernetes_words(note: notes.Note | None, expected: tuple[str, ...]) -> None:
    assert note is not None
    assert (note.type, note.reason, note.message, note.field_path) == expected


def test_notes_that_are_not_worth_an_event() -> None:
    assert notes.unhealthy("web", "readiness", "", failed=False) is None
    assert notes.ensuring_load_balancer(first=False) is None
    assert notes.ensuring_load_balancer() is not None


# ---------------------------------------------------------------- TTL leases


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_lease_is_reused_within_its_window_then_replaced() -> None:
    granted: list[int] = []

    async def grant(ttl: int) -> Lease:
        granted.append(ttl)
        await asyncio.sleep(0)
        return Lease(len(granted), ttl)

    clock = FakeClock()
    leases = TtlLeases(grant, 3600, clock=clock)
    first = await leases.lease()
    assert first.ttl == 3600 + 180  # TTL plus the reuse window (5 %)
    clock.now = 179
    assert await leases.lease() == first
    clock.now = 180
    second = await leases.lease()
    assert second != first
    leases.forget(second)
    assert await leases.lease() not in (first, second)
    assert granted == [3780, 3780, 3780]


async def test_concurrent_writers_share_one_grant() -> None:
    calls = 0

    async def grant(ttl: int) -> Lease:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return Lease(calls, ttl)

    leases = TtlLeases(grant, 60, clock=FakeClock())
    got = await asyncio.gather(*(leases.lease() for _ in range(10)))
    assert calls == 1
    assert len(set(got)) == 1


def test_a_ttl_must_be_positive() -> None:
    async def grant(ttl: int) -> Lease:
        return Lease(1, ttl)

    with pytest.raises(ValueError, match="positive"):
        TtlLeases(grant, 0)
