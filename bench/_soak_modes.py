"""The two clusters bench/soak.py runs against, behind one shape (`SoakCluster`).

Both serve one Service's pods through NodePort, ClusterIP and LoadBalancer, and
pin one pod of that Service to every node (`spec.nodeName`), so a killed node
always has an endpoint to lose. The victim is node 3; the loops never aim at it.

* `Embedded`: `BenchCluster` (etcd, apiserver, cloud-stub, controller, three node
  agents, as real processes, with `kubelab up`'s defaults: lease TTL 2 s), plus the
  DNS, which `BenchCluster` lacks and the headless churn should reach. Not `kubelab
  up`: its supervisor restarts a SIGKILLed agent at once, which would end the kill
  this bench times (the new agent's heartbeat replaces the old one's) and would hide
  a crash; and BenchCluster's own addresses (node IPs 127.10.95.N, Services in
  127.98.0.0/16, load balancers in 127.204.0.0/24) keep it apart from a user's
  cluster and other sessions' tests. ClusterIP from the host works as in
  bench/dataplane.py: every agent binds the ClusterIP on loopback.
* `InLab`: compose/lab.yaml as its own compose project (tests/chaos/lab.py `Lab`:
  the shop and shop-lb applied), on the subnets $KUBELAB_CHAOS_CLUSTER_NET /
  $KUBELAB_CHAOS_PUBLIC_NET (set by bench/soak.py to 172.30.252 / 172.30.253 unless
  given). ClusterIPs answer only inside the cluster, so the ClusterIP loop runs in
  node1's container (`ExecLoop`: the same `RequestLoop`, its tally read back as JSON).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from _cluster import BenchCluster, IngressWatch, echo_service, until_in_rotation
from google.protobuf import json_format

from kubelab.client import ApiError, Client
from kubelab.core.pods import is_ready
from kubelab.store import Store
from kubelab.testing.cloud import cloud_client
from kubelab.testing.docker import Compose, docker
from kubelab.testing.processes import DnsProcess
from kubelab.testing.traffic import Failure, RequestLoop
from kubelab.v1 import objects_pb2

NODES = ("node-1", "node-2", "node-3")
VICTIM = "node-3"
SERVE_TIMEOUT = 120.0  # s: every pinned pod Ready and every path answering


class Loop(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> tuple[int, list[Failure]]: ...


@dataclass
class HostLoop:
    """`RequestLoop` from this process."""

    ip: str
    port: int
    loop: RequestLoop | None = None

    async def start(self) -> None:
        self.loop = RequestLoop(self.ip, self.port).start()

    async def stop(self) -> tuple[int, list[Failure]]:
        assert self.loop is not None
        await self.loop.stop()
        return self.loop.attempts, self.loop.failures


_EXEC_SCRIPT = """
import asyncio, json, sys
from kubelab.testing.traffic import RequestLoop
async def main():
    loop = RequestLoop(sys.argv[1], int(sys.argv[2])).start()
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await loop.stop()
    print(json.dumps({"attempts": loop.attempts,
                      "failures": [[f.started, f.error] for f in loop.failures]}))
