"""The Python SDK: typed objects in, typed objects out, over the apiserver's gRPC API.

    async with Client.connect() as api:
        svc, result = await api.apply(service)
        items, rv = await api.list("svc", label_selector="app=shop")   # every page
        page = await api.list_page("svc", limit=100)   # one page; page.continue_token

Errors arrive as `ApiError` carrying the gRPC status code, so callers branch
on meaning (`NOT_FOUND`, `ABORTED`, ...) rather than on text.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

import grpc

from kubelab import credentials as kubeconfig_credentials
from kubelab import home
from kubelab.core import kinds
from kubelab.core.kinds import ApiObject, ObjectT
from kubelab.credentials import Credentials
from kubelab.limits import GRPC_OPTIONS, LIST_CHUNK, PAGE_BYTES
from kubelab.v1 import api_pb2, api_pb2_grpc


class ApiError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code.name}: {message}")


@dataclass(frozen=True, slots=True)
class ListPage:
    items: list[ApiObject]
    # The revision of the list's snapshot (the same on every page of one list).
    resource_version: str
    # Pass to the next `list_page`; "" when this page ends the list.
    continue_token: str


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: str
    object: ApiObject | None
    resource_version: str


_CODES = {code.value[0]: code for code in grpc.StatusCode}


def _status_code(number: int) -> grpc.StatusCode:
    return _CODES.get(number, grpc.StatusCode.UNKNOWN)


def _api_error(err: grpc.aio.AioRpcError) -> ApiError:
    return ApiError(err.code(), err.details() or "")


def _chunks(objects: Iterable[ApiObject], size: int) -> Iterator[api_pb2.ApplyChunk]:
    """At most `size` objects a chunk, and no more than PAGE_BYTES of them past the first:
    the answer echoes every object, so a chunk's size bounds its answer's too."""
    chunk = api_pb2.ApplyChunk()
    held = 0
    for obj in objects:
        wrapped = kinds.wrap(obj)
        length = wrapped.ByteSize()
        if chunk.objects and (len(chunk.objects) >= size or held + length > PAGE_BYTES):
            yield chunk
            chunk, held = api_pb2.ApplyChunk(), 0
        chunk.objects.append(wrapped)
        held += length
    if chunk.objects:
        yield chunk


class Client:
    def __init__(
        self, target: str, *, timeout: float = 10.0, credentials: Credentials | None = None
    ) -> None:
        """`credentials`: TLS to the apiserver with them (its CA, a client certificate);
        None: plain, for an apiserver started without TLS."""
        self.target = target
        self.timeout = timeout
        # A user's http_proxy must not capture calls to a local cluster.
        options = [("grpc.enable_http_proxy", 0), *GRPC_OPTIONS]
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(target, options=options)
        else:
            self._channel = grpc.aio.secure_channel(
                target, credentials.channel_credentials(), options=options
            )
        self._stub = api_pb2_grpc.ApiStub(self._channel)

    @classmethod
    def connect(
        cls,
        target: str | None = None,
        *,
        timeout: float = 10.0,
        credentials: Credentials | Literal["kubeconfig"] | None = "kubeconfig",
    ) -> Client:
        """The running cluster's apiserver (or `target`), with the kubeconfig's
        credentials (`kubelab.credentials`) unless others are given."""
        chosen = kubeconfig_credentials.default() if credentials == "kubeconfig" else credentials
        return cls(target or home.api_address(), timeout=timeout, credentials=chosen)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def wait_ready(self, timeout: float) -> None:
        """Wait until the channel connects (the apiserver is listening)."""
        await asyncio.wait_for(self._channel.channel_ready(), timeout)

    async def create(self, obj: ObjectT) -> ObjectT:
        try:
            out = await self._stub.Create(
                api_pb2.CreateRequest(object=kinds.wrap(obj)), timeout=self.timeout
            )
        except grpc.aio.AioRpcError as err:
            raise _api_error(err) from None
        return kinds.unwrap_as(out, obj)

    async def update(self, obj: ObjectT) -> ObjectT:
        try:
            out = await self._stub.Update(
                api_pb2.UpdateRequest(object=kinds.wrap(obj)), timeout=self.timeout
            )
        except grpc.aio.AioRpcError as err:
            raise _api_error(err) from None
        return kinds.unwrap_as(out, obj)

    async def apply(self, obj: ObjectT) -> tuple[ObjectT, str]:
        """Create or update; returns the stored object and kubectl's word for what happened."""
        try:
            out = await self._stub.Apply(
                api_pb2.ApplyRequest(object=kinds.wrap(obj)), timeout=self.timeout
            )
        except grpc.aio.AioRpcError as err:
            raise _api_error(err) from None
        return kinds.unwrap_as(out.object, obj), out.result

    async def apply_many(
        self, objects: Iterable[ApiObject], *, chunk_size: int = 64
    ) -> AsyncIterator[tuple[ApiObject | ApiError, str]]:
        """Apply many objects over one stream; yields, in order, (stored object, result)
        or (ApiError, "") for each. Much cheaper than one Apply call per object."""
        call = self._stub.ApplyStream(_chunks(objects, chunk_size))
        try:
            async for answer in call:
                for result in answer.results:
                    if result.code:
                        yield ApiError(_status_code(result.code), result.message), ""
                    else:
                        yield kinds.unwrap(result.response.object)[1], result.response.result
        except grpc.aio.AioRpcError as err:
            raise _api_error(err) from None

    async def get(
        self, kind: str, name: str, namespace: str = kinds.DEFAULT_NAMESPACE
    ) -> ApiObject:
        key = api_pb2.ObjectKey(kind=kind, namespace=namespace, name=name)
        try:
            out = await self._stub.Get(api_pb2.GetRequest(key=key), timeout=self.timeout)
        except grpc.aio.AioRpcError as err:
            raise _api_error(err) from None
        return kinds.unwrap(out)[1]

    async def list(
        self,
        kind: str,
        namespace: str = "",
        label_selector: str = "",
        *,
        chunk_size: int = LIST_CHUNK,
        field_selector: str = "",
    ) -> tuple[list[ApiObject], str]:
        """Every object of a kind (every namespace when `namespace` is empty) and the list's
        revision, fetched `chunk_size` at a time (kubectl's --chunk-size) at one revision."""
        items: list[ApiObject] = []
        token = ""
        while True:
            page = await self.list_page(
                kind,
                namespace,
                label_selector,
                limit=chunk_size,
                continue_token=token,
                field_selector=field_selector,
            )
            items += page.items
            token = page.continue_token
            if not token:
                return items, page.resource_version

    async def list_page(
        self,
        kind: str,
        namespace: str = "",
        label_selector: str = "",
        *,
        limit: int,
        continue_token: str = "",
        field_selector: str = "",
    ) -> ListPage:
        """One page of a list: at most `limit` objects from where `continue_token` (the
        previous page's) says. A page may hold fewer and still not be the last; an empty
        `continue_token` ends the list. OUT_OF_RANGE: the token expired, list again."""
        request = api_pb2.ListRequest(
            kind=kind,
            namespace=namespace,
            label_selector=label_selector,
            limit=limit,
            continue_token=continue_token,
            field_selector=field_selector,
        )
        try:
            out = await self._stub.List(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as err:
            raise _api_error(err) from None
        items = [kinds.unwrap(item)[1] for item in out.items]
        return ListPage(items, out.resource_version, out.continue_token)

    async def delete(
        self,
        kind: str,
        name: str,
        namespace: str = kinds.DEFAULT_NAMESPACE,
        resource_version: str = "",
        grace_period_seconds: int | None = None,
    ) -> ApiObject:
        """Delete an object. A pod on a node is deleted gracefully (its node agent stops
        it within its grace period); `grace_period_seconds=0` removes it at once."""
        key = api_pb2.ObjectKey(kind=kind, namespace=namespace, name=name)
        request = api_pb2.DeleteRequest(key=key, resource_version=resource_version)
        if grace_period_seconds is not None:
            request.grace_period_seconds = grace_period_seconds
        try:
            out = await self._stub.Delete(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as err:
            raise _api_error(err) from None
        return kinds.unwrap(out)[1]

    async def watch(
        self,
        kind: str,
        namespace: str = "",
        label_selector: str = "",
        resource_version: str = "",
        *,
        field_selector: str = "",
    ) -> AsyncIterator[WatchEvent]:
        """Stream changes. Without a resourceVersion the current objects come first as
        ADDED, then a BOOKMARK, then changes as they happen."""
        request = api_pb2.WatchRequest(
            kind=kind,
            namespace=namespace,
            label_selector=label_selector,
            resource_version=resource_version,
            field_selector=field_selector,
        )
        call = self._stub.Watch(request)
        try:
            async for event in call:
                obj = kinds.unwrap(event.object)[1] if event.HasField("object") else None
                yield WatchEvent(event.type, obj, event.resource_version)
        except grpc.aio.AioRpcError as err:
            raise _api_error(err) from None
        finally:
            call.cancel()
