"""Container processes: spawn one, learn of its exit without threads, stop it with a grace.

A container is a plain child process of the node agent:

- it leads its own session and process group (`start_new_session`), so a
  container's helpers (`sh -c "a | b"`) are one group to signal, and a
  terminal's Ctrl-C on the agent does not reach pods directly;
- it dies with the agent: the child asks the kernel for SIGKILL when its
  parent goes (Linux `PR_SET_PDEATHSIG`). It is armed by util-linux's
  `setpriv --pdeathsig KILL`, which then execs the container's program: no
  Python may run between fork and exec in the agent, because the agent has
  gRPC's threads and a Python preexec hook there got children aborted
  (SIGABRT, seen as restarts right after start). Only where `setpriv` is
  missing does a preexec hook do it (and it exits at once if the parent
  already went before that call). The
  kernel tracks the parent *thread*, so spawn only from the event loop's
  thread (everything in the runtime does). A node
  agent killed with SIGKILL must leave nothing running, because a dead node
  runs nothing: its pods' endpoints are gone from every slice and the
  scheduler places replacements elsewhere. The death signal covers the
  container's main process; helpers it forks are killed with its group when
  the main process exits under a live agent (below), and are orphaned only if
  the agent and the main process die together;
- its exit is seen through a pidfd registered with the event loop (Linux
  5.3+), with a short poll as the fallback, so neither asyncio's child
  watchers (threads on 3.11's default loop) nor SIGCHLD handlers are involved
  and the same code runs on uvloop and the default loop;
- when the main process exits, whatever is left of its group is killed: a
  container runtime tears down the whole PID namespace when PID 1 exits, and
  leftovers would keep ports bound across a restart.

`stop` is the kubelet's killContainer: SIGTERM to the main process (what a
runtime sends PID 1), the grace period, then SIGKILL to the whole group.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import functools
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

__all__ = ["Process", "die_with_parent_hook", "spawn"]

_PR_SET_PDEATHSIG = 1
_POLL_SECONDS = 0.05


@functools.cache
def _prctl() -> Callable[..., int]:
    prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    return prctl


def die_with_parent_hook() -> Callable[[], None] | None:
    """The preexec hook that makes a child die with this process (None off Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    # Looked up in the parent: after fork the child only makes the call.
    prctl = _prctl()
    parent = os.getpid()

    def hook() -> None:
        if prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            os._exit(126)
        if os.getppid() != parent:  # the parent died before the death signal was armed
            os._exit(126)

    return hook


class Process:
    """One spawned child, awaited through the event loop."""

    __slots__ = ("_exited", "_pidfd", "_popen", "pid")

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen
        self.pid = popen.pid
        self._exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pidfd: int | None = None
        self._watch()

    @property
    def returncode(self) -> int | None:
        """Popen's convention: the exit status, or -N for death by signal N."""
        return self._popen.returncode

    def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            loop.call_later(_POLL_SECONDS, self._poll)
            return
        loop.add_reader(self._pidfd, self._reap)

    def _reap(self) -> None:
        if self._pidfd is not None:
            asyncio.get_running_loop().remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        self._finish()

    def _poll(self) -> None:
        try:
            exited = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            exited = None  # already reaped
        if exited is None and self._popen.returncode is None:
            asyncio.get_running_loop().call_later(_POLL_SECONDS, self._poll)
            return
        self._finish()

    def _finish(self) -> None:
        """The main process exited and is not reaped yet: while it is a zombie its pid,
        and so its group id, cannot be reused, which makes killing the group safe.
        The rest of the container goes with it (see the module doc)."""
        self._signal_group(signal.SIGKILL)
        code = self._popen.wait()
        if not self._exited.done():
            self._exited.set_result(code)

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    def send(self, sig: int) -> None:
        """Signal the main process (a no-op once it exited)."""
        if self._popen.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def kill_group(self) -> None:
        """SIGKILL the whole container now (its exit is still reported through `wait`)."""
        if self._popen.returncode is None:
            self._signal_group(signal.SIGKILL)

    async def stop(self, grace: float) -> int:
        """SIGTERM, up to `grace` seconds, then SIGKILL to the group; the return code."""
        if self._exited.done():
            return self._exited.result()
        self.send(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.wait(), timeout=max(grace, 0.0))
        except TimeoutError:
            self.kill_group()
            return await self.wait()


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    output: tuple[int, int] | None = None,
) -> Process:
    """Start `argv` as a container process, its stdout and stderr the two fds of
    `output` (the write ends of `node_agent.container_log`'s pipes; or discarded).
    Raises OSError when it cannot be executed (missing program, bad cwd)."""
    program = argv[0] if argv else ""
    if not shutil.which(program, path=env.get("PATH", os.defpath)) and not (
        os.path.isabs(program) and os.access(program, os.X_OK)
    ):
        # Resolved here so a missing program is an OSError (StartError), not the
        # wrapper's exit code.
        raise FileNotFoundError(errno.ENOENT, "executable file not found", program)
    wrapper = _DEATH_WRAPPER
    stdout, stderr = output if output is not None else (subprocess.DEVNULL, subprocess.DEVNULL)
    popen = subprocess.Popen(
        [*wrapper, *argv],
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        env=dict(env),
        cwd=cwd,
        start_new_session=True,
        preexec_fn=None if wrapper else die_with_parent_hook(),
    )
    return Process(popen)


_SETPRIV = shutil.which("setpriv") if sys.platform.startswith("linux") else None
_DEATH_WRAPPER: tuple[str, ...] = (_SETPRIV, "--pdeathsig", "KILL", "--") if _SETPRIV else ()
