"""A typed async client for one node agent's `kubelab.v1.NodeAgent` service.

    async with await AgentClient.for_node(api, "node-1") as agent:
        pods = await agent.list_pods()
        async for data in agent.logs("default", "shop-x", follow=True):
            ...

Where an agent listens is read from its Node object, as the apiserver finds a
kubelet: the address of type InternalIP in `status.addresses`, the port in
`status.daemonEndpoints.kubeletEndpoint.Port` (Kubernetes' NodeInternalIP
preference for `kubectl logs`; kubelab's agents publish exactly one). A Node
that names neither cannot be talked to: `agent_address` raises
`NoAgentAddressError`, an `ApiError` with FAILED_PRECONDITION, before any
connection is tried.

Every failure is a `kubelab.client.ApiError` carrying the agent's gRPC status
(NOT_FOUND: no such pod here; UNAVAILABLE: the agent cannot be reached or went
away mid-stream), so callers branch on meaning as they do with the SDK. The
channel ignores the user's http_proxy, as `kubelab.client` does: node
addresses are local. Unary calls have a deadline (`timeout`); `logs` has none,
since `follow` may stream for as long as the pod runs, so only its connect is
bounded (`wait_connected`: a paused agent is UNAVAILABLE after `timeout`, not
a hang), and it cancels its call when the consumer stops iterating. A stream
whose agent freezes mid-way waits, as kubectl's does: gRPC keepalive would
catch it but needs a ping policy on the agent's server first.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from signal import SIGKILL
from types import TracebackType

import grpc

from kubelab.client import ApiError, Client
from kubelab.credentials import Credentials
from kubelab.limits import GRPC_OPTIONS
from kubelab.v1 import node_pb2, node_pb2_grpc, objects_pb2

__all__ = ["AgentAddress", "AgentClient", "LogStream", "NoAgentAddressError", "agent_address"]

INTERNAL_IP = "InternalIP"


class NoAgentAddressError(ApiError):
    """The Node object does not say where its agent listens."""

    def __init__(self, message: str) -> None:
        super().__init__(grpc.StatusCode.FAILED_PRECONDITION, message)


@dataclass(frozen=True, slots=True)
class AgentAddress:
    node: str
    host: str
    port: int

    @property
    def target(self) -> str:
        """`host:port` for gRPC (an IPv6 host in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def agent_address(node: objects_pb2.Node) -> AgentAddress:
    """Where the agent of `node` listens: its InternalIP and kubelet endpoint port."""
    name = node.metadata.name
    host = next((a.address for a in node.status.addresses if a.type == INTERNAL_IP), "")
    if not host:
        raise NoAgentAddressError(f"node {name} has no {INTERNAL_IP} address")
    port = node.status.daemon_endpoints.kubelet_endpoint.port
    if not 0 < port < 65536:
        raise NoAgentAddressError(f"node {name} publishes no node agent port")
    return AgentAddress(name, host, port)


def _api_error(err: grpc.aio.AioRpcError) -> ApiError:
    return ApiError(err.code(), err.details() or "")


class AgentClient:
    def __init__(
        self,
        address: AgentAddress,
        *,
        timeout: float = 10.0,
        credentials: Credentials | None = None,
    ) -> None:
        """`credentials`: TLS with them (a node agent started with TLS asks for a
        certificate of the cluster); None: plain."""
        self.address = address
        self.timeout = timeout
        # A user's http_proxy must not capture calls to a local node.
        options = [("grpc.enable_http_proxy", 0), *GRPC_OPTIONS]
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(address.target, options=options)
        else:
            self._channel = grpc.aio.secure_channel(
                address.target, credentials.channel_credentials(), options=options
            )
        self._stub = node_pb2_grpc.NodeAgentStub(self._channel)

    @classmethod
    async def for_node(
        cls,
        api: Client,
        node_name: str,
        *,
        timeout: float = 10.0,
        credentials: Credentials | None = None,
    ) -> AgentClient:
        """A client for the agent of `node_name`, found through the apiserver (NOT_FOUND
        when there is no such Node, `NoAgentAddressError` when it names no address)."""
        node = await api.get("nodes", node_name, "")
        if not isinstance(node, objects_pb2.Node):
            raise ApiError(grpc.StatusCode.INTERNAL, f"nodes/{node_name} is not a Node")
        return cls(agent_address(node), timeout=timeout, credentials=credentials)

    @property
    def node(self) -> str:
        return self.address.node

    @property
    def target(self) -> str:
        return self.address.target

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AgentClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the channel has connected or failed to (a call then fails at once
        with gRPC's own reason, e.g. connection refused). UNAVAILABLE when neither
        happens in time: a paused agent, whose kernel still accepts the connection."""
        limit = self.timeout if timeout is None else timeout
        settled = (grpc.ChannelConnectivity.READY, grpc.ChannelConnectivity.TRANSIENT_FAILURE)
        try:
            async with asyncio.timeout(limit):
                state = self._channel.get_state(try_to_connect=True)
                while state not in settled:
                    await self._channel.wait_for_state_change(state)
                    state = self._channel.get_state(try_to_connect=True)
        except TimeoutError:
            raise ApiError(
                grpc.StatusCode.UNAVAILABLE,
                f"failed to connect to {self.target}: no answer within {limit:g}s",
            ) from None

    async def list_pods(self) -> list[objects_pb2.Pod]:
        """The pods the agent runs, with the status it reports for them."""
        try:
            answer = await self._stub.ListPods(node_pb2.ListPodsRequest(), timeout=self.timeout)
        except grpc.aio.AioRpcError as err:
            raise _api_error(err) from None
        return list(answer.pods)

    async def kill_pod(self, namespace: str, name: str, signal: int = SIGKILL) -> int:
        """Signal the pod's process as a crash would (its restartPolicy applies: this is
        chaos, not a delete); returns the pid that was signalled."""
        request = node_pb2.KillPodRequest(namespace=namespace, name=name, signal=int(signal))
        try:
            answer = await self._stub.KillPod(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as err:
            raise _api_error(err) from None
        return answer.pid

    async def logs(
        self,
        namespace: str,
        name: str,
        follow: bool = False,
        tail_lines: int = 0,
        previous: bool = False,
        container: str = "",
    ) -> AsyncIterator[bytes]:
        """The pod's output as it arrives, in chunks of raw bytes. `tail_lines=0` is
        every line; `follow` keeps streaming while the pod runs; `previous` is the
        output of the instance before the last restart."""
        stream = await self.open_logs(
            namespace,
            name,
            follow=follow,
            tail_lines=tail_lines,
            previous=previous,
            container=container,
        )
        try:
            async for data in stream:
                yield data
        finally:
            stream.cancel()

    async def open_logs(
        self,
        namespace: str,
        name: str,
        *,
        follow: bool = False,
        tail_lines: int = 0,
        previous: bool = False,
        container: str = "",
        timestamps: bool = False,
        since_ns: int | None = None,
    ) -> LogStream:
        """A Logs call, started: iterate it for the chunks, `started()` to learn first
        whether the agent accepted it (the apiserver must choose its HTTP status
        before the first byte of a log that may not come for a while). `timestamps`
        starts each line with its time; `since_ns` (nanoseconds since the epoch) keeps
        only lines read from then on."""
        request = node_pb2.LogsRequest(
            namespace=namespace,
            name=name,
            follow=follow,
            tail_lines=max(tail_lines, 0),
            previous=previous,
            container=container,
            timestamps=timestamps,
        )
        if since_ns is not None:
            request.since_time.FromNanoseconds(since_ns)
        # The stream has no deadline (follow may last for hours): bound the connect alone.
        await self.wait_connected()
        return LogStream(self._stub.Logs(request))


class LogStream:
    """One Logs call. The agent sends its headers once its checks have passed and the
    log is open, so `started` returns then (or raises the agent's refusal); an older
    agent sends them with the first chunk, which only delays `started`."""

    def __init__(self, call: grpc.aio.UnaryStreamCall[node_pb2.LogsRequest, node_pb2.LogChunk]):
        self._call = call

    async def started(self) -> None:
        try:
            await self._call.initial_metadata()
        except grpc.aio.AioRpcError as err:
            raise _api_error(err) from None
        if self._call.done():
            code = await self._call.code()
            if code != grpc.StatusCode.OK:
                raise ApiError(code, await self._call.details() or "")

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._call:
                yield chunk.data
        except grpc.aio.AioRpcError as err:
            raise _api_error(err) from None

    def cancel(self) -> None:
        self._call.cancel()
