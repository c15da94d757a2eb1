"""Readiness probes: is an actor answering yet?

A `ProcessSpec.ready` check is ONE quick probe built from these: it returns
within about a second and answers True or False, never raises for an actor
that is down or still starting. The launcher polls it against the spec's
`ready_timeout`, checking between polls that the actor has not exited.

Each probe asks the actor's own notion of ready rather than "the port is
open": etcd's `/health` (it has a leader and serves) and `grpc.health.v1`
SERVING (the actor flips it once it can serve, see `kubelab.rpc.server`),
and for cluster DNS a real query: any answer to a name that cannot exist
means it has synced and serves (it binds its port only then).
The gRPC probe is `kubelab.rpc.health.serving`, the one shared with the
test helpers, under the launcher's name for it.

Probes go straight to loopback: an http_proxy in the user's environment must
not carry them off (urllib and gRPC both honour it by default).
"""

from __future__ import annotations

import json
import urllib.request

from kubelab.rpc.health import serving as grpc_serving

__all__ = ["dns_answering", "etcd_healthy", "grpc_serving"]

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def etcd_healthy(address: str) -> bool:
    """etcd's own health endpoint says `"health": "true"` (it has a leader and serves)."""
    try:
        with _DIRECT.open(f"http://{address}/health", timeout=1.0) as response:
            body = json.loads(response.read() or b"{}")
    except (OSError, ValueError):
        return False
    return isinstance(body, dict) and body.get("health") == "true"


def dns_answering(address: str, name: str) -> bool:
    """The DNS server at `address` (ip:port) answers a UDP query for `name` at all
    (NXDOMAIN is an answer)."""
    # Imported on first use: most `kubelab` commands never probe DNS.
    import dns.exception
    import dns.message
    import dns.query

    host, _, port = address.rpartition(":")
    query = dns.message.make_query(name, "A")
    try:
        dns.query.udp(query, host, port=int(port), timeout=1.0)
    except (OSError, dns.exception.DNSException):
        return False
    return True
