"""The embedded launcher: `kubelab up` / `down` / `status` without a container runtime.

`up` starts etcd, the apiserver, the cloud-stub, the controller, DNS and the node agents as
detached local processes on loopback, waits until each is ready, and records
them in `$KUBELAB_HOME/cluster.json`, where the CLI and SDK find the
apiserver; `down` stops exactly those processes; `status` reports on them.
The CLI (`kubelab.cli.cluster`) is a thin layer over the names exported here.

The package is split by what each module holds, imports running one way
(later ones import earlier ones, never the reverse):

- `errors`: `LabError`, the one failure type, and the actor log tail it shows.
- `probes`: readiness probes (etcd `/health`, gRPC health SERVING, a DNS query).
- `specs`: `LabConfig`, `Layout`, `PortSpec`, `ProcessSpec`, the actors and
  their start order (`cluster_stages`): the only place that names an actor.
- `ports`: turning port wishes into a `Layout`'s ports.
- `processes`: spawning actors detached, proving a pid is still ours (or
  finding an actor restarted by hand), waiting for readiness, stopping.
- `state`: cluster.json read/write under its lock, and the home kept private.
- `kubeconfig`: `$KUBELAB_HOME/kubeconfig`, for kubectl and client libraries.
- `launcher`: `up`, `down`, `status` under the home's lock.
- `supervisor`: the process `up` leaves behind to restart an actor that exits
  (run as `python -m kubelab.lab.supervisor`; nothing here imports it).
"""

from __future__ import annotations

from kubelab.lab.errors import LOG_TAIL_LINES, LabError, tail_log
from kubelab.lab.kubeconfig import FILE_NAME as KUBECONFIG_FILE
from kubelab.lab.kubeconfig import write_kubeconfig
from kubelab.lab.launcher import (
    ClusterStatus,
    ProcessStatus,
    QuietReporter,
    Reporter,
    UpResult,
    down,
    status,
    up,
)
from kubelab.lab.ports import free_port, port_free, resolve_ports
from kubelab.lab.probes import dns_answering, etcd_healthy, grpc_serving
from kubelab.lab.processes import (
    POLL_INTERVAL,
    STOP_GRACE_SECONDS,
    ProcessRecord,
    find_process,
    follow,
    process_alive,
    stop_process,
)
from kubelab.lab.specs import (
    API,
    API_HTTP,
    APISERVER,
    CLOUD_METRICS,
    CLOUD_PORT,
    CLUSTER_DOMAIN,
    CONTROLLER,
    CONTROLLER_PORT,
    DEFAULT_LB_POOL,
    DEFAULT_NODE_IP_BASE,
    DEFAULT_NODE_PORT_RANGE,
    DEFAULT_NODES,
    DEFAULT_POD_NETWORK,
    DEFAULT_SERVICE_CIDR,
    DNS,
    DNS_HEALTH,
    DNS_PORT,
    DNS_PROBE_NAME,
    ETCD,
    ETCD_CLIENT,
    ETCD_PEER,
    LOOPBACK,
    NODE_AGENT_PORT,
    LabConfig,
    Layout,
    PortSpec,
    ProcessSpec,
    check_config,
    cloud_spec,
    cluster_stages,
    default_config,
    node_spec,
    port_hosts,
)
from kubelab.lab.state import ClusterState, read_state, state_lock

__all__ = [
    "API",
    "APISERVER",
    "API_HTTP",
    "CLOUD_METRICS",
    "CLOUD_PORT",
    "CLUSTER_DOMAIN",
    "CONTROLLER",
    "CONTROLLER_PORT",
    "DEFAULT_LB_POOL",
    "DEFAULT_NODES",
    "DEFAULT_NODE_IP_BASE",
    "DEFAULT_NODE_PORT_RANGE",
    "DEFAULT_POD_NETWORK",
    "DEFAULT_SERVICE_CIDR",
    "DNS",
    "DNS_HEALTH",
    "DNS_PORT",
    "DNS_PROBE_NAME",
    "ETCD",
    "ETCD_CLIENT",
    "ETCD_PEER",
    "KUBECONFIG_FILE",
    "LOG_TAIL_LINES",
    "LOOPBACK",
    "NODE_AGENT_PORT",
    "POLL_INTERVAL",
    "STOP_GRACE_SECONDS",
    "ClusterState",
    "ClusterStatus",
    "LabConfig",
    "LabError",
    "Layout",
    "PortSpec",
    "ProcessRecord",
    "ProcessSpec",
    "ProcessStatus",
    "QuietReporter",
    "Reporter",
    "UpResult",
    "check_config",
    "cloud_spec",
    "cluster_stages",
    "default_config",
    "dns_answering",
    "down",
    "etcd_healthy",
    "find_process",
    "follow",
    "free_port",
    "grpc_serving",
    "node_spec",
    "port_free",
    "port_hosts",
    "process_alive",
    "read_state",
    "resolve_ports",
    "state_lock",
    "status",
    "stop_process",
    "tail_log",
    "up",
    "write_kubeconfig",
]
