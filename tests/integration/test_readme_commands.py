"""Every command of the README's embedded-mode blocks, run as written, in README order.

A newcomer's path: a fresh `KUBELAB_HOME`, the repository as the working directory, the
virtualenv's `bin` on PATH (`source .venv/bin/activate`), `make up`, then each command of
each ```sh, ```console and ```python block top to bottom, through `bash -c` (or `python -c`).
Each must exit 0 (non-zero where the README shows an error), and where the README shows
output, the real output must have its shape (kubelab.testing.readme: same headers and
names, varying values loose). A command that only reads is retried until its output has
that shape, with a deadline (a curl right after an apply waits for the pods); a command
that changes something runs once. Watches run until they print, then are stopped.

A new README command is tested by default. What cannot be, and why, is in the tables
below; the lab's block (`make lab`, compose) is tests/lab/test_readme_lab.py's.

The README's addresses are fixed (nodes 127.10.0.1-3, NodePort 30080, the LoadBalancer
pool's 127.200.0.1, the DNS on 127.96.0.10): a cluster of yours on them makes this module
skip (fail under CI=true), as it would make the README's commands talk to your cluster.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kubelab.testing.docker import REPO_ROOT
from kubelab.testing.readme import Command, output_problem, readme_commands
from tests.docker_fixtures import require

pytestmark = pytest.mark.integration

README = REPO_ROOT / "README.md"
COMMANDS = [c for c in readme_commands(README.read_text()) if c.kind != "lab"]
START = "make up"  # the fixture runs it: every test needs the cluster it starts
RETRY_FOR = 30.0  # seconds a reading command may take to show the README's shape
WATCH_FOR = 20.0  # seconds a watch may take to print its first lines

# Commands the test does not run, by their first line (comment left out), and why.
NOT_RUN = {
    "make test": "the suite this test is part of",
}
# Programs a README command needs that a machine may lack: how to get each, and whether
# .ci/run installs it (then, under CI=true, missing it is a failure, not a skip).
TOOLS = {
    "grpcurl": (
        "grpcurl is not installed; no Debian (bookworm) package or PyPI package ships it,"
        " so .ci/run cannot install it",
        False,
    ),
    "dig": ("dig is not installed (apt-get install bind9-dnsutils)", True),
}
# Output that cannot have the README's shape in the order shown (by the start of the
# command), and why.
ANY_ORDER = {
    "for node in 1 2 3; do for i in 1 2 3 4 5; do curl -s http://127.10.0.$node:30080/": (
        "each node's proxy starts its round robin where it stands: the same five pods,"
        " in another order"
    ),
}


def _free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        # As a server binds: a closed connection in TIME_WAIT is no cluster.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                return False
            raise
    return True


@dataclass
class Readme:
    """The README's shell: the repository, a fresh KUBELAB_HOME, the venv on PATH."""

    home: Path
    env: dict[str, str] = field(init=False)
    started: subprocess.CompletedProcess[str] | None = None

    def __post_init__(self) -> None:
        venv_bin = str(Path(sys.executable).parent)
        self.env = {
            **os.environ,
            "KUBELAB_HOME": str(self.home),
            "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
            "VIRTUAL_ENV": str(Path(sys.executable).parents[1]),
        }
        self.env.pop("KUBELAB_SERVER", None)

    def run(self, text: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", text],
            cwd=REPO_ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def watch(self, argv: list[str]) -> str:
        """Run a command that runs until stopped: it must print and still be running."""
        with tempfile.TemporaryFile("w+") as out:
            process = subprocess.Popen(
                argv,
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            try:
                deadline = time.monotonic() + WATCH_FOR
                while process.poll() is None and time.monotonic() < deadline:
                    if out.tell() > 0:
                        break
                    time.sleep(0.05)
                running = process.poll() is None
                out.seek(0)
                printed = out.read()  # before Ctrl-C: Python prints a traceback for that
            finally:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C
                    try:
                        process.wait(10)
                    except subprocess.TimeoutExpired:
                        os.killpg(process.pid, signal.SIGKILL)
                        process.wait()
        assert running, f"exited with {process.returncode} instead of watching:\n{printed}"
        assert printed.strip(), f"printed nothing in {WATCH_FOR:.0f} s"
        return printed


def _a_deployment_pod_ip(readme: Readme) -> str:
    pods = json.loads(readme.run("kubelab get pods -o json").stdout)["items"]
    for pod in pods:
        ready = any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in pod.get("status", {}).get("conditions", [])
        )
        if "pod-template-hash" in pod["metadata"].get("labels", {}) and ready:
            return str(pod["status"]["podIP"])
    raise AssertionError(f"no Ready pod of the Deployment: {pods}")


# Commands that name a value of the README's own run: the test puts in this run's value
# (the README's value, the function that finds this run's), and says so.
REWRITES: dict[str, tuple[str, Callable[[Readme], str]]] = {
    "curl http://127.244.3.2:8080/hello": ("127.244.3.2", _a_deployment_pod_ip),
}


@pytest.fixture(scope="module")
def readme(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Readme]:
    taken = [
        f"{host}:{port}"
        for host, port in [(f"127.10.0.{n}", 10250) for n in (1, 2, 3)]
        + [("127.10.0.1", 30080), ("127.10.0.1", 10249), ("127.200.0.1", 8080)]
        if not _free(host, port)
    ]
    require(
        "the README's commands need its addresses",
        f"{', '.join(taken)} in use: another kubelab cluster runs there" if taken else None,
    )
    shell = Readme(tmp_path_factory.mktemp("readme") / "home")
    assert any(c.head == START for c in COMMANDS), f"the README no longer says {START!r}"
    try:
        shell.started = shell.run(START, timeout=300)
        yield shell
    finally:
        shell.run("kubelab down --purge", timeout=120)


def _skip_reason(command: Command) -> str | None:
    if command.head in NOT_RUN:
        return NOT_RUN[command.head]
    if command.kind == "placeholder":
        return "the reader fills in its <...> from an earlier command's output"
    for tool in command.tools:
        if tool in TOOLS and shutil.which(tool) is None:
            reason, ci_installs = TOOLS[tool]
            if ci_installs:
                require(f"README line {command.line}", reason)
            return reason
    return None


@pytest.mark.parametrize("command", COMMANDS, ids=[f"L{c.line}" for c in COMMANDS])
def test_readme_command(readme: Readme, command: Command) -> None:
    reason = _skip_reason(command)
    if reason:
        pytest.skip(f"README line {command.line} ({command.head}): {reason}")
    if command.head == START:
        assert readme.started is not None and readme.started.returncode == 0, (
            readme.started and readme.started.stdout
        )
        return
    text = command.text
    if command.head in REWRITES:
        shown, find = REWRITES[command.head]
        text = text.replace(shown, find(readme))
    if command.watches:
        argv = ["python", "-c", text] if command.lang == "python" else ["bash", "-c", text]
        printed = readme.watch(argv)
        assert "Traceback" not in printed, printed
        return

    deadline = time.monotonic() + (0 if command.changes_state else RETRY_FOR)
    while True:
        result = readme.run(text)
        failed = result.returncode != 0
        printed = result.stdout + result.stderr
        problem = "Traceback in the output" if "Traceback" in printed else None
        if problem is None and failed != command.expects_failure:
            problem = f"exit code {result.returncode}" + (
                " (the README shows an error: it must fail)" if command.expects_failure else ""
            )
        if problem is None and command.expected:
            # What the README shows is what a terminal shows: stdout, or the error on stderr
            # (curl's progress meter goes there too, when stdout is not a terminal).
            any_order = any(map(command.head.startswith, ANY_ORDER))
            problems = [
                output_problem(command.expected, out, any_order)
                for out in (result.stdout, result.stderr, printed)
            ]
            problem = None if None in problems else problems[-1]
        if problem is None or time.monotonic() >= deadline:
            break
        time.sleep(0.2)  # between tries of a reading command; the deadline bounds them
    shown = "\n".join(command.expected) or "(none shown)"
    assert problem is None, (
        f"README line {command.line}: {command.head}\n{problem}\n"
        f"--- the README shows:\n{shown}\n--- it printed:\n{result.stdout}\n"
        f"--- on stderr:\n{result.stderr}"
    )
