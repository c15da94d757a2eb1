"""One container of one pod: run it, probe it, restart it, stop it.

A `ContainerRunner` owns a supervision task that loops: start the process,
probe it while it runs, wait for it to exit, decide, maybe back off, start
again. Everything the pod's status needs (state, lastState, restartCount,
ready, started) lives here and changes only inside that task or `stop`; each
change calls `on_change` so the runtime recomputes the pod's conditions and
tells its caller.

Kubernetes behaviour copied from the kubelet:

- restarts follow the pod's restartPolicy (`kubelab.core.pod_status`), with
  the crash-loop back-off: the first restart is immediate, the next ones wait
  `restart_backoff`, doubling up to `max_backoff`; meanwhile the state is
  waiting/CrashLoopBackOff and lastState holds the termination. A container
  that ran 60 s starts its back-off over;
- a failed liveness or startup probe kills the container (SIGTERM, the pod's
  terminationGracePeriodSeconds, SIGKILL) and it restarts unless the policy is
  Never, whatever its exit code (the kubelet's shouldRestartOnFailure). It is
  not ready from the moment it is condemned;
- probes keep running while the pod terminates (the kubelet's do too), so the
  container's readiness stays truthful until its process exits;
- a program that cannot be started at all (no such file, bad workingDir)
  terminates with exit code 128 and reason StartError, as containerd reports.

Each instance's stdout and stderr go to `<container>.log` in the pod's
directory, one CRI record per line with the time it came (`container_log`); a
restart first renames it to `<container>.previous.log`, which is what `kubectl
logs --previous` shows.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf.timestamp_pb2 import Timestamp

from kubelab.core import event_notes as notes
from kubelab.core.pod_status import (
    RestartBackoff,
    exit_code_of,
    should_restart,
    terminated_reason,
)
from kubelab.obs.logs import kobj
from kubelab.runtime.events import EventRecorder
from kubelab.v1 import meta_pb2, objects_pb2
from node_agent.container_log import ContainerOutput
from node_agent.launch import container_argv, container_env
from node_agent.logic.probe_state import ContainerProbes, ProbeKind
from node_agent.probes import run_probe
from node_agent.process import Process, spawn

__all__ = ["ContainerRunner", "PodContext", "now_timestamp"]

log = logging.getLogger(__name__)

START_ERROR_EXIT_CODE = 128
_PROBE_FIELDS = {
    ProbeKind.STARTUP: "startup_probe",
    ProbeKind.LIVENESS: "liveness_probe",
    ProbeKind.READINESS: "readiness_probe",
}


@dataclass(frozen=True, slots=True)
class PodContext:
    """What a container needs to know about its pod."""

    namespace: str
    name: str
    restart_policy: str
    grace_seconds: float  # for kills the runtime decides on (failed probes)
    directory: Path  # logs, and the working directory when the spec names none
    identity: Mapping[str, str]  # POD_NAME, POD_IP, ...
    services: Callable[[], Mapping[str, str]]  # the Service variables, as of each start
    events: EventRecorder = field(default_factory=EventRecorder.null)  # the kubelet's
    ref: meta_pb2.ObjectReference = field(default_factory=meta_pb2.ObjectReference)  # the pod

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def now_timestamp() -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(time.time_ns())
    return stamp


class ContainerRunner:
    def __init__(
        self,
        spec: objects_pb2.Container,
        *,
        pod: PodContext,
        backoff: RestartBackoff,
        on_change: Callable[[], None],
    ) -> None:
        self.spec = spec
        self.pod = pod
        self.restart_count = 0
        self.state = objects_pb2.ContainerState()
        self.state.waiting.reason = "ContainerCreating"
        self.last_state = objects_pb2.ContainerState()
        self.process: Process | None = None
        self.probes: ContainerProbes | None = None
        self.finished = False  # terminated for good: no restart will follow
        self._backoff = backoff
        self._on_change = on_change
        self._condemned = ""  # why the runner itself killed the running instance
        self._stopping = False
        self._retired = False  # stopped for good by `stop`: nothing starts it again
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ reading

    @property
    def ready(self) -> bool:
        return self.process is not None and self.probes is not None and self.probes.ready

    @property
    def started(self) -> bool:
        return self.process is not None and self.probes is not None and self.probes.started

    def log_path(self, previous: bool = False) -> Path:
        suffix = ".previous.log" if previous else ".log"
        return self.pod.directory / f"{self.spec.name}{suffix}"

    def status(self) -> objects_pb2.ContainerStatus:
        return objects_pb2.ContainerStatus(
            name=self.spec.name,
            image=self.spec.image,
            ready=self.ready,
            started=self.started,
            restart_count=self.restart_count,
            state=self.state,
            last_state=self.last_state,
        )

    # ------------------------------------------------------------ control

    def start(self, *, restarting: bool = False) -> None:
        if self._retired:
            return
        self._stopping = False
        self.finished = False
        self._task = asyncio.create_task(
            self._supervise(restarting), name=f"container {self.pod.key}/{self.spec.name}"
        )
        self._task.add_done_callback(self._task_done)

    def kill(self, sig: int) -> int:
        """Signal the running process (chaos); its exit is handled like any crash."""
        if self.process is None:
            raise ProcessLookupError(f"container {self.spec.name} of {self.pod.key} is not running")
        self.process.send(sig)
        return self.process.pid

    async def stop(self, grace: float) -> None:
        """Stop for good: SIGTERM, `grace` seconds, SIGKILL; no restart follows.
        Calling it again while it waits shortens the grace to the new one."""
        self._retired = True
        if self.process is not None:
            self.pod.events.record(self.pod.ref, notes.killing(self.spec.name))
        await self._halt(grace)

    async def _halt(self, grace: float) -> None:
        self._stopping = True
        process, task = self.process, self._task
        if process is not None:
            await process.stop(grace)
        elif task is not None:
            task.cancel()  # waiting out a back-off: nothing runs
        if task is not None:
            await asyncio.wait([task])  # its cancellation is not ours: do not raise it
        if not self.finished:
            self.finished = True
            self._on_change()

    async def replace(self, spec: objects_pb2.Container, grace: float) -> None:
        """A new image: stop this instance and start the new one at once, whatever the
        restart policy (the kubelet restarts a container whose spec changed)."""
        was_finished = self.finished
        await self._halt(grace)
        self.spec = spec
        if was_finished or self._retired:
            return  # a completed container stays completed; a stopped pod stays stopped
        if self.state.HasField("terminated"):  # not when stopped while backing off
            self.last_state = self.state
        self.start(restarting=True)

    # ------------------------------------------------------------ supervision

    def _kobj(self) -> dict[str, str]:
        node = self.pod.identity.get("NODE_NAME", "")
        return kobj(self.pod.key, kind="pod", node=node, container=self.spec.name)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "container %s failed",
                task.get_name(),
                exc_info=task.exception(),
                extra=self._kobj(),
            )

    async def _supervise(self, restarting: bool) -> None:
        while True:
            if restarting:
                self.restart_count += 1
            ran_for = await self._run_once()
            exit_code = self.state.terminated.exit_code
            if self._stopping or not self._should_restart(exit_code):
                self.finished = True
                self._on_change()
                return
            self.last_state = self.state
            delay = self._backoff.next(ran_for=ran_for)
            if delay > 0:
                self.state = objects_pb2.ContainerState()
                self.state.waiting.reason = "CrashLoopBackOff"
                self.state.waiting.message = (
                    f"back-off {delay:g}s restarting failed container={self.spec.name} "
                    f"pod={self.pod.name}"
                )
                self._on_change()
                self.pod.events.record(
                    self.pod.ref,
                    notes.back_off(
                        self.spec.name, self.pod.namespace, self.pod.name, self.pod.ref.uid
                    ),
                )
                await asyncio.sleep(delay)
            restarting = True

    def _should_restart(self, exit_code: int) -> bool:
        policy = self.pod.restart_policy
        if self._condemned:
            return policy != "Never"
        return should_restart(policy, exit_code)

    async def _run_once(self) -> float:
        """Run one instance to its end; the seconds it ran. Leaves `state` terminated."""
        self._condemned = ""
        env = container_env(self.spec, identity=self.pod.identity, services=self.pod.services())
        cwd = Path(self.spec.working_dir) if self.spec.working_dir else self.pod.directory
        log_file = self.log_path()
        if log_file.exists():
            log_file.replace(self.log_path(previous=True))
        started_at, started_mono = now_timestamp(), time.monotonic()
        output: ContainerOutput | None = None
        try:
            output = ContainerOutput(log_file)
            process = spawn(container_argv(self.spec), env=env, cwd=cwd, output=output.child_fds)
        except OSError as err:
            if output is not None:
                output.close()
            self._terminated(START_ERROR_EXIT_CODE, 0, started_at, reason="StartError")
            self.state.terminated.message = str(err)
            self.pod.events.record(self.pod.ref, notes.failed_start(self.spec.name, str(err)))
            log.warning(
                "container cannot start: %s",
                err,
                extra=self._kobj(),
            )
            return 0.0
        output.start()
        self.process = process
        self.probes = ContainerProbes.of(self.spec, started_at=started_mono)
        self.state = objects_pb2.ContainerState()
        self.state.running.started_at.CopyFrom(started_at)
        self._on_change()
        self.pod.events.record(self.pod.ref, notes.started(self.spec.name))
        prober = asyncio.create_task(
            self._probe_loop(process, self.probes, env, cwd),
            name=f"probes {self.pod.key}/{self.spec.name}",
        )
        prober.add_done_callback(self._task_done)
        try:
            returncode = await process.wait()
        finally:
            # Every line it wrote is in the log before it is reported terminated.
            output.close()
            prober.cancel()
            await asyncio.wait([prober])
        self.process = None
        self.probes = None
        exit_code, sig = exit_code_of(returncode)
        self._terminated(exit_code, sig, started_at)
        return time.monotonic() - started_mono

    def _terminated(
        self, exit_code: int, sig: int, started_at: Timestamp, reason: str = ""
    ) -> None:
        state = objects_pb2.ContainerState()
        done = state.terminated
        done.exit_code, done.signal = exit_code, sig
        done.reason = reason or terminated_reason(exit_code)
        done.message = self._condemned
        done.started_at.CopyFrom(started_at)
        done.finished_at.CopyFrom(now_timestamp())
        self.state = state

    async def _probe_loop(
        self, process: Process, probes: ContainerProbes, env: Mapping[str, str], cwd: Path
    ) -> None:
        ip = self.pod.identity.get("POD_IP", "")
        while True:
            now = time.monotonic()
            due = probes.next_due(now)
            if due is None:
                return
            if due > now:
                await asyncio.sleep(due - now)
                continue
            kinds = probes.due(now)
            results = await asyncio.gather(
                *(
                    run_probe(
                        getattr(self.spec, _PROBE_FIELDS[kind]),
                        pod_ip=ip,
                        container=self.spec,
                        env=env,
                        cwd=cwd,
                    )
                    for kind in kinds
                )
            )
            changed = False
            for kind, result in zip(kinds, results, strict=True):
                self.pod.events.record(
                    self.pod.ref,
                    notes.unhealthy(self.spec.name, kind, result.message, failed=not result.ok),
                )
                if probes.record(kind, result.ok, now):
                    changed = True
                    log.info(
                        "%s probe %s%s",
                        kind,
                        "passed" if result.ok else "failed",
                        f": {result.message}" if result.message else "",
                        extra=self._kobj(),
                    )
            failed = probes.failed
            if failed is not None:
                self._condemned = f"Container {self.spec.name} failed {failed} probe"
                self.pod.events.record(self.pod.ref, notes.failed_probe(self.spec.name, failed))
                self._on_change()  # not ready from now on
                await process.stop(self.pod.grace_seconds)
                return
            if changed:
                self._on_change()
