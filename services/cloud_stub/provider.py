"""The pretend cloud's load balancers: Ensure, Get, Delete, List (DESIGN §2.5).

etcd holds what exists (`kubelab.store.load_balancers`: a record per load
balancer and a claim per address); this process runs what etcd says, one
`LoadBalancerRuntime` each. Every change is plan-then-apply: read the record
and the address claims, plan the address (`kubelab.core.lb_pool.plan_address`),
write record and claims in one transaction, then bring the listeners in line.

* Ensure is idempotent: a load balancer keeps its address; one that finds
  nothing to change writes nothing. A lost race (another cloud-stub wrote the
  record or took the address in between) re-reads and plans again.
* Bad input (field errors, an address out of the pool or held by another
  Service, an empty pool, a nodePort the cluster did not allocate) is refused
  before anything is written or bound.
* It forwards only where the cluster says (`services.cloud_stub.logic.lb_targets`, read from
  etcd through `ClusterView`), never wherever a caller says: a requested node
  that is not a Ready node of the cluster at its InternalIP is ignored (reported
  unhealthy, with the reason), and `follow` re-applies every load balancer when
  the cluster's nodes change.
* Delete removes record and claim in one transaction, then closes the
  listeners (their connections are reset); deleting what does not exist is OK.
* At start, `resume` re-ensures every stored load balancer (same address,
  listeners back) before the process reports SERVING, forwarding at once to the
  Ready nodes without waiting for their first health check: restarting the
  cloud-stub should touch load-balancer traffic as little as restarting a
  cloud's controller does.

Mutations are serialised by one lock: they are rare (a controller's reconcile),
and one writer at a time keeps the plan's view of the claims current.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from kubelab.core.errors import FieldError
from kubelab.core.lb_pool import LbPool, plan_address
from kubelab.obs.logs import kobj
from kubelab.store import (
    ClaimTakenError,
    ConflictError,
    LbClaim,
    NotFoundError,
    Store,
    StoredLoadBalancer,
)
from kubelab.v1 import cloud_pb2
from services.cloud_stub.cluster import ClusterView
from services.cloud_stub.forwarding import Adopt, LoadBalancerRuntime
from services.cloud_stub.health import CheckState, HealthChecker
from services.cloud_stub.logic.lb_targets import ClusterNodes, forwardable, port_problems
from services.cloud_stub.logic.load_balancers import CheckKey, lb_name, normalized, validate_spec
from services.cloud_stub.logic.snapshot import ForwardingEntry

log = logging.getLogger("cloud_stub")

# Lost races before giving up (ABORTED): each means another cloud-stub changed the
# same record or took the same address just now.
_WRITE_TRIES = 5


class InvalidSpecError(Exception):
    def __init__(self, problems: list[FieldError]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = tuple(problems)


class CloudProvider:
    def __init__(
        self,
        store: Store,
        pool: LbPool,
        checker: HealthChecker,
        cluster: ClusterView,
        *,
        connect_timeout: float = 0.5,
        udp_idle_timeout: float = 30.0,
        adopt: Adopt | None = None,
    ) -> None:
        self.store = store
        self.adopt = adopt  # listeners already bound (from the snapshot), to take over
        # Told what is forwarded after every change to it (the snapshot writer).
        self.forwarding_changed: Callable[[list[ForwardingEntry]], None] | None = None
        self.pool = pool
        self.checker = checker
        self.cluster = cluster
        self.connect_timeout = connect_timeout
        self.udp_idle_timeout = udp_idle_timeout
        self.runtimes: dict[str, LoadBalancerRuntime] = {}
        # Addresses of the pool held (by any cloud-stub) as of the last read, for metrics.
        self.in_use = 0
        self.refused_ports = 0  # Ensures refused for a nodePort the cluster did not allocate
        self._lock = asyncio.Lock()
        checker.on_change = self._health_changed

    # ------------------------------------------------------------------ API

    async def ensure(self, spec: cloud_pb2.LoadBalancerSpec) -> cloud_pb2.LoadBalancer:
        problems = validate_spec(spec)
        if spec.requested_ip:
            problem = self.pool.check_requested(spec.requested_ip)
            if problem is not None:
                problems.append(problem)
        if problems:
            raise InvalidSpecError(problems)
        spec = normalized(spec)
        problems = port_problems(spec, await self.cluster.node_ports())
        if problems:
            self.refused_ports += 1
            raise InvalidSpecError(problems)
        cluster = self.cluster.current()
        if forwardable(spec.nodes, cluster)[1]:
            cluster = await self.cluster.fresh()
        async with self._lock:
            record = await self._save(spec)
            try:
                runtime = await self._run(record, cluster)
            finally:
                self._forwarding_changed()
        return runtime.describe()

    async def get(self, namespace: str, name: str) -> cloud_pb2.LoadBalancer:
        stored = await self.store.get_load_balancer(namespace, name)
        if stored is None:
            raise NotFoundError(f'load balancer "{lb_name(namespace, name)}" not found')
        return self._describe(stored)

    async def list(self) -> list[cloud_pb2.LoadBalancer]:
        return [self._describe(s) for s in await self.store.list_load_balancers()]

    async def delete(self, namespace: str, name: str) -> None:
        key = lb_name(namespace, name)
        async with self._lock:
            for _ in range(_WRITE_TRIES):
                stored = await self.store.get_load_balancer(namespace, name)
                if stored is None:
                    break
                claims = await self.store.lb_claims()
                claim = claims.get(stored.record.ip)
                ours = claim if claim is not None and claim.holder == key else None
                try:
                    await self.store.delete_load_balancer(stored, ours)
                except ConflictError:
                    continue
                self.in_use = self.pool.used(claims.keys() - {stored.record.ip})
                log.info("deleted; released %s", stored.record.ip, extra=kobj(key, kind="svc"))
                break
            else:
                raise ConflictError(f"load balancer {key} kept changing; try again", 0)
            runtime = self.runtimes.pop(key, None)
            if runtime is not None:
                await runtime.close()
                self._forwarding_changed()

    # ------------------------------------------------------------------ lifecycle

    async def resume(self) -> None:
        """Run every stored load balancer again (after a restart). One that cannot be
        run (its address taken meanwhile, a port in use) is logged and skipped: the
        controller's next Ensure tries again."""
        async with self._lock:
            stored = await self.store.list_load_balancers()
            claims = await self.store.lb_claims()  # read once for all, not once per record
            node_ports = await self.cluster.node_ports()
            for item in stored:
                problems = port_problems(item.record.spec, node_ports)
                if problems:
                    log.error(
                        "not resumed: %s",
                        "; ".join(map(str, problems)),
                        extra=kobj(item.name, kind="svc"),
                    )
                    continue
                try:
                    record = await self._save(item.record.spec, known=(item, claims))
                    await self._run(record, check_first=False)
                except Exception as err:
                    log.error("could not resume: %s", err, extra=kobj(item.name, kind="svc"))
            log.info("resumed %d load balancers", len(self.runtimes))
            self._forwarding_changed()

    async def follow(self) -> None:
        """Re-apply every load balancer whenever the cluster's nodes change, so forwarding
        follows the cluster and not the last request. Runs until cancelled."""
        changed = self.cluster.changed
        applied = self.cluster.current().usable()
        while True:
            await changed.wait()
            changed.clear()
            current = self.cluster.current()
            if current.usable() == applied:
                continue
            applied = current.usable()
            log.info("cluster nodes changed: %s", ",".join(sorted(applied)) or "none")
            async with self._lock:
                for runtime in list(self.runtimes.values()):
                    try:
                        await runtime.update(runtime.requested, runtime.ip, current)
                    except Exception as err:  # a listener that cannot bind: the next Ensure retries
                        log.warning("re-applying: %s", err, extra=kobj(runtime.name, kind="svc"))
                self._forwarding_changed()

    async def stop(self, grace: float) -> None:
        """Stop accepting, give open connections `grace` seconds, then reset the rest.
        Records and claims stay: a restarted cloud-stub serves the same addresses."""
        loop = asyncio.get_running_loop()
        for runtime in self.runtimes.values():
            runtime.stop_listening()
        deadline = loop.time() + grace
        while loop.time() < deadline:
            if not any(r.stats.active() for r in self.runtimes.values()):
                break
            await asyncio.sleep(0.05)
        for runtime in self.runtimes.values():
            await runtime.close()
        self.runtimes.clear()

    # ------------------------------------------------------------------ plan and apply

    async def _save(
        self,
        spec: cloud_pb2.LoadBalancerSpec,
        *,
        known: tuple[StoredLoadBalancer | None, dict[str, LbClaim]] | None = None,
    ) -> cloud_pb2.LoadBalancer:
        """Write the record (and claims) `spec` calls for; returns the record. `known`:
        the stored record and the claims as the caller just read them, for the first
        try (a stale view only loses the transaction's compare, and the retry reads)."""
        key = lb_name(spec.namespace, spec.name)
        for _ in range(_WRITE_TRIES):
            if known is not None:
                (stored, claims), known = known, None
            else:
                stored = await self.store.get_load_balancer(spec.namespace, spec.name)
                claims = await self.store.lb_claims()
            self.in_use = self.pool.used(claims.keys())
            current = stored.record.ip if stored is not None else ""
            plan = plan_address(
                self.pool,
                me=key,
                current=current,
                requested=spec.requested_ip,
                holders={ip: c.holder for ip, c in claims.items()},
            )
            record = cloud_pb2.LoadBalancer(spec=spec, ip=plan.ip)
            claim = claims.get(plan.ip)
            # A re-created Service (same name, new uid) takes its address over.
            rewrite = plan.claim or (claim is not None and claim.uid != spec.uid)
            claim_revision = (claim.revision if claim is not None else 0) if rewrite else None
            if stored is not None and stored.record == record and claim_revision is None:
                return record
            try:
                await self.store.save_load_balancer(
                    record,
                    revision=stored.revision if stored is not None else 0,
                    claim_revision=claim_revision,
                    release=claims.get(plan.release) if plan.release else None,
                )
            except (ConflictError, ClaimTakenError) as err:
                log.info("lost a race (%s); planning again", err, extra=kobj(key, kind="svc"))
                continue
            taken = (claims.keys() | {plan.ip}) - {plan.release}
            self.in_use = self.pool.used(taken)
            self._log_saved(key, stored, record, plan.release)
            return record
        raise ConflictError(f"load balancer {key} kept changing; try again", 0)

    def _log_saved(
        self,
        key: str,
        stored: StoredLoadBalancer | None,
        record: cloud_pb2.LoadBalancer,
        released: str,
    ) -> None:
        extra = kobj(key, kind="svc", ip=record.ip)
        if stored is None:
            log.info("created on %s", record.ip, extra=extra)
        elif released:
            log.info("moved from %s to %s", released, record.ip, extra=extra)
        else:
            log.info("updated", extra=extra)

    async def _run(
        self,
        record: cloud_pb2.LoadBalancer,
        cluster: ClusterNodes | None = None,
        *,
        check_first: bool = True,
    ) -> LoadBalancerRuntime:
        key = lb_name(record.spec.namespace, record.spec.name)
        runtime = self.runtimes.get(key)
        if runtime is None:
            runtime = self.runtimes[key] = LoadBalancerRuntime(
                key,
                self.checker,
                connect_timeout=self.connect_timeout,
                udp_idle_timeout=self.udp_idle_timeout,
                adopt=self.adopt,
            )
        current = cluster or self.cluster.current()
        await runtime.update(record.spec, record.ip, current, check_first=check_first)
        return runtime

    def _forwarding_changed(self) -> None:
        if self.forwarding_changed is not None:
            self.forwarding_changed(
                [entry for runtime in self.runtimes.values() for entry in runtime.forwarding()]
            )

    def _describe(self, stored: StoredLoadBalancer) -> cloud_pb2.LoadBalancer:
        runtime = self.runtimes.get(stored.name)
        if runtime is not None and runtime.ip == stored.record.ip:
            return runtime.describe()
        # Stored but not run here (another cloud-stub's, or not resumed): no health seen.
        return cloud_pb2.LoadBalancer(spec=stored.record.spec, ip=stored.record.ip)

    def _health_changed(self, key: CheckKey, state: CheckState) -> None:
        for runtime in self.runtimes.values():
            for node in runtime.spec.nodes:
                if runtime.checks.get(node.address) != key:
                    continue
                extra = kobj(runtime.name, kind="svc", node=node.name, check=str(key))
                if state.healthy:
                    log.info("node back in rotation", extra=extra)
                else:
                    log.warning("node left rotation: %s", state.error, extra=extra)
                    runtime.node_unhealthy(node.address)
