"""The `kubelab.v1.Api` gRPC servicer: requests in, `Registry` calls, status codes out.

Status codes carry the meaning (DESIGN §4), mapped in one place (`_status_of`):
invalid input → INVALID_ARGUMENT whose message names the field path (and the
trailing metadata `kubelab-field-errors` lists them as JSON for programs);
NOT_FOUND; ALREADY_EXISTS; stale resourceVersion → ABORTED; a watch from a
compacted revision → OUT_OF_RANGE (relist); etcd down → UNAVAILABLE; a full
allocation range → RESOURCE_EXHAUSTED. Anything else is a bug: logged with its
traceback and an error id, answered INTERNAL with only that id.

A key (kind, namespace, name) and a resourceVersion are checked before they reach the
store (`services.apiserver.logic.request_keys`): etcd's own refusals of a huge key or an int64
overflow are server faults to the client, not the field error they should be.

List and Watch filter by label and field selector (`services.apiserver.logic.field_selectors`:
the fields Kubernetes lets each kind select on, e.g. an event's involvedObject.*).
Watch follows Kubernetes' filtered-watch semantics: with a selector, an object
that stops matching is sent as DELETED and one that starts matching as ADDED. Its
changes come from the watch cache the HTTP front shares (`watch_cache`); a watcher
that falls too far behind ends UNAVAILABLE and watches again from its last revision.
A forbidden request (a create in a terminating namespace, deleting `default`)
is PERMISSION_DENIED, Kubernetes' 403. Started with TLS, every call is authorized
first (`services.apiserver.access`: the caller's client certificate, RBAC): refused
is PERMISSION_DENIED with Kubernetes' message, a refused certificate UNAUTHENTICATED.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from prometheus_client import Counter, Histogram

from kubelab.core import kinds, selectors
from kubelab.core.allocators import RangeFullError
from kubelab.core.errors import FieldError, ForbiddenError, InvalidObjectError
from kubelab.core.kinds import ApiObject, UnknownKindError
from kubelab.core.validation import objects as validation
from kubelab.limits import LIST_CHUNK
from kubelab.rpc.decoding import add_servicer
from kubelab.rpc.errors import Context, Status, answer, capped, internal_status, store_status
from kubelab.store import AlreadyExistsError
from kubelab.v1 import api_pb2, api_pb2_grpc
from services.apiserver.access import Access, Forbidden, Unauthenticated
from services.apiserver.admission import REQUEST_USER
from services.apiserver.live_views import LiveViews
from services.apiserver.logic import field_selectors, request_attributes, request_keys
from services.apiserver.logic.rbac import UserInfo
from services.apiserver.logic.request_keys import InvalidRequestError
from services.apiserver.registry import Registry
from services.apiserver.watch_cache import Delivered, FellBehindError, WatchCache

log = logging.getLogger(__name__)

T = TypeVar("T")
# Chunks in flight per ApplyStream (each up to the client's chunk size).
_STREAM_WINDOW = 8

REQUESTS = Counter("kubelab_apiserver_requests_total", "API requests", ["method", "code"])
LATENCY = Histogram(
    "kubelab_apiserver_request_seconds",
    "API request latency",
    ["method"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
)


def _status_of(err: Exception) -> Status | None:
    """The apiserver's own errors, then the storage ones (`store_status`)."""
    match err:
        case InvalidObjectError():
            return grpc.StatusCode.INVALID_ARGUMENT, str(err)
        case UnknownKindError() | selectors.SelectorError() | InvalidRequestError():
            return grpc.StatusCode.INVALID_ARGUMENT, str(err)
        case field_selectors.FieldSelectorError():
            return grpc.StatusCode.INVALID_ARGUMENT, str(err)
        case ForbiddenError():
            return grpc.StatusCode.PERMISSION_DENIED, str(err)
        case Forbidden():
            return grpc.StatusCode.PERMISSION_DENIED, str(err)
        case Unauthenticated():
            return grpc.StatusCode.UNAUTHENTICATED, f"Unauthorized: {err}"
        case AlreadyExistsError():
            return grpc.StatusCode.ALREADY_EXISTS, str(err)
        case RangeFullError():
            return grpc.StatusCode.RESOURCE_EXHAUSTED, "failed to allocate: range is full"
        case FellBehindError():
            # Retryable: watch again from the last resourceVersion received.
            return grpc.StatusCode.UNAVAILABLE, str(err)
    return store_status(err)


