"""A container instance's output: read from its pipes, written to its log as CRI records.

The container's stdout and stderr are pipes whose read ends the agent watches on
its event loop (`add_reader`, no threads); what arrives is cut into lines and
appended to `<container>.log` as CRI records, each with the time it was read and
its stream (`node_agent.logic.cri_log`), as containerd's shim writes them for the
kubelet. That time is what `kubectl logs --timestamps` shows and `--since` filters
on; a file the container writes itself could not say when each line came.

The log is opened as the container's output always was: 0600, appended, never
through a symlink (the container runs in the log's directory and could plant
one), before the process starts; a failure there is the container's StartError.

`close` ends the instance's output: whatever is still in the pipes (written before
the process exited) is read at once and written, a last line without a newline
becomes a partial record, and the fds are closed. The runner calls it as soon as
the main process has exited and before it reports the container terminated, so a
follower that sees "not running" finds every line in the file. A helper the
container left running that still holds a pipe loses its output from then on (a
container runtime would have killed it with the container).

A write that fails (a full disk) is logged once per instance and the output
dropped, so the container never blocks on a pipe nobody reads.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from node_agent.logic.cri_log import LineFramer

__all__ = ["ContainerOutput"]

log = logging.getLogger(__name__)

_READ = 64 * 1024
# Reads per pipe when closing: bounds the drain if a leftover helper keeps writing.
_DRAIN_READS = 64


class ContainerOutput:
    """The pipes of one container instance and the log file they go to."""

    def __init__(self, path: Path, *, clock_ns: Callable[[], int] = time.time_ns) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
        self._path = path
        self._clock_ns = clock_ns
        self._file = os.open(path, flags, 0o600)
        self._framers: dict[int, LineFramer] = {}
        self._child: list[int] = []
        self._failed = False
        self._watching = False
        try:
            for stream in (b"stdout", b"stderr"):
                read_end, write_end = os.pipe()  # both close-on-exec (PEP 446)
                os.set_blocking(read_end, False)
                self._framers[read_end] = LineFramer(stream)
                self._child.append(write_end)
        except OSError:
            self.close()
            raise

    @property
    def child_fds(self) -> tuple[int, int]:
        """The write ends the process gets as its stdout and stderr."""
        return self._child[0], self._child[1]

    def start(self) -> None:
        """The process has its copies of the write ends: watch the read ends."""
        self._close_child_ends()
        loop = asyncio.get_running_loop()
        for fd in self._framers:
            loop.add_reader(fd, self._readable, fd)
        self._watching = True

    def close(self) -> None:
        """The instance ended: drain the pipes, write the rest, close everything."""
        self._close_child_ends()
        for fd in list(self._framers):
            for _ in range(_DRAIN_READS):
                if not self._read(fd):
                    break
            if fd in self._framers:
                self._end(fd)
        if self._file >= 0:
            os.close(self._file)
            self._file = -1

    def _close_child_ends(self) -> None:
        for fd in self._child:
            os.close(fd)
        self._child.clear()

    def _readable(self, fd: int) -> None:
        self._read(fd)

    def _read(self, fd: int) -> bool:
        """One read of a pipe; whether more may follow now."""
        try:
            data = os.read(fd, _READ)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        if not data:
            self._end(fd)
            return False
        self._write(self._framers[fd].feed(data, self._clock_ns()))
        return True

    def _end(self, fd: int) -> None:
        framer = self._framers.pop(fd)
        self._write(framer.finish(self._clock_ns()))
        if self._watching:
            asyncio.get_running_loop().remove_reader(fd)
        os.close(fd)

    def _write(self, records: bytes) -> None:
        if not records or self._failed or self._file < 0:
            return
        try:
            while records:
                written = os.write(self._file, records)
                records = records[written:]
        except OSError as err:
            self._failed = True
            log.warning(
                "cannot write the container log %s: %s; its output is dropped", self._path, err
            )
