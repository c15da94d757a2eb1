"""Issue 13's reproductions of bad input, through the real `kubelab` CLI and the SDK
against a real apiserver and etcd: each is refused naming the field, the CLI never
prints a traceback or the "kubelab bug" line, and nothing is stored.

The CLI runs as a subprocess with `--server` at the test's apiserver, as a user
runs it; the SDK rows cover what the CLI refuses before sending (an object too
large for a gRPC message) by sending one just small enough to arrive.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from kubelab.client import ApiError, Client
from kubelab.core.kinds import ApiObject
from kubelab.testing.processes import ApiServerProcess
from kubelab.v1 import meta_pb2, objects_pb2

pytestmark = pytest.mark.integration

LIST_KINDS = ("svc", "pods", "deployments", "endpointslices", "nodes")


def pod_yaml(name: str, *, image: str = "kubelab/echo", spec: str = "", env: str = "") -> str:
    env_line = f"    env: [{{name: BIG, value: {env}}}]\n" if env else ""
    return (
        f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n{spec}"
        f"  containers:\n  - name: c\n    image: {image}\n{env_line}"
    )


def svc_yaml(name: str, *, target_port: str = "8080", extra: str = "") -> str:
    return (
        f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n"
        f"  ports: [{{port: 80, targetPort: {target_port}}}]\n{extra}"
    )


SLICE = (
    "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: web-x}\n"
    "addressType: IPv4\nendpoints: [{addresses: [%s]}]\n"
)
NODE = "apiVersion: v1\nkind: Node\nmetadata: {name: n9}\nspec: {podCIDRs: [%s]}\n"

REPRODUCTIONS = [
    pytest.param(pod_yaml("p-image", image='" "'), "spec.containers[0].image", id="image-space"),
    pytest.param(SLICE % "0.0.0.0", "endpoints[0].addresses[0]", id="slice-0.0.0.0"),
    pytest.param(SLICE % "224.0.0.1", "endpoints[0].addresses[0]", id="slice-224.0.0.1"),
    pytest.param(
        svc_yaml("ext", extra="  externalIPs: [0.0.0.0]\n"), "spec.externalIPs[0]", id="ext-ip"
    ),
    pytest.param(NODE % "10.244.1.0/24, 10.244.2.0/24", "spec.podCIDRs", id="two-ipv4-cidrs"),
    pytest.param(svc_yaml("tp-a", target_port='"12345"'), "spec.ports[0].targetPort", id="tp"),
    pytest.param(svc_yaml("tp-b", target_port='"0080"'), "spec.ports[0].targetPort", id="tp-0080"),
    pytest.param(
        pod_yaml("p-neg", spec="  terminationGracePeriodSeconds: -9223372036854775808\n"),
        "spec.terminationGracePeriodSeconds",
        id="grace-negative",
    ),
    pytest.param(
        pod_yaml("p-huge", spec="  terminationGracePeriodSeconds: 9223372036854775808\n"),
        "spec.terminationGracePeriodSeconds",
        id="grace-past-int64",
    ),
    pytest.param(
        svc_yaml("digits", target_port="9" * 5000), "spec.ports[0].targetPort", id="5000-digits"
    ),
    pytest.param(
        pod_yaml("p-env", env="x" * 1_700_000),
        "spec.containers[0].env[0].value: Too long",
        id="env-1.7MB",
    ),
    pytest.param(svc_yaml("a" * 5_000_000), "metadata.name: Invalid value", id="name-5MB"),
]


@pytest.fixture
def kubelab_cli(apiserver: ApiServerProcess, tmp_path: Path) -> list[str]:
    return [sys.executable, "-m", "kubelab.cli.main", "--server", apiserver.address]


def run(
    command: list[str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KUBELAB_SERVER"}
    result = subprocess.run(
        [*command, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert "kubelab bug" not in result.stderr, result.stderr
    return result


async def assert_nothing_stored(api: Client) -> None:
    for kind in LIST_KINDS:
        items, _ = await api.list(kind)
        assert items == [], f"{kind}: {items}"


@pytest.mark.parametrize(("manifest", "field"), REPRODUCTIONS)
async def test_cli_refuses_naming_the_field_and_stores_nothing(
    kubelab_cli: list[str], api: Client, tmp_path: Path, manifest: str, field: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(manifest)
    result = run(kubelab_cli, "apply", "-f", str(path))
    assert result.returncode == 1
    assert result.stdout == ""
    assert field in result.stderr, result.stderr[:2000]
    assert "is invalid" in result.stderr, result.stderr[:2000]
    assert len(result.stderr) < 8192
    await assert_nothing_stored(api)


async def test_cli_huge_grace_period_is_a_usage_error(kubelab_cli: list[str]) -> None:
    result = run(kubelab_cli, "delete", "pod", "p", "--grace-period", "9" * 30)
    assert result.returncode == 2
    assert "--grace-period" in result.stderr


def _service(name: str, **spec: object) -> objects_pb2.Service:
    svc = objects_pb2.Service(metadata=meta_pb2.ObjectMeta(name=name))
    svc.spec.ports.add(port=80)
    for field, value in spec.items():
        setattr(svc.spec, field, value)
    return svc


async def test_sdk_large_objects_are_invalid_argument_not_internal(api: Client) -> None:
    # Just under gRPC's 4 MiB message cap, so they reach the apiserver.
    big_env = objects_pb2.Pod(metadata=meta_pb2.ObjectMeta(name="env"))
    big_env.spec.containers.add(name="c", image="i").env.add(name="BIG", value="x" * 1_700_000)
    cases: list[tuple[ApiObject, str]] = [
        (big_env, "spec.containers[0].env[0].value: Too long"),
        (_service("a" * 3_000_000), "metadata.name: Invalid value"),
    ]
    for obj, field in cases:
        for call in (api.apply, api.create, api.update):
            with pytest.raises(ApiError) as caught:
                await call(obj)
            assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT, caught.value.message
            assert field in caught.value.message
            assert len(caught.value.message) < 8192
    await assert_nothing_stored(api)


async def test_sdk_negative_delete_grace_period_changes_nothing(api: Client) -> None:
    pod = objects_pb2.Pod(metadata=meta_pb2.ObjectMeta(name="bound"))
    pod.spec.containers.add(name="c", image="i")
    pod.spec.node_name = "n1"
    created = await api.create(pod)
    with pytest.raises(ApiError) as caught:
        await api.delete("pod", "bound", grace_period_seconds=-(2**63))
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "gracePeriodSeconds" in caught.value.message
    after = await api.get("pod", "bound")
    assert isinstance(after, objects_pb2.Pod)
    # Status is the apiserver's live view (no node n1 runs it); what is stored is unchanged.
    assert after.metadata.resource_version == created.metadata.resource_version
    assert after.spec == created.spec
    assert not after.metadata.HasField("deletion_timestamp")


async def test_cli_applies_many_objects_near_the_size_limit(
    kubelab_cli: list[str], api: Client, tmp_path: Path
) -> None:
    # Six valid 0.9 MB pods: their answers together pass a client's 4 MiB message cap.
    names = [f"big-{i}" for i in range(6)]
    path = tmp_path / "big.yaml"
    path.write_text("---\n".join(pod_yaml(name, env="x" * 900_000) for name in names))
    result = run(kubelab_cli, "apply", "-f", str(path))
    assert result.returncode == 0, result.stderr[:2000]
    assert result.stdout.splitlines() == [f"pod/{name} created" for name in names]
    for name in names:
        stored = await api.get("pod", name)
        assert isinstance(stored, objects_pb2.Pod)
        assert len(stored.spec.containers[0].env[0].value) == 900_000
