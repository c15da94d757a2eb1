"""Leader election on an etcd key, with fencing (DESIGN §1, §7a).

`campaign` puts the election key attached to the candidate's lease if nobody
holds it (compare `version == 0`), and otherwise waits for the holder's key to
be deleted (its lease revoked or expired) and tries again. The winner gets a
`Fence`: the key and the revision it was created at. Every write the leader
makes carries the fence (`ObjectStore.create/update/delete(fence=...)`), so
the transaction itself checks that the election key is still the one created
at that revision: a deposed leader — paused, partitioned, its lease expired
and a successor elected — has its late writes refused, not applied. An
election alone is not mutual exclusion; the fence is what makes it so.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aetcd.rpc as etcdrpc

from kubelab.store.etcd import EtcdConnection, Lease, put, read, version_is
from kubelab.store.keys import election_key
from kubelab.store.objects import Fence


class ElectionStore(EtcdConnection):
    async def campaign(self, election: str, identity: str, lease: Lease) -> Fence:
        """Wait until `identity` leads `election`; the leadership lasts as long as `lease`."""
        key = election_key(election)
        while True:
            result = await self._txn(
                [version_is(key, 0)], [put(key, identity.encode(), lease)], [read(key)]
            )
            if result.succeeded:
                return Fence(key, result.revision)
            holder = result.responses[0].response_range.kvs
            if holder and holder[0].lease == lease.id:
                return Fence(key, int(holder[0].create_revision))
            async for event in self.watch_prefix(key, result.revision):
                if event.deleted and event.key == key:
                    break

    async def leader(self, election: str) -> tuple[str, int] | None:
        """The current leader's identity and its fence revision, if any."""
        response = await self._call("Range", etcdrpc.RangeRequest(key=election_key(election)))
        if not response.kvs:
            return None
        return response.kvs[0].value.decode(), int(response.kvs[0].create_revision)

    async def still_leads(self, fence: Fence) -> bool:
        response = await self._call("Range", etcdrpc.RangeRequest(key=fence.key))
        return bool(response.kvs) and int(response.kvs[0].create_revision) == fence.revision

    async def watch_leader(
        self, election: str, *, from_revision: int
    ) -> AsyncIterator[tuple[tuple[str, int] | None, int]]:
        """After `from_revision`, every change of `election`'s key: the new holder (its
        identity and fence revision, as `leader` gives them; None once vacant) and the
        revision of the change. A rewrite by the same term yields the same holder."""
        key = election_key(election)
        holder: tuple[str, int] | None = None
        async for event in self.watch_prefix(key, from_revision):
            if event.key != key:
                continue  # another election whose name starts with this one's
            if event.deleted:
                holder = None
            elif event.created:
                holder = (event.value.decode(), event.revision)
            elif holder is None:  # a rewrite in a term that began before the watch
                holder = await self.leader(election)
            yield holder, event.revision
