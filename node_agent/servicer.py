"""The node agent's gRPC service: what runs here, a crash button, and logs.

`ListPods` answers from the agent's cache and its runtime (the status the
agent reports), `KillPod` signals a pod's process the way a crash would (the
restart policy then applies: this is for chaos, not for deleting), `Logs`
streams a pod's output files (`follow` keeps reading as they grow), turned from
their CRI records back into the output (`logic.cri_log`), each line with its time
when asked (`timestamps`) and only those read since `since_time`.

Requests are checked first (`node_agent.logic.node_requests`): a client mistake
is INVALID_ARGUMENT naming the field, never UNKNOWN. `Logs` reads only the
log of a container of a pod this node runs: the pod is looked up in the
runtime (NOT_FOUND otherwise), the container must be one of its spec's
(kubectl's "container x is not valid for pod y"), and the file is named by
the runtime, opened without following symlinks; nothing the caller sends
becomes part of a path.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
from collections.abc import AsyncIterator, Sequence
from typing import Any, BinaryIO

import grpc

from kubelab.core.errors import FieldError
from kubelab.core.keys import ObjectKey
from kubelab.core.kinds import DEFAULT_NAMESPACE
from kubelab.obs.logs import kobj
from kubelab.rpc.decoding import add_servicer
from kubelab.v1 import node_pb2, node_pb2_grpc
from node_agent.agent import NodeAgent
from node_agent.logic import cri_log
from node_agent.logic.node_requests import container_problem, validate_kill, validate_logs

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]
_CHUNK = 64 * 1024


class NodeAgentServicer(node_pb2_grpc.NodeAgentServicer):
    def __init__(self, agent: NodeAgent) -> None:
        self.agent = agent

    async def ListPods(
        self, request: node_pb2.ListPodsRequest, context: Context
    ) -> node_pb2.ListPodsResponse:
        answer = node_pb2.ListPodsResponse()
        for namespace, name in sorted(self.agent.runtime.running()):
            pod = self.agent.pods.get(ObjectKey((namespace, name)))
            item = answer.pods.add()
            if pod is not None:
                item.CopyFrom(pod)
            else:
                item.metadata.namespace, item.metadata.name = namespace, name
            status = self.agent.runtime.status(namespace, name)
            if status is not None:
                item.status.CopyFrom(status)
        return answer

    async def KillPod(
        self, request: node_pb2.KillPodRequest, context: Context
    ) -> node_pb2.KillPodResponse:
        await _refuse(context, validate_kill(request))
        namespace = request.namespace or DEFAULT_NAMESPACE
        if (namespace, request.name) not in self.agent.runtime.running():
            await context.abort(grpc.StatusCode.NOT_FOUND, self._not_here(request.name))
        try:
            pid = self.agent.runtime.kill(namespace, request.name, request.signal or signal.SIGKILL)
        except (KeyError, ProcessLookupError):
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f'pod "{request.name}" has no running process right now (starting or backing off)',
            )
        return node_pb2.KillPodResponse(pid=pid)

    async def Logs(
        self, request: node_pb2.LogsRequest, context: Context
    ) -> AsyncIterator[node_pb2.LogChunk]:
        await _refuse(context, validate_logs(request))
        namespace, name = request.namespace or DEFAULT_NAMESPACE, request.name
        runtime = self.agent.runtime
        try:
            containers = runtime.containers(namespace, name)
        except KeyError:
            await context.abort(grpc.StatusCode.NOT_FOUND, self._not_here(name))
        container = request.container or next(iter(containers), "")
        await _refuse(context, [p] if (p := container_problem(name, containers, container)) else [])
        try:
            logs = runtime.open_log(namespace, name, container, previous=request.previous)
        except KeyError:  # the pod went between the two looks
            await context.abort(grpc.StatusCode.NOT_FOUND, self._not_here(name))
        except OSError as err:
            if err.errno == errno.ELOOP:
                log.warning(
                    "log of container %s is a symlink: not followed",
                    container,
                    extra=kobj(f"{namespace}/{name}", kind="pod", node=self.agent.config.name),
                )
            what = "previous instance of " if request.previous else ""
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f'no logs for the {what}container "{container}" of pod "{name}" '
                f"on node {self.agent.config.name}",
            )
        since = request.since_time.ToNanoseconds() if request.HasField("since_time") else 0
        renderer = cri_log.Renderer(timestamps=request.timestamps, since_ns=since)
        with logs:
            # Headers now: the caller learns the request was accepted before any output
            # (a followed log may have none for a while; the apiserver answers 200 then).
            await context.send_initial_metadata(())
            shown = renderer.feed(cri_log.tail_records(logs.read(), request.tail_lines))
            for start in range(0, len(shown), _CHUNK):
                yield node_pb2.LogChunk(data=shown[start : start + _CHUNK])
            while request.follow and not request.previous:
                more = logs.read(_CHUNK)
                if more:
                    if shown := renderer.feed(more):
                        yield node_pb2.LogChunk(data=shown)
                    continue
                if self._instance_over(logs, namespace, name, container):
                    # What it wrote before it ended, then the end (the kubelet ends a
                    # follow when the container it follows exits).
                    if rest := renderer.feed(logs.read()):
                        yield node_pb2.LogChunk(data=rest)
                    break
                # A log file has no change notification we can await portably.
                await asyncio.sleep(0.2)
            if rest := renderer.finish():
                yield node_pb2.LogChunk(data=rest)

    def _instance_over(self, logs: BinaryIO, namespace: str, name: str, container: str) -> bool:
        """Whether the container instance writing `logs` has ended: the pod is gone, the
        container no longer runs, or it restarted (its runner moved this file aside)."""
        runtime = self.agent.runtime
        status = runtime.status(namespace, name)
        if status is None:
            return True
        state = next((c.state for c in status.container_statuses if c.name == container), None)
        if state is None or not state.HasField("running"):
            return True
        try:
            current = runtime.log_path(namespace, name, container)
            return os.stat(current).st_ino != os.fstat(logs.fileno()).st_ino
        except (KeyError, OSError):
            return True

    def _not_here(self, name: str) -> str:
        return f'pod "{name}" is not running on node {self.agent.config.name}'


async def _refuse(context: Context, problems: Sequence[FieldError]) -> None:
    """INVALID_ARGUMENT naming the fields, when there are problems."""
    if problems:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "; ".join(str(p) for p in problems))


SERVICE_NAME = node_pb2.DESCRIPTOR.services_by_name["NodeAgent"].full_name


def register(agent: NodeAgent) -> Any:
    def add(server: grpc.aio.Server) -> None:
        servicer = NodeAgentServicer(agent)
        add_servicer(server, node_pb2_grpc.add_NodeAgentServicer_to_server, servicer)

    return add
