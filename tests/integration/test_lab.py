"""`kubelab up` / `status` / `down` for real: etcd and the apiserver as detached processes.

Every test runs the real CLI as a subprocess in its own KUBELAB_HOME (tmp_path)
on free ports, and its fixture ends with `kubelab down --purge`, so nothing
outlives a test and neither ~/.kubelab nor the default ports are touched.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import ssl
import stat
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from kubelab import lab
from kubelab.credentials import Credentials
from kubelab.lab.state import layout_fields, make_private
from kubelab.testing.processes import health_serving
from kubelab.testing.wait import until_blocking

pytestmark = pytest.mark.integration

FREE_PORTS = (
    "--api-port",
    "0",
    "--api-http-port",
    "0",
    "--etcd-port",
    "0",
    "--etcd-peer-port",
    "0",
    "--controller-port",
    "0",
    # Never the user's 53 (or 10053) on 127.96.0.10: any free port there.
    "--dns-port",
    "0",
    "--dns-health-port",
    "0",
    "--cloud-port",
    "0",
    "--cloud-metrics-port",
    "0",
    # Not the default 127.200.0.0/24, which a developer's own cluster may be serving.
    "--lb-pool",
    "127.233.201.0/29",
    "--nodes",
    "0",
)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "shop-service.yaml"


class Kubelab:
    """The `kubelab` command against one KUBELAB_HOME."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {**os.environ, "KUBELAB_HOME": str(home)}
        self.env.pop("KUBELAB_SERVER", None)

    def __call__(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kubelab.cli.main", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def state(self) -> dict[str, object]:
        data = json.loads((self.home / "cluster.json").read_text())
        assert isinstance(data, dict)
        return data

    def records(self) -> list[lab.ProcessRecord]:
        state = lab.read_state(self.home / "cluster.json")
        assert state is not None
        return state.processes


@pytest.fixture
def kubelab(tmp_path: Path) -> Iterator[Kubelab]:
    k = Kubelab(tmp_path / "home")
    yield k
    k("down", "--purge")


def all_gone(records: list[lab.ProcessRecord]) -> bool:
    return not any(lab.process_alive(r) for r in records)


def test_up_status_up_again_down_purge(kubelab: Kubelab) -> None:
    up = kubelab("up", *FREE_PORTS)
    assert up.returncode == 0, up.stderr
    assert "Traceback" not in up.stderr
    state = kubelab.state()
    assert state["ready"] is True
    records = kubelab.records()
    assert [r.name for r in records] == ["etcd", "apiserver", "cloud-stub", "controller", "dns"]
    assert all(lab.process_alive(r) for r in records)
    assert state["api"] == records[1].address and state["etcd"] == records[0].address
    assert state["cloud"] == records[2].address and state["lb_pool"] == "127.233.201.0/29"
    assert f"--cloud {records[2].address}" in " ".join(records[3].command)
    # TLS, and the gRPC front asks for a certificate: the admin's opens it, none does not.
    pki_dir = kubelab.home / "pki"
    admin = Credentials(
        *((pki_dir / name).read_bytes() for name in ("ca.crt", "admin.crt", "admin.key"))
    )
    assert health_serving(str(state["api"]), "", admin)
    assert not health_serving(str(state["api"]))
    assert pki_dir.stat().st_mode & 0o777 == 0o700
    assert (pki_dir / "admin.key").stat().st_mode & 0o777 == 0o600
    assert f"-key {pki_dir / 'admin.key'} {state['api']} list kubelab.v1.Api" in up.stdout
    assert "kubelab get svc" in up.stdout
    # The Kubernetes HTTP API and a kubeconfig for it, in the home (never ~/.kube/config).
    kubeconfig = kubelab.home / "kubeconfig"
    assert f"export KUBECONFIG={kubeconfig}" in up.stdout
    assert str(state["api_http"]).startswith("https://127.0.0.1:")
    written = yaml.safe_load(kubeconfig.read_text())
    assert written["current-context"] == "kubelab"
    [cluster] = written["clusters"]
    assert cluster["cluster"]["server"] == state["api_http"]
    ca_data = base64.b64decode(cluster["cluster"]["certificate-authority-data"])
    assert ca_data == (pki_dir / "ca.crt").read_bytes()
    [user] = written["users"]
    assert base64.b64decode(user["user"]["client-certificate-data"]) == admin.cert
    assert kubeconfig.stat().st_mode & 0o777 == 0o600
    # Anyone may read the version (Kubernetes' system:public-info-viewer), over TLS.
    tls = ssl.create_default_context(cafile=str(pki_dir / "ca.crt"))
    direct = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=tls)
    )
    with direct.open(f"{state['api_http']}/version", timeout=10) as answer:
        assert json.load(answer)["major"] == "1"
    for record in records:
        assert Path(record.log).parent == kubelab.home / "logs"
        # Detached: each actor leads its own session, so a Ctrl-C in the shell misses it.
        assert os.getsid(record.pid) == record.pid

    status = kubelab("status")
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[1].split() == ["NAME", "PID", "ALIVE", "RESTARTS", "ADDRESS", "LOG"]
    assert lines[2].split()[:5] == ["etcd", str(records[0].pid), "yes", "0", records[0].address]
    assert lines[3].split()[:5] == [
        *("apiserver", str(records[1].pid), "yes", "0", records[1].address)
    ]
    assert f"Kubernetes API (kubectl): {state['api_http']}" in status.stdout
    supervisor = lab.read_state(kubelab.home / "cluster.json")
    assert supervisor is not None and supervisor.supervisor is not None
    assert f"Supervisor pid {supervisor.supervisor.pid} restarts" in status.stdout

    again = kubelab("up", *FREE_PORTS)
    assert again.returncode == 0
    assert "already running" in again.stdout
    assert [r.pid for r in kubelab.records()] == [r.pid for r in records]

    down = kubelab("down")
    assert down.returncode == 0, down.stderr
    # The supervisor goes first, so it restarts nothing that down stops.
    assert down.stdout.splitlines()[0] == f"supervisor (pid {supervisor.supervisor.pid}): stopped"
    assert "apiserver (pid" in down.stdout and "stopped" in down.stdout
    assert all_gone([*records, supervisor.supervisor])
    assert not (kubelab.home / "cluster.json").exists()
    assert (kubelab.home / "etcd").is_dir(), "plain down keeps the data"

    assert kubelab("status").returncode == 1
    purge = kubelab("down", "--purge")
    assert purge.returncode == 0
    assert not kubelab.home.exists(), "purge takes the certificates too: a new cluster, a new CA"


