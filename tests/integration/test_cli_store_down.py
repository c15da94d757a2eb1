"""Errors name the component that is down: with etcd stopped the CLI says the cluster's
store is unavailable (the apiserver answers), with the apiserver stopped it says the
apiserver cannot be reached. Real etcd, real apiserver, the CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kubelab.testing.processes import ApiServerProcess, EtcdServer

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "shop-service.yaml"


def kubelab(home: Path, server: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBELAB_HOME": str(home), "KUBELAB_SERVER": server}
    result = subprocess.run(
        [sys.executable, "-m", "kubelab.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert "kubelab bug" not in result.stderr, result.stderr
    return result


def test_a_stopped_etcd_is_named_and_a_stopped_apiserver_too(
    etcd: EtcdServer, apiserver: ApiServerProcess, tmp_path: Path
) -> None:
    home, server = tmp_path / "home", apiserver.address
    assert kubelab(home, server, "get", "svc").returncode == 0
    etcd.stop()
    for args in (("get", "svc"), ("apply", "-f", str(EXAMPLE)), ("delete", "svc", "shop")):
        result = kubelab(home, server, *args)
        assert result.returncode == 1, args
        lines = result.stderr.splitlines()
        assert lines[0].startswith(
            f"error: the cluster's store (etcd) is unavailable: the apiserver at {server} "
            "answers but cannot reach it ("
        ), lines
        assert lines[1:] == [
            "etcd is stopped or has lost its quorum; see which actor is down with: kubelab status"
        ]
        assert "cannot reach the apiserver" not in result.stderr
    apiserver.stop()
    result = kubelab(home, server, "get", "svc")
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == (
        f"error: cannot reach the apiserver at {server}: the connection was refused - "
        "did you specify the right host or port?"
    )
    assert "etcd" not in result.stderr
