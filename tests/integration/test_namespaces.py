"""Namespaces as real objects, through the real apiserver, controller and node agents.

A namespaced object may only be created in a namespace that exists and is not being
deleted (Kubernetes' words and codes); the system namespaces exist from the start;
deleting a namespace empties it (pods gracefully, through their node agents) and
then removes it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format

from kubelab.client import ApiError, Client
from kubelab.core import kinds
from kubelab.core.kinds import ApiObject
from kubelab.testing.processes import ApiServerProcess, EtcdServer
from kubelab.v1 import meta_pb2, objects_pb2
from tests.integration.conftest import Cluster, deployment

pytestmark = pytest.mark.integration


def namespace(name: str) -> objects_pb2.Namespace:
    return objects_pb2.Namespace(metadata=meta_pb2.ObjectMeta(name=name))


def service(name: str, ns: str, **spec: object) -> objects_pb2.Service:
    body = {
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "selector": {"app": "shop"},
            "ports": [{"port": 80, "targetPort": "8080"}],
            **spec,
        },
    }
    return json_format.ParseDict(body, objects_pb2.Service())


async def until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def names(api: Client, kind: str, ns: str = "") -> set[str]:
    items, _ = await api.list(kind, ns)
    return {i.metadata.name for i in items}


async def test_system_namespaces_exist_and_default_cannot_be_deleted(api: Client) -> None:
    found = await names(api, "namespaces")
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= found
    default = await api.get("namespaces", "default", "")
    assert isinstance(default, objects_pb2.Namespace)
    assert default.status.phase == "Active"
    assert list(default.spec.finalizers) == ["kubernetes"]
    assert default.metadata.labels["kubernetes.io/metadata.name"] == "default"
    with pytest.raises(ApiError) as refused:
        await api.delete("namespaces", "default", "")
    assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert refused.value.message == (
        'namespaces "default" is forbidden: this namespace may not be deleted'
    )


async def test_a_second_apiserver_on_the_same_etcd_finds_them_and_creates_none(
    api: Client, etcd: EtcdServer, tmp_path: Path
) -> None:
    before = {n: (await api.get("namespaces", n, "")).metadata.uid for n in ("default",)}
    second = ApiServerProcess(etcd.endpoint, tmp_path / "second")
    (tmp_path / "second").mkdir()
    second.start()
    try:
        async with Client(second.address, timeout=5) as other:
            after = (await other.get("namespaces", "default", "")).metadata.uid
    finally:
        second.stop()
    assert after == before["default"]


async def test_a_missing_namespace_is_refused_in_kubernetes_words(api: Client) -> None:
    with pytest.raises(ApiError) as refused:
        await api.create(service("shop", "nope"))
    assert refused.value.code == grpc.StatusCode.NOT_FOUND
    assert refused.value.message == 'namespaces "nope" not found'
    with pytest.raises(ApiError) as applied:
        await api.apply(service("shop", "nope"))
    assert applied.value.message == 'namespaces "nope" not found'
    assert await names(api, "services", "nope") == set()

    await api.create(namespace("nope"))
    created = await api.create(service("shop", "nope"))
    assert created.metadata.namespace == "nope"


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("Dev", id="upper-case"),
        pytest.param("a.b", id="dot"),
        pytest.param("-a", id="dash"),
    ],
)
async def test_a_namespace_name_is_a_dns_label(api: Client, name: str) -> None:
    with pytest.raises(ApiError) as refused:
        await api.create(namespace(name))
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    message = refused.value.message
    assert message.startswith(f'Namespace "{name}" is invalid: ')
    assert f'metadata.name: Invalid value: "{name}": ' in message


async def test_deleting_a_namespace_empties_it_then_removes_it(
    cluster: Cluster, api: Client
) -> None:
    await api.create(namespace("dev"))
    shop = deployment(2)
    shop.metadata.namespace = "dev"
    await api.create(shop)
    await api.create(service("shop", "dev"))
    await api.create(service("other", "default"))

    async def running() -> bool:
        items, _ = await api.list("pods", "dev")
        return len(items) == 2 and all(
            p.status.pod_ip for p in items if isinstance(p, objects_pb2.Pod)
        )

    await until(running, 30, "two pods running in dev")
    await until(lambda: _has(api, "endpointslices", "dev"), 10, "the slice in dev")
    await until(lambda: _has(api, "events", "dev"), 10, "events in dev")

    deleted = await api.delete("namespaces", "dev", "")
    assert isinstance(deleted, objects_pb2.Namespace)
    assert deleted.status.phase == "Terminating"
    assert deleted.metadata.HasField("deletion_timestamp")

    with pytest.raises(ApiError) as refused:
        await api.create(service("late", "dev"))
    assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert refused.value.message == (
        'services "late" is forbidden: unable to create new content in namespace dev '
        "because it is being terminated"
    )

    async def gone() -> bool:
        try:
            await api.get("namespaces", "dev", "")
        except ApiError as err:
            return err.code == grpc.StatusCode.NOT_FOUND
        return False

    await until(gone, 40, "namespace dev to be removed")
    for info in (kinds.DEPLOYMENTS, kinds.SERVICES, kinds.PODS, kinds.ENDPOINTSLICES, kinds.EVENTS):
        assert await names(api, info.resource, "dev") == set(), info.resource
    # What lived elsewhere is untouched.
    assert "other" in await names(api, "services", "default")


async def _has(api: Client, kind: str, ns: str) -> bool:
    items: list[ApiObject]
    items, _ = await api.list(kind, ns)
    return bool(items)


def cli(
    apiserver: ApiServerProcess, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubelab.cli.main", "--server", apiserver.address, *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
    )


MANIFEST = """\
apiVersion: v1
kind: Namespace
metadata:
  name: team-a
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: team-a
spec:
  selector: {app: web}
  ports: [{port: 80}]
