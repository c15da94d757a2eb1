"""The `kubelab.v1.CloudProvider` gRPC servicer: requests in, `CloudProvider` calls,
status codes out.

Status codes carry the meaning (DESIGN §4), mapped by `_status_of` (storage errors by
`kubelab.rpc.errors.store_status`): field errors → INVALID_ARGUMENT whose message starts
with the field path (`spec.loadBalancerIP: ...`; the trailing metadata
`kubelab-field-errors` lists them as JSON for programs); a requested address another
Service holds → ALREADY_EXISTS naming that Service; an empty pool → RESOURCE_EXHAUSTED;
no such load balancer → NOT_FOUND; etcd down, or a listener that cannot be bound yet →
UNAVAILABLE (retry); races lost too often → ABORTED. Anything else is a bug: logged with
its traceback, answered INTERNAL.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import grpc

from kubelab.core.errors import FieldError
from kubelab.core.lb_pool import AddressTakenError, PoolExhaustedError
from kubelab.rpc.decoding import add_servicer
from kubelab.rpc.errors import Context, Status, answer, store_status
from kubelab.v1 import cloud_pb2, cloud_pb2_grpc
from services.cloud_stub.forwarding import BindError
from services.cloud_stub.provider import CloudProvider, InvalidSpecError

log = logging.getLogger("cloud_stub")

T = TypeVar("T")

SERVICE_NAME = cloud_pb2.DESCRIPTOR.services_by_name["CloudProvider"].full_name


def _status_of(err: Exception) -> Status | None:
    """The cloud-stub's own errors, then the storage ones (`store_status`)."""
    match err:
        case InvalidSpecError():
            return grpc.StatusCode.INVALID_ARGUMENT, str(err)
        case AddressTakenError():
            return grpc.StatusCode.ALREADY_EXISTS, str(err)
        case PoolExhaustedError():
            return grpc.StatusCode.RESOURCE_EXHAUSTED, str(err)
        case BindError():
            return grpc.StatusCode.UNAVAILABLE, str(err)
    return store_status(err)


def _field_errors(err: Exception) -> Sequence[FieldError]:
    return err.problems if isinstance(err, InvalidSpecError) else ()


async def _answer(method: str, context: Context, call: Callable[[], Awaitable[T]]) -> T:
    return await answer(
        method, context, call, status_of=_status_of, field_errors=_field_errors, log=log
    )


class CloudProviderServicer(cloud_pb2_grpc.CloudProviderServicer):
    def __init__(self, provider: CloudProvider) -> None:
        self.provider = provider

    async def EnsureLoadBalancer(
        self, request: cloud_pb2.LoadBalancerSpec, context: Context
    ) -> cloud_pb2.LoadBalancer:
        return await _answer("EnsureLoadBalancer", context, lambda: self.provider.ensure(request))

    async def GetLoadBalancer(
        self, request: cloud_pb2.LoadBalancerKey, context: Context
    ) -> cloud_pb2.LoadBalancer:
        return await _answer(
            "GetLoadBalancer", context, lambda: self.provider.get(request.namespace, request.name)
        )

    async def DeleteLoadBalancer(
        self, request: cloud_pb2.LoadBalancerKey, context: Context
    ) -> cloud_pb2.DeleteLoadBalancerResponse:
        async def call() -> cloud_pb2.DeleteLoadBalancerResponse:
            await self.provider.delete(request.namespace, request.name)
            return cloud_pb2.DeleteLoadBalancerResponse()

        return await _answer("DeleteLoadBalancer", context, call)

    async def ListLoadBalancers(
        self, request: cloud_pb2.ListLoadBalancersRequest, context: Context
    ) -> cloud_pb2.ListLoadBalancersResponse:
        async def call() -> cloud_pb2.ListLoadBalancersResponse:
            return cloud_pb2.ListLoadBalancersResponse(load_balancers=await self.provider.list())

        return await _answer("ListLoadBalancers", context, call)


def register(provider: CloudProvider) -> Callable[[grpc.aio.Server], None]:
    def add(server: grpc.aio.Server) -> None:
        servicer = CloudProviderServicer(provider)
        add_servicer(server, cloud_pb2_grpc.add_CloudProviderServicer_to_server, servicer)

    return add