def test_data_survives_down_and_up(kubelab: Kubelab) -> None:
    assert kubelab("up", *FREE_PORTS).returncode == 0
    assert kubelab("apply", "-f", str(EXAMPLE)).returncode == 0
    assert kubelab("down").returncode == 0
    assert kubelab("up", *FREE_PORTS).returncode == 0
    get = kubelab("get", "svc", "shop", "-o", "name")
    assert get.returncode == 0, get.stderr
    assert get.stdout == "service/shop\n"


def test_after_kill_9_of_everything_up_starts_it_all_where_it_was(kubelab: Kubelab) -> None:
    assert kubelab("up", *FREE_PORTS).returncode == 0
    assert kubelab("apply", "-f", str(EXAMPLE)).returncode == 0
    state = lab.read_state(kubelab.home / "cluster.json")
    assert state is not None and state.supervisor is not None
    old = state.processes
    everything = [state.supervisor, *old]  # the supervisor first, or it restarts them
    for record in everything:
        os.kill(record.pid, signal.SIGKILL)
    until_blocking("killed actors to exit", lambda: all_gone(everything), timeout=10)

    status = kubelab("status")
    assert status.returncode == 1
    assert "not healthy" in status.stderr and "Supervisor not running" in status.stdout

    refused = kubelab("get", "svc")
    assert refused.returncode == 1
    assert "was refused - did you specify the right host or port?" in refused.stderr
    assert "kubelab up" in refused.stderr
    assert "Traceback" not in refused.stderr

    up = kubelab("up", *FREE_PORTS)
    assert up.returncode == 0, up.stderr
    assert "Restarted etcd, apiserver, cloud-stub, controller, dns;" in up.stdout
    new = kubelab.records()
    assert {r.pid for r in new}.isdisjoint(r.pid for r in old)
    assert [(r.address, r.command, r.restarts) for r in new] == [
        (r.address, r.command, 1) for r in old
    ]
    assert all(lab.process_alive(r) for r in new)
    assert kubelab("get", "svc", "shop", "-o", "name").stdout == "service/shop\n"


