"""`scale`, `logs` and graceful `delete` against a real cluster with two node agents.

One cluster per module: `kubelab up --nodes 2` on free ports, node IPs
127.10.77.1-2 and pods in 127.246.0.0/16 (away from the defaults, so a
developer's own cluster is not in the way), in a tmp KUBELAB_HOME, with
examples/shop.yaml applied and its Deployment's 4 pods Running and Ready
before any test starts. The fixture ends with `kubelab down --purge`.

Every test leaves the Deployment as it found it (4 ready replicas), so order
does not matter. Commands run as real subprocesses, the way a user runs them;
waits poll `get pods -o json` against a deadline, never a bare sleep.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from kubelab.core import certs
from kubelab.credentials import Credentials
from kubelab.testing.wait import until_blocking
from kubelab.v1 import api_pb2, api_pb2_grpc, cloud_pb2, cloud_pb2_grpc, node_pb2, node_pb2_grpc

pytestmark = [pytest.mark.integration]

SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop.yaml"
UP = (
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
    "--nodes",
    "2",
    "--node-ip-base",
    "127.10.77.0",
    "--pod-network",
    "127.246.0.0/16",
)
REPLICAS = 4
POLL = 0.25
Pod = dict[str, Any]


class Kubelab:
    """The `kubelab` command against one KUBELAB_HOME."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {**os.environ, "KUBELAB_HOME": str(home)}
        self.env.pop("KUBELAB_SERVER", None)

    def __call__(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "kubelab.cli.main", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def ok(self, *args: str, timeout: float = 60) -> str:
        result = self(*args, timeout=timeout)
        assert result.returncode == 0, f"kubelab {' '.join(args)}: {result.stderr}"
        return result.stdout

    def pods(self) -> list[Pod]:
        items = json.loads(self.ok("get", "pods", "-o", "json"))["items"]
        assert isinstance(items, list)
        return items


def owned_by_shop(pod: Pod) -> bool:
    """The Deployment's pods: by ownerReference, not by label (shop-usd has the labels too)."""
    owners = pod["metadata"].get("ownerReferences", [])
    return any(o.get("kind") == "Deployment" and o.get("name") == "shop" for o in owners)


def running_and_ready(pod: Pod) -> bool:
    status = pod.get("status", {})
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", [])
    )
    terminating = "deletionTimestamp" in pod["metadata"]
    return status.get("phase") == "Running" and ready and not terminating


def ready_shop_pods(kubelab: Kubelab) -> list[Pod]:
    return [p for p in kubelab.pods() if owned_by_shop(p) and running_and_ready(p)]


def shop_pods(kubelab: Kubelab) -> list[Pod]:
    return [p for p in kubelab.pods() if owned_by_shop(p)]


def wait_for_replicas(kubelab: Kubelab, count: int, timeout: float = 60) -> list[Pod]:
    """Until exactly `count` of the Deployment's pods exist, all Running and Ready."""
    found: list[Pod] = []

    def settled() -> bool:
        nonlocal found
        pods = shop_pods(kubelab)
        found = [p for p in pods if running_and_ready(p)]
        return len(pods) == len(found) == count

    until_blocking(f"{count} ready shop pods", settled, timeout=timeout, interval=POLL)
    return found


@pytest.fixture(scope="module")
def kubelab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubelab]:
    k = Kubelab(tmp_path_factory.mktemp("nodes") / "home")
    try:
        up = k(*UP, timeout=120)
        assert up.returncode == 0, up.stderr
        k.ok("apply", "-f", str(SHOP))
        wait_for_replicas(k, REPLICAS, timeout=90)
        yield k
    finally:
        k("down", "--purge", timeout=120)


@pytest.fixture
def shop(kubelab: Kubelab) -> Iterator[Kubelab]:
    """The cluster with the Deployment at its 4 ready replicas, before and after the test."""
    wait_for_replicas(kubelab, REPLICAS)
    try:
        yield kubelab
    finally:
        kubelab.ok("scale", "deploy", "shop", "--replicas", str(REPLICAS))
        wait_for_replicas(kubelab, REPLICAS)


def test_scale_up_creates_ready_pods(shop: Kubelab) -> None:
    assert shop.ok("scale", "deploy", "shop", "--replicas", "6") == "deployment.apps/shop scaled\n"
    pods = wait_for_replicas(shop, 6)
    assert {p["spec"]["nodeName"] for p in pods} <= {"node-1", "node-2"}

    stale = shop("scale", "deployment/shop", "--replicas", "2", "--current-replicas", "4")
    assert stale.returncode == 1
    assert stale.stderr == "error: Expected replicas to be 4, was 6\n"
    assert len(shop_pods(shop)) == 6, "a failed precondition changes nothing"


def test_scale_errors_are_kubectls(shop: Kubelab) -> None:
    missing = shop("scale", "deploy", "nope", "--replicas", "2")
    assert missing.returncode == 1
    assert missing.stderr == 'Error from server (NotFound): deployments.apps "nope" not found\n'
    unset = shop("scale", "deploy", "shop")
    assert unset.returncode == 1
    assert "--replicas=COUNT flag is required" in unset.stderr


