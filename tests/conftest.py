"""Fixtures shared by every test tier."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from kubelab.testing.processes import ApiServerProcess, EtcdServer

# Hypothesis' per-example deadline (200 ms) and its too-slow health check time the
# machine, not the code: on a busy 2-core machine (the suite beside stress-ng, or
# xdist workers sharing the cores) an example that takes 2 ms idle can take 300 ms,
# and the test fails for that alone. A property either holds or not; how long an
# example takes is the benchmarks' business.
settings.register_profile("kubelab", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("kubelab")

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