def test_a_reused_pid_is_not_ours_and_is_left_alone(kubelab: Kubelab, tmp_path: Path) -> None:
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        kubelab.home.mkdir(parents=True)
        record = {
            "name": "etcd",
            "pid": stranger.pid,
            "address": "127.0.0.1:1",
            "log": str(tmp_path / "x.log"),
            "command": ["/nonexistent/etcd", "--data-dir", "x"],
            "started": "",
        }
        state = {"api": "127.0.0.1:1", "ready": True, "processes": [record]}
        (kubelab.home / "cluster.json").write_text(json.dumps(state))

        status = kubelab("status")
        assert status.returncode == 1
        assert " no " in status.stdout.splitlines()[2]

        up = kubelab("up", *FREE_PORTS)
        assert up.returncode == 0, up.stderr
        assert "stale" in up.stderr
        assert stranger.poll() is None, "up must not signal a process that is not its own"
        assert kubelab("down").returncode == 0
        assert stranger.poll() is None, "down must not signal a process that is not its own"
    finally:
        stranger.kill()
        stranger.wait()


def test_an_actor_that_fails_to_start_is_reported_with_its_log(kubelab: Kubelab) -> None:
    kubelab.home.mkdir(parents=True)
    (kubelab.home / "etcd").write_text("not a directory")  # etcd cannot use its data dir
    up = kubelab("up", *FREE_PORTS)
    assert up.returncode == 1
    assert "error: etcd exited with code" in up.stderr
    assert f"Last lines of {kubelab.home / 'logs' / 'etcd.log'}:" in up.stderr
    assert "Traceback" not in up.stderr
    assert not (kubelab.home / "cluster.json").exists()


def test_an_explicit_port_in_use_is_refused(kubelab: Kubelab) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        up = kubelab("up", "--api-port", str(port), *FREE_PORTS[2:])
    assert up.returncode == 1
    assert f"127.0.0.1:{port} (--api-port) is already in use" in up.stderr
    assert not (kubelab.home / "cluster.json").exists()


# ---------------------------------------------------------------- launcher pieces


