"""The cloud-stub for tests: the real process, and stand-ins for the nodes behind it.

`CloudStubProcess` runs `python -m services.cloud_stub` on a free port and
waits for it the way a launcher would (address file, then gRPC health
SERVING); it can be stopped (SIGTERM), killed (SIGKILL) and started again.

`FakeNodes` stands in for a few nodes' nodePorts, in the test's own event loop:
on each node address, one shared TCP port answering HTTP with a JSON body that
names the node (`{"pod": "node-1", "client": "ip:port"}`, the shape the
`kubelab.testing.traffic` helpers read), one UDP port echoing `node-1:<payload>`,
and a healthCheckNodePort whose /healthz answers `node.healthz` (200 or 503,
as a node proxy does with and without a local endpoint).

The cloud-stub forwards only to the cluster's Ready nodes, on NodePorts the
cluster allocated: `FakeNodes.register` makes the stand-ins the cluster's (a Node
each, a heartbeat each on its own lease, the shared ports claimed in etcd), and
`FakeNodes.leave` ends one's heartbeat (the node is no longer Ready).

`lb_spec` builds the `LoadBalancerSpec` a controller would send for them, and
`cloud_client` opens a `CloudProvider` stub.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import grpc

from kubelab.core.allocators import Claim
from kubelab.store import Lease, Store
from kubelab.testing.processes import ActorProcess
from kubelab.v1 import cloud_pb2, cloud_pb2_grpc, objects_pb2

if TYPE_CHECKING:  # a stub-only class: the typed face of the stub on an aio channel
    from kubelab.v1.cloud_pb2_grpc import CloudProviderAsyncStub


def random_pool(prefix: int = 24) -> str:
    """A load balancer pool in 127.200-250.x.0/`prefix`, random so that test runs (and
    workers) beside each other rarely meet."""
    return f"127.{random.randint(200, 250)}.{random.randint(100, 254)}.0/{prefix}"


@dataclass
class CloudStubProcess(ActorProcess):
    MODULE: ClassVar[str] = "services.cloud_stub"

    pool: str
    name: str = "cloud-stub"
    # A fixed port lets a restarted cloud-stub be found at the address the controller has.
    listen: str = "127.0.0.1:0"
    # Keep a forwarding snapshot (`snapshot_file`) and forward from it after a restart.
    snapshot: bool = False

    @property
    def snapshot_file(self) -> Path:
        return self.workdir / f"{self.name}.forwarding.json"

    def arguments(self) -> list[str]:
        snapshot = ["--snapshot-file", str(self.snapshot_file)] if self.snapshot else []
        return ["--listen", self.listen, "--pool", self.pool, *snapshot]


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = await reader.readline()
        if not line:
            break
        head += line
    return head


def _http(status: int, body: bytes) -> bytes:
    reason = {200: "OK", 503: "Service Unavailable"}.get(status, "Status")
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


class _UdpEcho(asyncio.DatagramProtocol):
    def __init__(self, name: str) -> None:
        self.name = name
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if self.transport is not None:
            self.transport.sendto(f"{self.name}:".encode() + data, addr)


@dataclass
class FakeNode:
    name: str
    ip: str
    healthz: int = 200
    servers: dict[str, asyncio.Server] = field(default_factory=dict)
    udp: asyncio.DatagramTransport | None = None

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await _read_head(reader)
            if head:
                peer = writer.get_extra_info("peername")
                body = {"pod": self.name, "node": self.name, "client": f"{peer[0]}:{peer[1]}"}
                writer.write(_http(200, json.dumps(body).encode()))
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _healthz(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if await _read_head(reader):
                writer.write(_http(self.healthz, b'{"localEndpoints": 1}'))
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def start(self, tcp_port: int, udp_port: int, health_port: int) -> None:
        loop = asyncio.get_running_loop()
        self.servers["tcp"] = await asyncio.start_server(self._answer, self.ip, tcp_port)
        self.servers["health"] = await asyncio.start_server(self._healthz, self.ip, health_port)
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UdpEcho(self.name), local_addr=(self.ip, udp_port)
        )
        self.udp = transport

    def stop_listening(self) -> None:
        """The node's nodePort goes away: new connections are refused; requests already
        accepted are still answered (a node proxy that died would reset those too)."""
        server = self.servers.pop("tcp", None)
        if server is not None:
            server.close()

    async def close(self) -> None:
        for server in self.servers.values():
            server.close()
        self.servers.clear()
        if self.udp is not None:
            self.udp.close()
            self.udp = None


@dataclass
class FakeNodes:
    """`count` fake nodes on `ip_base`.1.., sharing a TCP nodePort, a UDP nodePort and a
    healthCheckNodePort (random free ports in the NodePort range)."""

    ip_base: str
    count: int = 3
    nodes: list[FakeNode] = field(default_factory=list)
    tcp_port: int = 0
    udp_port: int = 0
    health_port: int = 0
    leases: dict[str, tuple[Store, Lease]] = field(default_factory=dict)

    async def start(self) -> FakeNodes:
        for _ in range(50):
            ports = random.sample(range(30000, 32768), 3)
            nodes = [FakeNode(f"node-{n}", f"{self.ip_base}.{n}") for n in range(1, self.count + 1)]
            try:
                for node in nodes:
                    await node.start(*ports)
            except OSError as err:
                for node in nodes:
                    await node.close()
                if err.errno != errno.EADDRINUSE:
                    raise
                continue
            self.nodes = nodes
            self.tcp_port, self.udp_port, self.health_port = ports
            return self
        raise OSError(errno.EADDRINUSE, "no free ports for the fake nodes")

    async def register(self, store: Store, ttl: int = 600) -> FakeNodes:
        """Make the nodes the cluster's, Ready for `ttl` seconds, their ports NodePorts."""
        for node in self.nodes:
            obj = objects_pb2.Node(api_version="v1", kind="Node")
            obj.metadata.name = node.name
            obj.status.addresses.add(type="InternalIP", address=node.ip)
            await store.create(obj)
            lease = await store.grant_lease(ttl)
            await store.put_heartbeat(node.name, lease)
            self.leases[node.name] = (store, lease)
        holder = objects_pb2.Service(api_version="v1", kind="Service")
        holder.metadata.namespace, holder.metadata.name = "kube-system", "fake-node-ports"
        claims = [
            Claim.node_port("TCP", self.tcp_port),
            Claim.node_port("UDP", self.udp_port),
            Claim.node_port("TCP", self.health_port),
        ]
        await store.create(holder, claims)
        return self

    async def leave(self, index: int) -> None:
        """Node `index` stops heartbeating: the cluster no longer counts it Ready."""
        store, lease = self.leases.pop(self.nodes[index].name)
        await store.revoke_lease(lease)

    def __getitem__(self, index: int) -> FakeNode:
        return self.nodes[index]

    @property
    def names(self) -> set[str]:
        return {node.name for node in self.nodes}

    async def close(self) -> None:
        for node in self.nodes:
            await node.close()


