"""The Deployment controller's decisions: which pods to create and delete next.

Kubernetes splits this job between the Deployment controller (one ReplicaSet
per pod template, rollout arithmetic) and the ReplicaSet controller (pods for
each ReplicaSet). kubelab has no ReplicaSets: a Deployment owns its pods
directly, and the template a pod was made from is told by its
`pod-template-hash` label (`template_hash(spec.template)`, which is also what
Kubernetes names its ReplicaSets after). Pods with the current hash are *new*,
all others *old*. `plan_deployment` applies both controllers' rules to that
one set of pods and returns a frozen `DeploymentPlan`; the controller process
applies it (ownerReference additions, creates, graceful deletes,
ownerReference removals, one status write) and calls again on every change
of the Deployment or its pods, so each plan is only the next step from what
is observed. An unchanged world plans nothing and the same status, so the
caller writes nothing.

Which pods count (Kubernetes' `FilterActivePods`, `ClaimPods`):

* the caller passes the pods whose controller ownerReference is this
  Deployment, and the orphans of its namespace; `pod_claims.claim_pods` says
  which count: owned pods whose labels no longer match `spec.selector` are
  released (`plan.release`: the caller drops the ownerReference, and a
  replacement is made) unless they are terminating, and orphans whose labels
  match are adopted (`plan.adopt`) and count at once, so a pod relabelled out
  and back makes one pod too many and the surplus goes as any other would.
  In Kubernetes the ReplicaSets adopt, and their selectors add
  `pod-template-hash`: so only an orphan whose hash is the current template's
  or that of a pod the Deployment still owns (an old ReplicaSet that still
  exists) is adopted; one of an old template is then replaced by the rollout
  rules. A bare pod without the label (the seed's `shop-usd`) is never
  adopted: it matches the Deployment's selector, but no ReplicaSet's;
* *active* pods are neither terminating nor finished (`Succeeded`/`Failed`);
  only they are replicas, and only they count against `maxSurge`. Terminating
  pods are never deleted again; finished pods are left for the user to read
  and to the garbage collector with the Deployment, as Kubernetes leaves them
  to pod GC.

Strategies:

* **scale** (no old pods): create or delete to reach `spec.replicas`; scaling
  is not a rollout, so neither limit applies (Kubernetes' `sync`/`scale`).
* **RollingUpdate** (`rolloutRolling`): with `maxSurge` rounded up and
  `maxUnavailable` rounded down against `spec.replicas` (both 0 → one may be
  unavailable, Kubernetes' `ResolveFenceposts`), new pods are created while
  the active total stays ≤ replicas + maxSurge (this plan's own deletions are
  not counted: they may not have happened when the creates land); new pods
  beyond replicas are deleted; old pods are deleted, the unavailable ones
  first (`cleanupUnhealthyReplicas`), only as far as available pods stay ≥
  replicas - maxUnavailable (`scaleDownOldReplicaSetsForRollingUpdate`). An
  old pod that dies is not replaced by an old one, as a ReplicaSet would do:
  the room it leaves goes to new pods.
* **Recreate** (`rolloutRecreate`): delete every old pod; create new ones only
  once no old pod is left running, terminating ones included
  (`oldPodsRunning`).
* **paused**: scale only. With old pods still present nothing is created
  (kubelab has no old ReplicaSet, so no old template, to scale up) and the
  active pods beyond replicas are deleted, least valuable first.
* **being deleted** (`deletionTimestamp`): status only; the pods go with the
  Deployment through their ownerReferences.

Which pods go first when there are too many (the ReplicaSet controller's
`ActivePods` ranking, less valuable first): unscheduled before scheduled;
Pending before Unknown before Running; not ready before ready; ready for a
shorter time before longer; newer before older (creationTimestamp); then by
name, so plans are deterministic. Kubernetes' pod-deletion-cost, doubled-up
nodes and logarithmic age buckets are left out.

A pod is available once Ready for `minReadySeconds` (see `pods.is_available`).
Availability changes with time alone, so the plan also says `recheck_at`: when
the next ready pod becomes available, for the caller to plan again then
(Kubernetes' ReplicaSet controller re-enqueues after minReadySeconds).

New pods are fully formed: name `<deployment>-<hash>-<5 random characters>`
(Kubernetes' generateName of the ReplicaSet's name, cut to 58 characters
before the suffix), labels from the template plus `pod-template-hash`,
ownerReference `apps/v1 Deployment` with `controller` and
`blockOwnerDeletion`, spec from the template. Names are unique among the
owned pods and this plan; a clash with some other pod is the apiserver's
ALREADY_EXISTS, and the next plan picks another name.

Failure: none by design. A Deployment that validation would refuse (a bad
selector, an int-or-string that is neither) is a programming error:
`from_label_selector` raises, junk limits read as 0.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from kubelab.core import kinds
from kubelab.core.names import MAX_GENERATED_BASE, SAFE_ALPHABET, SUFFIX_LENGTH, unique_name
from kubelab.core.pods import (
    TERMINAL_PHASES,
    is_active,
    is_available,
    is_ready,
    ready_since,
    to_seconds,
    to_timestamp,
)
from kubelab.core.selectors import from_label_selector
from kubelab.core.validation.pods import DEFAULT_MAX_SURGE, DEFAULT_MAX_UNAVAILABLE
from kubelab.core.validation.syntax import parse_int_or_string
from kubelab.v1 import meta_pb2, objects_pb2
from services.controller.logic.pod_claims import claim_pods

POD_TEMPLATE_HASH = "pod-template-hash"
HASH_LENGTH = 10

RECREATE = "Recreate"
AVAILABLE = "Available"
PROGRESSING = "Progressing"

_PERCENT = re.compile("([0-9]+)%")
# Kubernetes' podPhaseToOrdinal: Pending < Unknown < Running.
_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


@dataclass(frozen=True, slots=True)
class DeploymentPlan:
    """The next step for one Deployment; apply it all, then plan again on any change."""

    # New pods, ready to create as they are.
    create: tuple[objects_pb2.Pod, ...]
    # Names of owned pods to delete gracefully (the caller sets deletionTimestamp).
    delete: tuple[str, ...]
    # What `deployment.status` should be; equal to the current one when nothing changed.
    status: objects_pb2.DeploymentStatus
    # Names of owned pods that no longer match the selector: remove their ownerReference.
    release: tuple[str, ...] = ()
    # Names of orphans that match the selector: add `controller_reference`, before the rest.
    adopt: tuple[str, ...] = ()
    # When the next ready pod becomes available (minReadySeconds): plan again then.
    recheck_at: float | None = None

    @property
    def empty(self) -> bool:
        """Nothing to create, delete, adopt or release (the status may still need writing)."""
        return not (self.create or self.delete or self.release or self.adopt)


def template_hash(template: objects_pb2.PodTemplateSpec) -> str:
    """A stable 10-character name for a pod template, from the safe alphabet.

    SHA-256 of the deterministic serialization (map entries sorted), so equal
    templates hash alike in every process and Python version. Kubernetes uses
    FNV-32a of a printed form; only stability and spread matter here.
    """
    digest = hashlib.sha256(template.SerializeToString(deterministic=True)).digest()
    number = int.from_bytes(digest[:8], "big")  # 27**10 < 2**64: every character is mixed
    chars = []
    for _ in range(HASH_LENGTH):
        number, index = divmod(number, len(SAFE_ALPHABET))
        chars.append(SAFE_ALPHABET[index])
    return "".join(chars)


def _scaled(value: str, total: int, *, round_up: bool) -> int:
    """Kubernetes' `GetScaledValueFromIntOrPercent`: "25%" of `total`, or the int itself."""
    percent = _PERCENT.fullmatch(value)
    if percent:
        share = int(percent.group(1)) * total
        return -(-share // 100) if round_up else share // 100
    parsed = parse_int_or_string(value) if value else 0
    return parsed if isinstance(parsed, int) and parsed > 0 else 0


def resolve_fenceposts(
    rolling: objects_pb2.RollingUpdateDeployment, replicas: int
) -> tuple[int, int]:
    """`(maxSurge, maxUnavailable)` as pod counts (Kubernetes' `ResolveFenceposts`).

    Surge rounds up, unavailable rounds down; when both come out 0 (say 25%
    of 1 replica for maxUnavailable and 0 surge), one pod may be unavailable,
    or no rollout could ever make progress.
    """
    # Unset reads as the apps/v1 default, for a Deployment that skipped defaulting.
    surge = _scaled(rolling.max_surge or DEFAULT_MAX_SURGE, replicas, round_up=True)
    unavailable = _scaled(
        rolling.max_unavailable or DEFAULT_MAX_UNAVAILABLE, replicas, round_up=False
    )
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def desired_replicas(deployment: objects_pb2.Deployment) -> int:
    """`spec.replicas`, 1 when unset (Kubernetes' default)."""
    spec = deployment.spec
    return spec.replicas if spec.HasField("replicas") else 1


def max_unavailable(deployment: objects_pb2.Deployment) -> int:
    """How many of `spec.replicas` may be unavailable (Kubernetes' `MaxUnavailable`).

    0 for Recreate and for 0 replicas; never more than the replicas.
    """
    replicas = desired_replicas(deployment)
    if deployment.spec.strategy.type == RECREATE or replicas == 0:
        return 0
    _, unavailable = resolve_fenceposts(deployment.spec.strategy.rolling_update, replicas)
    return min(unavailable, replicas)


# ---------------------------------------------------------------- choosing pods


@dataclass(frozen=True, slots=True)
class _Availability:
    """`is_available` with the Deployment's minReadySeconds and `now` bound."""

    min_ready: int
    now: float

    def __call__(self, pod: objects_pb2.Pod) -> bool:
        return is_available(pod, self.min_ready, self.now)

    def due(self, pods: Sequence[objects_pb2.Pod]) -> float | None:
        """When the next ready-but-not-yet-available pod becomes available."""
        times = [
            since + self.min_ready
            for pod in pods
            if not self(pod) and (since := ready_since(pod)) is not None
        ]
        return min(times, default=None)


def _deletion_order(pods: Sequence[objects_pb2.Pod]) -> list[objects_pb2.Pod]:
    """`pods`, least valuable first (Kubernetes' `ActivePods` ranking, see the module doc)."""

    def rank(pod: objects_pb2.Pod) -> tuple[bool, int, bool, tuple[int, float], float, str]:
        since = ready_since(pod)
        # Ready for no known time < a short time < a long time.
        readiness = (0, 0.0) if since is None else (1, -since)
        created = pod.metadata.creation_timestamp
        # No creation time < newer < older.
        age = -to_seconds(created) if pod.metadata.HasField("creation_timestamp") else float("-inf")
        return (
            bool(pod.spec.node_name),
            _PHASE_RANK.get(pod.status.phase, 0),
            is_ready(pod),
            readiness,
            age,
            pod.metadata.name,
        )

    return sorted(pods, key=rank)


def _least_valuable(pods: Sequence[objects_pb2.Pod], count: int) -> list[objects_pb2.Pod]:
    return _deletion_order(pods)[: max(count, 0)]


@dataclass(frozen=True, slots=True)
class _Pods:
    """The owned pods, sorted into what each rule looks at."""

    new: list[objects_pb2.Pod]
    old: list[objects_pb2.Pod]
    # Old pods not finished, terminating ones included: what Recreate waits for.
    old_running: int

    @property
    def active(self) -> list[objects_pb2.Pod]:
        return self.new + self.old


@dataclass(frozen=True, slots=True)
class _Step:
    create: int
    delete: list[objects_pb2.Pod]


def _scale(pods: list[objects_pb2.Pod], replicas: int) -> _Step:
    return _Step(max(replicas - len(pods), 0), _least_valuable(pods, len(pods) - replicas))


def _rolling(
    pods: _Pods, replicas: int, surge: int, unavailable: int, available: _Availability
) -> _Step:
    # reconcileNewReplicaSet: grow the new set within the surge, or shrink it to replicas.
    room = replicas + surge - len(pods.active)
    create = max(min(room, replicas - len(pods.new)), 0)
    delete = _least_valuable(pods.new, len(pods.new) - replicas)
    if not pods.old:
        return _Step(create, delete)
    # reconcileOldReplicaSets, counting only the new pods this step keeps.
    min_available = replicas - unavailable
    deleted = {pod.metadata.name for pod in delete}
    new_available = sum(
        1 for pod in pods.new if available(pod) and pod.metadata.name not in deleted
    )
    old = _deletion_order(pods.old)
    unhealthy = [pod for pod in old if not available(pod)]
    healthy = [pod for pod in old if available(pod)]
    max_scaled_down = len(old) + new_available - min_available
    delete += unhealthy[: max(max_scaled_down, 0)]
    delete += healthy[: max(len(healthy) + new_available - min_available, 0)]
    return _Step(create, delete)


def _recreate(pods: _Pods, replicas: int) -> _Step:
    if pods.old:
        return _Step(0, _deletion_order(pods.old))
    if pods.old_running:
        return _Step(0, [])
    return _scale(pods.new, replicas)


def _paused(pods: _Pods, replicas: int) -> _Step:
    if not pods.old:
        return _scale(pods.new, replicas)
    return _Step(0, _least_valuable(pods.active, len(pods.active) - replicas))


# ---------------------------------------------------------------- status


def _condition(
    existing: objects_pb2.DeploymentStatus,
    kind: str,
    status: str,
    reason: str,
    message: str,
    now: float,
) -> meta_pb2.Condition:
    condition = meta_pb2.Condition(type=kind, status=status, reason=reason, message=message)
    before = next((c for c in existing.conditions if c.type == kind), None)
    # Kubernetes' SetDeploymentCondition keeps lastTransitionTime while the status holds.
    if before is not None and before.status == status:
        if before.HasField("last_transition_time"):
            condition.last_transition_time.CopyFrom(before.last_transition_time)
    else:
        condition.last_transition_time.CopyFrom(to_timestamp(now))
    return condition


def _status(
    deployment: objects_pb2.Deployment, pods: _Pods, available: _Availability
) -> objects_pb2.DeploymentStatus:
    replicas = desired_replicas(deployment)
    name = deployment.metadata.name
    status = objects_pb2.DeploymentStatus(
        observed_generation=deployment.metadata.generation,
        replicas=len(pods.active),
        updated_replicas=len(pods.new),
        ready_replicas=sum(1 for pod in pods.active if is_ready(pod)),
        available_replicas=sum(1 for pod in pods.active if available(pod)),
    )
    status.unavailable_replicas = max(replicas - status.available_replicas, 0)
    existing = deployment.status
    if status.available_replicas >= replicas - max_unavailable(deployment):
        minimum = ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
    else:
        minimum = (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    # Kubernetes' DeploymentComplete (observedGeneration is this very generation here).
    complete = status.updated_replicas == status.replicas == status.available_replicas == replicas
    if deployment.spec.paused:
        progress = ("Unknown", "DeploymentPaused", "Deployment is paused")
    elif complete:
        progress = (
            "True",
            "NewReplicaSetAvailable",
            f'Deployment "{name}" has successfully progressed.',
        )
    else:
        progress = ("True", "ReplicaSetUpdated", f'Deployment "{name}" is progressing.')
    status.conditions.append(_condition(existing, AVAILABLE, *minimum, available.now))
    status.conditions.append(_condition(existing, PROGRESSING, *progress, available.now))
    return status


# ---------------------------------------------------------------- new pods


def controller_reference(deployment: objects_pb2.Deployment) -> meta_pb2.OwnerReference:
    """The ownerReference a Deployment puts on the pods it controls."""
    return meta_pb2.OwnerReference(
        api_version=kinds.DEPLOYMENTS.api_version,
        kind=kinds.DEPLOYMENTS.kind,
        name=deployment.metadata.name,
        uid=deployment.metadata.uid,
        controller=True,
        block_owner_deletion=True,
    )


def _new_pod(deployment: objects_pb2.Deployment, pod_hash: str, name: str) -> objects_pb2.Pod:
    template = deployment.spec.template
    pod = objects_pb2.Pod(api_version=kinds.PODS.api_version, kind=kinds.PODS.kind)
    meta = pod.metadata
    meta.name = name
    meta.generate_name = name[:-SUFFIX_LENGTH]
    meta.namespace = deployment.metadata.namespace
    meta.labels.update(template.metadata.labels)
    meta.labels[POD_TEMPLATE_HASH] = pod_hash
    meta.annotations.update(template.metadata.annotations)
    meta.owner_references.append(controller_reference(deployment))
    pod.spec.CopyFrom(template.spec)
    return pod


# ---------------------------------------------------------------- the plan


def plan_deployment(
    deployment: objects_pb2.Deployment,
    owned: Sequence[objects_pb2.Pod],
    *,
    now: float,
    rng: random.Random,
    orphans: Sequence[objects_pb2.Pod] = (),
) -> DeploymentPlan:
    """The next step towards `deployment.spec`, given the pods it controls and the orphans of
    its namespace (status merged in).

    `rng` only picks new pod names; every count and every deletion depends on
    the inputs alone.
    """
    spec = deployment.spec
    replicas = desired_replicas(deployment)
    current = template_hash(spec.template)
    selector = from_label_selector(spec.selector)
    deleting = deployment.metadata.HasField("deletion_timestamp")
    # The "ReplicaSets" that exist: the current template's and those with pods left.
    hashes = {current} | {pod.metadata.labels.get(POD_TEMPLATE_HASH, "") for pod in owned}
    hashes.discard("")
    adoptable = [pod for pod in orphans if pod.metadata.labels.get(POD_TEMPLATE_HASH) in hashes]
    claims = claim_pods(selector, owned, adoptable, deleting=deleting)
    claimed = claims.claimed
    new = [pod for pod in claimed if pod.metadata.labels.get(POD_TEMPLATE_HASH) == current]
    old = [pod for pod in claimed if pod.metadata.labels.get(POD_TEMPLATE_HASH) != current]
    pods = _Pods(
        new=[pod for pod in new if is_active(pod)],
        old=[pod for pod in old if is_active(pod)],
        old_running=sum(1 for pod in old if pod.status.phase not in TERMINAL_PHASES),
    )
    available = _Availability(spec.min_ready_seconds, now)

    if deleting:
        step = _Step(0, [])
    elif spec.paused:
        step = _paused(pods, replicas)
    elif spec.strategy.type == RECREATE:
        step = _recreate(pods, replicas)
    else:
        surge, unavailable = resolve_fenceposts(spec.strategy.rolling_update, replicas)
        step = _rolling(pods, replicas, surge, unavailable, available)

    base = f"{deployment.metadata.name}-{current}-"[:MAX_GENERATED_BASE]
    taken = {pod.metadata.name for pod in (*owned, *claimed)}
    create = tuple(
        _new_pod(deployment, current, unique_name(base, taken, rng)) for _ in range(step.create)
    )
    return DeploymentPlan(
        create=create,
        delete=tuple(pod.metadata.name for pod in step.delete),
        status=_status(deployment, pods, available),
        release=claims.release,
        adopt=claims.adopt,
        recheck_at=available.due(pods.active),
    )
