"""List + watch + cache for one source of state (an informer, STYLE habit 2).

`Informer.run()` lists its source (the store reads it page by page at one
revision, so a source of any size lists without any message growing), fills
the cache, tells its handlers about every difference from what the cache held
before, marks itself synced, then
applies watch events from the list's revision on. A watch whose revision was
compacted relists and diffs again (DESIGN §7a): handlers see the changes they
missed, never an event twice for the same revision, never a stale cache
presented as fresh.

Handlers get `(key, old, new)` (`new` None for a deletion) and should only
enqueue keys: the work happens in workers that read the cache. Reconcilers
must not run before every informer they read is synced (`synced` event):
Kubernetes once wrote empty Endpoints after a restart for skipping exactly
that.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar

from kubelab.store import CompactedError

log = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")

Lister = Callable[[], Awaitable[tuple[dict[K, V], int]]]
Watcher = Callable[[int], AsyncIterator[tuple[K, V | None, int]]]
Handler = Callable[[K, V | None, V | None], None]


class Informer(Generic[K, V]):
    def __init__(self, name: str, lister: Lister[K, V], watcher: Watcher[K, V]) -> None:
        self.name = name
        self._lister = lister
        self._watcher = watcher
        self.cache: dict[K, V] = {}
        self.revision = 0
        self.synced = asyncio.Event()
        self._handlers: list[Handler[K, V]] = []

    def on_change(self, handler: Handler[K, V]) -> None:
        self._handlers.append(handler)

    def get(self, key: K) -> V | None:
        return self.cache.get(key)

    def _emit(self, key: K, old: V | None, new: V | None) -> None:
        for handler in self._handlers:
            try:
                handler(key, old, new)
            except Exception:  # one bad handler must not stop the cache for everyone
                log.exception("informer %s: handler failed for %s", self.name, key)

    async def _relist(self) -> None:
        fresh, revision = await self._lister()
        old = self.cache
        self.cache = dict(fresh)
        self.revision = revision
        for key in old.keys() | fresh.keys():
            before, after = old.get(key), fresh.get(key)
            if before != after:
                self._emit(key, before, after)

    async def run(self) -> None:
        while True:
            try:
                await self._relist()
            except Exception as err:  # etcd away, a list too large, a bad value: retry
                log.warning("informer %s: list failed (%r); retrying", self.name, err)
                await asyncio.sleep(0.5)
                continue
            self.synced.set()
            try:
                async for key, value, revision in self._watcher(self.revision):
                    old = self.cache.get(key)
                    if value is None:
                        self.cache.pop(key, None)
                    else:
                        self.cache[key] = value
                    self.revision = revision
                    self._emit(key, old, value)
            except CompactedError:
                log.info("informer %s: watch compacted; relisting", self.name)
