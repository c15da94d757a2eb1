"""The lab under test: compose/lab.yaml as one compose project, and what a scenario does to
it (stop, kill, pause, cut off, restart a container) and reads from it (the API from the
host, etcd directly for checks).

The host sits on both lab bridges, so the test process reaches the apiserver
(PUBLIC_NET.20:6443), every node's public address, the LoadBalancer addresses and the
etcd members (CLUSTER_NET.11-13:2379) directly. Containers are addressed by compose
service name (`node3`), never by container name (Compose v1 and v2 differ).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import grpc

from kubelab.client import ApiError, Client
from kubelab.core import kinds
from kubelab.core.kinds import ApiObject
from kubelab.core.manifests import load_manifest_files, load_manifests
from kubelab.core.pods import is_ready, is_terminating
from kubelab.store import Store, StoreError
from kubelab.testing.docker import REPO_ROOT, Compose, docker
from kubelab.testing.traffic import RequestFailed, http_get
from kubelab.testing.wait import until
from kubelab.v1 import objects_pb2

T = TypeVar("T")

LAB_FILE = REPO_ROOT / "compose" / "lab.yaml"
# The chaos labs' two networks (first three octets), away from compose/lab.yaml's defaults
# (172.28.0, 172.29.0) so a lab started by hand can run beside them.
CLUSTER_NET = os.environ.get("KUBELAB_CHAOS_CLUSTER_NET", "172.30.250")
PUBLIC_NET = os.environ.get("KUBELAB_CHAOS_PUBLIC_NET", "172.30.251")
NETWORKS = {"KUBELAB_CLUSTER_NET": CLUSTER_NET, "KUBELAB_PUBLIC_NET": PUBLIC_NET}
API = f"{PUBLIC_NET}.20:6443"
ETCD = ",".join(f"{CLUSTER_NET}.{n}:2379" for n in (11, 12, 13))
CONTROLLERS = ("controller1", "controller2")
SEED = (REPO_ROOT / "examples" / "shop.yaml", REPO_ROOT / "examples" / "shop-lb.yaml")
DEPLOYMENT = "shop"
NODE_PORT = 30080  # examples/shop.yaml
LB_PORT = 8080  # examples/shop-lb.yaml
UP_TIMEOUT = 180.0


@dataclass(frozen=True)
class LabNode:
    service: str  # the compose service: node1
    name: str  # the Node: node-1
    public_ip: str  # NodePorts answer here (and on the cluster address)
    cluster_ip: str  # the InternalIP


NODES = tuple(
    LabNode(f"node{n}", f"node-{n}", f"{PUBLIC_NET}.10{n}", f"{CLUSTER_NET}.10{n}")
    for n in (1, 2, 3)
)


@dataclass(frozen=True)
class Done:
    """A docker command that broke or mended something, on the time.monotonic() clock:
    when it was issued, when it took effect (the time of Docker's event for it: the
    signal sent, the container frozen, the network endpoint gone), when that effect was
    complete (a killed container's `die` event: between the two its processes were
    dying, and a request that reached one then dies with it), when the command returned.
    A busy Docker can take seconds to return from a kill that took effect at once."""

    issued: float
    at: float
    complete: float
    returned: float


@dataclass(frozen=True)
class Ack:
    """A write the API acknowledged: it must be in etcd afterwards (DESIGN §8.4)."""

    info: kinds.KindInfo
    namespace: str
    name: str
    uid: str
    generation: int


async def wait_for(
    check: Callable[[], Awaitable[T | None]], timeout: float, what: str, interval: float = 0.05
) -> T:
    """Poll `check` until it returns something other than None (or False); errors count as
    not yet, and the last one is in the timeout's message."""
    result = await until(
        what,
        check,
        lambda result: result is not None and result is not False,
        timeout=timeout,
        interval=interval,
        retry_on=(ApiError, StoreError, RequestFailed, OSError, TimeoutError),
    )
    assert result is not None
    return result


def service(name: str, spec: Mapping[str, object]) -> objects_pb2.Service:
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}
    (loaded,) = load_manifests(json.dumps(body))
    assert isinstance(loaded.object, objects_pb2.Service)
    return loaded.object


def owned_by_deployment(pod: objects_pb2.Pod, name: str = DEPLOYMENT) -> bool:
    return any(
        ref.kind == "Deployment" and ref.name == name and ref.controller
        for ref in pod.metadata.owner_references
    )


