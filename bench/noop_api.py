"""A kubelab.v1.Api server that does nothing: the ceiling for unary calls.

    python bench/noop_api.py PORT

Same gRPC stack as the apiserver (grpc.aio, health, reflection, uvloop), but
`Create` echoes the object back without validation, allocation or etcd. What
`bench/api.py` measures against it is what one Python gRPC server process can
answer at all on this machine; the real apiserver cannot beat it.
"""

from __future__ import annotations

import asyncio
import sys

import grpc

from kubelab.rpc.server import start_server
from kubelab.runtime.loop import run_actor
from kubelab.v1 import api_pb2, api_pb2_grpc


class NoopApi(api_pb2_grpc.ApiServicer):
    async def Create(
        self, request: api_pb2.CreateRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> api_pb2.Object:
        return request.object


async def serve(port: int) -> None:
    def register(server: grpc.aio.Server) -> None:
        # Only Create is served; the rest answer UNIMPLEMENTED, which is all a floor needs.
        api_pb2_grpc.add_ApiServicer_to_server(NoopApi(), server)  # type: ignore[abstract]

    running = await start_server(f"127.0.0.1:{port}", [register], ["kubelab.v1.Api"])
    await running.set_serving(True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    run_actor(serve(int(sys.argv[1])))
