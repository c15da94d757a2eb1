"""The only code that knows etcd: typed objects in, typed objects out (DESIGN §3).

`Store` is one connection per actor process with every capability the actors
need, each in its own module:

* `objects` — objects of every kind and allocation claims, compare-and-swap,
  watches, fenced writes;
* `liveness` — node heartbeats and pod statuses, attached to node leases;
* `election` — leader election and the fences that make it safe;
* `load_balancers` — the cloud-stub's load balancers and their address claims;
* `etcd` — the shared connection: calls, group-committed transactions
  (`batching`), resumable watches, leases;
* `lease_keeper` — renewing a lease from a thread of its own, so the holder's
  busy event loop never lets it expire;
* `ttl_leases` — the shared expiring lease Events are written under;
* `keys` — the key layout, private to this package;
* `protocol` — `StoreProtocol`, the part of it controllers and proxies use, which
  `kubelab.testing.fakes.FakeStore` also implements in memory.
"""

from __future__ import annotations

from kubelab.store.election import ElectionStore
from kubelab.store.errors import (
    AlreadyExistsError,
    ClaimTakenError,
    CompactedError,
    ConflictError,
    ExpiredContinueError,
    LeaseExpiredError,
    NotFoundError,
    NotLeaderError,
    RequestTooLargeError,
    StoreError,
    StoreUnavailableError,
)
from kubelab.store.etcd import Lease
from kubelab.store.lease_keeper import LeaseKeeper, LeaseLost
from kubelab.store.liveness import HeartbeatEvent, LivenessStore, PodStatusEvent
from kubelab.store.load_balancers import LbClaim, LoadBalancerStore, StoredLoadBalancer
from kubelab.store.objects import (
    EVENT_TTL,
    ClaimEvent,
    EventType,
    Fence,
    ListPage,
    ObjectEvent,
    ObjectStore,
)
from kubelab.store.protocol import StoreProtocol


class Store(ObjectStore, LivenessStore, ElectionStore, LoadBalancerStore):
    """Typed access to the cluster state in etcd. One per actor process."""


__all__ = [
    "EVENT_TTL",
    "AlreadyExistsError",
    "ClaimEvent",
    "ClaimTakenError",
    "CompactedError",
    "ConflictError",
    "EventType",
    "ExpiredContinueError",
    "Fence",
    "HeartbeatEvent",
    "LbClaim",
    "Lease",
    "LeaseExpiredError",
    "LeaseKeeper",
    "LeaseLost",
    "ListPage",
    "NotFoundError",
    "NotLeaderError",
    "ObjectEvent",
    "PodStatusEvent",
    "RequestTooLargeError",
    "Store",
    "StoreError",
    "StoreProtocol",
    "StoreUnavailableError",
    "StoredLoadBalancer",
]
