"""The node proxy: NodePort and ClusterIP traffic to the Service's endpoints (DESIGN §2.4).

It watches Services, EndpointSlices and Nodes (informers), and once all three
are synced (STYLE habit 3: it serves nothing from a half-read world) it programs
itself per Service: `service_rules` gives the Service's whole desired state on
this node, and the sync applies only the difference. A change to one Service
never touches another's listeners; a change of endpoints only swaps the port's
endpoint set, the listeners stay bound.

Listeners (`kubelab.relay`): a ClusterIP:port listener and, for NodePort and
LoadBalancer Services, a listener per node address on the nodePort; for a
LoadBalancer with `externalTrafficPolicy: Local`, the health check server on
its healthCheckNodePort (`node_agent.health_check`) too. In embedded
mode every node agent shares one network namespace, so every agent binds the
same ClusterIP:port with SO_REUSEPORT and the kernel spreads new connections
(and UDP flows) over them: any agent can serve any ClusterIP, and a node that
dies takes only its own sockets with it. ClusterIP sockets are also bound with
IP_FREEBIND, so a proxy can listen on a ClusterIP no interface carries (lab
mode routes the Service range to the node).

Failure stays with one Service (issue 13). Every listener is a descriptor, so the
proxy has a file budget (`node_agent.logic.file_budget`, from RLIMIT_NOFILE): a
Service whose listeners do not all fit beside the others' holds none, is reported
(`proxy_report`: a log line per change, a gauge) and is synced again when another
Service releases listeners or it changes. Running out of descriptors while binding
closes that Service's listeners and retries it with back-off; so does any other
error of its sync. Work for one Service yields to the loop every `BIND_BATCH`
ports, so the agent's lease renewal and other Services' traffic never wait on it.

Per port (`node_agent.proxy_ports.Port`): the endpoints, their choice, the
connections and their counters, and what happens to connections when an
endpoint leaves. An endpoint that failed a connect is suspect; a probe connects
to it every `probe_interval` until it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kubelab.core import kinds
from kubelab.core.endpoint_choice import Backend, Target
from kubelab.core.endpointslices import SERVICE_NAME_LABEL
from kubelab.core.keys import ObjectKey
from kubelab.core.proxy_rules import (
    CLUSTER_IP,
    Frontend,
    NodeAddresses,
    PortRules,
    frontend_count,
    health_check_frontends,
    iter_service_rules,
    local_ready_endpoints,
)
from kubelab.obs.logs import kobj
from kubelab.relay import TcpListener, UdpListener, serve_tcp, serve_udp
from kubelab.runtime import sources
from kubelab.runtime.clock import Clock
from kubelab.runtime.queue import WorkQueue
from kubelab.runtime.worker import TemporaryError, Worker
from kubelab.store import StoreProtocol
from kubelab.v1 import objects_pb2
from node_agent import proxy_report
from node_agent.health_check import ServiceHealth
from node_agent.logic.file_budget import FileBudget, Refusal, admit
from node_agent.proxy_ports import Port, Route
from node_agent.proxy_report import ServiceProblems

log = logging.getLogger("node_agent.proxy")

# Binding is synchronous: yield to the loop every so many sockets, so a Service with
# thousands of ports never holds up the lease renewal or another Service's traffic.
BIND_BATCH = 64
# More new or closed frontends than this in one sync are logged as a count, not each;
# a bind error names this many of those it could not bind.
LOG_EACH_UP_TO = 8
_OUT_OF_FILES = {errno.EMFILE, errno.ENFILE}

OnProgrammed = Callable[[ObjectKey, tuple[Backend, ...]], None]


Listener = TcpListener | UdpListener


def _log_frontends(key: ObjectKey, what: str, frontends: Sequence[Frontend]) -> None:
    if len(frontends) > LOG_EACH_UP_TO:
        log.info("svc=%s/%s: %s %d frontends", *key, what, len(frontends))
        return
    for frontend in frontends:
        log.info("svc=%s/%s: %s %s", *key, what, frontend)


@dataclass(slots=True)
class _Service:
    ports: dict[tuple[str, str], Port] = field(default_factory=dict)
    listeners: dict[Frontend, tuple[Listener, Port]] = field(default_factory=dict)
    health: ServiceHealth | None = None


def _held(service: _Service) -> int:
    health = len(service.health.listeners) if service.health is not None else 0
    return len(service.listeners) + health


class BindError(OSError):
    """Some of a Service's frontends could not be bound (the address or port is taken by
    something else): the sync retries with back-off."""


class OutOfFilesError(OSError):
    """The process ran out of descriptors binding a Service's frontends: the Service's
    listeners were closed (all or nothing) and the sync retries with back-off."""


class BudgetError(Exception):
    """A Service needs more listeners than the file budget has left: it holds none,
    and is synced again when the budget frees up or the Service changes."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(str(refusal))
        self.refusal = refusal


