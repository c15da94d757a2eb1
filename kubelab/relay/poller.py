"""The TCP relay's own epoll set, watched by the event loop as one file descriptor.

Why not `loop.add_reader` per socket: on uvloop every first registration of a socket
creates a libuv poll handle, which checks the descriptor (an epoll ADD and DEL), sets
it non-blocking again (an ioctl) and queues the real registration; every last removal
costs three more epoll calls. A relayed connection registers and removes each of its
two sockets at least once, so that was 14 system calls per connection before any byte
moved. Here a socket costs one `epoll_ctl` to start being watched and one to stop, and
one `epoll_wait` serves every socket that became ready in the same loop turn. Measured
on the project's 2-core machine with `bench/dataplane.py`: see docs/performance.md.

Level-triggered, like `add_reader`: a socket that stays readable is reported again on
the next turn. A batch is bounded (`BATCH`) so that one turn cannot starve the loop's
other work (listeners, timers, gRPC).
"""

from __future__ import annotations

import asyncio
import select
import weakref
from typing import Protocol

BATCH = 256
_IN = select.EPOLLIN
_OUT = select.EPOLLOUT
# Reported whether asked for or not: an error or hang-up wakes whichever callback waits.
_ANY = select.EPOLLERR | select.EPOLLHUP
_IN_ANY = _IN | _ANY
_OUT_ANY = _OUT | _ANY


class Watched(Protocol):
    """A socket's owner: what runs when it is readable or writable."""

    def readable(self) -> None: ...

    def writable(self) -> None: ...


class Poller:
    """One per event loop (`poller_for`): sockets' read and write interest, in one epoll."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._epoll = select.epoll()
        self._watched: dict[int, tuple[Watched, int]] = {}  # fd → (owner, event mask)
        loop.add_reader(self._epoll.fileno(), self._ready)

    def set(self, fd: int, owner: Watched, mask: int) -> None:
        """Watch `fd` for `mask` (EPOLLIN, EPOLLOUT or both); 0 stops watching it."""
        current = self._watched.get(fd)
        if mask == 0:
            if current is not None:
                del self._watched[fd]
                self._epoll.unregister(fd)
            return
        self._watched[fd] = (owner, mask)
        if current is None:
            self._epoll.register(fd, mask)
        elif current[1] != mask:
            self._epoll.modify(fd, mask)

    def _ready(self) -> None:
        watched = self._watched
        for fd, events in self._epoll.poll(0, BATCH):
            entry = watched.get(fd)
            if entry is None:
                continue  # stopped by an earlier callback of this batch
            owner, mask = entry
            if mask & _IN and events & _IN_ANY:
                owner.readable()
                if not events & _OUT_ANY:
                    continue
                # The callback may have changed what this descriptor waits for.
                entry = watched.get(fd)
                if entry is None or entry[0] is not owner:
                    continue
                mask = entry[1]
            if mask & _OUT and events & _OUT_ANY:
                owner.writable()


_POLLERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Poller] = weakref.WeakKeyDictionary()

READ = _IN
WRITE = _OUT


def poller_for(loop: asyncio.AbstractEventLoop) -> Poller:
    poller = _POLLERS.get(loop)
    if poller is None:
        poller = _POLLERS[loop] = Poller(loop)
    return poller