def test_logs_prints_the_pods_output(shop: Kubelab) -> None:
    pod = ready_shop_pods(shop)[0]
    name, ip = pod["metadata"]["name"], pod["status"]["podIP"]
    start_line = f"echo: pod default/{name} on {ip}: http/8080"
    printed = ""

    def has_start_line() -> bool:
        # A container restarted after the read above starts a fresh log; it prints
        # the line again as soon as it listens.
        nonlocal printed
        printed = shop.ok("logs", name)
        return start_line in printed

    try:
        until_blocking(
            f"the start line in the logs of {name}", has_start_line, timeout=15, interval=POLL
        )
    except TimeoutError:
        pytest.fail(f"kubelab logs {name} printed {printed!r}, want a line {start_line!r}")
    assert start_line in shop.ok("logs", f"pod/{name}", "--tail", "5")


def test_logs_errors(shop: Kubelab) -> None:
    missing = shop("logs", "nope")
    assert missing.returncode == 1
    assert missing.stderr == 'Error from server (NotFound): pods "nope" not found\n'
    name = ready_shop_pods(shop)[0]["metadata"]["name"]
    wrong = shop("logs", name, "-c", "nope")
    assert wrong.returncode == 1
    assert wrong.stderr == f"error: container nope is not valid for pod {name}\n"


def test_delete_with_grace_period_and_the_deployment_replaces_the_pod(shop: Kubelab) -> None:
    victim = ready_shop_pods(shop)[0]["metadata"]["name"]
    deleted = shop("delete", "pod", victim, "--grace-period", "1")
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout == f'pod "{victim}" deleted\n'

    until_blocking(
        f"pod {victim} to be gone",
        lambda: victim not in {p["metadata"]["name"] for p in shop.pods()},
        timeout=30,
        interval=POLL,
    )
    pods = wait_for_replicas(shop, REPLICAS)
    assert victim not in {p["metadata"]["name"] for p in pods}


def _call(address: str, credentials: Credentials | None, stub: str) -> grpc.StatusCode:
    """One call of each actor's API, as a client with `credentials` would make it."""
    options = [("grpc.enable_http_proxy", 0)]
    channel = (
        grpc.insecure_channel(address, options=options)
        if credentials is None
        else grpc.secure_channel(address, credentials.channel_credentials(), options=options)
    )
    with channel:
        try:
            if stub == "node":
                node_pb2_grpc.NodeAgentStub(channel).ListPods(node_pb2.ListPodsRequest(), timeout=5)
            elif stub == "cloud":
                cloud_pb2_grpc.CloudProviderStub(channel).ListLoadBalancers(
                    cloud_pb2.ListLoadBalancersRequest(), timeout=5
                )
            else:
                api_pb2_grpc.ApiStub(channel).List(api_pb2.ListRequest(kind="nodes"), timeout=5)
        except grpc.RpcError as err:
            return err.code()
    return grpc.StatusCode.OK


def test_every_tls_port_takes_only_its_callers(kubelab: Kubelab) -> None:
    """The apiserver's gRPC API, each node agent's API (the kubelet's port) and the
    cloud-stub's API: no certificate, another CA's and an expired one are refused at the
    handshake; a certificate of the cluster with the wrong identity is PERMISSION_DENIED;
    the actor's own caller is served."""
    pki_dir = kubelab.home / "pki"
    state = json.loads((kubelab.home / "cluster.json").read_text())

    def pair(stem: str) -> Credentials:
        return Credentials(
            *((pki_dir / name).read_bytes() for name in ("ca.crt", f"{stem}.crt", f"{stem}.key"))
        )

    ca = certs.CertKey(
        certs.load_cert((pki_dir / "ca.crt").read_bytes()),
        certs.load_key((pki_dir / "ca.key").read_bytes()),
    )
    now = datetime.datetime.now(datetime.UTC)
    stranger = certs.self_signed_ca("another-cluster", now=now)

    def made(issued: certs.CertKey) -> Credentials:
        return Credentials(
            (pki_dir / "ca.crt").read_bytes(),
            certs.cert_pem(issued.cert),
            certs.key_pem(issued.key),
        )

    masters = ("system:masters",)
    another_ca = made(certs.sign_client(stranger, "kubernetes-admin", masters, now=now))
    expired = made(
        certs.sign_client(ca, "kubernetes-admin", masters, now=now - datetime.timedelta(days=800))
    )
    alice = made(certs.sign_client(ca, "alice", now=now))
    node_1, node_2 = pair("nodes/node-1/kubelet-client"), pair("nodes/node-2/kubelet-client")
    ports = {
        # port: (address, kind of API, who may call, a cluster identity that may not)
        "apiserver": (state["api"], "api", pair("admin"), alice),
        "node-1": ("127.10.77.1:10250", "node", pair("apiserver-kubelet-client"), node_1),
        "node-2": ("127.10.77.2:10250", "node", pair("admin"), node_2),
        "cloud-stub": (state["cloud"], "cloud", pair("controller-manager"), node_1),
    }
    for name, (address, stub, allowed, wrong) in ports.items():
        no_certificate = Credentials((pki_dir / "ca.crt").read_bytes())
        assert _call(address, allowed, stub) == grpc.StatusCode.OK, name
        assert _call(address, wrong, stub) == grpc.StatusCode.PERMISSION_DENIED, name
        for refused in (no_certificate, another_ca, expired, None):
            assert _call(address, refused, stub) == grpc.StatusCode.UNAVAILABLE, name
