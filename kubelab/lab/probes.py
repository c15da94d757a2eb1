"""Readiness probes: is an actor answering yet?

A `ProcessSpec.ready` check is ONE quick probe built from these: it returns
within about a second and answers True or False, never raises for an actor
that is down or still starting. The launcher polls it against the spec's
`ready_timeout`, checking between polls that the actor has not exited.

Each probe asks the actor's own notion of ready rather than "the port is
open": etcd's `/health` (it has a leader and serves) and `grpc.health.v1`
SERVING (the actor flips it once it can serve, see `kubelab.rpc.server`).
The gRPC probe is `kubelab.rpc.health.serving`, the one shared with the
test helpers, under the launcher's name for it.

Probes go straight to loopback: an http_proxy in the user's environment must
not carry them off (urllib and gRPC both honour it by default).
"""

from __future__ import annotations

import json
import urllib.request

from kubelab.rpc.health import serving as grpc_serving

__all__ = ["etcd_healthy", "grpc_serving"]

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def etcd_healthy(address: str) -> bool:
    """etcd's own health endpoint says `"health": "true"` (it has a leader and serves)."""
    try:
        with _DIRECT.open(f"http://{address}/health", timeout=1.0) as response:
            body = json.loads(response.read() or b"{}")
    except (OSError, ValueError):
        return False
    return isinstance(body, dict) and body.get("health") == "true"
