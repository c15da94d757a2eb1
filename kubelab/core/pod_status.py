"""The kubelet's status rules, pure: pod phase, restart decisions, back-off, conditions.

These are the parts of `PodStatus` that follow from facts (container states,
restart policy, the clock), copied from the kubelet so they can be tested
without processes:

- `pod_phase` is `pkg/kubelet/kubelet_pods.go` getPhase: a container waiting
  after a termination counts as stopped, not pending; all stopped under
  Always is Running (restarting); Succeeded needs every container to exit 0;
  Never with a failure is Failed; OnFailure with a failure is Running.
- `should_restart` is ContainerShouldRestart: Always restarts, OnFailure on a
  non-zero exit, Never not at all.
- `RestartBackoff` is the kubelet's crash-loop back-off (`doBackOff` over
  `flowcontrol.Backoff`): the first restart is immediate, the next waits the
  initial delay, then it doubles up to the maximum; a container that ran long
  enough starts over.
- `Conditions` keeps each condition's lastTransitionTime until its status
  really changes, so a writer that diffs statuses sees no churn.
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.timestamp_pb2 import Timestamp

from kubelab.v1 import meta_pb2, objects_pb2

__all__ = [
    "CONDITION_ORDER",
    "Conditions",
    "RestartBackoff",
    "exit_code_of",
    "pod_phase",
    "should_restart",
    "terminated_reason",
]

# The order the kubelet lists pod conditions in.
CONDITION_ORDER = ("Initialized", "Ready", "ContainersReady", "PodScheduled")


def pod_phase(restart_policy: str, statuses: Sequence[objects_pb2.ContainerStatus]) -> str:
    running = waiting = stopped = succeeded = 0
    for status in statuses:
        state = status.state
        if state.HasField("running"):
            running += 1
        elif state.HasField("terminated"):
            stopped += 1
            succeeded += state.terminated.exit_code == 0
        elif status.last_state.HasField("terminated"):
            stopped += 1  # waiting to restart after a termination
        else:
            waiting += 1
    if waiting or not statuses:
        return "Pending"
    if running:
        return "Running"
    if restart_policy == "Always":
        return "Running"  # every container is about to restart
    if stopped == succeeded:
        return "Succeeded"
    if restart_policy == "Never":
        return "Failed"
    return "Running"  # OnFailure: the failed ones restart


def should_restart(restart_policy: str, exit_code: int) -> bool:
    if restart_policy == "Never":
        return False
    if restart_policy == "OnFailure":
        return exit_code != 0
    return True


def exit_code_of(returncode: int) -> tuple[int, int]:
    """(exitCode, signal) from a Popen return code: a signal N shows as 128 + N, the
    shell and container-runtime convention Kubernetes reports (137 = SIGKILL)."""
    if returncode < 0:
        return 128 - returncode, -returncode
    return returncode, 0


def terminated_reason(exit_code: int) -> str:
    return "Completed" if exit_code == 0 else "Error"


class RestartBackoff:
    """Delays between restarts of one container: 0, initial, 2 x initial, ... maximum."""

    __slots__ = ("_delay", "initial", "maximum", "reset_after")

    def __init__(self, initial: float, maximum: float, reset_after: float = 60.0) -> None:
        self.initial = initial
        self.maximum = max(maximum, initial)
        self.reset_after = reset_after
        self._delay: float | None = None

    def next(self, *, ran_for: float) -> float:
        """The delay before restarting a container that ran `ran_for` seconds."""
        if ran_for >= self.reset_after:
            self._delay = None
        if self._delay is None:
            self._delay = self.initial
            return 0.0
        delay = self._delay
        self._delay = min(delay * 2, self.maximum)
        return delay


class Conditions:
    """Pod conditions whose lastTransitionTime moves only when their status does."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: dict[str, meta_pb2.Condition] = {}

    def set(
        self, kind: str, value: bool, now: Timestamp, reason: str = "", message: str = ""
    ) -> bool:
        """Record a condition; True when anything about it changed."""
        status = "True" if value else "False"
        old = self._items.get(kind)
        new = meta_pb2.Condition(type=kind, status=status, reason=reason, message=message)
        if old is not None and old.status == status:
            new.last_transition_time.CopyFrom(old.last_transition_time)
        else:
            new.last_transition_time.CopyFrom(now)
        self._items[kind] = new
        return old != new

    def get(self, kind: str) -> meta_pb2.Condition | None:
        return self._items.get(kind)

    def listed(self) -> list[meta_pb2.Condition]:
        order = {kind: i for i, kind in enumerate(CONDITION_ORDER)}
        return sorted(self._items.values(), key=lambda c: (order.get(c.type, len(order)), c.type))
