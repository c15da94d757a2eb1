"""gRPC's fork handlers are off in every kubelab process (kubelab/__init__.py).

Actors fork only to exec (pods, `ip`, the supervisor's children). uvloop forks with the
handlers running, and with another thread inside a gRPC call (a node agent's lease keeper
always is) they can deadlock the process: a lab node agent froze that way under load.
gRPC logs "skipping fork() handlers" at info level each time it meets that case, which
is what the behavioural test counts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.integration

# A gRPC server and a thread calling it without pause, then 60 forks from uvloop.
FORKS = textwrap.dedent(
    """
    import sys
    if sys.argv[1]:
        __import__(sys.argv[1])
    import asyncio, threading
    from concurrent import futures
    import grpc, uvloop
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    server = grpc.server(futures.ThreadPoolExecutor(2))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    stub = health_pb2_grpc.HealthStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
    done = threading.Event()

    def call() -> None:
        while not done.is_set():
            stub.Check(health_pb2.HealthCheckRequest())

    caller = threading.Thread(target=call)
    caller.start()

    async def forks() -> None:
        for _ in range(60):
            child = await asyncio.create_subprocess_exec("true")
            await child.wait()

    uvloop.run(forks())
    done.set()
    caller.join()
    server.stop(0)
    """
)


def run_forks(first_import: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "GRPC_ENABLE_FORK_SUPPORT"}
    env["GRPC_VERBOSITY"] = "info"
    result = subprocess.run(
        [sys.executable, "-c", FORKS, first_import],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stderr


@pytest.mark.parametrize("package", ["kubelab", "services", "node_agent"])
def test_importing_a_kubelab_package_turns_the_fork_handlers_off(package: str) -> None:
    assert "fork_posix" not in run_forks(package)


def test_without_it_the_handlers_run_on_every_uvloop_fork() -> None:
    """The control: the check above can see the handlers when they are on."""
    assert "skipping fork() handlers" in run_forks("")


@pytest.mark.parametrize("package", ["kubelab", "services", "node_agent"])
def test_the_setting_comes_before_grpc_loads(package: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "GRPC_ENABLE_FORK_SUPPORT"}
    check = (
        f"import sys, os; import {package}; "
        "print(os.environ.get('GRPC_ENABLE_FORK_SUPPORT'), 'grpc' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", check], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["false", "False"]
    explicit = {**env, "GRPC_ENABLE_FORK_SUPPORT": "true"}
    out = subprocess.run(
        [sys.executable, "-c", check], env=explicit, capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["true", "False"], "a user's own value is kept"
