"""The client side of `grpc.health.v1`: is an actor SERVING yet?

`kubelab.rpc.server` registers the health servicer every actor answers; this
module is the one probe that asks it, shared by the embedded launcher
(`kubelab.lab`, readiness before the next stage starts) and the test and bench
helpers (`kubelab.testing.processes`), so both wait on the same signal.

One call is one synchronous `Check` with a one-second deadline, on a fresh
channel that goes straight to the address. It never raises for an actor that
is down, starting or answering NOT_SERVING: every such case is False, and the
caller polls against its own deadline.
"""

from __future__ import annotations

import os
from pathlib import Path

import grpc

from kubelab import credentials
from kubelab.credentials import Credentials

# Probes go straight to loopback: an http_proxy in the user's environment must
# not carry them off (gRPC honours it by default).
_GRPC_DIRECT = [("grpc.enable_http_proxy", 0)]


def serving(address: str, service: str = "", credentials: Credentials | None = None) -> bool:
    """The actor's `grpc.health.v1` check answers SERVING for `service` ("" = the server);
    over TLS with `credentials` when given (a TLS actor's port asks every caller for a
    client certificate of its cluster, health checks included)."""
    # Imported on first use: most `kubelab` commands never probe.
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    # A fresh channel per probe: a long-lived channel backs off reconnects
    # (1 s, 1.6 s, ...) after the first refusal and would answer late.
    if credentials is None:
        channel = grpc.insecure_channel(address, options=_GRPC_DIRECT)
    else:
        tls = credentials.channel_credentials()
        channel = grpc.secure_channel(address, tls, options=_GRPC_DIRECT)
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1.0)
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def main(argv: list[str] | None = None) -> int:
    """`python -m kubelab.rpc.health HOST:PORT [SERVICE]`: exit 0 when SERVING, else 1
    (a container health check: the image has no grpc_health_probe). Over TLS with the
    credentials of the kubeconfig $KUBECONFIG names, when it names an https server."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if not 1 <= len(args) <= 2:
        print("usage: python -m kubelab.rpc.health HOST:PORT [SERVICE]", file=sys.stderr)
        return 2
    found = (
        credentials.from_kubeconfig(Path(os.environ["KUBECONFIG"]))
        if "KUBECONFIG" in os.environ
        else None
    )
    return 0 if serving(args[0], args[1] if len(args) > 1 else "", found) else 1


if __name__ == "__main__":
    raise SystemExit(main())
