"""The node agent's gRPC service: what runs here, a crash button, and logs.

`ListPods` answers from the agent's cache and its runtime (the status the
agent reports), `KillPod` signals a pod's process the way a crash would (the
restart policy then applies: this is for chaos, not for deleting), `Logs`
streams a pod's output files (`follow` keeps reading as they grow).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from typing import Any

import grpc

from kubelab.rpc.decoding import add_servicer
from kubelab.v1 import node_pb2, node_pb2_grpc, objects_pb2
from node_agent.agent import NodeAgent

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
            pod = self.agent.pods.get((namespace, name))
            item = answer.pods.add()
            if isinstance(pod, objects_pb2.Pod):
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
        if (request.namespace or "default", request.name) not in self.agent.runtime.running():
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f'pod "{request.name}" is not running on node {self.agent.config.name}',
            )
        try:
            pid = self.agent.runtime.kill(
                request.namespace or "default", request.name, request.signal or signal.SIGKILL
            )
        except (KeyError, ProcessLookupError):
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f'pod "{request.name}" has no running process right now (starting or backing off)',
            )
        return node_pb2.KillPodResponse(pid=pid)

    async def Logs(
        self, request: node_pb2.LogsRequest, context: Context
    ) -> AsyncIterator[node_pb2.LogChunk]:
        namespace = request.namespace or "default"
        try:
            path = self.agent.runtime.log_path(
                namespace, request.name, request.container, previous=request.previous
            )
        except KeyError:
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f'pod "{request.name}" is not running on node {self.agent.config.name}',
            )
        if not path.exists():
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f'no logs for pod "{request.name}" on node {self.agent.config.name}',
            )
        with path.open("rb") as logs:
            data = logs.read()
            if request.tail_lines > 0:
                data = b"\n".join(data.splitlines()[-request.tail_lines :]) + b"\n"
            for start in range(0, len(data), _CHUNK):
                yield node_pb2.LogChunk(data=data[start : start + _CHUNK])
            while request.follow and not request.previous:
                more = logs.read(_CHUNK)
                if more:
                    yield node_pb2.LogChunk(data=more)
                    continue
                if (namespace, request.name) not in self.agent.runtime.running():
                    return
                # A log file has no change notification we can await portably.
                await asyncio.sleep(0.2)


SERVICE_NAME = node_pb2.DESCRIPTOR.services_by_name["NodeAgent"].full_name


def register(agent: NodeAgent) -> Any:
    def add(server: grpc.aio.Server) -> None:
        servicer = NodeAgentServicer(agent)
        add_servicer(server, node_pb2_grpc.add_NodeAgentServicer_to_server, servicer)

    return add