"""


def test_the_cli_creates_lists_applies_and_deletes_namespaces(apiserver: ApiServerProcess) -> None:
    created = cli(apiserver, "create", "namespace", "dev")
    assert (created.returncode, created.stdout) == (0, "namespace/dev created\n"), created.stderr
    again = cli(apiserver, "create", "ns", "dev")
    assert again.returncode == 1
    assert again.stderr == 'Error from server (AlreadyExists): namespaces "dev" already exists\n'

    missing = cli(apiserver, "apply", "-f", "-", stdin=MANIFEST.split("---\n")[1])
    assert missing.returncode == 1
    assert 'namespaces "team-a" not found' in missing.stderr

    applied = cli(apiserver, "apply", "-f", "-", stdin=MANIFEST)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout == "namespace/team-a created\nservice/web created\n"

    listed = cli(apiserver, "get", "ns")
    rows = [line.split() for line in listed.stdout.splitlines()]
    assert rows[0] == ["NAME", "STATUS", "AGE"]
    assert {r[0]: r[1] for r in rows[1:]} == {
        "default": "Active",
        "dev": "Active",
        "kube-node-lease": "Active",
        "kube-public": "Active",
        "kube-system": "Active",
        "team-a": "Active",
    }
    assert cli(apiserver, "get", "svc", "-n", "team-a", "-o", "name").stdout == "service/web\n"

    deleted = cli(apiserver, "delete", "ns", "dev")
    assert (deleted.returncode, deleted.stdout) == (0, 'namespace "dev" deleted\n'), deleted.stderr
    refused = cli(apiserver, "delete", "ns", "kube-system")
    assert refused.returncode == 1
    assert refused.stderr == (
        'Error from server (Forbidden): namespaces "kube-system" is forbidden: '
        "this namespace may not be deleted\n"
    )


async def test_a_stream_applies_a_namespace_before_what_lives_in_it(api: Client) -> None:
    """The objects after a Namespace, in its chunk and in the chunks that follow, are
    applied once it exists (kubectl applies in file order)."""
    objects: list[ApiObject] = [service(f"svc-{i}", "bulk") for i in range(3)]
    objects.insert(2, namespace("bulk"))  # after two of its objects, in the first chunk
    objects += [service(f"later-{i}", "bulk") for i in range(5)]
    results = [r async for r in api.apply_many(objects, chunk_size=4)]
    assert [r for _, r in results] == ["created"] * len(objects)
    assert len(await names(api, "services", "bulk")) == 8
