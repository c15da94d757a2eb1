"""The key layout in etcd (DESIGN §3). Private to kubelab.store.

* `/registry/<resource>/<namespace>/<name>` — an object (Nodes: `/registry/nodes/<name>`);
* `/registry/allocations/<clusterips|nodeports|lbips>/<value>` — a claim, valued with its
  owner's uid and key;
* `/registry/podstatus/<namespace>/<name>` — a pod's status, attached to its node's lease;
* `/registry/leases/nodes/<name>` — a node agent's heartbeat, attached to its lease;
* `/registry/elections/<name>` — an election's leader, attached to the leader's lease;
* `/registry/cloud/loadbalancers/<namespace>/<name>` — a cloud-stub load balancer (its
  spec and address), next to its `lbips` claim.
"""

from __future__ import annotations

from kubelab.core.allocators import Claim, ClaimKind
from kubelab.core.kinds import KindInfo

REGISTRY = "/registry/"
ALLOCATIONS = "/registry/allocations/"
POD_STATUS = "/registry/podstatus/"
NODE_LEASES = "/registry/leases/nodes/"
ELECTIONS = "/registry/elections/"
CLOUD_LOAD_BALANCERS = "/registry/cloud/loadbalancers/"


def object_key(info: KindInfo, namespace: str, name: str) -> bytes:
    if info.namespaced:
        return f"{REGISTRY}{info.resource}/{namespace}/{name}".encode()
    return f"{REGISTRY}{info.resource}/{name}".encode()


def kind_prefix(info: KindInfo, namespace: str = "") -> bytes:
    if info.namespaced and namespace:
        return f"{REGISTRY}{info.resource}/{namespace}/".encode()
    return f"{REGISTRY}{info.resource}/".encode()


def claim_key(claim: Claim) -> bytes:
    return f"{ALLOCATIONS}{claim.kind.value}/{claim.name}".encode()


def claim_from_key(key: bytes) -> Claim:
    kind, _, name = key.decode()[len(ALLOCATIONS) :].partition("/")
    return Claim(ClaimKind(kind), name)


def prefix_end(prefix: bytes) -> bytes:
    return prefix[:-1] + bytes([prefix[-1] + 1])


def pod_status_key(namespace: str, name: str) -> bytes:
    return f"{POD_STATUS}{namespace}/{name}".encode()


def node_lease_key(name: str) -> bytes:
    return f"{NODE_LEASES}{name}".encode()


def election_key(name: str) -> bytes:
    return f"{ELECTIONS}{name}".encode()


def last_segments(key: bytes, prefix: str) -> list[str]:
    return key.decode()[len(prefix) :].split("/")


def cloud_load_balancer_key(namespace: str, name: str) -> bytes:
    return f"{CLOUD_LOAD_BALANCERS}{namespace}/{name}".encode()
