"""Fixtures shared by every test tier."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from kubelab.testing.processes import ApiServerProcess, EtcdServer  # noqa: E402


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    """A real etcd server, fresh for each test (starting one takes well under a second)."""
    server = EtcdServer(tmp_path / "etcd")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def apiserver(etcd: EtcdServer, tmp_path: Path) -> Iterator[ApiServerProcess]:
    """A real apiserver process on a free port, talking to the test's etcd."""
    process = ApiServerProcess(etcd.endpoint, tmp_path)
    process.start()
    yield process
    process.stop()
