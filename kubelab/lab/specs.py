"""What an embedded cluster is made of: its config, its ports, its actors.

A cluster is a list of *stages* of `ProcessSpec`s (`cluster_stages()`): every
actor of a stage is spawned, then the launcher waits until each one's
readiness check passes before the next stage starts (the apiserver needs etcd
answering; later the controller and node agents need the apiserver). Adding an
actor is adding a `ProcessSpec` to a stage: its ports, its argv (built from the
resolved ports of every actor), its readiness check. Nothing else in
`kubelab.lab` names an actor.

`LabConfig` is what the user asked for (home, port wishes, ranges); `Layout`
is that config with every port resolved (`kubelab.lab.ports`), the only thing
an actor's argv is built from, so a command never sees an unresolved port.
Everything here is a frozen value or a pure function of one; `check_config`
refuses bad settings before anything is spawned.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kubelab import home as kubelab_home
from kubelab import pki
from kubelab.core import allocators, lb_pool
from kubelab.core.allocators import ClusterIPAllocator, PortRange
from kubelab.core.lb_pool import LbPool
from kubelab.credentials import Credentials, from_files
from kubelab.etcd_process import EtcdConfig
from kubelab.lab.errors import LabError
from kubelab.lab.probes import dns_answering, etcd_healthy, grpc_serving

LOOPBACK = "127.0.0.1"
DEFAULT_SERVICE_CIDR = allocators.DEFAULT_SERVICE_CIDR
DEFAULT_NODE_PORT_RANGE = allocators.DEFAULT_NODE_PORT_RANGE
DEFAULT_NODES = 3
DEFAULT_NODE_IP_BASE = "127.10.0.0"
DEFAULT_POD_NETWORK = "127.244.0.0/16"
DEFAULT_LB_POOL = lb_pool.DEFAULT_POOL
NODE_AGENT_PORT = 10250
NODE_METRICS_PORT = 10249  # kube-proxy's metrics port


# ---------------------------------------------------------------- configuration


@dataclass(frozen=True, slots=True)
class PortSpec:
    """A port an actor listens on. `name` is also the key in `LabConfig.ports`.

    Most ports are TCP on the config's host; `host` names another address (DNS
    listens on the service CIDR's 10th), `udp` asks that UDP be free on it too,
    and `fallback` is taken instead of the default when the default needs a
    privilege we lack (port 53 without root or CAP_NET_BIND_SERVICE)."""

    name: str
    default: int
    option: str  # the `kubelab up` option that sets it, for messages
    host: Callable[[LabConfig], str] | None = None
    udp: bool = False
    fallback: int | None = None

    def bind_host(self, config: LabConfig) -> str:
        return self.host(config) if self.host is not None else config.host


@dataclass(frozen=True, slots=True)
class LabConfig:
    home: Path
    # Port wishes by PortSpec name: missing/None = default (or free if taken),
    # 0 = any free port, N = exactly N.
    ports: Mapping[str, int | None] = field(default_factory=dict)
    service_cidr: str = DEFAULT_SERVICE_CIDR
    node_port_range: str = DEFAULT_NODE_PORT_RANGE
    host: str = LOOPBACK
    # Node agents: node N gets NODE_IP_BASE + N and the /24 number N of POD_NETWORK.
    nodes: int = DEFAULT_NODES
    node_ip_base: str = DEFAULT_NODE_IP_BASE
    pod_network: str = DEFAULT_POD_NETWORK
    # The cloud-stub's external IPs for LoadBalancer Services.
    lb_pool: str = DEFAULT_LB_POOL

    @property
    def dns_ip(self) -> str:
        """Cluster DNS's address: the service CIDR's 10th, which the apiserver keeps
        out of ClusterIP allocation (its --dns-ip default), as kubeadm does."""
        network = ipaddress.IPv4Network(self.service_cidr, strict=False)
        return str(network.network_address + 10)

    def node_ip(self, number: int) -> str:
        return str(ipaddress.IPv4Address(self.node_ip_base) + number)

    def pod_cidr(self, number: int) -> str:
        network = ipaddress.IPv4Network(self.pod_network)
        return str(ipaddress.IPv4Network((int(network.network_address) + number * 256, 24)))

    @property
    def state_file(self) -> Path:
        return self.home / "cluster.json"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def cloud_snapshot_file(self) -> Path:
        """What the cloud-stub forwards, for its next start (`services.cloud_stub.early`)."""
        return self.home / "cloud-forwarding.json"

    @property
    def etcd_dir(self) -> Path:
        return self.home / "etcd"

    @property
    def pki_dir(self) -> Path:
        """The cluster CA and every certificate (`kubelab.pki`, kubeadm's layout)."""
        return self.home / pki.DIR_NAME

    def serving_tls(self, stem: str) -> list[str]:
        """The TLS flags of an actor serving with the pair `stem` of the PKI (the kubelet's
        and kube-apiserver's flag names)."""
        directory = self.pki_dir
        return [
            *("--tls-cert-file", str(directory / f"{stem}.crt")),
            *("--tls-private-key-file", str(directory / f"{stem}.key")),
            *("--client-ca-file", str(directory / "ca.crt")),
        ]

    def client_tls(self, server: str, stem: str) -> list[str]:
        """The flags of an actor calling `server` (kubelet, cloud) as the pair `stem`."""
        directory = self.pki_dir
        return [
            *(f"--{server}-client-certificate", str(directory / f"{stem}.crt")),
            *(f"--{server}-client-key", str(directory / f"{stem}.key")),
            *(f"--{server}-certificate-authority", str(directory / "ca.crt")),
        ]

    def admin_credentials(self) -> Credentials:
        """The admin's (`system:masters`): the kubeconfig's, the launcher's probes'."""
        directory = self.pki_dir
        return from_files(directory / "ca.crt", directory / "admin.crt", directory / "admin.key")

    @property
    def nodes_dir(self) -> Path:
        """Node agents' data: their pods' logs."""
        return self.home / "nodes"

    def log_file(self, actor: str) -> Path:
        return self.logs_dir / f"{actor}.log"


@dataclass(frozen=True, slots=True)
class Layout:
    """A config with every port resolved: what actor commands are built from."""

    config: LabConfig
    ports: Mapping[str, int]
    # Ports that bind somewhere other than the config's host (`PortSpec.host`).
    hosts: Mapping[str, str] = field(default_factory=dict)

    def address(self, port: str) -> str:
        return f"{self.hosts.get(port, self.config.host)}:{self.ports[port]}"


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    """One actor of the embedded cluster.

    `command` builds the argv from the layout (so an actor can point at another
    actor's port); `ready` is ONE quick readiness probe (it must return within
    about a second; the launcher polls it until `ready_timeout`). `address` names
    the PortSpec shown as the actor's address; `state_key`, when set, also puts
    that address at the top of cluster.json (`"api"`, `"etcd"`), where clients
    look for it.
    """

    name: str
    title: str
    ports: tuple[PortSpec, ...]
    command: Callable[[Layout], list[str]]
    ready: Callable[[Layout], bool]
    address: str
    state_key: str | None = None
    ready_timeout: float = 30.0
    # For actors that listen on an address of their own (a node agent on its node IP).
    fixed_address: str | None = None
    # More endpoints of the actor, each (cluster.json key, PortSpec name, URL scheme):
    # recorded at that key as `scheme://host:port` (the apiserver's Kubernetes HTTP API).
    endpoints: tuple[tuple[str, str, str], ...] = ()

    def location(self, layout: Layout) -> str:
        """Where the actor listens."""
        return self.fixed_address or layout.address(self.address)

    def endpoint_urls(self, layout: Layout) -> dict[str, str]:
        """The `endpoints` by cluster.json key."""
        return {key: f"{scheme}://{layout.address(port)}" for key, port, scheme in self.endpoints}


def default_config(
    *,
    ports: Mapping[str, int | None] | None = None,
    service_cidr: str = DEFAULT_SERVICE_CIDR,
    node_port_range: str = DEFAULT_NODE_PORT_RANGE,
    nodes: int = DEFAULT_NODES,
    node_ip_base: str = DEFAULT_NODE_IP_BASE,
    pod_network: str = DEFAULT_POD_NETWORK,
    lb_pool: str = DEFAULT_LB_POOL,
) -> LabConfig:
    """A config for `$KUBELAB_HOME` (absolute: actors run with it as their cwd)."""
    return LabConfig(
        home=kubelab_home.kubelab_home().expanduser().resolve(),
        ports=dict(ports or {}),
        service_cidr=service_cidr,
        node_port_range=node_port_range,
        nodes=nodes,
        node_ip_base=node_ip_base,
        pod_network=pod_network,
        lb_pool=lb_pool,
    )


def check_config(config: LabConfig) -> None:
    """Refuse settings an actor would only reject after starting (its log is no
    place for a typo in a flag)."""
    try:
        ClusterIPAllocator(config.service_cidr)
    except ValueError as err:
        raise LabError(f'invalid --service-cidr "{config.service_cidr}": {err}') from None
    try:
        PortRange.parse(config.node_port_range)
    except ValueError as err:
        raise LabError(f"invalid --node-port-range: {err}") from None
    if not 0 <= config.nodes <= 250:
        raise LabError(f"invalid --nodes {config.nodes}: want 0 to 250")
    try:
        first = ipaddress.IPv4Address(config.node_ip_base)
        network = ipaddress.IPv4Network(config.pod_network)
    except ValueError as err:
        raise LabError(f"invalid node network: {err}") from None
    if not first.is_loopback or network.prefixlen > 16 or not network.is_loopback:
        raise LabError(
            "embedded mode keeps nodes and pods on loopback: --node-ip-base must be in "
            "127.0.0.0/8 and --pod-network a /16 (or larger) inside it"
        )
    try:
        dns_ip = ipaddress.IPv4Address(config.dns_ip)
    except ValueError as err:
        raise LabError(f'invalid --service-cidr "{config.service_cidr}": {err}') from None
    if not dns_ip.is_loopback:
        raise LabError(
            f"embedded mode serves cluster DNS on the service CIDR's 10th address "
            f"({config.dns_ip}), which must be on loopback: choose a --service-cidr "
            "inside 127.0.0.0/8"
        )
    try:
        pool = LbPool(config.lb_pool)
    except ValueError as err:
        raise LabError(f'invalid --lb-pool "{config.lb_pool}": {err}') from None
    if not pool.network.is_loopback:
        raise LabError(
            f"embedded mode keeps LoadBalancer IPs on loopback: --lb-pool {config.lb_pool} "
            "must be inside 127.0.0.0/8"
        )


# ---------------------------------------------------------------- the actors


def actor_argv(module: str, *options: str) -> list[str]:
    """How every kubelab actor runs: this Python, `-m` its package. (The tests' process
    helpers, `kubelab.testing.processes`, start actors the same way.)"""
    return [sys.executable, "-m", module, *options]


ETCD_CLIENT = PortSpec("etcd", 2379, "--etcd-port")
ETCD_PEER = PortSpec("etcd-peer", 2380, "--etcd-peer-port")
API = PortSpec("api", 6443, "--api-port")
# The Kubernetes HTTP API (kubectl). 8080 was kube-apiserver's plain-HTTP port, and it is
# where kubectl looks when it has no kubeconfig at all.
API_HTTP = PortSpec("api-http", 8080, "--api-http-port")


def _etcd_config(layout: Layout) -> EtcdConfig:
    return EtcdConfig(
        data_dir=layout.config.etcd_dir,
        client_port=layout.ports[ETCD_CLIENT.name],
        peer_port=layout.ports[ETCD_PEER.name],
        host=layout.config.host,
    )


ETCD = ProcessSpec(
    name="etcd",
    title="etcd (the store)",
    ports=(ETCD_CLIENT, ETCD_PEER),
    command=lambda layout: _etcd_config(layout).command(),
    ready=lambda layout: etcd_healthy(layout.address(ETCD_CLIENT.name)),
    address=ETCD_CLIENT.name,
    state_key="etcd",
)

APISERVER = ProcessSpec(
    name="apiserver",
    title="apiserver (the gRPC API and the Kubernetes HTTP API)",
    ports=(API, API_HTTP),
    command=lambda layout: actor_argv(
        "services.apiserver",
        "--listen",
        layout.address(API.name),
        "--http-listen",
        layout.address(API_HTTP.name),
        "--etcd",
        layout.address(ETCD_CLIENT.name),
        "--service-cidr",
        layout.config.service_cidr,
        "--node-port-range",
        layout.config.node_port_range,
        *layout.config.serving_tls("apiserver"),
        *layout.config.client_tls("kubelet", "apiserver-kubelet-client"),
        *("--service-account-key-file", str(layout.config.pki_dir / "sa.pub")),
        *("--service-account-signing-key-file", str(layout.config.pki_dir / "sa.key")),
    ),
    ready=lambda layout: grpc_serving(
        layout.address(API.name), "", layout.config.admin_credentials()
    ),
    address=API.name,
    state_key="api",
    endpoints=(("api_http", API_HTTP.name, "https"),),
)


CONTROLLER_PORT = PortSpec("controller", 10257, "--controller-port")
# Kubernetes' cloud-controller-manager port; the cloud-stub plays the cloud behind it.
CLOUD_PORT = PortSpec("cloud", 10258, "--cloud-port")
CLOUD_METRICS = PortSpec("cloud-metrics", 10263, "--cloud-metrics-port")


def cloud_spec(config: LabConfig) -> ProcessSpec:
    """The cloud-stub: LoadBalancer IPs from the config's pool. It needs only etcd; it
    starts beside the apiserver, so it serves before the controller asks it anything."""
    return ProcessSpec(
        name="cloud-stub",
        title=f"cloud-stub (LoadBalancer IPs from {config.lb_pool})",
        ports=(CLOUD_PORT, CLOUD_METRICS),
        command=lambda layout: actor_argv(
            "services.cloud_stub",
            "--listen",
            layout.address(CLOUD_PORT.name),
            "--etcd",
            layout.address(ETCD_CLIENT.name),
            "--pool",
            layout.config.lb_pool,
            "--metrics",
            layout.address(CLOUD_METRICS.name),
            "--snapshot-file",
            str(layout.config.cloud_snapshot_file),
            *layout.config.serving_tls("cloud-stub-server"),
        ),
        ready=lambda layout: grpc_serving(
            layout.address(CLOUD_PORT.name), "", layout.config.admin_credentials()
        ),
        address=CLOUD_PORT.name,
        state_key="cloud",
    )


CONTROLLER = ProcessSpec(
    name="controller",
    title="controller (scheduler, Deployments, EndpointSlices, LoadBalancers)",
    ports=(CONTROLLER_PORT,),
    command=lambda layout: actor_argv(
        "services.controller",
        "--listen",
        layout.address(CONTROLLER_PORT.name),
        "--etcd",
        layout.address(ETCD_CLIENT.name),
        "--cloud",
        layout.address(CLOUD_PORT.name),
        *layout.config.client_tls("cloud", "controller-manager"),
    ),
    ready=lambda layout: grpc_serving(layout.address(CONTROLLER_PORT.name)),
    address=CONTROLLER_PORT.name,
)


def node_spec(config: LabConfig, number: int) -> ProcessSpec:
    name = f"node-{number}"
    address = f"{config.node_ip(number)}:{NODE_AGENT_PORT}"
    return ProcessSpec(
        name=name,
        title=f"{name} (node agent, pods in {config.pod_cidr(number)})",
        ports=(),
        command=lambda layout: actor_argv(
            "node_agent",
            "--name",
            name,
            "--node-ip",
            config.node_ip(number),
            "--pod-cidr",
            config.pod_cidr(number),
            "--agent-port",
            str(NODE_AGENT_PORT),
            "--etcd",
            layout.address(ETCD_CLIENT.name),
            "--data-dir",
            str(config.nodes_dir / name),
            "--metrics",
            f"{config.node_ip(number)}:{NODE_METRICS_PORT}",
            *config.serving_tls(f"nodes/{name}/kubelet"),
        ),
        ready=lambda layout: grpc_serving(address, "", config.admin_credentials()),
        address="",
        fixed_address=address,
    )


CLUSTER_DOMAIN = kubelab_home.DEFAULT_CLUSTER_DOMAIN
# Kubernetes' DNS port; without the privilege for it, 10053 (kube-dns's own, behind dnsmasq).
DNS_PORT = PortSpec(
    "dns", 53, "--dns-port", host=lambda config: config.dns_ip, udp=True, fallback=10053
)
# gRPC health of the DNS actor; 8181 is CoreDNS's readiness port.
DNS_HEALTH = PortSpec("dns-health", 8181, "--dns-health-port")
# A name that must not exist: a DNS that answers it NXDOMAIN has synced and serves.
DNS_PROBE_NAME = f"kubelab-probe.kube-system.svc.{CLUSTER_DOMAIN}"

DNS = ProcessSpec(
    name="dns",
    title="dns (cluster DNS)",
    ports=(DNS_PORT, DNS_HEALTH),
    command=lambda layout: actor_argv(
        "services.dns",
        "--listen",
        layout.address(DNS_PORT.name),
        "--fallback-port",
        "0",  # the launcher chose the port already (and any fallback)
        "--health",
        layout.address(DNS_HEALTH.name),
        "--etcd",
        layout.address(ETCD_CLIENT.name),
        "--domain",
        CLUSTER_DOMAIN,
    ),
    ready=lambda layout: dns_answering(layout.address(DNS_PORT.name), DNS_PROBE_NAME),
    address=DNS_PORT.name,
    state_key="dns",
)


def cluster_stages(config: LabConfig) -> tuple[tuple[ProcessSpec, ...], ...]:
    """The actors of an embedded cluster, in start order: etcd; the apiserver and the
    cloud-stub (it needs only etcd; the controller calls it); then the controller, DNS
    (it needs only etcd, but serves what the API wrote) and one node agent per node,
    side by side."""
    nodes = tuple(node_spec(config, n) for n in range(1, config.nodes + 1))
    return ((ETCD,), (APISERVER, cloud_spec(config)), (CONTROLLER, DNS, *nodes))


def port_hosts(config: LabConfig, specs: Sequence[ProcessSpec]) -> dict[str, str]:
    """The ports that bind somewhere other than the config's host, and where."""
    return {p.name: p.bind_host(config) for spec in specs for p in spec.ports if p.host}
