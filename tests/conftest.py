"""Fixtures shared by every test tier."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kubelab.testing.processes import ApiServerProcess, EtcdServer

# The Docker `image` fixture, for tests/lab and tests/chaos.
pytest_plugins = ["tests.docker_fixtures"]


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    """A real etcd server, fresh for each test (starting one takes well under a second)."""
    server = EtcdServer(tmp_path / "etcd")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def service_cidr() -> str:
    """The apiserver's Service range; integration tests that run proxies override it."""
    return "127.96.0.0/16"


@pytest.fixture
def apiserver(etcd: EtcdServer, tmp_path: Path, service_cidr: str) -> Iterator[ApiServerProcess]:
    """A real apiserver process on a free port, talking to the test's etcd."""
    process = ApiServerProcess(etcd.endpoint, tmp_path, extra_args=("--service-cidr", service_cidr))
    process.start()
    yield process
    process.stop()
