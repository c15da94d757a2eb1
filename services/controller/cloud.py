"""The controller's client of the cloud-stub (`kubelab.v1.CloudProvider`, DESIGN §2.5).

One `grpc.aio` channel for the controller's whole life (leadership terms come
and go; the cloud stays). Every call has a deadline, and every failure comes
out as `CloudCallError` carrying the gRPC status code's name and message, for
`kubelab.core.lb_requests.cloud_failure` to word.

The cloud may be down (restarting, not started yet): a call that finds it
UNAVAILABLE is retried here, with tenacity's exponential back-off, for up to
`retry_for` seconds; after that the reconciler's work queue backs off further.
UNAVAILABLE that the cloud itself answered about a listener it could not bind
is an answer, not an outage, and is not retried. The channel's own reconnect
back-off is capped at one second (gRPC's default grows to two minutes), so a
restarted cloud-stub is found again within about a second.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import grpc
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

from kubelab.core.lb_requests import is_bind_failure
from kubelab.credentials import Credentials
from kubelab.limits import GRPC_OPTIONS
from kubelab.v1 import cloud_pb2, cloud_pb2_grpc

if TYPE_CHECKING:  # a stub-only class: the typed face of the stub on an aio channel
    from kubelab.v1.cloud_pb2_grpc import CloudProviderAsyncStub

T = TypeVar("T")

_CHANNEL_OPTIONS = [
    # A user's http_proxy must not carry calls to a local cloud-stub off.
    ("grpc.enable_http_proxy", 0),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    # Sizes in `kubelab.limits`; a list of load balancers holds small records.
    *GRPC_OPTIONS,
]


class CloudCallError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _outage(err: BaseException) -> bool:
    if not isinstance(err, grpc.aio.AioRpcError):
        return False
    code, details = err.code().name, err.details() or ""
    return code == "UNAVAILABLE" and not is_bind_failure(code, details)


class CloudClient:
    def __init__(
        self,
        address: str,
        *,
        timeout: float = 10.0,
        retry_for: float = 2.0,
        credentials: Credentials | None = None,
    ) -> None:
        self.address = address
        self.timeout = timeout
        self.retry_for = retry_for
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS)
        else:
            tls = credentials.channel_credentials()
            self._channel = grpc.aio.secure_channel(address, tls, options=_CHANNEL_OPTIONS)
        self._stub: CloudProviderAsyncStub = cloud_pb2_grpc.CloudProviderStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        retrying = AsyncRetrying(
            retry=retry_if_exception(_outage),
            stop=stop_after_delay(self.retry_for),
            wait=wait_exponential(multiplier=0.05, max=0.5),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await call()
        except grpc.aio.AioRpcError as err:
            raise CloudCallError(err.code().name, err.details() or "") from None
        raise AssertionError("unreachable: tenacity either returns or re-raises")

    async def ensure(self, spec: cloud_pb2.LoadBalancerSpec) -> cloud_pb2.LoadBalancer:
        return await self._call(lambda: self._stub.EnsureLoadBalancer(spec, timeout=self.timeout))

    async def get(self, namespace: str, name: str) -> cloud_pb2.LoadBalancer:
        key = cloud_pb2.LoadBalancerKey(namespace=namespace, name=name)
        return await self._call(lambda: self._stub.GetLoadBalancer(key, timeout=self.timeout))

    async def delete(self, namespace: str, name: str) -> None:
        key = cloud_pb2.LoadBalancerKey(namespace=namespace, name=name)
        await self._call(lambda: self._stub.DeleteLoadBalancer(key, timeout=self.timeout))

    async def list(self) -> list[cloud_pb2.LoadBalancer]:
        request = cloud_pb2.ListLoadBalancersRequest()
        reply = await self._call(
            lambda: self._stub.ListLoadBalancers(request, timeout=self.timeout)
        )
        return list(reply.load_balancers)
