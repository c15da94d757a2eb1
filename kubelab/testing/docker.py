"""Docker and Docker Compose for the container tiers (tests/lab, tests/chaos).

Plain subprocess calls to the `docker` command and to `compose/compose.sh` (Compose v2 or
v1, whichever this machine has): no registry, no reaper container, nothing pulled
(DESIGN §7a). Compose v1 and v2 name containers differently (`_` vs `-`), so `Compose`
addresses everything by compose *service* name and resolves container ids with
`compose ps -q SERVICE`, and networks through their compose labels.

Failures raise `DockerError` with the command's output; no pytest in here.
"""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "compose" / "build-image.sh"
COMPOSE_SCRIPT = REPO_ROOT / "compose" / "compose.sh"
IMAGE = "kubelab:latest"
BUILD_TIMEOUT = 20 * 60.0


class DockerError(Exception):
    """A docker or compose command failed (or did not finish in time)."""


def tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


def run_command(
    command: list[str],
    *,
    check: bool = True,
    timeout: float = 120.0,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(
            command,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, **env} if env else None,
        )
    except subprocess.TimeoutExpired as err:
        raise DockerError(f"{' '.join(command)} did not finish within {timeout:g}s") from err
    if check and result.returncode != 0:
        raise DockerError(
            f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
        )
    return result


def docker(
    *args: str, check: bool = True, timeout: float = 120.0, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return run_command(["docker", *args], check=check, timeout=timeout, stdin=stdin)


def docker_problem() -> str | None:
    """Why Docker cannot be used here, or None."""
    if shutil.which("docker") is None:
        return "the docker command is not installed"
    try:
        info = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 30s"
    if info.returncode != 0:
        return f"the Docker daemon does not answer: {info.stderr.strip()}"
    return None


def compose_problem() -> str | None:
    """Why Docker Compose cannot be used here, or None."""
    result = run_command([str(COMPOSE_SCRIPT), "version"], check=False, timeout=30)
    if result.returncode != 0:
        return f"no Docker Compose: {tail(result.stdout + result.stderr, 3)}"
    return None


def build_image() -> str:
    """Build kubelab:latest with compose/build-image.sh (seconds when nothing changed)."""
    build = run_command([str(BUILD_SCRIPT)], check=False, timeout=BUILD_TIMEOUT)
    if build.returncode != 0:
        raise DockerError(
            f"{BUILD_SCRIPT} exited {build.returncode}:\n{tail(build.stdout + build.stderr)}"
        )
    return IMAGE


def created_at(text: str) -> float:
    """Docker's `CreatedAt` ("2026-11-24 10:39:57[.123456789] +0000 UTC"), as epoch seconds."""
    day, clock, offset = text.split()[:3]
    whole, _, fraction = clock.partition(".")
    stamp = datetime.datetime.strptime(f"{day} {whole} {offset}", "%Y-%m-%d %H:%M:%S %z")
    return stamp.timestamp() + (float(f"0.{fraction}") if fraction else 0.0)


class Compose:
    """One compose project (`-p project`) of one compose file, addressed by service name."""

    def __init__(
        self, file: Path, project: str, *, image: str = IMAGE, env: Mapping[str, str] | None = None
    ) -> None:
        self.file = file
        self.project = project
        # compose/lab.yaml reads the image from ${KUBELAB_IMAGE:-kubelab:latest}; `env`
        # sets the file's other variables.
        self.env = {"KUBELAB_IMAGE": image, **(env or {})}
        self._ids: dict[str, str] = {}

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 120.0, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        command = [str(COMPOSE_SCRIPT), "-f", str(self.file), "-p", self.project, *args]
        return run_command(command, check=check, timeout=timeout, stdin=stdin, env=self.env)

    def container(self, service: str) -> str:
        """The container id of `service` (v1 and v2 name containers differently)."""
        if service not in self._ids:
            found = self("ps", "-q", service).stdout.split()
            if len(found) != 1:
                raise DockerError(f"compose ps -q {service}: {found or 'no container'}")
            self._ids[service] = found[0]
        return self._ids[service]

    def network(self, name: str) -> str:
        """The real name of the compose network `name` (the project prefixes it)."""
        found = docker(
            "network", "ls",
            "--filter", f"label=com.docker.compose.project={self.project}",
            "--filter", f"label=com.docker.compose.network={name}",
            "--format", "{{.Name}}",
        ).stdout.split()  # fmt: skip
        if len(found) != 1:
            raise DockerError(f"network {name} of project {self.project}: {found or 'none'}")
        return found[0]

    def exec(
        self, service: str, *command: str, stdin: str | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in `service`'s container (docker exec: no compose TTY questions)."""
        args = ["exec", "-i"] if stdin is not None else ["exec"]
        return docker(*args, self.container(service), *command, stdin=stdin, timeout=timeout)

    def logs(self, service: str, lines: int = 40) -> str:
        try:
            result = docker("logs", "--tail", str(lines), self.container(service), check=False)
        except DockerError as err:
            return f"(no logs: {err})"
        return result.stdout + result.stderr

    def services(self) -> list[str]:
        return self("config", "--services").stdout.split()

    @staticmethod
    def projects(prefix: str) -> dict[str, float]:
        """Compose projects named `prefix...` with a container or a network on this host,
        and how long ago (seconds) their youngest one was created."""
        fields = '{{.Label "com.docker.compose.project"}}|{{.CreatedAt}}'
        found = docker("ps", "-a", "--filter", "label=com.docker.compose.project",
                       "--format", fields).stdout.splitlines()  # fmt: skip
        found += docker("network", "ls", "--filter", "label=com.docker.compose.project",
                        "--format", fields).stdout.splitlines()  # fmt: skip
        ages: dict[str, float] = {}
        for line in found:
            name, _, created = line.partition("|")
            if name.startswith(prefix):
                age = time.time() - created_at(created)
                ages[name] = min(age, ages.get(name, age))
        return ages

    def down(self) -> None:
        self("down", "-v", "-t", "1", "--remove-orphans", check=False, timeout=180)
        self._ids.clear()
