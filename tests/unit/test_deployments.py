"""The Deployment controller's plans: scale, roll, recreate, status, convergence.

`World` is a tiny cluster for the pure planner: it applies a plan the way the
controller process does (creates get a creation time, deletes a
deletionTimestamp, the status is written), and its `kubelet` step finishes
terminations and makes pods ready. Tests read as "what the controller does next".
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubelab.core.names import SAFE_ALPHABET
from kubelab.core.pods import (
    is_active,
    is_available,
    is_ready,
    is_terminating,
    to_seconds,
    to_timestamp,
)
from kubelab.testing.pods import make_pod, set_ready
from kubelab.v1 import meta_pb2, objects_pb2
from services.controller.logic.deployments import (
    POD_TEMPLATE_HASH,
    DeploymentPlan,
    plan_deployment,
    resolve_fenceposts,
    template_hash,
)
from services.controller.logic.node_lifecycle import next_eviction_due, pods_to_evict
from services.controller.logic.scheduling import NodeInfo, schedule

UID = "uid-web"
T0 = 1000.0


def deployment(
    replicas: int | None = 3,
    *,
    strategy: str = "RollingUpdate",
    surge: str = "25%",
    unavailable: str = "25%",
    image: str = "v1",
    min_ready: int = 0,
    paused: bool = False,
) -> objects_pb2.Deployment:
    d = objects_pb2.Deployment(api_version="apps/v1", kind="Deployment")
    d.metadata.name = "web"
    d.metadata.namespace = "shop"
    d.metadata.uid = UID
    d.metadata.generation = 1
    if replicas is not None:
        d.spec.replicas = replicas
    d.spec.selector.match_labels["app"] = "web"
    d.spec.template.metadata.labels.update({"app": "web", "tier": "front"})
    d.spec.template.spec.containers.add(name="app", image=image)
    d.spec.template.spec.restart_policy = "Always"
    d.spec.strategy.type = strategy
    if strategy == "RollingUpdate":
        d.spec.strategy.rolling_update.max_surge = surge
        d.spec.strategy.rolling_update.max_unavailable = unavailable
    d.spec.min_ready_seconds = min_ready
    d.spec.paused = paused
    return d


def set_image(d: objects_pb2.Deployment, image: str) -> None:
    d.spec.template.spec.containers[0].image = image
    d.metadata.generation += 1


HASH_V1 = template_hash(deployment().spec.template)


def owned(
    name: str,
    *,
    template: str = HASH_V1,
    node: str = "",
    phase: str = "",
    created: float | None = None,
    ready_since: float | None = None,
    deleted: float | None = None,
) -> objects_pb2.Pod:
    """A pod of the `web` Deployment, made from `template`."""
    return make_pod(
        name,
        labels={"app": "web", "tier": "front", POD_TEMPLATE_HASH: template},
        owner_uid=UID,
        node=node,
        phase=phase,
        created=created,
        ready_since=ready_since,
        deleted=deleted,
    )


def ready(
    name: str,
    *,
    template: str = HASH_V1,
    created: float = 1.0,
    since: float = 2.0,
    deleted: float | None = None,
) -> objects_pb2.Pod:
    """A running, ready pod of the `web` Deployment on n1."""
    return owned(
        name,
        template=template,
        node="n1",
        phase="Running",
        created=created,
        ready_since=since,
        deleted=deleted,
    )


def plan(d: objects_pb2.Deployment, pods: list[objects_pb2.Pod], now: float = T0) -> DeploymentPlan:
    return plan_deployment(d, pods, now=now, rng=random.Random(7))


# ---------------------------------------------------------------- the little world


@dataclass
class World:
    deployment: objects_pb2.Deployment
    pods: dict[str, objects_pb2.Pod] = field(default_factory=dict)
    now: float = T0
    rng: random.Random = field(default_factory=lambda: random.Random(1))
    # Where new pods land; "" leaves them for the scheduler.
    node: str = "n1"

    def plan(self) -> DeploymentPlan:
        return plan_deployment(
            self.deployment, list(self.pods.values()), now=self.now, rng=self.rng
        )

    def apply(self, step: DeploymentPlan) -> None:
        for new in step.create:
            pod = objects_pb2.Pod()
            pod.CopyFrom(new)
            pod.metadata.creation_timestamp.CopyFrom(to_timestamp(self.now))
            pod.spec.node_name = pod.spec.node_name or self.node
            assert pod.metadata.name not in self.pods
            self.pods[pod.metadata.name] = pod
        for name in step.delete:
            self.pods[name].metadata.deletion_timestamp.CopyFrom(to_timestamp(self.now))
        for name in step.release:
            del self.pods[name]
        self.deployment.status.CopyFrom(step.status)

    def kubelet(self) -> None:
        """Terminations finish; every running pod passes its readiness probe."""
        for name, pod in list(self.pods.items()):
            if is_terminating(pod):
                del self.pods[name]
            elif is_active(pod) and not is_ready(pod):
                pod.status.phase = "Running"
                set_ready(pod, True, self.now)

    def settled(self) -> bool:
        """No termination pending, every replica ready (finished pods stay as they are)."""
        pods = self.pods.values()
        return all(is_ready(p) for p in pods if is_active(p)) and not any(
            is_terminating(p) for p in pods
        )

    def run(self, limit: int = 60) -> list[tuple[int, int]]:
        """Plan, apply and let the kubelet act until nothing is left to do; the (creates,
        deletes) of each step. Waits for minReadySeconds exactly as the plan says to."""
        steps: list[tuple[int, int]] = []
        for _ in range(limit):
            step = self.plan()
            if step.empty and step.recheck_at is None and self.settled():
                self.apply(step)  # the status write
                return steps
            steps.append((len(step.create), len(step.delete)))
            self.apply(step)
            self.kubelet()
            self.now = max(self.now + 1, step.recheck_at or 0.0)
        raise AssertionError(f"no convergence in {limit} steps: {steps}")

    def by_template(self) -> Counter[str]:
        return Counter(
            p.metadata.labels[POD_TEMPLATE_HASH] for p in self.pods.values() if is_active(p)
        )


def settled_world(d: objects_pb2.Deployment) -> World:
    world = World(d)
    world.run()
    return world


# ---------------------------------------------------------------- template hash and new pods


def test_template_hash_is_stable_and_safe() -> None:
    # A pinned value: a change here renames every pod of every running Deployment.
    assert HASH_V1 == template_hash(deployment().spec.template)
    assert len(HASH_V1) == 10 and set(HASH_V1) <= set(SAFE_ALPHABET)
    assert HASH_V1 == "2lxv78nv68"


def test_template_hash_ignores_map_order_and_sees_every_change() -> None:
    a, b = deployment(), deployment()
    del b.spec.template.metadata.labels["app"]
    b.spec.template.metadata.labels["app"] = "web"  # re-inserted: a different map order
    assert template_hash(a.spec.template) == template_hash(b.spec.template)
    set_image(b, "v2")
    assert template_hash(a.spec.template) != template_hash(b.spec.template)


def test_new_pods_are_fully_formed() -> None:
    d = deployment(2)
    d.spec.template.metadata.annotations["note"] = "hi"
    d.spec.template.spec.node_selector["disk"] = "ssd"
    first, second = plan(d, []).create
    assert first.metadata.name != second.metadata.name
    pod_hash = template_hash(d.spec.template)
    prefix = f"web-{pod_hash}-"
    assert first.metadata.name.startswith(prefix) and len(first.metadata.name) == len(prefix) + 5
    assert set(first.metadata.name[len(prefix) :]) <= set(SAFE_ALPHABET)
    assert first.metadata.generate_name == prefix
    assert (first.api_version, first.kind, first.metadata.namespace) == ("v1", "Pod", "shop")
    assert dict(first.metadata.labels) == {
        "app": "web",
        "tier": "front",
        POD_TEMPLATE_HASH: pod_hash,
    }
    assert dict(first.metadata.annotations) == {"note": "hi"}
    assert list(first.metadata.owner_references) == [
        meta_pb2.OwnerReference(
            api_version="apps/v1",
            kind="Deployment",
            name="web",
            uid=UID,
            controller=True,
            block_owner_deletion=True,
        )
    ]
    assert first.spec == d.spec.template.spec
    assert not first.metadata.HasField("creation_timestamp")


def test_long_names_are_cut_like_generate_name() -> None:
    d = deployment(1)
    d.metadata.name = "x" * 80
    (pod,) = plan(d, []).create
    assert len(pod.metadata.name) == 63
    assert pod.metadata.generate_name == pod.metadata.name[:58]


def test_new_names_avoid_owned_names() -> None:
    d = deployment(2)
    rng = random.Random(3)
    taken = plan_deployment(d, [], now=T0, rng=rng).create[0].metadata.name
    pods = [ready(taken)]
    again = plan_deployment(d, pods, now=T0, rng=random.Random(3)).create
    assert taken not in {p.metadata.name for p in again}


# ---------------------------------------------------------------- fenceposts


@pytest.mark.parametrize(
    ("surge", "unavailable", "replicas", "expected"),
    [
        pytest.param("25%", "25%", 4, (1, 1), id="25pct-of-4"),
        pytest.param("25%", "25%", 10, (3, 2), id="surge-rounds-up-unavailable-down"),
        pytest.param("25%", "25%", 1, (1, 0), id="25pct-of-1"),
        pytest.param("0", "25%", 1, (0, 1), id="both-zero-allows-one-unavailable"),
        pytest.param("25%", "25%", 0, (0, 1), id="zero-replicas"),
        pytest.param("1", "0", 3, (1, 0), id="ints"),
        pytest.param("200%", "100%", 3, (6, 3), id="large-percentages"),
        pytest.param("", "", 4, (1, 1), id="unset-reads-as-default"),
    ],
)
def test_resolve_fenceposts(
    surge: str, unavailable: str, replicas: int, expected: tuple[int, int]
) -> None:
    rolling = objects_pb2.RollingUpdateDeployment(max_surge=surge, max_unavailable=unavailable)
    assert resolve_fenceposts(rolling, replicas) == expected


# ---------------------------------------------------------------- scaling


@pytest.mark.parametrize(
    ("replicas", "pods", "creates", "deletes"),
    [
        pytest.param(3, [], 3, (), id="create-from-nothing"),
        pytest.param(None, [], 1, (), id="unset-replicas-mean-one"),
        pytest.param(6, [ready(f"p{i}") for i in range(4)], 2, (), id="scale-4-to-6"),
        pytest.param(3, [ready(f"p{i}") for i in range(3)], 0, (), id="nothing-to-do"),
        pytest.param(
            2,
            [ready("a"), owned("unscheduled"), ready("b"), owned("pending", node="n2")],
            0,
            ("unscheduled", "pending"),
            id="unscheduled-then-not-ready-first",
        ),
        pytest.param(
            1,
            [
                owned("pending", node="n1", phase="Pending"),
                owned("unknown", node="n1", phase="Unknown"),
                owned("running", node="n1", phase="Running"),
            ],
            0,
            ("pending", "unknown"),
            id="pending-before-unknown-before-running",
        ),
        pytest.param(
            1,
            [ready("old", created=1.0), ready("new", created=5.0)],
            0,
            ("new",),
            id="newest-first",
        ),
        pytest.param(
            1,
            [ready("long", since=2.0, created=5.0), ready("short", since=9.0, created=1.0)],
            0,
            ("short",),
            id="ready-for-less-time-first",
        ),
        pytest.param(
            1,
            [ready("b"), ready("a"), ready("c")],
            0,
            ("a", "b"),
            id="equal-pods-by-name",
        ),
        pytest.param(
            2,
            [ready("a"), ready("b"), owned("gone", node="n1", deleted=5.0)],
            0,
            (),
            id="terminating-pods-are-not-replicas",
        ),
        pytest.param(
            2,
            [ready("a"), owned("dying", node="n1", deleted=5.0)],
            1,
            (),
            id="terminating-pods-get-replaced",
        ),
        pytest.param(
            2,
            [ready("a"), owned("crashed", node="n1", phase="Failed")],
            1,
            (),
            id="finished-pods-get-replaced-not-deleted",
        ),
        pytest.param(0, [ready("a"), ready("b")], 0, ("a", "b"), id="scale-to-zero"),
    ],
)
def test_scaling(
    replicas: int | None, pods: list[objects_pb2.Pod], creates: int, deletes: tuple[str, ...]
) -> None:
    step = plan(deployment(replicas), pods)
    assert (len(step.create), step.delete) == (creates, deletes)


def test_scaling_is_not_limited_by_surge_or_unavailability() -> None:
    d = deployment(2, surge="1", unavailable="0")
    world = settled_world(d)
    d.spec.replicas = 10
    assert len(world.plan().create) == 8
    world.run()
    d.spec.replicas = 1
    assert len(world.plan().delete) == 9


# ---------------------------------------------------------------- rolling updates


@pytest.mark.parametrize(
    ("d", "steps"),
    [
        pytest.param(
            deployment(3, surge="1", unavailable="0"),
            [(1, 0), (0, 1), (1, 0), (0, 1), (1, 0), (0, 1)],
            id="surge-1-unavailable-0",
        ),
        pytest.param(
            deployment(3, surge="0", unavailable="1"),
            [(0, 1), (1, 0), (0, 1), (1, 0), (0, 1), (1, 0)],
            id="surge-0-unavailable-1",
        ),
        pytest.param(deployment(4), [(1, 1), (1, 1), (1, 1), (1, 1)], id="25pct-of-4"),
        pytest.param(deployment(10), [(3, 2), (2, 3), (3, 2), (2, 3)], id="25pct-of-10"),
        pytest.param(deployment(1), [(1, 0), (0, 1)], id="25pct-of-1-surges"),
        pytest.param(deployment(0), [], id="zero-replicas-has-nothing-to-roll"),
    ],
)
def test_rolling_update_steps(d: objects_pb2.Deployment, steps: list[tuple[int, int]]) -> None:
    world = settled_world(d)
    before = world.by_template()
    set_image(d, "v2")
    assert world.run() == steps
    after = world.by_template()
    assert sum(after.values()) == d.spec.replicas
    assert not set(after) & set(before) or d.spec.replicas == 0


def test_rolling_update_with_min_ready_seconds_waits_for_availability() -> None:
    d = deployment(2, surge="1", unavailable="0", min_ready=10)
    world = settled_world(d)
    set_image(d, "v2")
    first = world.plan()
    assert (len(first.create), first.delete) == (1, ())
    world.apply(first)
    world.kubelet()  # the new pod is ready at T, available at T + 10
    ready_at = world.now
    world.now += 5
    waiting = world.plan()
    assert waiting.empty and waiting.recheck_at == ready_at + 10
    world.now = waiting.recheck_at
    assert len(world.plan().delete) == 1


def test_a_broken_new_template_stalls_without_losing_availability() -> None:
    d = deployment(4)  # 25%/25%: one surge, one unavailable
    world = settled_world(d)
    set_image(d, "broken")
    for _ in range(5):
        step = world.plan()
        world.apply(step)  # no kubelet: the new pods never become ready
        world.now += 1
    counts = world.by_template()
    new = template_hash(d.spec.template)
    assert (counts[new], sum(counts.values()) - counts[new]) == (2, 3)
    assert world.plan().empty
    status = world.plan().status
    assert (status.available_replicas, status.unavailable_replicas) == (3, 1)
    assert [c.status for c in status.conditions] == ["True", "True"]
    assert status.conditions[1].reason == "ReplicaSetUpdated"


def test_unavailable_old_pods_go_first() -> None:
    d = deployment(3, surge="1", unavailable="0")
    set_image(d, "v2")
    pods = [ready("a"), ready("b"), owned("sick", node="n1", phase="Running", created=1.0)]
    pods += [ready("new", template=template_hash(d.spec.template))]
    step = plan(d, pods)
    assert step.delete == ("sick",)


def test_dead_old_pods_are_replaced_by_new_ones() -> None:
    d = deployment(3, surge="1", unavailable="0")
    set_image(d, "v2")
    new = template_hash(d.spec.template)
    # Mid-rollout an old pod died: its room goes to a new-template pod.
    pods = [ready("old1"), ready("new1", template=new)]
    step = plan(d, pods)
    assert len(step.create) == 2  # up to replicas + surge = 4 active
    assert all(p.metadata.labels[POD_TEMPLATE_HASH] == new for p in step.create)


# ---------------------------------------------------------------- recreate


@pytest.mark.parametrize(
    ("pods", "creates", "deletes"),
    [
        pytest.param([ready("a"), ready("b")], 0, ("a", "b"), id="delete-every-old-pod-first"),
        pytest.param(
            [owned("a", node="n1", deleted=5.0)], 0, (), id="wait-for-old-terminating-pods"
        ),
        pytest.param(
            [owned("a", node="n1", phase="Failed")], 2, (), id="finished-old-pods-do-not-block"
        ),
        pytest.param([], 2, (), id="then-create-the-new-ones"),
    ],
)
def test_recreate(pods: list[objects_pb2.Pod], creates: int, deletes: tuple[str, ...]) -> None:
    d = deployment(2, strategy="Recreate")
    set_image(d, "v2")
    step = plan(d, pods)
    assert (len(step.create), step.delete) == (creates, deletes)


def test_recreate_steps() -> None:
    d = deployment(3, strategy="Recreate")
    world = settled_world(d)
    set_image(d, "v2")
    assert world.run() == [(0, 3), (3, 0)]


# ---------------------------------------------------------------- paused, deleted, released


def test_paused_deployment_scales_but_does_not_roll() -> None:
    d = deployment(3, paused=True)
    world = settled_world(d)
    set_image(d, "v2")
    assert world.plan().empty
    d.spec.replicas = 5
    assert world.plan().empty  # no old template to make more of
    d.spec.replicas = 1
    assert len(world.plan().delete) == 2
    progressing = world.plan().status.conditions[1]
    assert (progressing.status, progressing.reason) == ("Unknown", "DeploymentPaused")
    d.spec.paused = False
    world.run()
    assert world.by_template() == Counter({template_hash(d.spec.template): 1})


def test_a_deployment_being_deleted_only_reports() -> None:
    d = deployment(3)
    d.metadata.deletion_timestamp.CopyFrom(to_timestamp(T0))
    step = plan(d, [ready("a"), ready("b")])
    assert step.empty
    assert step.status.replicas == 2


def test_pods_that_leave_the_selector_are_released_and_replaced() -> None:
    relabelled = ready("debug")
    relabelled.metadata.labels["app"] = "debugging"
    leaving = ready("leaving", deleted=T0)
    leaving.metadata.labels["app"] = "debugging"
    step = plan(deployment(2), [ready("a"), relabelled, leaving])
    assert step.release == ("debug",)
    assert len(step.create) == 1
    assert step.status.replicas == 1


# ---------------------------------------------------------------- status


def _conditions(status: objects_pb2.DeploymentStatus) -> list[tuple[str, str, str]]:
    return [(c.type, c.status, c.reason) for c in status.conditions]


@pytest.mark.parametrize(
    ("d", "pods", "counts", "conditions"),
    [
        pytest.param(
            deployment(2),
            [ready("a"), ready("b")],
            (2, 2, 2, 2, 0),
            [
                ("Available", "True", "MinimumReplicasAvailable"),
                ("Progressing", "True", "NewReplicaSetAvailable"),
            ],
            id="complete",
        ),
        pytest.param(
            deployment(4),
            [ready("a"), ready("b"), ready("c"), owned("d", node="n1")],
            (4, 4, 3, 3, 1),
            [
                ("Available", "True", "MinimumReplicasAvailable"),
                ("Progressing", "True", "ReplicaSetUpdated"),
            ],
            id="one-unavailable-is-allowed",
        ),
        pytest.param(
            deployment(4),
            [ready("a"), ready("b"), owned("c"), owned("d", deleted=1.0)],
            (3, 3, 2, 2, 2),
            [
                ("Available", "False", "MinimumReplicasUnavailable"),
                ("Progressing", "True", "ReplicaSetUpdated"),
            ],
            id="below-minimum-terminating-not-counted",
        ),
        pytest.param(
            deployment(2, strategy="Recreate"),
            [ready("a"), owned("b", node="n1")],
            (2, 2, 1, 1, 1),
            [
                ("Available", "False", "MinimumReplicasUnavailable"),
                ("Progressing", "True", "ReplicaSetUpdated"),
            ],
            id="recreate-wants-all",
        ),
        pytest.param(
            deployment(2, min_ready=30),
            [ready("a", since=T0 - 40), ready("b", since=T0 - 10)],
            (2, 2, 2, 1, 1),
            [
                ("Available", "False", "MinimumReplicasUnavailable"),
                ("Progressing", "True", "ReplicaSetUpdated"),
            ],
            id="min-ready-seconds",
        ),
        pytest.param(
            deployment(0),
            [],
            (0, 0, 0, 0, 0),
            [
                ("Available", "True", "MinimumReplicasAvailable"),
                ("Progressing", "True", "NewReplicaSetAvailable"),
            ],
            id="zero-replicas",
        ),
    ],
)
def test_status(
    d: objects_pb2.Deployment,
    pods: list[objects_pb2.Pod],
    counts: tuple[int, int, int, int, int],
    conditions: list[tuple[str, str, str]],
) -> None:
    d.metadata.generation = 7
    status = plan(d, pods).status
    assert status.observed_generation == 7
    assert (
        status.replicas,
        status.updated_replicas,
        status.ready_replicas,
        status.available_replicas,
        status.unavailable_replicas,
    ) == counts
    assert _conditions(status) == conditions


def test_updated_replicas_count_the_current_template_only() -> None:
    d = deployment(3)
    set_image(d, "v2")
    pods = [ready("a"), ready("b"), ready("c", template=template_hash(d.spec.template))]
    status = plan(d, pods).status
    assert (status.replicas, status.updated_replicas) == (3, 1)


def test_status_of_an_unchanged_world_is_the_stored_status() -> None:
    d = deployment(2)
    world = settled_world(d)
    stored = objects_pb2.DeploymentStatus()
    stored.CopyFrom(d.status)
    world.now += 3600
    assert world.plan().status == stored


def test_condition_times_move_only_with_their_status() -> None:
    d = deployment(2)
    world = settled_world(d)
    available, progressing = (to_seconds(c.last_transition_time) for c in d.status.conditions)
    world.now += 100
    victim = next(iter(world.pods.values()))
    set_ready(victim, False, world.now)  # 1 of 2 available: below the minimum of 2
    status = world.plan().status
    assert to_seconds(status.conditions[0].last_transition_time) == world.now
    assert status.conditions[0].status == "False"
    # Progressing stays True (reason ReplicaSetUpdated): its time is kept.
    assert status.conditions[1].reason == "ReplicaSetUpdated"
    assert to_seconds(status.conditions[1].last_transition_time) == progressing
    assert available < world.now


# ---------------------------------------------------------------- the seed's story, end to end


def test_spread_scale_and_survive_a_node_loss() -> None:
    """4 replicas over 3 nodes land 2/1/1; scaled to 6 they fill up; a node dies and,
    after the grace period, its pods are evicted and replaced on the live nodes."""
    grace = 40.0
    d = deployment(4)
    nodes = {
        name: NodeInfo(name, True, True, {"kubernetes.io/hostname": name})
        for name in ("n1", "n2", "n3")
    }
    world = World(d, node="")

    def reconcile() -> None:
        for _ in range(10):
            step = world.plan()
            world.apply(step)
            pods = list(world.pods.values())
            for binding in schedule(pods, list(nodes.values()), pods):
                world.pods[binding.pod].spec.node_name = binding.node
            for pod in world.pods.values():  # agents of live nodes run their pods
                if nodes[pod.spec.node_name].ready and not is_ready(pod):
                    pod.status.phase = "Running"
                    set_ready(pod, True, world.now)
            world.now += 1
            if step.empty:
                world.apply(world.plan())
                return

    def per_node() -> dict[str, int]:
        return dict(sorted(Counter(p.spec.node_name for p in world.pods.values()).items()))

    reconcile()
    assert per_node() == {"n1": 2, "n2": 1, "n3": 1}
    d.spec.replicas = 6
    reconcile()
    assert per_node() == {"n1": 2, "n2": 2, "n3": 2}

    # n2's lease expires: its pod statuses go with it, its pods read as not ready.
    gone_at = world.now
    nodes["n2"] = NodeInfo("n2", False, True, {"kubernetes.io/hostname": "n2"})
    for pod in world.pods.values():
        if pod.spec.node_name == "n2":
            pod.status.Clear()
    pods = list(world.pods.values())
    assert world.plan().empty  # not replaced yet: they may come back
    assert world.plan().status.conditions[0].status == "False"  # 4 of 6, minimum is 5
    assert pods_to_evict(pods, {"n2": gone_at}, now=world.now, grace=grace) == []
    due = next_eviction_due(pods, {"n2": gone_at}, now=world.now, grace=grace)
    assert due == gone_at + grace

    world.now = due
    evicted = pods_to_evict(pods, {"n2": gone_at}, now=world.now, grace=grace)
    assert len(evicted) == 2
    for _, name in evicted:
        del world.pods[name]
    reconcile()
    assert per_node() == {"n1": 3, "n3": 3}
    status = world.deployment.status
    assert (status.ready_replicas, status.available_replicas) == (6, 6)
    assert _conditions(status)[0] == ("Available", "True", "MinimumReplicasAvailable")


# ---------------------------------------------------------------- properties

STRATEGIES = [
    pytest.param("RollingUpdate", "1", "0", id="surge-1-unavailable-0"),
    pytest.param("RollingUpdate", "0", "1", id="surge-0-unavailable-1"),
    pytest.param("RollingUpdate", "25%", "25%", id="25pct-25pct"),
    pytest.param("RollingUpdate", "2", "50%", id="surge-2-unavailable-50pct"),
    pytest.param("Recreate", "", "", id="recreate"),
]

# Controller steps are the commonest event; the rest is what the world does in between.
_ACTIONS = st.tuples(
    st.sampled_from(
        ["scale", "template", "flip", "kill", "fail", "step", "step", "step", "kubelet"]
    ),
    st.integers(0, 50),
)


def _checked_step(world: World) -> None:
    """One plan, checked against the rules it must keep, then applied."""
    d = world.deployment
    replicas = d.spec.replicas
    pods = list(world.pods.values())
    step = world.plan()
    again = plan_deployment(d, pods, now=world.now, rng=random.Random(99))
    assert (len(again.create), again.delete, again.status) == (
        len(step.create),
        step.delete,
        step.status,
    )
    active = {p.metadata.name: p for p in pods if is_active(p)}
    assert len(set(step.delete)) == len(step.delete)
    assert set(step.delete) <= set(active), "only active pods are deleted, terminating never"
    current = template_hash(d.spec.template)
    assert all(p.metadata.labels[POD_TEMPLATE_HASH] == current for p in step.create)
    min_ready = d.spec.min_ready_seconds
    available = {n for n, p in active.items() if is_available(p, min_ready, world.now)}
    if d.spec.strategy.type == "RollingUpdate":
        surge, unavailable = resolve_fenceposts(d.spec.strategy.rolling_update, replicas)
        if step.create:
            assert len(active) + len(step.create) <= replicas + surge
        # Only the rollout's deletions of old pods are bounded by maxUnavailable
        # (scaleDownOldReplicaSetsForRollingUpdate). Deleting new pods beyond replicas is
        # scaling (Kubernetes' `scale()` and the ReplicaSet controller), which is not: its
        # ActivePods ranking puts Pending before Running, then not ready before ready, so it
        # may take the only available pod. So count from what the scale-down leaves.
        scaled = {n for n in step.delete if active[n].metadata.labels[POD_TEMPLATE_HASH] == current}
        kept = len(available - set(step.delete))
        assert kept >= min(len(available - scaled), replicas - unavailable)
    elif step.create:
        running = [p for p in pods if p.status.phase not in ("Succeeded", "Failed")]
        assert all(p.metadata.labels[POD_TEMPLATE_HASH] == current for p in running)
        assert len(active) + len(step.create) <= replicas
    world.apply(step)


@pytest.mark.parametrize(("kind", "surge", "unavailable"), STRATEGIES)
@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, 5),
    st.sampled_from([0, 3]),
    st.lists(_ACTIONS, max_size=40),
)
def test_random_histories_converge(
    kind: str,
    surge: str,
    unavailable: str,
    replicas: int,
    min_ready: int,
    actions: list[tuple[str, int]],
) -> None:
    d = deployment(
        replicas, strategy=kind, surge=surge, unavailable=unavailable, min_ready=min_ready
    )
    world = World(d)
    world.run()
    for action, arg in actions:
        names = sorted(world.pods)
        victim = world.pods[names[arg % len(names)]] if names else None
        if action == "scale":
            d.spec.replicas = arg % 7
        elif action == "template":
            set_image(d, f"v{arg % 3}")
        elif action == "flip" and victim is not None:
            set_ready(victim, not is_ready(victim), world.now)
        elif action == "kill" and victim is not None:
            del world.pods[victim.metadata.name]
        elif action == "fail" and victim is not None:
            victim.status.phase = "Failed"
            set_ready(victim, False, world.now)
        elif action == "step":
            _checked_step(world)
        elif action == "kubelet":
            world.kubelet()
        world.now += 1

    for _ in range(60):
        step = world.plan()
        if step.empty and step.recheck_at is None and world.settled():
            break
        _checked_step(world)
        world.kubelet()
        world.now = max(world.now + 1, step.recheck_at or 0.0)
    else:
        raise AssertionError("no convergence")

    current = template_hash(d.spec.template)
    active = [p for p in world.pods.values() if is_active(p)]
    assert len(active) == d.spec.replicas
    assert all(is_ready(p) and p.metadata.labels[POD_TEMPLATE_HASH] == current for p in active)
    final = world.plan()
    world.apply(final)
    assert world.plan().status == final.status == d.status
    assert final.status.available_replicas == d.spec.replicas
    assert _conditions(final.status) == [
        ("Available", "True", "MinimumReplicasAvailable"),
        ("Progressing", "True", "NewReplicaSetAvailable"),
    ]