asyncio.run(main())
"""


@dataclass
class ExecLoop:
    """`RequestLoop` in a container (`docker exec -i`), until its stdin closes."""

    container: str
    ip: str
    port: int
    process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *("docker", "exec", "-i", self.container, "python", "-c", _EXEC_SCRIPT),
            *(self.ip, str(self.port)),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

    async def stop(self) -> tuple[int, list[Failure]]:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.close()
        out, err = await asyncio.wait_for(self.process.communicate(), 60)
        if self.process.returncode != 0:
            raise RuntimeError(f"the loop in {self.container} exited: {err.decode()[-500:]}")
        tally = json.loads(out)
        return tally["attempts"], [Failure(t, e) for t, e in tally["failures"]]


def pinned_pod(name: str, node: str, labels: dict[str, str]) -> objects_pb2.Pod:
    container = {
        "name": "echo",
        "image": "kubelab/echo",
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1},
    }
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"nodeName": node, "containers": [container]},
    }
    return json_format.ParseDict(body, objects_pb2.Pod())


class SoakCluster:
    """What the bench needs of a cluster, set by a mode's `open`; `kill` and `revive`
    are the mode's."""

    name: str
    api: Client
    store: Store
    service: str  # the Service the loops reach (its slices show the kill)
    labels: dict[str, str]  # its selector, given to the pinned pods
    loops: dict[str, Loop]

    async def open(self) -> None:
        raise NotImplementedError

    async def pin_pods(self) -> None:
        for node in NODES:
            await self.api.apply(pinned_pod(f"soak-pin-{node}", node, self.labels))

    async def until_pinned_ready(self, timeout: float = SERVE_TIMEOUT) -> None:
        """Every pinned pod Ready (re-created if the node's loss evicted it)."""
        deadline = time.monotonic() + timeout
        while True:
            waiting: list[str] = []
            for node in NODES:
                name = f"soak-pin-{node}"
                try:
                    pod = await self.api.get("pods", name)
                except ApiError:
                    await self.api.apply(pinned_pod(name, node, self.labels))
                    waiting.append(f"{name} (evicted: created again)")
                    continue
                assert isinstance(pod, objects_pb2.Pod)
                if not is_ready(pod):
                    waiting.append(f"{name} ({pod.status.phase or 'Pending'})")
            if not waiting:
                return
            if time.monotonic() > deadline:
                live, _ = await self.store.live_nodes()
                raise TimeoutError(
                    f"not Ready after {timeout:g} s: {', '.join(waiting)}; nodes with a live "
                    f"lease: {', '.join(sorted(live)) or 'none'}"
                )
            await asyncio.sleep(0.2)

    async def kill(self) -> float:
        raise NotImplementedError

    async def revive(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    def where(self) -> str:
        """Where its logs are."""
        raise NotImplementedError


NODE_IP_BASE = "127.10.95"
POD_BASE = "127.252"
LB_POOL = "127.204.0.0/24"
SERVICE_CIDR = "127.98.0.0/16"


class Embedded(SoakCluster):
    def __init__(self, workdir: Path) -> None:
        self.cluster = BenchCluster(workdir, NODE_IP_BASE, POD_BASE, LB_POOL)
        self.cluster.apiserver.extra_args = ("--service-cidr", SERVICE_CIDR)
        self.dns = DnsProcess(self.cluster.etcd.endpoint, workdir)
        self.workdir = workdir
        self.name = "embedded"

    async def open(self) -> None:
        await asyncio.to_thread(self.cluster.start)
        await asyncio.to_thread(self.dns.start)
        self.service, self.labels = "soak", {"app": "soak"}
        self.api = Client(self.cluster.apiserver.address, timeout=10)
        self.store = Store(self.cluster.etcd.endpoint)
        svc = echo_service("soak", "soak", "LoadBalancer", [("http", 8080, "TCP")])
        watch = IngressWatch(self.api)
        await watch.start()
        try:
            await self.pin_pods()
            stored, _ = await self.api.apply(svc)
            await self.until_pinned_ready()
            external, _ = await watch.ingress("soak", SERVE_TIMEOUT)
        finally:
            await watch.stop()
        assert self.cluster.cloud is not None
        async with cloud_client(self.cluster.cloud.address) as cloud:
            await until_in_rotation(cloud, "soak", len(NODES), SERVE_TIMEOUT)
        self.loops = {
            "NodePort": HostLoop(self.cluster.nodes["node-1"].ip, stored.spec.ports[0].node_port),
            "ClusterIP": HostLoop(stored.spec.cluster_ip, 8080),
            "LoadBalancer": HostLoop(external, 8080),
        }

    async def kill(self) -> float:
        killed = time.monotonic()
        self.cluster.nodes[VICTIM].kill()  # SIGKILL, and reaped
        return killed

    async def revive(self) -> None:
        await asyncio.to_thread(self.cluster.nodes[VICTIM].start)
        await self.until_pinned_ready()

    async def close(self) -> None:
        if hasattr(self, "api"):
            await self.api.close()
            await self.store.close()
        await asyncio.to_thread(self.dns.stop)
        await asyncio.to_thread(self.cluster.stop)

    def where(self) -> str:
        return f"{self.workdir}/*.log"


class InLab(SoakCluster):
    def __init__(self, image: str, workdir: Path) -> None:
        self.workdir = workdir
        self.name = "lab"
        # Imported here: the module reads the subnets from the environment at import.
        from tests.chaos.lab import LAB_FILE, NETWORKS

        network = NETWORKS["KUBELAB_CLUSTER_NET"].replace(".", "-")
        self.compose = Compose(
            LAB_FILE, f"kubelab-soak-{network}-{uuid.uuid4().hex[:6]}", image=image, env=NETWORKS
        )

    async def open(self) -> None:
        from tests.chaos.lab import NODE_PORT, NODES, Lab

        self.lab = Lab(self.compose)
        self.service, self.labels = "shop", {"app": "shop", "env": "prod"}
        self.api, self.store = self.lab.api, self.lab.store
        await self.lab.start()
        await self.pin_pods()
        await self.until_pinned_ready()
        shop = await self.api.get("services", "shop")
        assert isinstance(shop, objects_pb2.Service)
        node1 = await asyncio.to_thread(self.compose.container, "node1")
        await asyncio.to_thread(self.compose.container, "node3")  # resolved before the kill
        self.loops = {
            "NodePort": HostLoop(NODES[0].public_ip, NODE_PORT),
            "ClusterIP": ExecLoop(node1, shop.spec.cluster_ip, 80),
            "LoadBalancer": HostLoop(self.lab.lb_ip, 8080),
        }

    async def kill(self) -> float:
        done = await self.lab.kill("node3")
        return done.at

    async def revive(self) -> None:
        await asyncio.to_thread(docker, "start", self.compose.container("node3"))
        await self.until_pinned_ready()

    async def close(self) -> None:
        if hasattr(self, "lab"):
            logs = await asyncio.to_thread(self.lab.logs, 100_000)
            # Every thread of every node's processes, with its state and what it waits in:
            # a node that went quiet shows whether it is blocked, and where.
            for node in ("node1", "node2", "node3"):
                threads = await asyncio.to_thread(
                    docker,
                    *(
                        "top",
                        self.compose.container(node),
                        "-eLo",
                        "pid,lwp,stat,wchan:32,time,args",
                    ),
                    check=False,
                )
                logs += f"\n--- {node}: threads at the end\n{threads.stdout}{threads.stderr}"
            (self.workdir / "lab.log").write_text(logs)
            await self.lab.close()
        await asyncio.to_thread(self.compose.down)

    def where(self) -> str:
        return f"{self.workdir}/lab.log"
