"""Cloud load balancers and their address claims: the cloud-stub's state (DESIGN §2.5, §3).

Two kinds of keys:

* the record, `/registry/cloud/loadbalancers/<namespace>/<name>`: a
  `LoadBalancer` message holding the spec and the address (node health is
  observed, never stored);
* the address claim, `/registry/allocations/lbips/<ip>`, valued like every
  claim with the owner's uid and key (`services/<namespace>/<name>`), so the
  allocation repair and `describe` read it as the Service's.

Every change is one transaction. A save compares the record's mod revision as
read (`version == 0` for a new one) and, when it writes the claim, the claim's
mod revision as read (`version == 0` for a new address: two cloud-stubs can
never both take it); the address it gives back is deleted in the same
transaction, compared the same way, so a claim someone else took meanwhile is
never deleted. A failed compare writes nothing and raises `ConflictError`
(record) or `ClaimTakenError` (claim): the caller reads again and re-plans.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import aetcd.rpc as etcdrpc

from kubelab.core.allocators import Claim, ClaimKind
from kubelab.store.errors import ClaimTakenError, ConflictError
from kubelab.store.etcd import EtcdConnection, delete, mod_revision_is, put, read, version_is
from kubelab.store.keys import (
    ALLOCATIONS,
    CLOUD_LOAD_BALANCERS,
    claim_from_key,
    claim_key,
    cloud_load_balancer_key,
)
from kubelab.v1 import cloud_pb2

_LB_CLAIMS = f"{ALLOCATIONS}{ClaimKind.LB_IP.value}/"
_OWNER_PREFIX = "services/"


@dataclass(frozen=True, slots=True)
class StoredLoadBalancer:
    # spec and ip; `nodes` (health) is never stored.
    record: cloud_pb2.LoadBalancer
    revision: int

    @property
    def name(self) -> str:
        return f"{self.record.spec.namespace}/{self.record.spec.name}"


@dataclass(frozen=True, slots=True)
class LbClaim:
    """Who holds a load balancer address."""

    ip: str
    # "namespace/name" of the holding Service; "" when the value is not kubelab's.
    holder: str
    uid: str
    revision: int


def _claim_key(ip: str) -> bytes:
    return claim_key(Claim.lb_ip(ip))


def _claim_value(spec: cloud_pb2.LoadBalancerSpec) -> bytes:
    owner = f"{_OWNER_PREFIX}{spec.namespace}/{spec.name}"
    return json.dumps({"uid": spec.uid, "owner": owner}).encode()


def _parse_claim(ip: str, value: bytes, revision: int) -> LbClaim:
    try:
        doc = json.loads(value)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        return LbClaim(ip, "", "", revision)
    owner, uid = doc.get("owner", ""), doc.get("uid", "")
    holder = owner[len(_OWNER_PREFIX) :] if isinstance(owner, str) else ""
    return LbClaim(ip, holder, uid if isinstance(uid, str) else "", revision)


def _record_compare(key: bytes, revision: int) -> etcdrpc.Compare:
    return version_is(key, 0) if revision == 0 else mod_revision_is(key, revision)


class LoadBalancerStore(EtcdConnection):
    async def get_load_balancer(self, namespace: str, name: str) -> StoredLoadBalancer | None:
        response = await self._call(
            "Range", etcdrpc.RangeRequest(key=cloud_load_balancer_key(namespace, name))
        )
        if not response.kvs:
            return None
        kv = response.kvs[0]
        return StoredLoadBalancer(cloud_pb2.LoadBalancer.FromString(kv.value), kv.mod_revision)

    async def list_load_balancers(self) -> list[StoredLoadBalancer]:
        response = await self._range(CLOUD_LOAD_BALANCERS.encode())
        return [
            StoredLoadBalancer(cloud_pb2.LoadBalancer.FromString(kv.value), kv.mod_revision)
            for kv in response.kvs
        ]

    async def lb_claims(self) -> dict[str, LbClaim]:
        """Every load balancer address claim, by address."""
        response = await self._range(_LB_CLAIMS.encode())
        claims = {}
        for kv in response.kvs:
            ip = claim_from_key(kv.key).name
            claims[ip] = _parse_claim(ip, kv.value, kv.mod_revision)
        return claims

    async def save_load_balancer(
        self,
        record: cloud_pb2.LoadBalancer,
        *,
        revision: int,
        claim_revision: int | None,
        release: LbClaim | None = None,
    ) -> int:
        """Write `record` if its key is still at `revision` (0: absent). `claim_revision`
        not None: also (re)write the claim of `record.ip`, if it is still at that revision
        (0: absent). `release`: delete that claim, if still as read. Returns the new
        revision of the record."""
        key = cloud_load_balancer_key(record.spec.namespace, record.spec.name)
        compare = [_record_compare(key, revision)]
        success = [put(key, record.SerializeToString(deterministic=True))]
        if claim_revision is not None:
            compare.append(_record_compare(_claim_key(record.ip), claim_revision))
            success.append(put(_claim_key(record.ip), _claim_value(record.spec)))
        if release is not None and release.ip != record.ip:
            compare.append(mod_revision_is(_claim_key(release.ip), release.revision))
            success.append(delete(_claim_key(release.ip)))
        response = await self._txn(compare, success, [read(key)])
        if not response.succeeded:
            current = response.responses[0].response_range.kvs
            current_revision = int(current[0].mod_revision) if current else 0
            if current_revision != revision:
                raise ConflictError(
                    f"load balancer {record.spec.namespace}/{record.spec.name} changed",
                    current_revision,
                )
            raise ClaimTakenError([Claim.lb_ip(record.ip)])
        return response.revision

    async def delete_load_balancer(self, stored: StoredLoadBalancer, claim: LbClaim | None) -> None:
        """Delete the record (if still at its revision) and, in the same transaction, its
        address claim (if still as read; None: the claim is not ours, leave it).
        Raises ConflictError when either changed meanwhile."""
        spec = stored.record.spec
        key = cloud_load_balancer_key(spec.namespace, spec.name)
        compare = [mod_revision_is(key, stored.revision)]
        success = [delete(key)]
        if claim is not None:
            compare.append(mod_revision_is(_claim_key(claim.ip), claim.revision))
            success.append(delete(_claim_key(claim.ip)))
        response = await self._txn(compare, success, [])
        if not response.succeeded:
            raise ConflictError(f"load balancer {stored.name} changed", 0)
