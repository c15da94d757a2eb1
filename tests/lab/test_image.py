"""The kubelab container image (compose/Dockerfile, built by compose/build-image.sh).

The `image` fixture (tests/docker_fixtures.py) builds it, or takes $KUBELAB_LAB_IMAGE.
Containers from it must run every actor's entry point and the tools node agents and users
rely on, and an etcd and an apiserver container must serve the CLI in a third one over a
user-defined network.

No Docker: with CI=true the tests fail (CI must have it); elsewhere they skip, saying why.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from kubelab.testing.docker import BUILD_TIMEOUT, REPO_ROOT, docker, tail

# Building takes minutes on a clean machine, inside the first test's setup (the `image`
# fixture, tests/docker_fixtures.py).
pytestmark = [pytest.mark.lab, pytest.mark.timeout(BUILD_TIMEOUT + 300)]


def run_in(image: str, *command: str) -> str:
    """Run a command in a throwaway container; its output, or the test fails."""
    result = docker("run", "--rm", "--network", "none", image, *command)
    return result.stdout + result.stderr


def test_etcd_binaries_are_on_path(image: str) -> None:
    assert "etcd Version: 3.5" in run_in(image, "etcd", "--version")
    assert "etcdctl version: 3.5" in run_in(image, "etcdctl", "version")


def test_every_actor_imports(image: str) -> None:
    run_in(
        image,
        "python",
        "-c",
        "import kubelab, services.apiserver, services.controller, services.dns, "
        "services.cloud_stub, node_agent",
    )


def test_cli_runs(image: str) -> None:
    assert "Usage: kubelab" in run_in(image, "kubelab", "--help")


def test_node_and_user_tools(image: str) -> None:
    assert "iproute2" in run_in(image, "ip", "-V")
    assert "util-linux" in run_in(image, "setpriv", "--version")
    assert "procps" in run_in(image, "ps", "--version")
    assert "curl" in run_in(image, "curl", "--version")


@pytest.fixture
def network() -> Iterator[tuple[str, list[str]]]:
    """A user-defined network with a unique name, and a list the test puts the names of its
    containers in; both are removed afterwards, whatever happened."""
    name = f"kubelab-labtest-{uuid.uuid4().hex[:10]}"
    containers: list[str] = []
    docker("network", "create", name)
    try:
        yield name, containers
    finally:
        if containers:
            docker("rm", "--force", "--volumes", *containers, check=False)
        docker("network", "rm", name, check=False)


# The client retries until the apiserver serves (a few seconds), printing the last failure.
CLIENT_RETRY = """
for attempt in $(seq 60); do
  if kubelab get nodes >/tmp/out 2>&1; then cat /tmp/out; exit 0; fi
  sleep 1
done
cat /tmp/out
exit 1
"""


def test_apiserver_serves_the_cli_across_containers(
    image: str, network: tuple[str, list[str]]
) -> None:
    net, containers = network
    etcd, apiserver, client = (f"{net}-{role}" for role in ("etcd", "apiserver", "client"))
    containers += [etcd, apiserver, client]
    common = ["--init", "--network", net]
    docker(
        "run", "--detach", "--name", etcd, *common, "--network-alias", "etcd", image,
        "etcd", "--name", "etcd", "--data-dir", "/var/lib/etcd", "--log-level", "warn",
        "--listen-client-urls", "http://0.0.0.0:2379",
        "--advertise-client-urls", "http://etcd:2379",
        "--listen-peer-urls", "http://0.0.0.0:2380",
        "--initial-advertise-peer-urls", "http://etcd:2380",
        "--initial-cluster", "etcd=http://etcd:2380",
    )  # fmt: skip
    docker(
        "run", "--detach", "--name", apiserver, *common, "--network-alias", "apiserver", image,
        "python", "-m", "services.apiserver", "--listen", "0.0.0.0:6443", "--etcd", "etcd:2379",
    )  # fmt: skip

    def logs() -> str:
        parts = []
        for name in (etcd, apiserver):
            result = docker("logs", name, check=False)
            parts.append(f"--- docker logs {name}:\n{tail(result.stdout + result.stderr)}")
        return "\n".join(parts)

    client_env = ["--env", "KUBELAB_SERVER=apiserver:6443"]
    got = docker(
        "run", "--rm", "--name", client, *common, *client_env, image, "sh", "-c", CLIENT_RETRY,
        check=False, timeout=120,
    )  # fmt: skip
    assert got.returncode == 0, f"kubelab get nodes failed:\n{got.stdout}\n{logs()}"
    assert "No resources found" in got.stdout + got.stderr

    # A write goes through the apiserver into etcd, and reads back with its ClusterIP.
    manifest = (REPO_ROOT / "examples" / "shop-service.yaml").read_text()
    applied = docker(
        "run", "--rm", "-i", *common, *client_env, image, "kubelab", "apply", "-f", "-",
        stdin=manifest, check=False,
    )  # fmt: skip
    assert applied.returncode == 0, f"{applied.stdout}{applied.stderr}\n{logs()}"
    assert "service/shop created" in applied.stdout
    listed = docker("run", "--rm", *common, *client_env, image, "kubelab", "get", "svc", "shop")
    assert "NodePort" in listed.stdout and "80:30080/TCP" in listed.stdout, listed.stdout


def test_a_build_leaves_no_dangling_kubelab_image(image: str) -> None:
    """Each build replaces kubelab:latest; the image it replaced must not stay behind."""
    dangling = docker(
        "images",
        "--quiet",
        "--filter",
        "dangling=true",
        "--filter",
        "label=org.opencontainers.image.title=kubelab",
    ).stdout.split()
    assert dangling == []


def test_a_build_keeps_only_its_own_revision_tag(image: str) -> None:
    """kubelab:<sha> of earlier builds would keep an image per commit built."""
    if image != "kubelab:latest":
        pytest.skip(f"the image under test is {image}, not a build of this checkout")
    revision = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
    ).stdout.strip()
    tags = docker(
        "image",
        "ls",
        "--filter",
        "label=org.opencontainers.image.title=kubelab",
        "--format",
        "{{.Repository}}:{{.Tag}}",
        "kubelab",
    ).stdout.split()
    revisions = [tag for tag in tags if re.fullmatch(r"kubelab:[0-9a-f]{7,40}", tag)]
    assert revisions == [f"kubelab:{revision}"], tags
