"""The kubectl-like verbs against a real embedded cluster (`kubelab up` on free ports).

One cluster per module (starting one takes about two seconds); each test works
on Services of its own names and deletes what it made, so order does not
matter. Commands run as real subprocesses, the way a user runs them.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubelab.testing.cloud import random_pool
from kubelab.testing.wait import until_blocking

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "shop-service.yaml"
SERVICE_CIDR = ipaddress.ip_network("127.96.0.0/16")
# Not the default 127.200.0.0/24: a developer's own cluster may be serving it.
LB_POOL = ipaddress.ip_network(random_pool(29))


class Kubelab:
    def __init__(self, home: Path) -> None:
        self.env = {**os.environ, "KUBELAB_HOME": str(home)}
        self.env.pop("KUBELAB_SERVER", None)

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "kubelab.cli.main", *args]

    def __call__(
        self, *args: str, stdin: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.command(*args),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
        )
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def ok(self, *args: str, stdin: str | None = None) -> str:
        result = self(*args, stdin=stdin)
        assert result.returncode == 0, result.stderr
        return result.stdout


@pytest.fixture
def service_cidr() -> str:
    """These tests read the default range; they bind no ClusterIP."""
    return "127.96.0.0/16"


@pytest.fixture(scope="module")
def kubelab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubelab]:
    k = Kubelab(tmp_path_factory.mktemp("cli") / "home")
    up = k(
        "up",
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
        "--dns-port",
        "0",
        "--dns-health-port",
        "0",
        "--cloud-port",
        "0",
        "--cloud-metrics-port",
        "0",
        "--lb-pool",
        str(LB_POOL),
        "--nodes",
        "0",
    )
    try:
        assert up.returncode == 0, up.stderr
        yield k
    finally:
        k("down", "--purge")


def service_yaml(name: str, *, node_port: int = 0, labels: str = "{}") -> str:
    port = f", nodePort: {node_port}" if node_port else ""
    kind = "NodePort" if node_port else "ClusterIP"
    return (
        f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, labels: {labels}}}\n"
        f"spec: {{type: {kind}, selector: {{app: {name}}}, ports: [{{port: 80{port}}}]}}\n"
    )


def test_apply_get_describe_delete_the_shop_example(kubelab: Kubelab) -> None:
    applied = kubelab("apply", "-f", str(EXAMPLE))
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout == "service/shop created\n"
    try:
        again = kubelab.ok("apply", "-f", str(EXAMPLE))
        assert again == "service/shop unchanged\n"

        lines = kubelab.ok("get", "svc").splitlines()
        assert lines[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
        row = next(line.split() for line in lines[1:] if line.split()[0] == "shop")
        assert row[1:3] == ["NodePort", row[2]]
        assert ipaddress.ip_address(row[2]) in SERVICE_CIDR
        assert row[3:5] == ["<none>", "80:30080/TCP"]

        wide = kubelab.ok("get", "svc", "shop", "-o", "wide").splitlines()
        assert wide[0].split()[-2:] == ["SELECTOR", "SERVED-AT"]
        # No node runs here: only the ClusterIP answers.
        assert wide[1].split()[-2:] == ["app=shop,env=prod", f"{row[2]}:80/TCP"]

        doc = json.loads(kubelab.ok("get", "svc", "shop", "-o", "json"))
        assert doc["kind"] == "Service" and doc["apiVersion"] == "v1"
        assert doc["spec"]["clusterIP"] == row[2]
        assert doc["spec"]["ports"][0]["nodePort"] == 30080
        assert doc["spec"]["ports"][0]["targetPort"] == 8080
        assert doc["metadata"]["resourceVersion"]

        described = kubelab.ok("describe", "svc", "shop")
        assert "Selector:                 app=shop,env=prod" in described
        assert f"IP:                       {row[2]}" in described
        assert "NodePort:                 http  30080/TCP" in described
        assert "External Traffic Policy:  Cluster" in described
    finally:
        deleted = kubelab("delete", "svc", "shop")
    assert deleted.stdout == 'service "shop" deleted\n'
    gone = kubelab("get", "svc", "shop")
    assert gone.returncode == 1
    assert gone.stderr == 'Error from server (NotFound): services "shop" not found\n'


def test_label_selects_and_compare_and_swaps(kubelab: Kubelab) -> None:
    kubelab.ok("apply", "-f", "-", stdin=service_yaml("lbl-a") + "---\n" + service_yaml("lbl-b"))
    try:
        before = json.loads(kubelab.ok("get", "svc", "lbl-a", "-o", "json"))
        assert kubelab.ok("label", "svc", "lbl-a", "env=prod", "team=web") == (
            "service/lbl-a labeled\n"
        )
        after = json.loads(kubelab.ok("get", "svc", "lbl-a", "-o", "json"))
        assert after["metadata"]["labels"] == {"env": "prod", "team": "web"}
        assert after["metadata"]["resourceVersion"] != before["metadata"]["resourceVersion"]

        selected = kubelab.ok("get", "svc", "-l", "env=prod", "-o", "name")
        assert selected == "service/lbl-a\n"
        others = kubelab.ok("get", "svc", "-l", "env!=prod", "-o", "name").split()
        assert "service/lbl-b" in others and "service/lbl-a" not in others

        refused = kubelab("label", "svc", "lbl-a", "env=dev")
        assert refused.returncode == 1
        assert refused.stderr == (
            "error: 'env' already has a value (prod), and --overwrite is false\n"
        )
        assert kubelab.ok("label", "svc", "lbl-a", "env=dev", "--overwrite") == (
            "service/lbl-a labeled\n"
        )
        assert kubelab.ok("label", "svc/lbl-a", "team-") == "service/lbl-a unlabeled\n"
        labels = json.loads(kubelab.ok("get", "svc", "lbl-a", "-o", "json"))["metadata"]["labels"]
        assert labels == {"env": "dev"}

        none = kubelab("get", "svc", "-l", "env=nowhere")
        assert none.returncode == 0
        assert none.stdout == ""
        assert none.stderr == "No resources found in default namespace.\n"

        bad = kubelab("get", "svc", "-l", "env in (prod")
        assert bad.returncode == 1 and bad.stderr.startswith("error: invalid selector")
    finally:
        kubelab("delete", "svc", "lbl-a", "lbl-b")


def test_invalid_object_names_the_field_and_others_still_apply(kubelab: Kubelab) -> None:
    manifests = service_yaml("inv-bad", node_port=40000) + "---\n" + service_yaml("inv-good")
    result = kubelab("apply", "-f", "-", stdin=manifests)
    try:
        assert result.returncode == 1
        assert result.stdout == "service/inv-good created\n"
        assert result.stderr.startswith(
            'The Service "inv-bad" is invalid: spec.ports[0].nodePort: Invalid value: 40000'
        )
    finally:
        kubelab("delete", "svc", "inv-good")


def test_manifest_warnings_go_to_stderr(kubelab: Kubelab, tmp_path: Path) -> None:
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(service_yaml("warn").replace("spec: {", "spec: {color: blue, ", 1))
    result = kubelab("apply", "-f", str(manifest))
    try:
        assert result.returncode == 0, result.stderr
        assert result.stdout == "service/warn created\n"
        assert result.stderr == "Warning: service/warn: spec.color: unknown field, ignored\n"
    finally:
        deleted = kubelab("delete", "-f", str(manifest))
    assert deleted.stdout == 'service "warn" deleted\n'


def test_several_objects_print_as_a_list(kubelab: Kubelab) -> None:
    kubelab.ok("apply", "-f", "-", stdin=service_yaml("list-a") + "---\n" + service_yaml("list-b"))
    try:
        doc = json.loads(kubelab.ok("get", "svc", "list-a", "list-b", "-o", "json"))
        assert doc["kind"] == "List"
        assert [item["metadata"]["name"] for item in doc["items"]] == ["list-a", "list-b"]
        yaml_text = kubelab.ok("get", "svc", "list-a", "list-b", "-o", "yaml")
        assert yaml_text.startswith("apiVersion: v1\nitems:\n- apiVersion: v1\n  kind: Service\n")
        missing = kubelab("get", "svc", "list-a", "nope", "-o", "name")
        assert missing.returncode == 1
        assert missing.stdout == "service/list-a\n"
        assert 'services "nope" not found' in missing.stderr
        everywhere = kubelab.ok("get", "svc", "-A").splitlines()
        assert everywhere[0].split()[:2] == ["NAMESPACE", "NAME"]
        assert any(line.split()[:2] == ["default", "list-a"] for line in everywhere)
    finally:
        kubelab("delete", "svc", "list-a", "list-b")


def test_delete_reports_missing_objects(kubelab: Kubelab) -> None:
    result = kubelab("delete", "svc", "never-was")
    assert result.returncode == 1
    assert result.stderr == 'Error from server (NotFound): services "never-was" not found\n'
    assert kubelab("delete", "svc", "never-was", "--ignore-not-found").returncode == 0


def test_watch_streams_changes(kubelab: Kubelab) -> None:
    watcher = subprocess.Popen(
        kubelab.command("get", "svc", "-w"),
        env=kubelab.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    seen = threading.Event()

    def read() -> None:
        assert watcher.stdout is not None
        for line in watcher.stdout:
            lines.append(line)
            if line.startswith("watched "):
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        # The watch starts after its first list; apply until the watcher reports it.
        kubelab.ok("apply", "-f", "-", stdin=service_yaml("watched"))

        def reported() -> bool:
            assert watcher.poll() is None, watcher.stderr.read() if watcher.stderr else ""
            return seen.wait(0.2)

        until_blocking(
            "the watch to print the new Service",
            reported,
            timeout=30,
            interval=0,
            describe=lambda _: f"printed {lines}",
        )
    finally:
        watcher.send_signal(signal.SIGTERM)
        watcher.wait(10)
        kubelab("delete", "svc", "watched")
    row = next(line.split() for line in lines if line.startswith("watched "))
    assert row[1] == "ClusterIP" and row[4] == "80/TCP"


def test_a_stopped_apiserver_is_a_clear_error(kubelab: Kubelab, tmp_path: Path) -> None:
    # Another home with no cluster: the CLI falls back to no server at all.
    lonely = Kubelab(tmp_path / "nothing")
    lonely.env["KUBELAB_SERVER"] = "127.0.0.1:1"
    result = lonely("get", "svc")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: cannot reach the apiserver at 127.0.0.1:1: the connection was refused - "
        "did you specify the right host or port?",
        "Is a cluster running? Start one with: kubelab up",
    ]


def test_a_load_balancer_gets_an_address_and_describe_says_how(kubelab: Kubelab) -> None:
    manifest = (
        "apiVersion: v1\nkind: Service\nmetadata: {name: lb-a}\n"
        "spec: {type: LoadBalancer, selector: {app: lb-a}, ports: [{port: 8080}]}\n"
    )
    kubelab.ok("apply", "-f", "-", stdin=manifest)
    try:
        rows = until_blocking(
            "an EXTERNAL-IP for lb-a",
            lambda: [line.split() for line in kubelab.ok("get", "svc", "lb-a").splitlines()],
            lambda rows: rows[1][3] != "<pending>",
            timeout=15,
            interval=0.1,
        )
        assert rows[0][3] == "EXTERNAL-IP" and rows[1][1] == "LoadBalancer"
        assert ipaddress.ip_address(rows[1][3]) in LB_POOL
        described = kubelab.ok("describe", "svc", "lb-a")
        assert f"LoadBalancer Ingress:     {rows[1][3]}" in described
        lines = described.splitlines()
        at = lines.index("Conditions:")
        assert lines[at + 1].split() == ["TYPE", "STATUS", "REASON", "MESSAGE"]
        # No node runs here: the load balancer exists, with nowhere to send to yet.
        assert lines[at + 2].split()[:3] == ["LoadBalancerProvisioned", "True", "Provisioned"]
        assert "no Ready node to forward to yet" in lines[at + 2]
    finally:
        kubelab.ok("delete", "svc", "lb-a")
