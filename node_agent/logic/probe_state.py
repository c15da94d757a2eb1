"""Probe results → container state, with Kubernetes' thresholds. Pure: time is passed in.

`ProbeTracker` holds one probe of one container instance and applies the
kubelet's prober worker rules (`pkg/kubelet/prober/worker.go` doProbe):

- the first probe is due `initialDelaySeconds` after the container started,
  then one every `periodSeconds`, measured from the start of the last probe
  (the worker's ticker is fixed-rate, so a slow probe does not push the next
  one back);
- a result counts only after `successThreshold` consecutive successes or
  `failureThreshold` consecutive failures; until then the state is unchanged;
- the initial state is Failure for readiness (a new container is not ready),
  Success for liveness (alive until proven otherwise) and not-yet for startup;
- a liveness or startup probe that reaches Failure goes on hold: the
  container will be killed and a new instance gets new trackers; a startup
  probe that succeeds is done (the worker skips started containers).

`ContainerProbes` combines the three probes of one container instance: while
a startup probe exists and has not passed, it alone runs and the container is
neither started nor ready; once it passes, liveness and readiness begin at once
(or at their initial delay, if that is later). `failed` names the probe that
condemned the container, if any. Missing probes count as passing, so a running
container with no readiness probe is ready.

Nothing here does I/O; `node_agent.probes` runs the checks and
`node_agent.container` feeds the results in.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from kubelab.v1 import objects_pb2

__all__ = ["ContainerProbes", "ProbeKind", "ProbeTiming", "ProbeTracker"]


class ProbeKind(StrEnum):
    STARTUP = "startup"
    LIVENESS = "liveness"
    READINESS = "readiness"


@dataclass(frozen=True, slots=True)
class ProbeTiming:
    """A probe's schedule and thresholds, in seconds (Kubernetes' defaults)."""

    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def of(cls, probe: objects_pb2.Probe) -> ProbeTiming:
        # Validation defaults every field; `or` repeats the defaults for a spec
        # that skipped defaulting, so a 0 period never spins.
        return cls(
            initial_delay=float(max(probe.initial_delay_seconds, 0)),
            period=float(probe.period_seconds or 10),
            timeout=float(probe.timeout_seconds or 1),
            success_threshold=probe.success_threshold or 1,
            failure_threshold=probe.failure_threshold or 3,
        )


class ProbeTracker:
    """One probe of one container instance: its schedule and its thresholded state."""

    __slots__ = ("_done", "_last", "_next", "_run", "kind", "passing", "timing")

    def __init__(self, kind: ProbeKind, timing: ProbeTiming, *, started_at: float) -> None:
        self.kind = kind
        self.timing = timing
        self.passing = kind is ProbeKind.LIVENESS
        self._last: bool | None = None
        self._run = 0
        self._next = started_at + timing.initial_delay
        self._done = False

    @property
    def done(self) -> bool:
        """No more probes for this container instance (failed liveness/startup, passed startup)."""
        return self._done

    def next_due(self, now: float) -> float | None:
        """When the next probe should start (never before `now`); None: no more probes."""
        if self._done:
            return None
        return max(self._next, now)

    def not_before(self, at: float) -> None:
        """Hold the next probe until `at` (liveness/readiness wait for startup)."""
        self._next = max(self._next, at)

    def record(self, ok: bool, at: float) -> bool:
        """Feed one result of a probe started at `at`; True when `passing` flipped."""
        if self._done:
            return False
        self._next = at + self.timing.period
        if ok == self._last:
            self._run += 1
        else:
            self._last, self._run = ok, 1
        needed = self.timing.success_threshold if ok else self.timing.failure_threshold
        if self._run < needed:
            return False
        flipped = ok != self.passing
        self.passing = ok
        if self.kind is ProbeKind.STARTUP or (self.kind is ProbeKind.LIVENESS and not ok):
            self._done = True
        return flipped


class ContainerProbes:
    """The startup, liveness and readiness probes of one container instance."""

    __slots__ = ("trackers",)

    def __init__(
        self,
        *,
        started_at: float,
        startup: ProbeTiming | None = None,
        liveness: ProbeTiming | None = None,
        readiness: ProbeTiming | None = None,
    ) -> None:
        self.trackers: dict[ProbeKind, ProbeTracker] = {}
        for kind, timing in (
            (ProbeKind.STARTUP, startup),
            (ProbeKind.LIVENESS, liveness),
            (ProbeKind.READINESS, readiness),
        ):
            if timing is not None:
                self.trackers[kind] = ProbeTracker(kind, timing, started_at=started_at)

    @classmethod
    def of(cls, container: objects_pb2.Container, *, started_at: float) -> ContainerProbes:
        def timing(field: str) -> ProbeTiming | None:
            return ProbeTiming.of(getattr(container, field)) if container.HasField(field) else None

        return cls(
            started_at=started_at,
            startup=timing("startup_probe"),
            liveness=timing("liveness_probe"),
            readiness=timing("readiness_probe"),
        )

    @property
    def started(self) -> bool:
        startup = self.trackers.get(ProbeKind.STARTUP)
        return startup is None or startup.passing

    @property
    def ready(self) -> bool:
        readiness = self.trackers.get(ProbeKind.READINESS)
        return self.started and self.failed is None and (readiness is None or readiness.passing)

    @property
    def failed(self) -> ProbeKind | None:
        """The probe whose failure condemns the container (kill, then restart per policy)."""
        for kind in (ProbeKind.STARTUP, ProbeKind.LIVENESS):
            tracker = self.trackers.get(kind)
            if tracker is not None and tracker.done and not tracker.passing:
                return kind
        return None

    def _active(self) -> list[ProbeTracker]:
        if self.failed is not None:
            return []
        if not self.started:
            return [self.trackers[ProbeKind.STARTUP]]
        return [t for k, t in self.trackers.items() if k is not ProbeKind.STARTUP]

    def next_due(self, now: float) -> float | None:
        """When the earliest probe is due (never before `now`); None: nothing left to probe."""
        due = [d for t in self._active() if (d := t.next_due(now)) is not None]
        return min(due, default=None)

    def due(self, now: float) -> list[ProbeKind]:
        """The probes to run now."""
        return [t.kind for t in self._active() if t.next_due(now) == now]

    def record(self, kind: ProbeKind, ok: bool, at: float) -> bool:
        """Feed a result; True when `started`, `ready` or `failed` changed."""
        before = (self.started, self.ready, self.failed)
        self.trackers[kind].record(ok, at)
        if kind is ProbeKind.STARTUP and self.started:
            for tracker in self.trackers.values():
                tracker.not_before(at)
        return (self.started, self.ready, self.failed) != before
