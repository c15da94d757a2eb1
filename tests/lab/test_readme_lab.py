"""The lab's block (docs/lab.md, which the README links), run as written: `make lab`, then
each `compose/compose.sh -f compose/lab.yaml -p kubelab ...` command in order, each checked
as tests/integration/test_readme_commands.py checks the embedded ones (exit code, the shape
of the output shown, reading commands retried with a deadline); then `make lab-down`, which
the page says removes it.

It runs the documentation's own compose project (`-p kubelab`) on its subnets
(172.28.0.0/24, 172.29.0.0/24), since its commands name them: a lab of yours running there
makes it skip (fail under CI=true), and it is never touched. The chaos suite's labs run
on other subnets, so they are not in the way.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable

import pytest

from kubelab.testing.docker import BUILD_TIMEOUT, REPO_ROOT, compose_problem, docker
from kubelab.testing.readme import documented_commands
from tests.docker_fixtures import require
from tests.readme_shell import Shell

pytestmark = pytest.mark.lab

COMMANDS = [
    c
    for c in documented_commands(
        (REPO_ROOT / "README.md").read_text(), lambda page: (REPO_ROOT / page).read_text()
    )
    if c.kind == "lab"
]
PROJECT = "kubelab"  # the README's `-p kubelab`
SUBNETS = [ipaddress.ip_network("172.28.0.0/24"), ipaddress.ip_network("172.29.0.0/24")]
# By the start of the command: the README says it fails, not by an error message.
EXPECT_FAILURE = {
    "compose/compose.sh -f compose/lab.yaml -p kubelab exec client curl -m 2": (
        "outside: times out (a ClusterIP answers only inside)"
    ),
}


def _shop_cluster_ip(shell: Shell) -> str:
    got = shell.run(
        f"compose/compose.sh -f compose/lab.yaml -p {PROJECT} exec -T client"
        " kubelab get svc shop -o json"
    )
    assert got.returncode == 0, got.stdout + got.stderr
    return str(json.loads(got.stdout)["spec"]["clusterIP"])


# Commands (by their start) that name a value of the README's own run: this run's value
# goes in instead.
REWRITES: dict[str, tuple[str, Callable[[Shell], str]]] = {
    "compose/compose.sh -f compose/lab.yaml -p kubelab exec client curl -m 2": (
        "10.96.82.252",
        _shop_cluster_ip,
    ),
}


def _lab_in_the_way() -> str | None:
    mine = docker(
        "ps", "-aq", "--filter", f"label=com.docker.compose.project={PROJECT}", check=False
    )
    if mine.stdout.strip():
        return f"compose project {PROJECT!r} exists (a lab of yours? `make lab-down` removes it)"
    for name in docker("network", "ls", "--format", "{{.Name}}").stdout.split():
        subnets = docker(
            "network", "inspect", name, "--format", "{{range .IPAM.Config}}{{.Subnet}} {{end}}"
        ).stdout.split()
        for subnet in subnets:
            if any(ipaddress.ip_network(subnet).overlaps(s) for s in SUBNETS):
                return f"Docker network {name} holds {subnet}, which the documented lab uses"
    return None


@pytest.mark.timeout(BUILD_TIMEOUT + 600)  # `make lab` may build the image
def test_the_lab_block_runs_as_written(
    image: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    require("the lab block needs Docker Compose", compose_problem())
    require("the lab block needs its project and subnets", _lab_in_the_way())
    shell = Shell(tmp_path_factory.mktemp("readme-lab") / "home", terminal=True)
    try:
        for command in COMMANDS:
            text = command.text
            for start, (shown, find) in REWRITES.items():
                if command.head.startswith(start):
                    text = text.replace(shown, find(shell))
            fails = [why for start, why in EXPECT_FAILURE.items() if command.head.startswith(start)]
            if fails:
                result = shell.run(text)
                assert result.returncode != 0, (
                    f"{command.where}: {command.head}: exited 0, but the documentation"
                    f" says: {fails[0]}\n{result.stdout}{result.stderr}"
                )
                continue
            shell.check(command, text, timeout=BUILD_TIMEOUT if command.head == "make lab" else 60)
    finally:
        down = shell.run("make lab-down", timeout=180)
    assert down.returncode == 0, down.stdout + down.stderr


def test_the_lab_block_is_found() -> None:
    # Without Docker the test above skips: an edit that loses the block, or the
    # lab's start, must fail somewhere all the same.
    heads = [c.head for c in COMMANDS]
    assert heads[:1] == ["make lab"] and len(heads) >= 5, heads
