"""The narrow face of the store that controllers and node proxies program against.

`StoreProtocol` lists what they call: objects (get, list, compare-and-swap
create / update / delete, watch), the liveness sources they read (pod
statuses, node heartbeats) and the allocation claims the repair loop fixes.
`kubelab.store.Store` (etcd) satisfies it; so does
`kubelab.testing.fakes.FakeStore` (memory), which is how the reconcilers' apply
steps are unit-tested without etcd (STYLE habit 6). Node agents also hold
leases and renew them from a thread, which only etcd can do: they keep the
concrete `Store`.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Iterable
from typing import Protocol

from kubelab.core.allocators import Claim, ClaimKind
from kubelab.core.keys import ObjectKey
from kubelab.core.kinds import ApiObject, KindInfo, ObjectT
from kubelab.store.liveness import HeartbeatEvent, PodStatusEvent
from kubelab.store.objects import Fence, ObjectEvent
from kubelab.v1 import objects_pb2


class StoreProtocol(Protocol):
    # ------------------------------------------------------------------ objects

    async def get(self, info: KindInfo[ObjectT], namespace: str, name: str) -> ObjectT: ...

    async def list(
        self, info: KindInfo[ObjectT], namespace: str = ""
    ) -> tuple[builtins.list[ObjectT], int]: ...

    async def create(
        self, obj: ObjectT, claims: Iterable[Claim] = (), *, fence: Fence | None = None
    ) -> ObjectT: ...

    async def update(
        self,
        obj: ObjectT,
        *,
        expected_revision: int,
        claim: Iterable[Claim] = (),
        release: Iterable[Claim] = (),
        fence: Fence | None = None,
    ) -> ObjectT: ...

    async def delete(
        self,
        info: KindInfo,
        namespace: str,
        name: str,
        *,
        expected_revision: int,
        release: Iterable[Claim] = (),
        fence: Fence | None = None,
    ) -> None: ...

    def watch(
        self, info: KindInfo, namespace: str = "", *, from_revision: int
    ) -> AsyncIterator[ObjectEvent]: ...

    # ------------------------------------------------------------------ liveness (read)

    async def list_pod_statuses(
        self, namespace: str = ""
    ) -> tuple[dict[ObjectKey, objects_pb2.PodStatus], int]: ...

    def watch_pod_statuses(self, *, from_revision: int) -> AsyncIterator[PodStatusEvent]: ...

    async def live_nodes(self) -> tuple[set[str], int]: ...

    def watch_heartbeats(self, *, from_revision: int) -> AsyncIterator[HeartbeatEvent]: ...

    # ------------------------------------------------------------------ claims (repair)

    async def list_claims(self, kind: ClaimKind | None = None) -> tuple[dict[Claim, str], int]: ...

    async def release_claims(
        self, owned: dict[Claim, str], *, fence: Fence | None = None
    ) -> int: ...

    async def restore_claims(
        self, obj: ApiObject, claims: Iterable[Claim], *, fence: Fence | None = None
    ) -> builtins.list[Claim]: ...