def _field_errors(err: Exception) -> Sequence[FieldError]:
    return err.errors if isinstance(err, InvalidObjectError | InvalidRequestError) else ()


async def _answer(method: str, context: Context, call: Callable[[], Awaitable[T]]) -> T:
    started = time.perf_counter()

    def observe(code: grpc.StatusCode) -> None:
        REQUESTS.labels(method, code.name).inc()
        LATENCY.labels(method).observe(time.perf_counter() - started)

    return await answer(
        method,
        context,
        call,
        status_of=_status_of,
        field_errors=_field_errors,
        log=log,
        observe=observe,
    )


def _object_of(request_object: api_pb2.Object) -> ApiObject:
    """The object, once its key and resourceVersion could reach the store (an update
    reads the store before it validates)."""
    info, obj = kinds.unwrap(request_object)
    meta = obj.metadata
    found = request_keys.name_errors(meta.name, "metadata.name", required=False)
    if info.namespaced:
        found += request_keys.namespace_errors(meta.namespace, "metadata.namespace")
    if found:
        # No kind's rules accept such a key, so validation refuses it too, in the kind's
        # own words and with every other problem of the object.
        checked: Message = obj.__class__()
        checked.CopyFrom(obj)
        validation.apply_defaults(info, checked)
        problems = validation.validate_object(info, checked) or found
        raise InvalidObjectError(info.kind, request_keys.shown(meta.name), problems)
    request_keys.parse_resource_version(meta.resource_version, "metadata.resourceVersion")
    return obj


def _labels(obj: Message | None) -> dict[str, str]:
    if obj is None:
        return {}
    return dict(obj.metadata.labels)  # type: ignore[attr-defined]


class _Filter:
    """A label and a field selector. Labels are checked before the leased state is
    merged in (cheap, and most lists are filtered by labels); fields after it, as a
    pod's status.phase is only there then."""

    def __init__(self, info: kinds.KindInfo, label_selector: str, field_selector: str) -> None:
        self.labels = selectors.parse_selector(label_selector)
        self.fields = field_selectors.parse(field_selector, info)

    def by_labels(self, items: Sequence[ApiObject]) -> list[ApiObject]:
        return [i for i in items if self.labels.matches(_labels(i))]

    def __call__(self, obj: Message | None) -> bool:
        return obj is not None and self.labels.matches(_labels(obj)) and self.fields.matches(obj)


