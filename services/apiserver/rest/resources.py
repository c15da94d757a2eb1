"""The verbs on a kind's resources: get, list, watch, create, update, patch, delete.

Every verb calls the same `Registry` (writes) and store + `LiveViews` (reads) as the
gRPC servicer, so defaults, validation and its wording, the allocation transaction,
compare-and-swap on resourceVersion and watch exist once; a change made through one
front is seen by the other at once. This module only translates: HTTP in (path,
query, JSON body) and HTTP out (JSON objects, lists, Tables, watch streams).

Reads answer a Table when the client asks for one (`kubectl get` always does) and
the object or a `<Kind>List` otherwise. A watch is a chunked stream of JSON lines
(`{"type": "ADDED", "object": {...}}`), each event's object a one-row Table under the
Table Accept; it ends after timeoutSeconds. Its changes come from the apiserver's
watch cache (`services.apiserver.watch_cache`), each event's bytes made once for every
watcher asking the same format; a watcher that falls too far behind has its stream
ended, as Kubernetes ends it, and watches again. A watch from a compacted revision
answers one ERROR event carrying a 410 Expired Status, as Kubernetes' watch cache
does, so clients relist.

Writes run shielded from the client's disconnect: a create whose client hung up is
still either done or not done, never cut in the middle of its bookkeeping. Every
write honours `fieldValidation` (`field_validation`) and records its field manager
in managedFields (`field_managers`); PATCH is `patch`, `/status` is
`subresources_status`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiohttp import web

from kubelab.core.kinds import ApiObject, KindInfo
from kubelab.limits import LIST_CHUNK
from services.apiserver.live_views import LiveViews
from services.apiserver.logic import request_keys
from services.apiserver.registry import Registry
from services.apiserver.rest import (
    convert,
    delete_options,
    field_managers,
    field_validation,
    patch,
    protobuf_body,
    subresources_status,
    tables,
)
from services.apiserver.rest.delete_collection import CollectionDeleter
from services.apiserver.rest.discovery import parse_accept, wants
from services.apiserver.rest.errors import (
    ApiError,
    api_error_of,
    bad_request,
    delete_answer,
    method_not_allowed,
)
from services.apiserver.rest.options import ListOptions, bookmark, list_options
from services.apiserver.rest.routing import Target
from services.apiserver.rest.subresources_status import decode_for
from services.apiserver.rest.watch_stream import run_watch
from services.apiserver.watch_cache import CachedEvent, Progress, WatchCache

log = logging.getLogger(__name__)

T = TypeVar("T")
JSON = "application/json"
# Kubernetes caps the Warning headers of one response; kubelab shows this many.
_MAX_WARNINGS = 20


def _json(body: Any, status: int = 200, warnings: tuple[str, ...] = ()) -> web.Response:
    response = web.Response(body=convert.dumps(body), status=status, content_type=JSON)
    for warning in warnings[:_MAX_WARNINGS]:
        response.headers.add("Warning", warning_header(warning))
    return response


def warning_header(text: str) -> str:
    """RFC 7234 warn-code 299 with a quoted, ASCII-only text (as Kubernetes sends)."""
    safe = "".join(c if " " <= c <= "~" else "?" for c in text)
    return '299 - "' + safe.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _wants_table(request: web.Request) -> bool:
    accept = parse_accept(request.headers.get("Accept", ""))
    return wants(accept, group="meta.k8s.io", version="v1", kind="Table") or wants(
        accept, group="meta.k8s.io", version="v1beta1", kind="Table"
    )


def _now() -> datetime:
    return datetime.now(UTC)


async def _shielded(work: Awaitable[T]) -> T:
    return await asyncio.shield(work)


class Resources:
    def __init__(self, registry: Registry, views: LiveViews, cache: WatchCache) -> None:
        self.registry = registry
        self.store = registry.store
        self.views = views
        self.cache = cache
        self.collections = CollectionDeleter(registry)

    async def handle(self, request: web.Request, target: Target) -> web.StreamResponse:
        if target.subresource == "status":
            return await self.status(request, target)
        if target.subresource:
            # status, scale and log come with the later steps of the HTTP API.
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        method = request.method
        if target.name:
            if method == "GET":
                return await self.get(request, target)
            if method == "PUT":
                return await self.update(request, target)
            if method == "DELETE":
                return await self.delete(request, target)
            if method == "PATCH":
                return await self.patch(request, target)
            raise method_not_allowed(method)
        # A namespace no object can have is refused before it becomes a store key prefix.
        request_keys.check_key(target.info.resource, target.namespace, "", name_required=False)
        if method == "GET":
            opts = list_options(request.query, target.info)
            if opts.watch:
                return await self.watch(request, target, opts)
            return await self.list(request, target, opts)
        if method == "POST":
            return await self.create(request, target)
        if method == "DELETE":
            return await self.collections.handle(request, target)
        raise method_not_allowed(method)

    # ------------------------------------------------------------------ reads

    def _namespace(self, target: Target) -> str:
        return target.namespace if target.info.namespaced else ""

    async def get(self, request: web.Request, target: Target) -> web.StreamResponse:
        info = target.info
        request_keys.check_key(info.resource, target.namespace, target.name)
        obj = await self.store.get(info, self._namespace(target), target.name)
        shown = await self.views.one(info, obj)
        if _wants_table(request):
            include = tables.check_include_object(request.query.get("includeObject", ""))
            rv = str(shown.metadata.resource_version)
            body = tables.table(info, [shown], _now(), resource_version=rv, include=include)
            return _json(body)
        return _json(convert.to_json(shown))

    async def list(
        self, request: web.Request, target: Target, opts: ListOptions
    ) -> web.StreamResponse:
        info = target.info
        include = tables.check_include_object(opts.include_object)
        page = await self.store.list_page(
            info, target.namespace, limit=opts.limit, continue_token=opts.continue_token
        )
        chosen = [i for i in page.items if opts.matches(info, i)]
        items = await self.views.many(info, chosen, target.namespace)
        revision = str(page.revision)
        if _wants_table(request):
            body = tables.table(
                info,
                items,
                _now(),
                resource_version=revision,
                continue_token=page.continue_token,
                include=include,
            )
            return _json(body)
        shown = [convert.to_json(i) for i in items]
        return _json(convert.list_json(info, shown, revision, page.continue_token))

    async def watch(
        self, request: web.Request, target: Target, opts: ListOptions
    ) -> web.StreamResponse:
        info = target.info
        as_table = _wants_table(request)
        include = tables.check_include_object(opts.include_object)
        response = web.StreamResponse(
            status=200, headers={"Content-Type": JSON, "Cache-Control": "no-cache, private"}
        )
        response.enable_chunked_encoding()
        await response.prepare(request)
        first = True
        memo_key = ("table", include) if as_table else "json"

        def encode(obj: ApiObject, with_columns: bool) -> bytes:
            if as_table:
                rv = str(obj.metadata.resource_version)
                shown = tables.table(
                    info,
                    [obj],
                    _now(),
                    resource_version=rv,
                    include=include,
                    with_columns=with_columns,
                )
                return convert.dumps(shown)
            return convert.dumps(convert.to_json(obj))

        async def send(kind: str, obj: ApiObject, cached: CachedEvent | None = None) -> None:
            nonlocal first
            if cached is None or first:
                body = encode(obj, first)
            else:
                # Once for every watcher of this wire format (the watch cache's memo).
                body = cached.encoded(memo_key, lambda: encode(obj, False))
            first = False
            await response.write(b'{"type":"' + kind.encode() + b'","object":' + body + b"}\n")

        return await run_watch(
            response,
            self._stream(target, opts, send, response),
            timeout_seconds=opts.timeout_seconds,
            map_error=lambda err: api_error_of(err, info),
            what=info.resource,
        )

    async def _stream(
        self,
        target: Target,
        opts: ListOptions,
        send: Any,
        response: web.StreamResponse,
    ) -> None:
        info, namespace = target.info, target.namespace
        listed = opts.initial_events
        if listed:
            # Page by page at the first page's revision, so the first state is never one
            # response as large as the cluster.
            token = ""
            while True:
                page = await self.store.list_page(
                    info, namespace, limit=LIST_CHUNK, continue_token=token
                )
                chosen = [i for i in page.items if opts.matches(info, i)]
                for item in await self.views.many(info, chosen, namespace):
                    await send("ADDED", item)
                token = page.continue_token
                if not token:
                    break
            start = page.revision
            if opts.send_initial_events and opts.bookmarks:
                await _bookmark(response, info, start, initial_end=True)
        elif opts.resource_version in ("", "0"):
            # No initial events and no version to start from: from now on.
            start = await self.store.current_revision()
            listed = True
        else:
            start = int(opts.resource_version)
        changes = self.cache.watch(
            info,
            namespace,
            lambda obj: opts.matches(info, obj),
            start,
            bookmarks=opts.bookmarks,
            listed=listed,
        )
        # Closed at once however this ends, so the cache stops queueing for it.
        async with contextlib.aclosing(changes):
            async for change in changes:
                if isinstance(change, Progress):
                    await _bookmark(response, info, change.revision, initial_end=False)
                else:
                    await send(change.type, change.event.object, change.event)

    # ------------------------------------------------------------------ writes

    async def _body(self, request: web.Request, target: Target) -> bytes:
        content_type = request.headers.get("Content-Type", "")
        return protobuf_body.json_bytes(await request.read(), content_type, target)

    async def _decoded(
        self, request: web.Request, target: Target, options_kind: str
    ) -> tuple[convert.Decoded, tuple[str, ...], str]:
        """The body of a POST or PUT as an object, the Warnings it earned, its manager."""
        info = target.info
        mode = field_validation.directive(request.query, options_kind)
        manager = field_managers.manager_of(
            request.query, request.headers.get("User-Agent", ""), options_kind
        )
        document, duplicates = field_validation.parse(await self._body(request, target))
        if not isinstance(document, dict):
            raise bad_request("the body must be a JSON object")
        decoded = decode_for(
            document, info, namespace=target.namespace, name=target.name,
            subresource=target.subresource,
        )  # fmt: skip
        checked = field_validation.check(
            document,
            info.kind,
            mode,
            dropped=decoded.warnings,
            duplicates=duplicates,
            prefix=field_validation.cannot_handle(info.kind, info.api_version),
        )
        _check_resource_version(decoded.object)
        return decoded, checked.warnings, manager

    async def create(self, request: web.Request, target: Target) -> web.StreamResponse:
        info = target.info
        if info.namespaced and not target.namespace:
            raise method_not_allowed("POST")
        decoded, warnings, manager = await self._decoded(request, target, "CreateOptions")
        hook = field_managers.update_hook(info, manager)
        dry_run = field_validation.dry_run(request.query, "CreateOptions")
        created = await _shielded(
            self.registry.create(decoded.object, fields=hook, dry_run=dry_run)
        )
        return _json(convert.to_json(created), 201, warnings)

    async def update(self, request: web.Request, target: Target) -> web.StreamResponse:
        info, sub = target.info, target.subresource
        decoded, warnings, manager = await self._decoded(request, target, "UpdateOptions")
        hook = field_managers.update_hook(info, manager, sub)
        dry_run = field_validation.dry_run(request.query, "UpdateOptions")
        written, _ = await _shielded(
            self.registry.update(decoded.object, fields=hook, subresource=sub, dry_run=dry_run)
        )
        return _json(convert.to_json(written), 200, warnings)

    async def patch(self, request: web.Request, target: Target) -> web.StreamResponse:
        """PATCH of every type (`services.apiserver.rest.patch`)."""
        written, code, warnings = await patch.patch(self.registry, request, target)
        return _json(convert.to_json(written), code, warnings)

    async def status(self, request: web.Request, target: Target) -> web.StreamResponse:
        """`/status`: GET the object, PUT or PATCH only its status."""
        subresources_status.check_target(target.info, target.subresource)
        if request.method == "GET":
            return await self.get(request, target)
        if request.method == "PUT":
            return await self.update(request, target)
        if request.method == "PATCH":
            return await self.patch(request, target)
        raise method_not_allowed(request.method)

    async def delete(self, request: web.Request, target: Target) -> web.StreamResponse:
        info = target.info
        request_keys.check_key(info.resource, target.namespace, target.name)
        options = delete_options.parse(await request.read(), request.query)
        resource_version = options.resource_version
        request_keys.parse_resource_version(resource_version, "preconditions.resourceVersion")
        namespace = self._namespace(target)
        uid = options.uid
        if uid or options.dry_run:
            current = await self.store.get(info, namespace, target.name)
            if uid and current.metadata.uid != uid:
                raise ApiError(
                    409,
                    "Conflict",
                    f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
                    f"{current.metadata.uid}",
                    {"name": target.name, "kind": info.resource},
                )
            if options.dry_run:
                # dryRun=All (`kubectl delete --dry-run=server`): checked, nothing deleted.
                return _json(convert.to_json(current))
        deleted = await _shielded(
            self.registry.delete(
                info, namespace, target.name, resource_version, options.grace_period_seconds
            )
        )
        # The object or a Status, as Kubernetes answers for the kind: clients parse it
        # as the one their API description names (`errors.delete_answer`).
        return _json(delete_answer(info, convert.to_json(deleted)))


async def _bookmark(
    response: web.StreamResponse, info: KindInfo, revision: int, *, initial_end: bool
) -> None:
    mark = bookmark(info, str(revision), initial_end=initial_end)
    await response.write(convert.dumps({"type": "BOOKMARK", "object": mark}) + b"\n")


def _check_resource_version(obj: ApiObject) -> None:
    """A resourceVersion is a revision number or nothing; "abc" is the client's mistake
    (400), not a conflict with what is stored."""
    request_keys.parse_resource_version(obj.metadata.resource_version, "metadata.resourceVersion")