class Lab:
    """A running lab with the shop and its LoadBalancer Service applied."""

    def __init__(self, compose: Compose) -> None:
        self.compose = compose
        self.api = Client.connect(API, timeout=10.0)
        self.store = Store(ETCD)
        self.acked: dict[tuple[str, str, str], Ack] = {}
        self.lb_ip = ""
        self.timeline: list[str] = []  # what the scenario did, for failure messages
        self._t0 = time.monotonic()

    # ------------------------------------------------------------------ life

    async def start(self) -> None:
        await self._docker_compose("up", "-d", timeout=UP_TIMEOUT)
        self.note("lab up")
        try:
            await wait_for(self._nodes_ready, 60, "3 Ready nodes")
        except AssertionError as err:
            # Seen once in ~50 bring-ups (a CI run, 2026-11-24), cause not found yet: the
            # nodes' logs go into the timeline, and the lab is brought up once more.
            logs = await self._docker_compose("logs", "--tail", "20", "node1", "node2", "node3")
            self.note(f"{err}; nodes' logs:\n{logs}\nbringing the lab up again")
            await self._docker_compose("down", "-v", "-t", "1", timeout=UP_TIMEOUT)
            await self._docker_compose("up", "-d", timeout=UP_TIMEOUT)
            self.note("lab up again")
            await wait_for(self._nodes_ready, 60, "3 Ready nodes")
        for item in load_manifest_files([str(path) for path in SEED]):
            await self.apply(item.object)
        await wait_for(self._seed_ready, 60, "the shop's 6 pods Ready")
        self.lb_ip = await wait_for(self.lb_address, 30, "the LoadBalancer address")
        await wait_for(
            lambda: self.answers(NODES[0].public_ip, NODE_PORT), 30, "the NodePort to answer"
        )
        await wait_for(lambda: self.answers(self.lb_ip, LB_PORT), 30, "the LB to answer")
        self.note(f"shop serving: NodePort {NODE_PORT}, LB {self.lb_ip}:{LB_PORT}")

    async def close(self) -> None:
        await self.api.close()
        await self.store.close()

    def note(self, event: str) -> None:
        self.timeline.append(f"{time.monotonic() - self._t0:7.2f}s {event}")

    def logs(self, lines: int = 40) -> str:
        parts = ["--- timeline:\n" + "\n".join(self.timeline)]
        for service in self.compose.services():
            logs = self.compose.logs(service, lines)
            parts.append(f"--- {service} (last {lines} lines):\n{logs}")
        return "\n".join(parts)

    # ------------------------------------------------------------------ the API

    async def apply(self, obj: ApiObject) -> ApiObject:
        stored, _ = await self.api.apply(obj)
        self.ack(stored)
        return stored

    def ack(self, obj: ApiObject) -> None:
        """Remember an acknowledged write. Not pods: node lifecycle evicts (deletes) the
        pods of a dead node, bare ones included, as Kubernetes does."""
        info = kinds.info_of(obj)
        if info is kinds.PODS:
            return
        meta = obj.metadata
        self.acked[(info.resource, meta.namespace, meta.name)] = Ack(
            info, meta.namespace, meta.name, meta.uid, meta.generation
        )

    async def pods(self) -> list[objects_pb2.Pod]:
        items, _ = await self.api.list("pods")
        return [p for p in items if isinstance(p, objects_pb2.Pod)]

    async def deployment(self) -> objects_pb2.Deployment:
        found = await self.api.get("deployments", DEPLOYMENT)
        assert isinstance(found, objects_pb2.Deployment)
        return found

    async def change_deployment(
        self, change: Callable[[objects_pb2.Deployment], None]
    ) -> objects_pb2.Deployment:
        """Read-modify-write the Deployment (compare-and-swap; again on a conflict)."""
        for _ in range(20):
            current = await self.deployment()
            change(current)
            try:
                updated = await self.api.update(current)
            except ApiError as err:
                if err.code == grpc.StatusCode.ABORTED:
                    continue
                raise
            self.ack(updated)
            return updated
        raise AssertionError("the Deployment kept changing under the update")

    async def ready_replicas(self, avoid: str = "") -> int:
        """The Deployment's pods that are Ready, not terminating, and not on `avoid`."""
        return sum(
            1
            for p in await self.pods()
            if owned_by_deployment(p)
            and is_ready(p)
            and not is_terminating(p)
            and p.spec.node_name != avoid
        )

    async def _nodes_ready(self) -> bool:
        items, _ = await self.api.list("nodes")
        ready = [
            n
            for n in items
            if isinstance(n, objects_pb2.Node)
            and any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)
        ]
        return len(ready) == len(NODES)

    async def _seed_ready(self) -> bool:
        pods = [p for p in await self.pods() if not is_terminating(p)]
        return len(pods) == 6 and all(is_ready(p) for p in pods)

    async def lb_address(self, name: str = "shop-lb") -> str | None:
        """The external IP of LoadBalancer Service `name`, or None while it has none."""
        svc = await self.api.get("services", name)
        assert isinstance(svc, objects_pb2.Service)
        ingress = svc.status.load_balancer.ingress
        return ingress[0].ip if ingress else None

    @staticmethod
    async def answers(ip: str, port: int) -> bool:
        """True once HTTP on ip:port answers (raises while it does not)."""
        await http_get(ip, port, timeout=1.0)
        return True

    async def leader(self) -> str | None:
        found = await self.store.leader("controller")
        return found[0] if found else None

    async def node_alive(self, node: LabNode) -> bool:
        return node.name in (await self.store.live_nodes())[0]

    # ------------------------------------------------------------------ faults

    async def _docker(self, *args: str, timeout: float = 60.0) -> str:
        result = await asyncio.to_thread(docker, *args, timeout=timeout)
        return result.stdout

    async def _docker_compose(self, *args: str, timeout: float = 120.0) -> str:
        result = await asyncio.to_thread(self.compose, *args, timeout=timeout)
        return result.stdout + result.stderr

    async def _fault(
        self, what: str, args: list[str], event: str, *, network: str = "", complete: str = ""
    ) -> Done:
        """Run a docker command that breaks (or mends) something, and find when it took
        effect: the time of Docker's `event` for it (on a `network` when given), and of
        its `complete` event when given."""
        container = args[-1]
        issued = time.monotonic()
        self.note(what)
        await self._docker(*args)
        returned = time.monotonic()

        async def when(name: str) -> float:
            at = await self._event_time(issued, container, name, network)
            if at is None:
                self.note(f"{what}: no {name!r} event from Docker; taking the command's return")
            return min(max(at or returned, issued), returned)

        at = await when(event)
        done = Done(issued, at, max(at, await when(complete)) if complete else at, returned)
        effect, complete_s = done.at - issued, done.complete - issued
        self.note(
            f"{what}: took effect +{effect:.2f}s, complete +{complete_s:.2f}s,"
            f" returned +{returned - issued:.2f}s"
        )
        return done

    async def _event_time(
        self, issued: float, container: str, event: str, network: str
    ) -> float | None:
        offset = time.time() - time.monotonic()
        filters = ["--filter", f"event={event}"]
        if network:
            filters += ["--filter", "type=network", "--filter", f"network={network}"]
        else:
            filters += ["--filter", "type=container", "--filter", f"container={container}"]
        line_format = '{{.TimeNano}} {{.Actor.ID}} {{index .Actor.Attributes "container"}}'
        out = await self._docker(
            "events", "--since", f"{issued + offset - 1:.3f}", "--until", f"{time.time():.3f}",
            *filters, "--format", line_format,
        )  # fmt: skip
        for line in out.splitlines():
            nanos, actor, attribute = [*line.split(), "", ""][:3]
            if container in (actor, attribute) and int(nanos) / 1e9 - offset >= issued - 0.05:
                return int(nanos) / 1e9 - offset
        return None

    async def stop(self, service: str, grace: int = 10) -> Done:
        """SIGTERM (the `kill` event), SIGKILL after `grace` s."""
        args = ["stop", "-t", str(grace), self.compose.container(service)]
        return await self._fault(f"docker stop -t {grace} {service}", args, "kill")

    async def kill(self, service: str) -> Done:
        args = ["kill", "-s", "KILL", self.compose.container(service)]
        return await self._fault(f"docker kill -s KILL {service}", args, "kill", complete="die")

    async def pause(self, service: str) -> Done:
        args = ["pause", self.compose.container(service)]
        return await self._fault(f"docker pause {service}", args, "pause")

    async def unpause(self, service: str) -> Done:
        args = ["unpause", self.compose.container(service)]
        return await self._fault(f"docker unpause {service}", args, "unpause")

    async def restart(self, service: str, grace: int = 10) -> Done:
        """SIGTERM (the `kill` event), then the container starts again."""
        args = ["restart", "-t", str(grace), self.compose.container(service)]
        return await self._fault(f"docker restart -t {grace} {service}", args, "kill")

    async def disconnect(self, service: str, network: str = "cluster") -> Done:
        net = self.compose.network(network)
        args = ["network", "disconnect", net, self.compose.container(service)]
        what = f"docker network disconnect {network} {service}"
        return await self._fault(what, args, "disconnect", network=net)

    async def connect(self, service: str, ip: str, network: str = "cluster") -> Done:
        net = self.compose.network(network)
        args = ["network", "connect", "--ip", ip, net, self.compose.container(service)]
        what = f"docker network connect --ip {ip} {network} {service}"
        return await self._fault(what, args, "connect", network=net)

    async def container_times(self, service: str) -> tuple[float | None, float | None]:
        """When `service`'s container last started and last exited (Docker's State), on the
        time.monotonic() clock; None for never."""
        out = await self._docker(
            "inspect", "-f", "{{.State.StartedAt}} {{.State.FinishedAt}}",
            self.compose.container(service),
        )  # fmt: skip
        started, finished = out.split()
        offset = time.time() - time.monotonic()

        def monotonic(stamp: str) -> float | None:
            return None if stamp.startswith("0001-") else docker_time(stamp) - offset

        return monotonic(started), monotonic(finished)

    async def exec(self, service: str, *command: str) -> str:
        result = await asyncio.to_thread(self.compose.exec, service, *command)
        return result.stdout


def docker_time(stamp: str) -> float:
    """Seconds since the epoch of Docker's RFC 3339 time with nanoseconds (UTC)."""
    whole, _, rest = stamp.rstrip("Z").partition(".")
    fraction = float(f"0.{rest}") if rest else 0.0
    moment = datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.UTC)
    return moment.timestamp() + fraction