class ApiServicer(api_pb2_grpc.ApiServicer):
    def __init__(
        self, registry: Registry, cache: WatchCache | None = None, access: Access | None = None
    ) -> None:
        # None: no authentication nor authorization (an apiserver started without TLS).
        self.access = access
        self.registry = registry
        self.views = LiveViews(registry.store)
        # The process's one watch cache, shared with the HTTP front (`__main__`).
        self.cache = cache or WatchCache(self.views)

    def _user(self, context: Context) -> UserInfo:
        """The caller's user (its TLS client certificate; anonymous without one)."""
        assert self.access is not None
        pem = list(context.auth_context().get("x509_pem_cert", ()))
        user = self.access.user_of_certificate(pem[0] if pem else None)
        REQUEST_USER.set(user)  # for admission in the registry (escalation checks)
        return user

    def _check(
        self,
        context: Context,
        method: str,
        info: kinds.KindInfo,
        namespace: str,
        name: str = "",
        field_selector: str = "",
        user: UserInfo | None = None,
    ) -> None:
        """Refuse (PERMISSION_DENIED, Kubernetes' 403 message) what RBAC does not allow."""
        if self.access is None:
            return
        if info.namespaced and not namespace and method not in ("List", "Watch"):
            namespace = kinds.DEFAULT_NAMESPACE
        attrs = request_attributes.grpc_attributes(
            user or self._user(context), method, info, namespace, name, field_selector
        )
        refused = self.access.check(attrs)
        if refused is not None:
            raise Forbidden(refused.message)

    def _check_object(
        self, context: Context, method: str, wrapped: api_pb2.Object, user: UserInfo | None = None
    ) -> None:
        if self.access is None:
            return
        info, obj = kinds.unwrap(wrapped)
        meta = obj.metadata
        self._check(context, method, info, meta.namespace, meta.name, user=user)

    async def Create(self, request: api_pb2.CreateRequest, context: Context) -> api_pb2.Object:
        async def call() -> api_pb2.Object:
            self._check_object(context, "Create", request.object)
            return kinds.wrap(await self.registry.create(_object_of(request.object)))

        return await _answer("Create", context, call)

    async def Update(self, request: api_pb2.UpdateRequest, context: Context) -> api_pb2.Object:
        async def call() -> api_pb2.Object:
            self._check_object(context, "Update", request.object)
            written, _ = await self.registry.update(_object_of(request.object))
            return kinds.wrap(written)

        return await _answer("Update", context, call)

    async def Apply(self, request: api_pb2.ApplyRequest, context: Context) -> api_pb2.ApplyResponse:
        async def call() -> api_pb2.ApplyResponse:
            self._check_object(context, "Apply", request.object)
            written, result = await self.registry.apply(_object_of(request.object))
            return api_pb2.ApplyResponse(object=kinds.wrap(written), result=result)

        return await _answer("Apply", context, call)

    async def ApplyStream(
        self, chunks: AsyncIterator[api_pb2.ApplyChunk], context: Context
    ) -> AsyncIterator[api_pb2.ApplyChunkResult]:
        """Every object of a chunk is applied concurrently (their etcd writes share round
        trips); chunks are answered in order, at most `_STREAM_WINDOW` in flight.
        Namespaces go first: a chunk's Namespaces are applied before its other objects,
        and the chunks after it wait for it, as what follows a Namespace in a manifest
        usually lives in it (kubectl applies one object after the other)."""
        answers: asyncio.Queue[asyncio.Future[list[api_pb2.ApplyResult]] | None] = asyncio.Queue(
            _STREAM_WINDOW
        )

        user: UserInfo | None = None

        async def one(wrapped: api_pb2.Object) -> api_pb2.ApplyResult:
            try:
                self._check_object(context, "ApplyStream", wrapped, user)
                written, result = await self.registry.apply(_object_of(wrapped), create_first=True)
            except Exception as err:
                mapped = _status_of(err)
                if mapped is None:
                    mapped = internal_status(log, "ApplyStream")
                REQUESTS.labels("ApplyStream", mapped[0].name).inc()
                return api_pb2.ApplyResult(code=mapped[0].value[0], message=capped(mapped[1]))
            REQUESTS.labels("ApplyStream", "OK").inc()
            return api_pb2.ApplyResult(
                response=api_pb2.ApplyResponse(object=kinds.wrap(written), result=result)
            )

        async def apply_chunk(objects: Sequence[api_pb2.Object]) -> list[api_pb2.ApplyResult]:
            first = [i for i, o in enumerate(objects) if o.WhichOneof("kind") == "namespace"]
            rest = [i for i, o in enumerate(objects) if o.WhichOneof("kind") != "namespace"]
            results: dict[int, api_pb2.ApplyResult] = {}
            for batch in (first, rest):
                done = await asyncio.gather(*(one(objects[i]) for i in batch))
                results.update(zip(batch, done, strict=True))
            return [results[i] for i in range(len(objects))]

        async def read() -> None:
            nonlocal user
            try:
                if self.access is not None:
                    user = self._user(context)  # once per stream
                async for chunk in chunks:
                    work = asyncio.ensure_future(apply_chunk(chunk.objects))
                    await answers.put(work)
                    if any(o.WhichOneof("kind") == "namespace" for o in chunk.objects):
                        await asyncio.wait([work])
            finally:
                await answers.put(None)

        reader = asyncio.create_task(read())
        try:
            while (answer := await answers.get()) is not None:
                yield api_pb2.ApplyChunkResult(results=await answer)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def Get(self, request: api_pb2.GetRequest, context: Context) -> api_pb2.Object:
        async def call() -> api_pb2.Object:
            key = request.key
            info = request_keys.check_key(key.kind, key.namespace, key.name)
            namespace = (key.namespace or "default") if info.namespaced else ""
            self._check(context, "Get", info, namespace, key.name)
            obj = await self.registry.store.get(info, namespace, request.key.name)
            return kinds.wrap(await self.views.one(info, obj))

        return await _answer("Get", context, call)

    async def List(self, request: api_pb2.ListRequest, context: Context) -> api_pb2.ListResponse:
        async def call() -> api_pb2.ListResponse:
            info = request_keys.check_key(request.kind, request.namespace, "", name_required=False)
            self._check(context, "List", info, request.namespace, "", request.field_selector)
            chosen_by = _Filter(info, request.label_selector, request.field_selector)
            page = await self.registry.store.list_page(
                info,
                request.namespace,
                limit=max(request.limit, 0),
                continue_token=request.continue_token,
            )
            merged = await self.views.many(info, chosen_by.by_labels(page.items), request.namespace)
            chosen = [i for i in merged if chosen_by.fields.matches(i)]
            return api_pb2.ListResponse(
                items=[kinds.wrap(i) for i in chosen],
                resource_version=str(page.revision),
                continue_token=page.continue_token,
            )

        return await _answer("List", context, call)

    async def Delete(self, request: api_pb2.DeleteRequest, context: Context) -> api_pb2.Object:
        async def call() -> api_pb2.Object:
            key = request.key
            info = request_keys.check_key(key.kind, key.namespace, key.name)
            self._check(context, "Delete", info, key.namespace, key.name)
            request_keys.parse_resource_version(request.resource_version)
            grace = (
                request.grace_period_seconds if request.HasField("grace_period_seconds") else None
            )
            deleted = await self.registry.delete(
                info, request.key.namespace, request.key.name, request.resource_version, grace
            )
            return kinds.wrap(deleted)

        return await _answer("Delete", context, call)

    async def Watch(
        self, request: api_pb2.WatchRequest, context: Context
    ) -> AsyncIterator[api_pb2.WatchEvent]:
        try:
            info = request_keys.check_key(request.kind, request.namespace, "", name_required=False)
            self._check(context, "Watch", info, request.namespace, "", request.field_selector)
            chosen_by = _Filter(info, request.label_selector, request.field_selector)
            revision = request_keys.parse_resource_version(request.resource_version)
            if revision is not None:
                start = revision
            else:
                # Page by page, so the first state is never one response as large as the
                # cluster; every page is read at the first one's revision.
                token = ""
                while True:
                    page = await self.registry.store.list_page(
                        info, request.namespace, limit=LIST_CHUNK, continue_token=token
                    )
                    merged = await self.views.many(
                        info, chosen_by.by_labels(page.items), request.namespace
                    )
                    for item in (i for i in merged if chosen_by.fields.matches(i)):
                        yield api_pb2.WatchEvent(
                            type="ADDED", object=kinds.wrap(item), resource_version=_rv(item)
                        )
                    token = page.continue_token
                    if not token:
                        break
                start = page.revision
                yield api_pb2.WatchEvent(type="BOOKMARK", resource_version=str(start))
            changes = self.cache.watch(
                info, request.namespace, chosen_by, start, listed=revision is None
            )
            async with contextlib.aclosing(changes):
                async for change in changes:
                    if isinstance(change, Delivered):
                        # One message per event and type, shared by every gRPC watcher.
                        yield change.event.encoded(("grpc", change.type), partial(_event, change))
        except Exception as err:
            mapped = _status_of(err)
            if mapped is None:
                mapped = internal_status(log, "Watch")
            await context.abort(mapped[0], capped(mapped[1]))


def _event(change: Delivered) -> api_pb2.WatchEvent:
    event = change.event
    return api_pb2.WatchEvent(
        type=change.type, object=kinds.wrap(event.object), resource_version=str(event.revision)
    )


def _rv(obj: Any) -> str:
    return str(obj.metadata.resource_version)


def register(
    registry: Registry, cache: WatchCache | None = None, access: Access | None = None
) -> Callable[[grpc.aio.Server], None]:
    def add(server: grpc.aio.Server) -> None:
        servicer = ApiServicer(registry, cache, access)
        add_servicer(server, api_pb2_grpc.add_ApiServicer_to_server, servicer)

    return add


SERVICE_NAME = api_pb2.DESCRIPTOR.services_by_name["Api"].full_name
