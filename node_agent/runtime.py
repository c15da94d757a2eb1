"""The pod runtime: the pods bound to this node, run as plain processes.

`PodRuntime` is the node agent's container runtime and the kubelet's pod
workers in one: the agent's main loop calls `ensure` for every pod bound to
the node and `terminate` for every pod that is deleted or moved away, and
reports `status()` whenever `on_change(namespace, name)` fires. Each
container is a `node_agent.container.ContainerRunner` (process, probes,
restarts); this module owns what is per pod:

- the pod IP: the lowest free host address of the node's podCIDR from .2 on
  (.1 stays free, the address a gateway would have), held from `ensure`
  until `terminate` returns, across container restarts; a full CIDR raises
  `PodCIDRFullError` from `ensure`;
- the pod's directory `log_dir/<namespace>_<name>/`: container logs, and the
  working directory of containers whose spec names none. A new pod (not a
  restart) starts with it empty; `terminate` leaves it for post-mortems.
  Directories are 0700 and logs 0600: a pod's output is its owner's. Logs are
  read (`open_log`) only for a container of a pod this runtime runs, by the
  names in its spec, never a path from a caller, and never through a symlink
  (a container can write into its directory: it could plant one);
- the pod's IP: the lowest free one of the node's pod CIDR, or the one the
  caller says the pod had when it is free (an agent that restarted runs its
  pods again where the slices and the proxies still send their traffic);
- the PodStatus (kubelet's generateAPIPodStatus): phase from the container
  states (`kubelab.core.pod_status.pod_phase`), podIP/podIPs, hostIP,
  startTime (when `ensure` first saw the pod), containerStatuses, and the
  conditions Initialized, Ready, ContainersReady, PodScheduled, whose
  lastTransitionTime moves only when their status does;
- termination: Ready turns False the moment `terminate` begins (the caller
  reports the pod as terminating through its deletionTimestamp) while
  ContainersReady keeps following the readiness probes, which run on through
  the grace period as in Kubernetes: that is the pod's "serving" state.

`ensure` is idempotent. A running pod is left alone except that a changed
container image replaces that container (the only spec change Kubernetes
allows), in the background, and the Service variables given are kept for the
containers' next starts. A pod with the same name but another uid is a new
pod: the old one is terminated first (with its own grace period).

`on_change` is called synchronously, from the event loop, whenever a pod's
status may have changed (the caller diffs and writes only real changes). It
must not block; exceptions it raises are logged and dropped. After
`terminate` returns, `status()` answers None and `on_change` has fired once
more: the caller deletes the pod's status.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import os
import shutil
import signal
import stat
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TypeVar

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from kubelab.core.events import reference
from kubelab.core.keys import ObjectKey, key_of
from kubelab.core.pod_status import Conditions, RestartBackoff, pod_phase
from kubelab.obs.logs import kobj
from kubelab.runtime.events import EventRecorder
from kubelab.v1 import objects_pb2
from node_agent.container import ContainerRunner, PodContext, now_timestamp
from node_agent.launch import is_echo_image

__all__ = ["PodCIDRFullError", "PodRuntime"]

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)

DEFAULT_GRACE_SECONDS = 30.0
BACKOFF_RESET_SECONDS = 60.0


class PodCIDRFullError(RuntimeError):
    """Every address of the node's podCIDR is held by a pod."""


@dataclass(eq=False)
class _Pod:
    pod: objects_pb2.Pod
    ip: str
    directory: Path
    start_time: Timestamp
    services: dict[str, str]
    runners: list[ContainerRunner] = field(default_factory=list)
    conditions: Conditions = field(default_factory=Conditions)
    terminating: bool = False
    gone: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def key(self) -> str:
        return f"{self.pod.metadata.namespace}/{self.pod.metadata.name}"

    @property
    def grace_seconds(self) -> float:
        spec = self.pod.spec
        if spec.HasField("termination_grace_period_seconds"):
            return float(spec.termination_grace_period_seconds)
        return DEFAULT_GRACE_SECONDS