def lb_spec(
    name: str,
    nodes: FakeNodes,
    *,
    namespace: str = "default",
    uid: str = "",
    requested_ip: str = "",
    tcp_port: int = 8080,
    udp_port: int = 0,
    health_check: bool = False,
    source_ranges: tuple[str, ...] = (),
    only: tuple[int, ...] | None = None,
) -> cloud_pb2.LoadBalancerSpec:
    """What a controller would send for Service `namespace/name` in front of `nodes` (all,
    or the indexes in `only`): TCP `tcp_port` (and UDP `udp_port`) → the fake nodePorts."""
    ports = [
        cloud_pb2.LoadBalancerPort(
            name="http", protocol="TCP", port=tcp_port, node_port=nodes.tcp_port
        )
    ]
    if udp_port:
        ports.append(
            cloud_pb2.LoadBalancerPort(
                name="dns", protocol="UDP", port=udp_port, node_port=nodes.udp_port
            )
        )
    chosen = nodes.nodes if only is None else [nodes.nodes[i] for i in only]
    return cloud_pb2.LoadBalancerSpec(
        namespace=namespace,
        name=name,
        uid=uid or f"uid-{namespace}-{name}",
        requested_ip=requested_ip,
        ports=ports,
        nodes=[cloud_pb2.LoadBalancerNode(name=n.name, address=n.ip) for n in chosen],
        health_check_node_port=nodes.health_port if health_check else 0,
        source_ranges=source_ranges,
    )


@contextlib.asynccontextmanager
async def cloud_client(address: str) -> AsyncIterator[CloudProviderAsyncStub]:
    """A CloudProvider stub on a fresh channel, straight to `address` (no http_proxy)."""
    async with grpc.aio.insecure_channel(
        address, options=[("grpc.enable_http_proxy", 0)]
    ) as channel:
        yield cloud_pb2_grpc.CloudProviderStub(channel)
