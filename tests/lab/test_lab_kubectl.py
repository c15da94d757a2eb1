"""The real kubectl, on the host, drives the container lab (compose/lab.yaml) through the
Kubernetes HTTP API its apiserver publishes on the lab's public network, with the
kubeconfig `make lab` writes (`python -m kubelab.lab.kubeconfig`, the same step).

Its own compose project on its own subnets ($KUBELAB_KUBECTL_CLUSTER_NET /
$KUBELAB_KUBECTL_PUBLIC_NET, first three octets), away from a lab of yours (172.28/29)
and the chaos labs (172.30.250/251); always taken down. No Docker or Compose: with
CI=true it fails, elsewhere it skips.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from kubelab.testing.docker import BUILD_TIMEOUT, REPO_ROOT, Compose, compose_problem
from tests.docker_fixtures import require

pytestmark = [pytest.mark.lab, pytest.mark.timeout(BUILD_TIMEOUT + 420)]

LAB_FILE = REPO_ROOT / "compose" / "lab.yaml"
CLUSTER_NET = os.environ.get("KUBELAB_KUBECTL_CLUSTER_NET", "172.30.252")
PUBLIC_NET = os.environ.get("KUBELAB_KUBECTL_PUBLIC_NET", "172.30.253")
NETWORKS = {"KUBELAB_CLUSTER_NET": CLUSTER_NET, "KUBELAB_PUBLIC_NET": PUBLIC_NET}
PROJECT_PREFIX = "kubelab-kubectl-"
KUBECTL = Path(sys.executable).parent / "kubectl"
SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/16")  # compose/lab.yaml's


def table(output: str) -> list[list[str]]:
    return [line.split() for line in output.strip().splitlines()]


def test_kubectl_from_the_host(image: str, tmp_path: Path) -> None:
    require("the lab needs Docker Compose", compose_problem())
    for leftover in Compose.projects(PROJECT_PREFIX):  # a killed run's lab holds the subnets
        Compose(LAB_FILE, leftover, image=image, env=NETWORKS).down()
    compose = Compose(
        LAB_FILE, f"{PROJECT_PREFIX}{uuid.uuid4().hex[:8]}", image=image, env=NETWORKS
    )
    try:
        # Health checks order the start; `up -d` returns once the last container started.
        compose("up", "-d", timeout=300)
        written = subprocess.run(
            [
                sys.executable,
                "-m",
                "kubelab.lab.kubeconfig",
                f"http://{PUBLIC_NET}.20:8080",
                str(tmp_path / "kubeconfig"),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert written.stdout == f"export KUBECONFIG={tmp_path / 'kubeconfig'}\n"
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(tmp_path),  # kubectl caches discovery under ~/.kube
            "KUBECONFIG": str(tmp_path / "kubeconfig"),
        }

        def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [str(KUBECTL), *args], env=env, capture_output=True, text=True, timeout=60
            )

        deadline = time.monotonic() + 120
        while True:
            nodes = kubectl("get", "nodes")
            ready = [r for r in table(nodes.stdout)[1:] if r[1:2] == ["Ready"]]
            if nodes.returncode == 0 and len(ready) == 3:
                break
            assert time.monotonic() < deadline, f"3 Ready nodes: {nodes.stdout}{nodes.stderr}"
            time.sleep(0.5)
        shown = table(nodes.stdout)
        assert shown[0] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
        assert sorted(r[0] for r in shown[1:]) == ["node-1", "node-2", "node-3"]

        service = REPO_ROOT / "examples" / "shop-service.yaml"
        created = kubectl("create", "--validate=false", "-f", str(service))
        assert created.returncode == 0, created.stderr
        wide = kubectl("get", "svc", "-o", "wide")
        assert wide.returncode == 0, wide.stderr
        rows = table(wide.stdout)
        assert rows[0] == [
            "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"
        ]  # fmt: skip
        shop = next(r for r in rows[1:] if r[0] == "shop")
        assert shop[1] == "NodePort"
        assert ipaddress.ip_address(shop[2]) in SERVICE_CIDR
        assert shop[4] == "80:30080/TCP"
        assert shop[6] == "app=shop,env=prod"
    finally:
        compose.down()