class PodRuntime:
    def __init__(
        self,
        *,
        node_name: str,
        node_ip: str,
        pod_cidr: str,
        log_dir: Path,
        on_change: Callable[[str, str], None],
        restart_backoff: float = 1.0,
        max_backoff: float = 30.0,
        events: EventRecorder | None = None,
    ) -> None:
        self.node_name = node_name
        self.node_ip = node_ip
        self.log_dir = log_dir
        self._network = ipaddress.ip_network(pod_cidr, strict=False)
        self._on_change = on_change
        self._restart_backoff = restart_backoff
        self._max_backoff = max_backoff
        self._events = events or EventRecorder.null()
        self._pods: dict[ObjectKey, _Pod] = {}
        self._background: set[asyncio.Task[None]] = set()  # image replacements in flight

    # ------------------------------------------------------------ lifecycle

    async def ensure(
        self,
        pod: objects_pb2.Pod,
        env: Mapping[str, str],
        *,
        last_ip: str = "",
        avoid: Collection[str] = (),
    ) -> None:
        """Run `pod` if it is not running; see the module doc for what a running pod gets.

        `last_ip`: where the pod ran before this runtime started (an agent's restart), to
        run it there again if free; `avoid`: other such pods' addresses, kept for them."""
        key = key_of(pod)
        while (known := self._pods.get(key)) is not None:
            if not pod.metadata.uid or known.pod.metadata.uid == pod.metadata.uid:
                self._update(known, pod, env)
                return
            log.info("pod replaced by a new uid", extra=self._kobj(known))
            await self.terminate(*key, known.grace_seconds)
        self._start(key, pod, env, self._allocate_ip(last_ip, avoid))

    async def terminate(self, namespace: str, name: str, grace_seconds: float) -> None:
        """SIGTERM every container, SIGKILL after `grace_seconds`, then forget the pod.
        A second call while the first waits may shorten the grace; both return when
        the pod is gone."""
        known = self._pods.get(ObjectKey((namespace, name)))
        if known is None:
            return
        if not known.terminating:
            known.terminating = True
            log.info("terminating pod (grace %gs)", grace_seconds, extra=self._kobj(known))
            self._changed(known)
        stops = [runner.stop(grace_seconds) for runner in known.runners]
        for error in await asyncio.gather(*stops, return_exceptions=True):
            if isinstance(error, BaseException):
                log.error("container stop failed", exc_info=error, extra=self._kobj(known))
        if self._pods.get(ObjectKey((namespace, name))) is known:
            del self._pods[ObjectKey((namespace, name))]
            known.gone.set()
            self._notify(namespace, name)
        await known.gone.wait()

    async def close(self, grace_seconds: float = 5) -> None:
        """Terminate every pod (a clean node shutdown)."""
        await asyncio.gather(*(self.terminate(ns, n, grace_seconds) for ns, n in list(self._pods)))

    def kill(self, namespace: str, name: str, sig: int = signal.SIGKILL) -> int:
        """Chaos: signal the first container's process and return its pid. KeyError for
        an unknown pod, ProcessLookupError when that container is not running."""
        known = self._pods[ObjectKey((namespace, name))]
        return known.runners[0].kill(sig)

    # ------------------------------------------------------------ reading

    def running(self) -> list[ObjectKey]:
        return list(self._pods)

    def containers(self, namespace: str, name: str) -> list[str]:
        """The pod's container names, in spec order (KeyError when the pod is unknown)."""
        return [runner.spec.name for runner in self._pods[ObjectKey((namespace, name))].runners]

    def log_path(
        self, namespace: str, name: str, container: str = "", previous: bool = False
    ) -> Path:
        """`<log_dir>/<namespace>_<name>/<container>[.previous].log`; the container
        defaults to the pod's first. KeyError when the pod or the container is unknown."""
        return self._runner(namespace, name, container).log_path(previous)

    def open_log(
        self, namespace: str, name: str, container: str = "", previous: bool = False
    ) -> BinaryIO:
        """The container's log, open for reading (see `log_path`). FileNotFoundError when
        there is none; OSError(ELOOP) when it (or the pod's directory) is a symlink."""
        path = self.log_path(namespace, name, container, previous)
        return _open_regular(path.parent, path.name)

    def status(self, namespace: str, name: str) -> objects_pb2.PodStatus | None:
        known = self._pods.get(ObjectKey((namespace, name)))
        if known is None:
            return None
        containers = [runner.status() for runner in known.runners]
        status = objects_pb2.PodStatus(
            phase=pod_phase(known.pod.spec.restart_policy or "Always", containers),
            pod_ip=known.ip,
            pod_ips=[objects_pb2.PodIP(ip=known.ip)],
            host_ip=self.node_ip,
            conditions=known.conditions.listed(),
            container_statuses=containers,
        )
        status.start_time.CopyFrom(known.start_time)
        return status

    # ------------------------------------------------------------ internals

    def _runner(self, namespace: str, name: str, container: str) -> ContainerRunner:
        runners = self._pods[ObjectKey((namespace, name))].runners
        if not container:
            return runners[0]
        for runner in runners:
            if runner.spec.name == container:
                return runner
        raise KeyError(container)

    def _start(self, key: ObjectKey, pod: objects_pb2.Pod, env: Mapping[str, str], ip: str) -> None:
        directory = self.log_dir / f"{key[0]}_{key[1]}"
        shutil.rmtree(directory, ignore_errors=True)  # an earlier pod's, of the same name
        self.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.log_dir.chmod(0o700)  # made by an older agent, with the umask's mode
        directory.mkdir(mode=0o700)
        known = _Pod(
            pod=_copy(pod),
            ip=ip,
            directory=directory,
            start_time=now_timestamp(),
            services=dict(env),
        )
        self._pods[key] = known
        context = PodContext(
            namespace=key[0],
            name=key[1],
            restart_policy=pod.spec.restart_policy or "Always",
            grace_seconds=known.grace_seconds,
            directory=directory,
            identity={
                "POD_NAME": key[1],
                "POD_NAMESPACE": key[0],
                "NODE_NAME": self.node_name,
                "POD_IP": known.ip,
                "HOSTNAME": pod.spec.hostname or key[1],
            },
            services=lambda: known.services,
            events=self._events,
            ref=reference(known.pod),
        )
        for container in pod.spec.containers:
            if not container.command and not container.args and not is_echo_image(container.image):
                log.warning(
                    "image %r is not kubelab/echo: running the echo server in its place",
                    container.image,
                    extra=self._kobj(known, container=container.name),
                )
            runner = ContainerRunner(
                container,
                pod=context,
                backoff=RestartBackoff(
                    self._restart_backoff, self._max_backoff, BACKOFF_RESET_SECONDS
                ),
                on_change=lambda: self._changed(known),
            )
            known.runners.append(runner)
        log.info("starting pod on %s", known.ip, extra=self._kobj(known))
        self._changed(known)
        for runner in known.runners:
            runner.start()

    def _update(self, known: _Pod, pod: objects_pb2.Pod, env: Mapping[str, str]) -> None:
        if known.terminating:
            return
        known.services = dict(env)
        # Compared with the last spec seen, not the runner's: a replacement in flight
        # has not reached the runner yet and must not be started twice.
        # (Validation forbids adding or removing containers, so the lists line up.)
        seen = known.pod.spec.containers
        for runner, before, container in zip(
            known.runners, seen, pod.spec.containers, strict=False
        ):
            if container.image != before.image:
                log.info(
                    "image changed %r -> %r: replacing the container",
                    before.image,
                    container.image,
                    extra=self._kobj(known, container=container.name),
                )
                task = asyncio.create_task(runner.replace(_copy(container), known.grace_seconds))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
        known.pod = _copy(pod)

    def _allocate_ip(self, last_ip: str = "", avoid: Collection[str] = ()) -> str:
        """`last_ip` when it is a pod address of this node and free, else the lowest free
        one not in `avoid`."""
        taken = {known.ip for known in self._pods.values()}
        first = int(self._network.network_address) + 2
        if last_ip and last_ip not in taken:
            try:
                address = int(ipaddress.ip_address(last_ip))
            except ValueError:
                address = 0
            if first <= address < int(self._network.broadcast_address):
                return last_ip
        taken.update(avoid)
        for host in self._network.hosts():
            if int(host) >= first and str(host) not in taken:
                return str(host)
        raise PodCIDRFullError(f"no free pod IP in {self._network}")

    def _changed(self, known: _Pod) -> None:
        """Recompute the conditions, then tell the caller."""
        now = now_timestamp()
        runners = known.runners
        phase = pod_phase(known.pod.spec.restart_policy or "Always", [r.status() for r in runners])
        completed = phase in ("Succeeded", "Failed")
        unready = [r.spec.name for r in runners if not r.ready]
        containers_ready = not unready and not completed
        if completed:
            reason, message = "PodCompleted", ""
        elif unready:
            reason, message = (
                "ContainersNotReady",
                f"containers with unready status: [{' '.join(unready)}]",
            )
        else:
            reason = message = ""
        conditions = known.conditions
        conditions.set("Initialized", True, now)
        conditions.set("ContainersReady", containers_ready, now, reason, message)
        if known.terminating and containers_ready:
            conditions.set("Ready", False, now, "PodTerminating", "the pod is being deleted")
        else:
            conditions.set("Ready", containers_ready, now, reason, message)
        conditions.set("PodScheduled", True, now)
        namespace, name = known.pod.metadata.namespace, known.pod.metadata.name
        if self._pods.get(ObjectKey((namespace, name))) is known:
            self._notify(namespace, name)

    def _notify(self, namespace: str, name: str) -> None:
        try:
            self._on_change(namespace, name)
        except Exception:
            log.exception("on_change failed", extra=kobj(f"{namespace}/{name}", kind="pod"))

    def _kobj(self, known: _Pod, **fields: str) -> dict[str, str]:
        return kobj(known.key, kind="pod", node=self.node_name, **fields)


def _open_regular(directory: Path, filename: str) -> BinaryIO:
    """`directory/filename` for reading, following no symlink at either step, and only
    if it is a regular file (a FIFO planted there would block the reader forever)."""
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(filename, flags, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FileNotFoundError(errno.ENOENT, "not a regular file", filename)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _copy(message: M) -> M:
    copy = type(message)()
    copy.CopyFrom(message)
    return copy