class ServiceProxy:
    """The proxy half of a node agent."""

    def __init__(
        self,
        store: StoreProtocol,
        *,
        node_name: str,
        node_ips: Sequence[str],
        connect_timeout: float = 0.5,
        probe_interval: float = 1.0,
        udp_idle_timeout: float = 30.0,
        on_programmed: OnProgrammed | None = None,
        budget: FileBudget | None = None,
        timers: Clock | None = None,
    ) -> None:
        self.store = store
        self.node_name = node_name
        self.node_ips = tuple(node_ips)
        self.connect_timeout = connect_timeout
        self.probe_interval = probe_interval
        self.udp_idle_timeout = udp_idle_timeout
        self.on_programmed = on_programmed
        self.services_informer = sources.objects(store, kinds.SERVICES)
        self.slices_informer = sources.objects(store, kinds.ENDPOINTSLICES)
        self.nodes_informer = sources.objects(store, kinds.NODES)
        self.addresses = NodeAddresses()
        self.services: dict[ObjectKey, _Service] = {}
        self.bind_failures = 0
        self.budget = budget  # None: no limit of its own (tests, benchmarks)
        self.problems = ServiceProblems(node_name)
        self._over_budget: set[ObjectKey] = set()
        self._slices_by_service: dict[ObjectKey, set[ObjectKey]] = {}
        self._work: WorkQueue[ObjectKey] = WorkQueue(clock=timers)
        # Retried for ever, as kube-proxy resyncs until its rules apply: a port taken by
        # something else today may be free tomorrow, and nothing else would queue it.
        self._worker = Worker(
            "proxy",
            self._work,
            self._sync_one,
            describe=lambda key: kobj("/".join(key), kind="svc", node=node_name),
            max_retries=None,
            logger=log,
        )
        self._probes: dict[tuple[int, Target], asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.services_informer.on_change(self._service_changed)
        self.slices_informer.on_change(self._slice_changed)
        self.nodes_informer.on_change(self._node_changed)
        informers = (self.services_informer, self.slices_informer, self.nodes_informer)
        for informer in informers:
            self._tasks.append(asyncio.create_task(informer.run(), name=f"proxy {informer.name}"))
        for informer in informers:
            await informer.synced.wait()
        self._tasks.append(asyncio.create_task(self._worker.run(), name="proxy sync"))
        self._tasks.append(asyncio.create_task(self._expire_affinity(), name="proxy affinity"))
        await self.idle()
        log.info("proxy synced", extra={"node": self.node_name, "services": len(self.services)})

    async def idle(self) -> None:
        """Return once no Service is waiting for a sync or being synced (a retry's
        back-off may still be pending)."""
        await self._work.wait_idle()

    async def wait(self) -> None:
        done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
        raise RuntimeError(f"proxy loop {next(iter(done)).get_name()} ended")

    async def stop(self, grace: float = 2.0) -> None:
        """Stop listening at once, give open connections `grace` seconds to end, then
        reset the rest."""
        self._stopping = True
        for task in [*self._tasks, *self._probes.values()]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._probes.values(), return_exceptions=True)
        for service in self.services.values():
            for listener, _ in service.listeners.values():
                listener.close()
            service.listeners.clear()
            if service.health is not None:
                service.health.close()
        deadline = asyncio.get_running_loop().time() + grace
        while any(p.connections() for s in self.services.values() for p in s.ports.values()):
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.05)
        for key in list(self.services):
            await self._apply(key, ())
        self._work.close()

    # ------------------------------------------------------------------ events

    def _service_changed(
        self, key: ObjectKey, old: objects_pb2.Service | None, new: objects_pb2.Service | None
    ) -> None:
        self._work.add(key)

    def _slice_changed(
        self,
        key: ObjectKey,
        old: objects_pb2.EndpointSlice | None,
        new: objects_pb2.EndpointSlice | None,
    ) -> None:
        for obj, present in ((old, False), (new, True)):
            if obj is None:
                continue
            service = obj.metadata.labels.get(SERVICE_NAME_LABEL)
            if not service:
                continue
            owner = ObjectKey((key[0], service))
            members = self._slices_by_service.setdefault(owner, set())
            if present:
                members.add(key)
            else:
                members.discard(key)
            self._work.add(owner)

    def _node_changed(
        self, key: ObjectKey, old: objects_pb2.Node | None, new: objects_pb2.Node | None
    ) -> None:
        nodes = list(self.nodes_informer.cache.values())
        self.addresses = NodeAddresses(nodes)

    # ------------------------------------------------------------------ sync

    async def _sync_one(self, key: ObjectKey) -> None:
        """Sync one Service (the worker runs one at a time). A failure is that Service's
        alone: reported once per change (`proxy_report`) and retried with back-off by the
        worker, or, over the file budget, parked until listeners are released."""
        before = self.listeners_in_use()
        try:
            await self._sync(key)
        except BudgetError as err:
            self._over_budget.add(key)
            self.problems.report(
                key,
                proxy_report.FILE_BUDGET,
                f"{err}; it will be programmed when it fits",
                same_as=err.refusal.needed,
            )
        except BindError as err:
            self.problems.report(key, proxy_report.BIND, f"{err}; retrying")
            raise TemporaryError(str(err), reported=True) from err
        except OutOfFilesError as err:
            # How far it got varies from retry to retry: not a change worth a line.
            self.problems.report(
                key, proxy_report.OUT_OF_FILES, f"{err}; retrying", same_as=err.errno
            )
            raise TemporaryError(str(err), reported=True) from err
        except Exception as err:
            self.problems.report(
                key, proxy_report.ERROR, f"sync failed: {err!r}; retrying", exc_info=err
            )
            raise TemporaryError(repr(err), reported=True) from err
        else:
            self._over_budget.discard(key)
            self.problems.resolved(key, present=key in self.services)
        finally:
            if self._over_budget and self.listeners_in_use() < before:
                for waiting in self._over_budget - {key}:
                    self._work.add(waiting)

    def listeners_in_use(self) -> int:
        """Listening sockets held for every Service: what the file budget counts."""
        return sum(_held(service) for service in self.services.values())

    async def _sync(self, key: ObjectKey) -> None:
        service = self.services_informer.get(key)
        if service is None:
            await self._apply(key, ())
            return
        health = health_check_frontends(service, self.node_ips)
        # Refused before its rules are built: a Service of 20,000 ports takes a second
        # to build, and must not cost that on every change while it cannot fit anyway.
        await self._admit(key, frontend_count(service, self.node_ips) + len(health))
        slices = [
            s
            for s in (self.slices_informer.get(k) for k in self._slices_by_service.get(key, ()))
            if s is not None
        ]
        desired = []
        for rules in iter_service_rules(service, slices, self.node_ips):
            desired.append(rules)
            if len(desired) % BIND_BATCH == 0:
                await asyncio.sleep(0)
        await self._apply(key, tuple(desired), health)

    async def _admit(self, key: ObjectKey, needed: int) -> None:
        """Raise BudgetError, leaving `key` holding no listener, unless `needed`
        listeners fit beside the other Services'."""
        if self.budget is None or not needed:
            return
        held = _held(self.services[key]) if key in self.services else 0
        refusal = admit(self.budget, needed=needed, used_by_others=self.listeners_in_use() - held)
        if refusal is not None:
            await self._apply(key, ())  # all or nothing: it holds no listener
            raise BudgetError(refusal)

    async def _apply(
        self, key: ObjectKey, desired: tuple[PortRules, ...], health: tuple[Frontend, ...] = ()
    ) -> None:
        await self._admit(key, len({f for r in desired for f in r.frontends} | set(health)))
        current = self.services.setdefault(key, _Service())
        changed = False
        wanted = {rules.identity: rules for rules in desired}
        for identity in [i for i in current.ports if i not in wanted]:
            current.ports.pop(identity).close()
            changed = True
        for i, (identity, rules) in enumerate(wanted.items(), 1):
            port = current.ports.get(identity)
            if port is None:
                port = current.ports[identity] = Port(self, key, rules)
                changed = True
            else:
                changed |= port.update(rules)
            if i % BIND_BATCH == 0:
                await asyncio.sleep(0)
        want = {f: current.ports[r.identity] for r in desired for f in r.frontends}
        stale = [f for f, (_, port) in current.listeners.items() if want.get(f) is not port]
        for i, frontend in enumerate(stale, 1):
            listener, _ = current.listeners.pop(frontend)
            listener.close()
            if i % BIND_BATCH == 0:
                await asyncio.sleep(0)
        _log_frontends(key, "stopped listening on", stale)
        failed: list[str] = []
        opened: list[Frontend] = []
        out_of_files: OSError | None = None
        for frontend, port in want.items():
            if frontend in current.listeners:
                continue
            try:
                listener = await self._listen(frontend, Route(port, frontend))
            except OSError as err:
                self.bind_failures += 1
                if err.errno in _OUT_OF_FILES:
                    out_of_files = err
                    break
                failed.append(f"{frontend} ({err.strerror or err})")
                continue
            current.listeners[frontend] = (listener, port)
            opened.append(frontend)
            if len(opened) % BIND_BATCH == 0:
                await asyncio.sleep(0)
        _log_frontends(key, "listening on", opened)
        if out_of_files is not None:
            await self._apply(key, ())  # all or nothing, and the descriptors go back
            raise OutOfFilesError(
                out_of_files.errno,
                f"out of file descriptors after binding {len(opened)} of {len(want)} "
                f"frontends ({out_of_files.strerror})",
            )
        if health and current.health is None:
            ports = current.ports.values()  # a live view: the count follows every update
            current.health = ServiceHealth(
                key, lambda: local_ready_endpoints((p.rules for p in ports), self.node_name)
            )
        if current.health is not None:
            for frontend, problem in await current.health.ensure(health):
                self.bind_failures += 1
                failed.append(f"{frontend} ({problem.strerror or problem})")
            if not current.health.listeners and not health:
                current.health = None
        if not current.ports and not current.listeners and current.health is None:
            del self.services[key]
        if changed and self.on_programmed is not None:
            backends = tuple(b for p in current.ports.values() for b in p.rules.backends)
            self.on_programmed(key, backends)
        if failed:
            more = (
                f" and {len(failed) - LOG_EACH_UP_TO} more" if len(failed) > LOG_EACH_UP_TO else ""
            )
            raise BindError(f"cannot listen on {', '.join(failed[:LOG_EACH_UP_TO])}{more}")

    async def _listen(self, frontend: Frontend, route: Route) -> Listener:
        shared = frontend.scope == CLUSTER_IP
        if frontend.protocol == "UDP":
            return await serve_udp(
                route,
                frontend.ip,
                frontend.port,
                reuse_port=shared,
                free_bind=shared,
                idle_timeout=self.udp_idle_timeout,
            )
        return await serve_tcp(
            route, frontend.ip, frontend.port, reuse_port=shared, free_bind=shared
        )

    async def _expire_affinity(self, period: float = 30.0) -> None:
        """Sweep expired ClientIP entries, so the tables do not grow with every client
        ever seen."""
        while True:
            await asyncio.sleep(period)
            for service in self.services.values():
                for port in service.ports.values():
                    port.balancer.expire_affinity()

    # ------------------------------------------------------------------ suspects

    def probe_later(self, port: Port, target: Target) -> None:
        key = (id(port), target)
        if key not in self._probes and not self._stopping:
            self._probes[key] = asyncio.create_task(self._probe(port, target, key))

    async def _probe(self, port: Port, target: Target, key: tuple[int, Target]) -> None:
        try:
            while target in port.balancer.suspects and target in port.stats:
                await asyncio.sleep(self.probe_interval)
                if port.rules.protocol != "TCP":
                    return
                with contextlib.suppress(OSError, TimeoutError):
                    async with asyncio.timeout(self.connect_timeout):
                        _, writer = await asyncio.open_connection(target.ip, target.port)
                    writer.close()
                    port.balancer.connected(target)
        finally:
            self._probes.pop(key, None)