def test_a_taken_default_port_is_replaced_by_a_free_one(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        wish = lab.PortSpec("x", taken, "--x-port")
        spec = lab.ProcessSpec(
            name="x",
            title="x",
            ports=(wish,),
            command=lambda _: [],
            ready=lambda _: True,
            address="x",
        )
        notes: list[str] = []
        ports = lab.resolve_ports(lab.LabConfig(home=tmp_path), [spec], notes.append)
    assert ports["x"] != taken
    assert notes == [
        f"port {taken} is in use; x will use 127.0.0.1:{ports['x']} instead (--x-port to choose)"
    ]


def test_ports_picked_in_one_plan_are_distinct(tmp_path: Path) -> None:
    wishes: dict[str, int | None] = {
        "etcd": 0,
        "etcd-peer": 0,
        "api": 0,
        "api-http": 0,
        "controller": 0,
        "dns": 0,
        "dns-health": 0,
        "cloud": 0,
        "cloud-metrics": 0,
    }
    config = lab.LabConfig(home=tmp_path, ports=wishes)
    specs = [s for stage in lab.cluster_stages(config) for s in stage]
    ports = lab.resolve_ports(config, specs, lambda _: None)
    assert set(ports) == set(wishes)
    assert len(set(ports.values())) == len(wishes)


def test_cluster_state_round_trips(tmp_path: Path) -> None:
    record = lab.ProcessRecord("etcd", 42, "127.0.0.1:2379", "/l", ["etcd", "--x"], "now", 3)
    supervisor = lab.ProcessRecord("supervisor", 43, "", "/s", ["python", "-m", "s"], "now")
    config = lab.LabConfig(home=tmp_path, nodes=2, node_ip_base="127.10.9.0")
    layout = lab.Layout(config, {"etcd": 2379, "dns": 53}, {"dns": "127.96.0.10"})
    fields = {"api": "127.0.0.1:6443", "home": "/h", "layout": layout_fields(layout)}
    fields |= {"service_cidr": config.service_cidr, "node_port_range": config.node_port_range}
    fields |= {"lb_pool": config.lb_pool}
    state = lab.ClusterState([record], True, "now", fields, supervisor)
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(state.to_json()))
    assert lab.read_state(path) == state
    assert state.address("api") == "127.0.0.1:6443"
    back = state.layout(tmp_path)
    assert back is not None
    assert (back.ports, back.hosts) == (layout.ports, layout.hosts)
    assert [s.name for stage in lab.cluster_stages(back.config) for s in stage][-2:] == [
        "node-1",
        "node-2",
    ]
    assert back.config.node_ip(1) == "127.10.9.1"
    del state.fields["layout"]
    assert state.layout(tmp_path) is None, "a record from before layouts were recorded"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("[]", id="not-an-object"),
        pytest.param('{"processes": [{"pid": 1}]}', id="record-without-command"),
        pytest.param('{"processes": [1]}', id="record-not-an-object"),
    ],
)
def test_a_corrupt_state_file_is_a_value_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "cluster.json"
    path.write_text(text)
    with pytest.raises(ValueError):
        lab.read_state(path)


def test_process_alive_needs_the_same_command() -> None:
    child = subprocess.Popen(["sleep", "60"])
    try:
        mine = lab.ProcessRecord("x", child.pid, "", "", ["sleep", "60"], "")
        other = lab.ProcessRecord("x", child.pid, "", "", ["sleep", "61"], "")
        # Right after exec the kernel may still show an empty cmdline: wait for it.
        until_blocking("sleep to show its cmdline", lambda: lab.process_alive(mine), timeout=5)
        assert not lab.process_alive(other)
        assert lab.stop_process(other) == "not running"
        assert child.poll() is None
        assert lab.stop_process(mine, grace=5) == "stopped"
        assert not lab.process_alive(mine), "an unreaped child (zombie) counts as gone"
    finally:
        child.kill()
        child.wait()


def test_a_shared_home_keeps_its_mode_and_kubelab_s_files_turn_private(tmp_path: Path) -> None:
    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    home = tmp_path / "shared"
    (home / "logs").mkdir(parents=True)
    home.chmod(0o755)
    (home / "logs").chmod(0o755)
    for name, content in (("notes.txt", "mine"), ("cluster.json", "{}"), ("logs/dns.log", "")):
        (home / name).write_text(content)
        (home / name).chmod(0o644)
    make_private(lab.LabConfig(home=home))
    assert (mode(home), mode(home / "notes.txt")) == (0o755, 0o644), "not kubelab's to change"
    assert mode(home / "logs") == 0o700
    assert mode(home / "cluster.json") == mode(home / "logs" / "dns.log") == 0o600
    (home / "notes.txt").unlink()
    make_private(lab.LabConfig(home=home))
    assert mode(home) == 0o700, "a home of kubelab's own is private too"
