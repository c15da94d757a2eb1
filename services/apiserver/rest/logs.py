"""`GET pods/<name>/log`: a pod's output, read from the node agent that runs it.

Kubernetes' apiserver proxies this request to the kubelet of the pod's node; kubelab's
proxies it to the node agent's gRPC `Logs` (`kubelab.agent_client`, found as
`kubectl logs` finds a kubelet: the Node's InternalIP and kubelet endpoint port). The
answer is `text/plain` raw bytes, chunked, flushed as they come, so `kubectl logs -f`
is live; a follow ends when the pod stops running (the agent ends its stream) or when
the client hangs up (aiohttp cancels the handler, which cancels the gRPC call).

The HTTP status is chosen before the first byte. The apiserver checks what it can
itself (`log_options`: the parameters, the container), then waits for the agent's
headers, which it sends once its own checks have passed and the log is open, so a
refusal is a Status, not an empty 200:

* a pod no node has taken: 400 `pod "x" is not scheduled to a node yet`;
* the agent has no such pod running (starting, or gone): the kubelet's 400
  `container "c" in pod "x" is waiting to start: <reason>`;
* no previous instance: the kubelet's 400 `previous terminated container ... not found`;
* a Node that names no agent address, or an agent that cannot be reached: 503
  ServiceUnavailable naming the node and address (a client may retry).

`tailLines=0` is "no lines" (Kubernetes'); the agent reads 0 as "all", so without
follow nothing is asked, and with follow the backlog is measured with a first read
and skipped in the followed one (the file only grows while its instance runs).
`limitBytes` stops after that many bytes (timestamps included, as the kubelet counts).
`timestamps` and `since*` are the agent's to apply: it keeps each line's time.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import grpc
from aiohttp import web
from multidict import CIMultiDict

from kubelab.agent_client import AgentClient, LogStream, NoAgentAddressError, agent_address
from kubelab.client import ApiError as AgentError
from kubelab.core import kinds
from kubelab.credentials import Credentials
from kubelab.store import NotFoundError, StoreProtocol
from kubelab.v1 import objects_pb2
from services.apiserver.live_views import LiveViews
from services.apiserver.logic import request_keys
from services.apiserver.rest import log_options
from services.apiserver.rest.errors import ApiError, bad_request, method_not_allowed
from services.apiserver.rest.log_options import LogOptions
from services.apiserver.rest.routing import Target

log = logging.getLogger(__name__)

# How long to wait for an agent to answer a connect (a paused one never does).
AGENT_CONNECT_TIMEOUT = 5.0


def _unavailable(node: str, where: str, why: str) -> ApiError:
    return ApiError(
        503,
        "ServiceUnavailable",
        f"cannot reach the node agent of {node}{where}: {why}",
    )


class PodLogs:
    def __init__(
        self, store: StoreProtocol, views: LiveViews, kubelet: Credentials | None = None
    ) -> None:
        self.store = store
        self.views = views
        self.kubelet = kubelet  # the apiserver's kubelet client credentials (TLS)

    async def handle(self, request: web.Request, target: Target) -> web.StreamResponse:
        if request.method != "GET":
            raise method_not_allowed(request.method)
        namespace, name = target.namespace, target.name
        request_keys.check_key(kinds.PODS.resource, namespace, name)
        options = log_options.parse(request.query, name)
        since = log_options.since_ns(options, datetime.now(UTC))
        stored = await self.store.get(kinds.PODS, namespace, name)
        pod = await self.views.one(kinds.PODS, stored)
        assert isinstance(pod, objects_pb2.Pod)
        container = log_options.choose_container(
            name, [c.name for c in pod.spec.containers], options.container
        )
        if not pod.spec.node_name:
            raise bad_request(f'pod "{name}" is not scheduled to a node yet')
        agent = await self._agent(pod.spec.node_name)
        try:
            return await self._stream(request, agent, pod, container, options, since)
        finally:
            await agent.close()

    async def _agent(self, node_name: str) -> AgentClient:
        try:
            node = await self.store.get(kinds.NODES, "", node_name)
        except NotFoundError:
            raise _unavailable(node_name, "", "the node does not exist") from None
        try:
            address = agent_address(node)
        except NoAgentAddressError as err:
            raise _unavailable(node_name, "", err.message) from None
        return AgentClient(address, timeout=AGENT_CONNECT_TIMEOUT, credentials=self.kubelet)

    async def _open(
        self,
        agent: AgentClient,
        pod: objects_pb2.Pod,
        container: str,
        options: LogOptions,
        *,
        follow: bool,
        tail_lines: int,
        since: int | None,
    ) -> LogStream:
        """The agent's Logs call, accepted, or the Status for its refusal."""
        namespace, name = pod.metadata.namespace, pod.metadata.name
        try:
            stream = await agent.open_logs(
                namespace,
                name,
                follow=follow,
                tail_lines=tail_lines,
                previous=options.previous,
                container=container,
                timestamps=options.timestamps,
                since_ns=since,
            )
            await stream.started()
        except AgentError as err:
            raise self._refusal(err, agent, pod, container, options) from None
        return stream

    def _refusal(
        self,
        err: AgentError,
        agent: AgentClient,
        pod: objects_pb2.Pod,
        container: str,
        options: LogOptions,
    ) -> ApiError:
        name = pod.metadata.name
        if err.code == grpc.StatusCode.NOT_FOUND:
            if options.previous:
                return bad_request(log_options.no_previous_message(container, name))
            return bad_request(
                log_options.waiting_message(container, name, _waiting_reason(pod, container))
            )
        if err.code == grpc.StatusCode.INVALID_ARGUMENT:
            return bad_request(err.message)
        why = err.message.strip() or err.code.name
        if "connection refused" in why.lower():
            why = "connection refused"
        return _unavailable(agent.node, f" at {agent.target}", why)

    async def _stream(
        self,
        request: web.Request,
        agent: AgentClient,
        pod: objects_pb2.Pod,
        container: str,
        options: LogOptions,
        since: int | None,
    ) -> web.StreamResponse:
        skip = 0
        tail = options.tail_lines or 0
        if options.tail_lines == 0:
            if not options.streams:
                # Still asked, so a missing pod or container answers its Status.
                opened = await self._open(
                    agent, pod, container, options, follow=False, tail_lines=0, since=since
                )
                opened.cancel()
                return web.Response(body=b"", headers=_headers())
            skip = await self._backlog(agent, pod, container, options, since)
        stream = await self._open(
            agent, pod, container, options, follow=options.streams, tail_lines=tail, since=since
        )
        response = web.StreamResponse(status=200, headers=_headers())
        response.enable_chunked_encoding()
        await response.prepare(request)
        left = options.limit_bytes
        try:
            async for data in stream:
                if skip:
                    dropped = min(skip, len(data))
                    data, skip = data[dropped:], skip - dropped
                if left is not None:
                    data, left = data[:left], left - min(left, len(data))
                if data:
                    await response.write(data)
                if left == 0:
                    break
        except AgentError as err:
            # The headers are out: the log just ends, as Kubernetes' proxied stream does.
            log.warning(
                "log stream of pod %s/%s from node %s ended: %s",
                pod.metadata.namespace,
                pod.metadata.name,
                agent.node,
                err.message,
            )
        except ConnectionError:
            return response  # the client went away
        finally:
            stream.cancel()
        await response.write_eof()
        return response

    async def _backlog(
        self,
        agent: AgentClient,
        pod: objects_pb2.Pod,
        container: str,
        options: LogOptions,
        since: int | None,
    ) -> int:
        stream = await self._open(
            agent, pod, container, options, follow=False, tail_lines=0, since=since
        )
        size = 0
        try:
            async for data in stream:
                size += len(data)
        finally:
            stream.cancel()
        return size


def _headers() -> CIMultiDict[str]:
    return CIMultiDict({"Content-Type": "text/plain; charset=utf-8"})


def _waiting_reason(pod: objects_pb2.Pod, container: str) -> str:
    for status in pod.status.container_statuses:
        if status.name == container:
            if status.state.waiting.reason:
                return status.state.waiting.reason
            if status.state.HasField("terminated"):
                return "the container has terminated"
    return "ContainerCreating"
