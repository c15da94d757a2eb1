"""gRPC server factory: every actor serves health and reflection the same way.

`start_server` binds, registers the actor's servicers plus `grpc.health.v1`
and server reflection, and starts serving. Registrars register their servicers
through `kubelab.rpc.decoding.add_servicer` (health and reflection are registered
the same way), so an undecodable request is answered INVALID_ARGUMENT.
Health starts NOT_SERVING and the actor flips it to SERVING once its first sync
is done, so `kubelab up` and compose health checks wait on a real readiness signal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from kubelab.limits import GRPC_OPTIONS
from kubelab.rpc.decoding import add_servicer

Registrar = Callable[[grpc.aio.Server], None]


@dataclass
class RunningServer:
    server: grpc.aio.Server
    address: str
    health: health.aio.HealthServicer
    service_names: tuple[str, ...]

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *self.service_names):
            await self.health.set(name, status)

    async def stop(self, grace: float) -> None:
        await self.set_serving(False)
        await self.server.stop(grace)


async def start_server(
    listen: str,
    registrars: Sequence[Registrar],
    service_names: Sequence[str],
    credentials: grpc.ServerCredentials | None = None,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> RunningServer:
    """Bind `listen` ("host:port", port 0 for any), register and start; TLS with
    `credentials`, each call through `interceptors` (who may call what). Raises OSError
    when the address cannot be bound."""
    server = grpc.aio.server(
        interceptors=list(interceptors),
        options=[
            ("grpc.so_reuseport", 0),
            # Every actor's server: sizes in `kubelab.limits`.
            *GRPC_OPTIONS,
        ],
    )
    for register in registrars:
        register(server)
    health_servicer = health.aio.HealthServicer()
    add_servicer(server, health_pb2_grpc.add_HealthServicer_to_server, health_servicer)
    names = (
        *service_names,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    )
    add_servicer(
        server,
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server,
        reflection.aio.ReflectionServicer(names),
    )
    try:
        if credentials is None:
            port = server.add_insecure_port(listen)
        else:
            port = server.add_secure_port(listen, credentials)
    except RuntimeError as err:
        raise OSError(f"cannot listen on {listen}: {err}") from None
    if port == 0:
        raise OSError(f"cannot listen on {listen}: address in use or not available")
    host = listen.rpartition(":")[0]
    await server.start()
    running = RunningServer(server, f"{host}:{port}", health_servicer, tuple(service_names))
    await running.set_serving(False)
    return running


def write_address_file(path: Path, *lines: str) -> None:
    """An actor's `--address-file`: its addresses, a line each, written whole (a reader
    never sees half of it)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{line}\n" for line in lines))
    tmp.replace(path)
