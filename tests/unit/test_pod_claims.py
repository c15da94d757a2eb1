"""ControllerRef claims: owned pods that stop matching are released, matching orphans adopted,
and a Deployment keeps exactly `replicas` through a relabel out and back."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubelab.core.pods import controller_owner, is_active, to_timestamp
from kubelab.core.selectors import from_match_labels
from kubelab.testing.pods import make_pod
from kubelab.v1 import objects_pb2
from services.controller.logic.deployments import (
    POD_TEMPLATE_HASH,
    DeploymentPlan,
    controller_reference,
    plan_deployment,
    template_hash,
)
from services.controller.logic.pod_claims import claim_pods

UID = "uid-web"
SELECTOR = from_match_labels({"app": "web"})
WEB = {"app": "web"}
OTHER = {"app": "debug"}


def pod(
    name: str,
    labels: dict[str, str],
    *,
    owner: str | None = UID,
    deleted: float | None = None,
    phase: str = "Running",
) -> objects_pb2.Pod:
    return make_pod(name, labels=labels, owner_uid=owner, deleted=deleted, phase=phase, node="n1")


def non_controlling(name: str) -> objects_pb2.Pod:
    orphan = pod(name, WEB, owner=None)
    orphan.metadata.owner_references.add(kind="ConfigMap", name="x", uid="u", controller=False)
    return orphan


@pytest.mark.parametrize(
    ("owned", "orphans", "deleting", "claimed", "adopt", "release"),
    [
        pytest.param([pod("a", WEB)], [], False, ["a"], [], [], id="owned-and-matching"),
        pytest.param(
            [pod("a", WEB), pod("b", OTHER)], [], False, ["a"], [], ["b"], id="relabelled-out"
        ),
        pytest.param(
            [pod("b", OTHER, deleted=5.0)], [], False, [], [], [], id="terminating-not-released"
        ),
        pytest.param(
            [pod("b", OTHER)], [], True, [], [], [], id="a-deleted-controller-releases-nothing"
        ),
        pytest.param(
            [pod("a", WEB)],
            [pod("c", WEB, owner=None), pod("d", OTHER, owner=None)],
            False,
            ["a", "c"],
            ["c"],
            [],
            id="matching-orphan-adopted",
        ),
        pytest.param(
            [],
            [non_controlling("e")],
            False,
            ["e"],
            ["e"],
            [],
            id="non-controller-refs-are-orphans",
        ),
        pytest.param(
            [],
            [pod("c", WEB, owner=None, deleted=5.0), pod("f", WEB, owner=None, phase="Failed")],
            False,
            [],
            [],
            [],
            id="terminating-or-finished-orphans-not-adopted",
        ),
        pytest.param(
            [], [pod("g", WEB, owner="someone-else")], False, [], [], [], id="others-pods-untouched"
        ),
        pytest.param(
            [pod("a", WEB)],
            [pod("c", WEB, owner=None)],
            True,
            ["a"],
            [],
            [],
            id="a-deleted-controller-adopts-nothing",
        ),
    ],
)
def test_claims(
    owned: list[objects_pb2.Pod],
    orphans: list[objects_pb2.Pod],
    deleting: bool,
    claimed: list[str],
    adopt: list[str],
    release: list[str],
) -> None:
    claims = claim_pods(SELECTOR, owned, orphans, deleting=deleting)
    assert [p.metadata.name for p in claims.claimed] == claimed
    assert list(claims.adopt) == adopt
    assert list(claims.release) == release


_POD = st.tuples(
    st.sampled_from([WEB, OTHER, {}]),
    st.sampled_from([UID, None, "someone-else"]),
    st.booleans(),
    st.sampled_from(["Running", "Pending", "Succeeded"]),
)


@given(st.lists(_POD, max_size=12), st.booleans())
def test_claims_never_overlap_and_only_matching_pods_count(
    specs: list[tuple[dict[str, str], str | None, bool, str]], deleting: bool
) -> None:
    pods = [
        pod(f"p{i}", labels, owner=owner, deleted=1.0 if dying else None, phase=phase)
        for i, (labels, owner, dying, phase) in enumerate(specs)
    ]
    owned = [p for p in pods if (ref := controller_owner(p)) is not None and ref.uid == UID]
    orphans = [p for p in pods if p not in owned]  # others' pods too: they must be ignored
    claims = claim_pods(SELECTOR, owned, orphans, deleting=deleting)
    claimed = {p.metadata.name for p in claims.claimed}
    assert all(SELECTOR.matches(p.metadata.labels) for p in claims.claimed)
    assert not claimed & set(claims.release)
    assert set(claims.adopt) <= claimed
    by_name = {p.metadata.name: p for p in pods}
    for name in claims.adopt:
        assert controller_owner(by_name[name]) is None and is_active(by_name[name])
    for name in claims.release:
        assert by_name[name] in owned
    if deleting:
        assert not claims.adopt and not claims.release


# ---------------------------------------------------------------- a Deployment's story


def web(replicas: int) -> objects_pb2.Deployment:
    d = objects_pb2.Deployment(api_version="apps/v1", kind="Deployment")
    d.metadata.name = "web"
    d.metadata.namespace = "default"
    d.metadata.uid = UID
    d.spec.replicas = replicas
    d.spec.selector.match_labels.update(WEB)
    d.spec.template.metadata.labels.update(WEB)
    d.spec.template.spec.containers.add(name="app", image="v1")
    return d


def test_relabelled_out_and_back_keeps_exactly_replicas() -> None:
    """4 replicas; one pod relabelled out is released and replaced; relabelled back it is
    adopted and the least valuable pod (the replacement, ready the shortest time) goes."""
    d = web(4)
    current = template_hash(d.spec.template)
    labels = {**WEB, POD_TEMPLATE_HASH: current}
    pods = {
        name: make_pod(
            name,
            labels=labels,
            owner_uid=UID,
            node="n1",
            phase="Running",
            created=1.0,
            ready_since=2.0,
        )
        for name in ("a", "b", "c", "d")
    }

    def plan(now: float) -> DeploymentPlan:
        owned = [p for p in pods.values() if (r := controller_owner(p)) and r.uid == UID]
        orphans = [p for p in pods.values() if controller_owner(p) is None]
        return plan_deployment(d, owned, now=now, rng=random.Random(1), orphans=orphans)

    pods["a"].metadata.labels["app"] = "debug"
    step = plan(10.0)
    assert step.release == ("a",) and len(step.create) == 1 and not step.adopt
    del pods["a"].metadata.owner_references[:]
    (replacement,) = step.create
    made = objects_pb2.Pod()
    made.CopyFrom(replacement)
    made.spec.node_name = "n1"
    made.status.phase = "Running"
    made.metadata.creation_timestamp.CopyFrom(to_timestamp(10.0))
    made.status.conditions.add(type="Ready", status="True", last_transition_time=to_timestamp(11))
    pods[made.metadata.name] = made
    assert plan(12.0).empty

    pods["a"].metadata.labels["app"] = "web"
    step = plan(13.0)
    assert step.adopt == ("a",)
    assert step.delete == (made.metadata.name,)
    assert not step.create and not step.release
    assert step.status.replicas == 5  # counted before the surplus goes
    pods["a"].metadata.owner_references.append(controller_reference(d))
    del pods[made.metadata.name]
    final = plan(14.0)
    assert final.empty and final.status.replicas == 4


def test_only_orphans_of_an_existing_template_are_adopted() -> None:
    """Kubernetes' ReplicaSets select on pod-template-hash: a bare pod with the Deployment's
    labels is never adopted (the seed's shop-usd); one with the hash of an old template
    that still has pods is, and is then replaced as an old pod."""
    d = web(2)
    current = template_hash(d.spec.template)

    def running(name: str, hash_: str | None, owner: str | None) -> objects_pb2.Pod:
        labels = {**WEB, POD_TEMPLATE_HASH: hash_} if hash_ is not None else WEB
        return make_pod(
            name, labels=labels, owner_uid=owner, node="n1", phase="Running", ready_since=1.0
        )

    owned = [running("a", current, UID), running("b", current, UID), running("o", "old", UID)]
    orphans = [
        running("bare", None, None),
        running("stale", "old", None),
        running("unknown", "gone", None),
        running("fresh", current, None),
    ]
    step = plan_deployment(d, owned, now=5.0, rng=random.Random(1), orphans=orphans)
    assert step.adopt == ("fresh", "stale")
    assert step.status.replicas == 5
    assert "bare" not in step.delete and "unknown" not in step.delete
    assert not step.create


# ---------------------------------------------------------------- property: any relabel history


def _apply(
    d: objects_pb2.Deployment, pods: dict[str, objects_pb2.Pod], now: float, seed: int
) -> None:
    """One plan, applied the way the controller does: adopt, create, delete, release."""
    owned = [p for p in pods.values() if (r := controller_owner(p)) and r.uid == UID]
    orphans = [p for p in pods.values() if controller_owner(p) is None]
    step = plan_deployment(d, owned, now=now, rng=random.Random(seed), orphans=orphans)
    assert not set(step.adopt) & set(step.release)
    for name in step.adopt:
        assert controller_owner(pods[name]) is None
        pods[name].metadata.owner_references.append(controller_reference(d))
    for new in step.create:
        made = objects_pb2.Pod()
        made.CopyFrom(new)
        made.metadata.creation_timestamp.CopyFrom(to_timestamp(now))
        made.spec.node_name = "n1"
        pods[made.metadata.name] = made
    for name in step.delete:
        pods[name].metadata.deletion_timestamp.CopyFrom(to_timestamp(now))
    for name in step.release:
        del pods[name].metadata.owner_references[:]
    d.status.CopyFrom(step.status)


def _kubelet(pods: dict[str, objects_pb2.Pod], now: float) -> None:
    for name, p in list(pods.items()):
        if p.metadata.HasField("deletion_timestamp"):
            del pods[name]
        elif p.status.phase != "Running":
            p.status.phase = "Running"
            p.status.conditions.add(
                type="Ready", status="True", last_transition_time=to_timestamp(now)
            )


@given(
    st.integers(0, 4),
    st.lists(
        st.tuples(
            st.sampled_from(["out", "in", "step", "step", "kubelet", "scale"]), st.integers(0, 20)
        ),
        max_size=30,
    ),
)
def test_any_relabel_history_ends_with_exactly_replicas_all_owned(
    replicas: int, actions: list[tuple[str, int]]
) -> None:
    d = web(replicas)
    pods: dict[str, objects_pb2.Pod] = {}
    now = 1.0
    for action, arg in actions:
        names = sorted(pods)
        victim = pods[names[arg % len(names)]] if names else None
        if action == "out" and victim is not None:
            victim.metadata.labels["app"] = "debug"
        elif action == "in" and victim is not None:
            victim.metadata.labels["app"] = "web"
        elif action == "scale":
            d.spec.replicas = arg % 5
        elif action == "step":
            _apply(d, pods, now, arg)
        elif action == "kubelet":
            _kubelet(pods, now)
        now += 1
    for _ in range(10):
        _apply(d, pods, now, 0)
        _kubelet(pods, now)
        now += 1
    selected = [p for p in pods.values() if SELECTOR.matches(p.metadata.labels)]
    assert len(selected) == d.spec.replicas
    assert all((r := controller_owner(p)) and r.uid == UID for p in selected)
    assert not any(
        (r := controller_owner(p)) and r.uid == UID
        for p in pods.values()
        if not SELECTOR.matches(p.metadata.labels)
    )
    assert d.status.replicas == d.spec.replicas
