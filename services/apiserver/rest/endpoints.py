"""The read-only `endpoints` resource (core/v1): get, list and watch, derived from slices.

Nothing is stored: every read derives the Endpoints from the EndpointSlices
(`services.apiserver.k8s.endpoints_mirror`). Get and list read the slices of the
namespace (or of every namespace) page by page at one revision; a list page, and the
pages after it (their continue token names that revision), is cut from the Endpoints
of that one snapshot. A watch reads the slices at the revision it starts from (the
list's, when a client lists then watches), then follows the slice events of the watch
cache from there (`endpoints_watch` turns them into Endpoints events). The events of
one revision, which the cache delivers together, are taken together, so the slices one
transaction wrote make one Endpoints event, never an intermediate state.

Every write (POST, PUT, PATCH, DELETE) is refused with a 405 MethodNotAllowed Status
saying why: kubelab's Endpoints are a view of what the slice controller wrote.

Failures are those of the store (503 while etcd is down, 410 for a watch or a continue
token from a compacted revision), answered as for stored kinds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from kubelab.core import kinds, paging
from kubelab.limits import LIST_CHUNK
from kubelab.store import CompactedError, ExpiredContinueError, Store
from services.apiserver.k8s.endpoints_mirror import Endpoints, Slice, mirror_all, service_key
from services.apiserver.k8s.endpoints_watch import EndpointsWatch, SliceEvent
from services.apiserver.rest import convert, endpoints_wire, tables
from services.apiserver.rest.discovery import parse_accept, wants
from services.apiserver.rest.endpoints_wire import Target
from services.apiserver.rest.errors import ApiError, api_error_of
from services.apiserver.rest.options import ListOptions, list_options
from services.apiserver.rest.watch_stream import run_watch
from services.apiserver.watch_cache import Delivered, Progress, WatchCache

log = logging.getLogger(__name__)

JSON = "application/json"
# Where a read at a past revision starts: the first key there can be under any prefix.
_FIRST_KEY = "\x00"
_END = object()  # the watch cache's stream is over
# Changes taken from the watch cache and not yet sent, at most.
_PUMPED = 256


def _wants_table(request: web.Request) -> bool:
    accept = parse_accept(request.headers.get("Accept", ""))
    return wants(accept, group="meta.k8s.io", version="v1", kind="Table") or wants(
        accept, group="meta.k8s.io", version="v1beta1", kind="Table"
    )


def _json(body: Any) -> web.Response:
    response = web.Response(body=convert.dumps(body), content_type=JSON)
    response.headers["Warning"] = _warning()
    return response


def _warning() -> str:
    return f'299 - "{endpoints_wire.DEPRECATION}"'


class EndpointsResource:
    def __init__(self, store: Store, cache: WatchCache) -> None:
        self.store = store
        self.cache = cache

    async def handle(self, request: web.Request, target: Target) -> web.StreamResponse:
        try:
            if request.method != "GET":
                raise endpoints_wire.read_only(request.method, target.name)
            endpoints_wire.check(target)
            if target.name:
                return await self.read_one(request, target)
            opts = list_options(request.query, endpoints_wire.OPTIONS_KIND)
            if opts.watch:
                return await self.watch(request, target, opts)
            return await self.read_list(request, target, opts)
        except ApiError:
            raise
        except Exception as err:
            mapped = api_error_of(err)
            if mapped is None:
                raise
            raise mapped from None

    async def _slices(self, namespace: str, revision: int = 0) -> tuple[list[Slice], int]:
        """Every EndpointSlice in `namespace` ("" every one) at `revision` (0: the newest),
        read page by page at that one revision, and the revision read at. A continue
        token is how the store reads at a past revision: one whose start key is the first
        there can be."""
        token = paging.encode_continue(paging.Continue(revision, _FIRST_KEY)) if revision else ""
        found: list[Slice] = []
        while True:
            page = await self.store.list_page(
                kinds.ENDPOINTSLICES, namespace, limit=LIST_CHUNK, continue_token=token
            )
            found += [s for s in page.items if isinstance(s, Slice)]
            token = page.continue_token
            if not token:
                return found, page.revision

    # ------------------------------------------------------------------ get, list

    async def read_one(self, request: web.Request, target: Target) -> web.StreamResponse:
        slices, _ = await self._slices(target.namespace)
        mine = [s for s in slices if service_key(s) == (target.namespace, target.name)]
        found = mirror_all(mine)
        if not found:
            raise endpoints_wire.not_found(target.name)
        endpoints = found[0]
        if _wants_table(request):
            include = tables.check_include_object(request.query.get("includeObject", ""))
            rv = endpoints["metadata"]["resourceVersion"]
            return _json(endpoints_wire.table(found, _now(), resource_version=rv, include=include))
        return _json(endpoints)

    async def read_list(
        self, request: web.Request, target: Target, opts: ListOptions
    ) -> web.StreamResponse:
        include = tables.check_include_object(opts.include_object)
        revision, start = 0, ""
        if opts.continue_token:
            token = paging.decode_continue(opts.continue_token)
            revision, start = token.revision, token.start
        slices, revision = await self._slices(target.namespace, revision)
        chosen = [e for e in mirror_all(slices) if endpoints_wire.matches(opts, e)]
        page = endpoints_wire.page(
            chosen, target.namespace, revision, start=start, limit=opts.limit
        )
        if _wants_table(request):
            body = endpoints_wire.table(
                page.items,
                _now(),
                resource_version=str(revision),
                continue_token=page.continue_token,
                include=include,
            )
            return _json(body)
        return _json(endpoints_wire.list_json(page.items, revision, page.continue_token))

    # ------------------------------------------------------------------ watch

    async def watch(
        self, request: web.Request, target: Target, opts: ListOptions
    ) -> web.StreamResponse:
        as_table = _wants_table(request)
        include = tables.check_include_object(opts.include_object)
        response = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": JSON,
                "Cache-Control": "no-cache, private",
                "Warning": _warning(),
            },
        )
        response.enable_chunked_encoding()
        await response.prepare(request)
        first = True

        async def send(kind: str, endpoints: Endpoints) -> None:
            nonlocal first
            shown: Any = endpoints
            if as_table:
                rv = endpoints["metadata"]["resourceVersion"]
                shown = endpoints_wire.table(
                    [endpoints], _now(), resource_version=rv, include=include, with_columns=first
                )
            first = False
            await _write(response, {"type": kind, "object": shown})

        return await run_watch(
            response,
            self._stream(target, opts, send, response),
            timeout_seconds=opts.timeout_seconds,
            map_error=api_error_of,
            what="endpoints",
        )

    async def _start(self, namespace: str, opts: ListOptions) -> tuple[list[Slice], int]:
        """The slices the watch starts from, and their revision."""
        if opts.initial_events or opts.resource_version in ("", "0"):
            return await self._slices(namespace)
        asked = int(opts.resource_version)
        # A revision not written yet: from now (nothing after it has happened either).
        revision = min(asked, await self.store.current_revision())
        try:
            return await self._slices(namespace, revision)
        except ExpiredContinueError:
            raise CompactedError(0, f"too old resource version: {asked}") from None

    async def _stream(
        self,
        target: Target,
        opts: ListOptions,
        send: Callable[[str, Endpoints], Awaitable[None]],
        response: web.StreamResponse,
    ) -> None:
        slices, start = await self._start(target.namespace, opts)
        mirror = EndpointsWatch(slices, lambda e: endpoints_wire.matches(opts, e))
        if opts.initial_events:
            for endpoints in mirror.current():
                await send("ADDED", endpoints)
            if opts.send_initial_events and opts.bookmarks:
                await _bookmark(response, start, initial_end=True)
        changes = self.cache.watch(
            kinds.ENDPOINTSLICES,
            target.namespace,
            lambda _: True,  # selectors apply to the Endpoints, not to their slices
            start,
            bookmarks=opts.bookmarks,
            listed=True,
        )
        # Bounded: a client that reads slowly backs up into the cache's queue for it,
        # which ends the watch as it ends any slow watcher's.
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=_PUMPED)
        pump = asyncio.create_task(_pump(changes, queue), name="endpoints-watch")
        try:
            held: Any = None
            while True:
                item = held if held is not None else await queue.get()
                held = None
                if item is _END:
                    return
                if isinstance(item, Exception):
                    raise item
                if isinstance(item, Progress):
                    await _bookmark(response, item.revision, initial_end=False)
                    continue
                # This event and the others of its revision (one transaction, delivered
                # together): one change.
                revision = item.event.revision
                batch = [item]
                while not queue.empty():
                    following = queue.get_nowait()
                    if not isinstance(following, Delivered) or following.event.revision != revision:
                        held = following
                        break
                    batch.append(following)
                events = [SliceEvent(d.type, _slice(d)) for d in batch]
                for change in mirror.apply(events, revision):
                    await send(change.type, change.object)
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump


async def _pump(changes: Any, queue: asyncio.Queue[Any]) -> None:
    """The watch cache's stream into `queue`, so that the reader can see which events
    were delivered together; its end or its error last."""
    try:
        async with contextlib.aclosing(changes):
            async for item in changes:
                await queue.put(item)
        await queue.put(_END)
    except Exception as err:  # handed to the reader, which raises it
        await queue.put(err)


def _slice(delivered: Delivered) -> Slice:
    obj = delivered.event.object
    if not isinstance(obj, Slice):
        raise TypeError(f"an EndpointSlice watch delivered a {type(obj).__name__}")
    return obj


async def _write(response: web.StreamResponse, line: dict[str, Any]) -> None:
    await response.write(convert.dumps(line) + b"\n")


async def _bookmark(response: web.StreamResponse, revision: int, *, initial_end: bool) -> None:
    mark = endpoints_wire.bookmark(revision, initial_end=initial_end)
    await _write(response, {"type": "BOOKMARK", "object": mark})


def _now() -> datetime:
    return datetime.now(UTC)
