"""The node agent's gRPC API against hostile input, real agent process and real etcd:
`Logs` reads only the log of a container of a pod this node runs (no path from the caller
reaches the filesystem, no symlink is followed), `KillPod` refuses a signal `kill -l` does
not list, and neither answers UNKNOWN for a client mistake."""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from google.protobuf import json_format

from kubelab.client import Client
from kubelab.testing.processes import NodeAgentProcess
from kubelab.testing.wait import until_passes
from kubelab.v1 import node_pb2, node_pb2_grpc, objects_pb2

if TYPE_CHECKING:  # a stub-only class: the typed face of the stub on an aio channel
    from kubelab.v1.node_pb2_grpc import NodeAgentAsyncStub

pytestmark = pytest.mark.integration

SECRET = "root:x:0:0"  # what /etc/passwd starts with


@pytest.fixture
async def stub(node: NodeAgentProcess) -> AsyncIterator[NodeAgentAsyncStub]:
    async with grpc.aio.insecure_channel(node.address) as channel:
        yield node_pb2_grpc.NodeAgentStub(channel)


def pod(name: str, node_name: str) -> objects_pb2.Pod:
    def container(say: str) -> dict[str, object]:
        return {
            "name": say,
            "image": "busybox",
            "command": ["sh", "-c", f"echo hello-{say}; exec sleep 600"],
        }

    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": node_name,
            "containers": [container("app"), container("side")],
            "terminationGracePeriodSeconds": 1,
        },
    }
    return json_format.ParseDict(body, objects_pb2.Pod())


async def read_logs(stub: NodeAgentAsyncStub, **fields: object) -> bytes:
    request = node_pb2.LogsRequest(**{"namespace": "default", "name": "web", **fields})  # type: ignore[arg-type]
    return b"".join([chunk.data async for chunk in stub.Logs(request)])


async def refused(stub: NodeAgentAsyncStub, **fields: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await read_logs(stub, **fields)
    assert SECRET not in (caught.value.details() or "")
    return caught.value


@pytest.fixture
async def web(node: NodeAgentProcess, api: Client, stub: NodeAgentAsyncStub) -> Path:
    """The pod `web` running on the node, both containers' first line written; its directory."""
    await api.create(pod("web", node.name))

    async def started() -> None:
        assert await read_logs(stub, container="app") == b"hello-app\n"
        assert await read_logs(stub, container="side") == b"hello-side\n"

    await until_passes("web's containers started", started, timeout=30)
    return node.workdir / node.name / "pods" / "default_web"


async def test_logs_of_paths_symlinks_and_foreign_pods_are_refused_and_reveal_nothing(
    node: NodeAgentProcess, api: Client, stub: NodeAgentAsyncStub, web: Path
) -> None:
    assert await read_logs(stub) == b"hello-app\n"  # the first container by default
    for path in ("../../../etc/passwd", "/etc/passwd", "app/../../../../../etc/passwd", "."):
        err = await refused(stub, container=path)
        assert err.code() is grpc.StatusCode.INVALID_ARGUMENT, path
        assert (err.details() or "").startswith("container: Invalid value"), err.details()
    err = await refused(stub, container="nope")
    assert err.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "container nope is not valid for pod web" in (err.details() or "")
    err = await refused(stub, container="app", namespace="../../..")
    assert err.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (err.details() or "").startswith("namespace: Invalid value")

    await api.create(pod("elsewhere", "node-9"))  # bound to another node
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Logs(node_pb2.LogsRequest(name="elsewhere", container="app")).read()
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND

    # A container can write into its pod's directory: links it plants are not followed.
    (web / "app.previous.log").symlink_to("/etc/passwd")
    os.replace(_link(web, "/etc/passwd"), web / "side.log")
    for fields in ({"container": "app", "previous": True}, {"container": "side"}):
        err = await refused(stub, **fields)
        assert err.code() is grpc.StatusCode.NOT_FOUND, fields
    assert await read_logs(stub, container="app") == b"hello-app\n"

    assert _modes(web.parent, web, web / "app.log") == [0o700, 0o700, 0o600]


async def test_kill_with_a_bad_signal_is_invalid_and_the_pod_runs_on(
    node: NodeAgentProcess, stub: NodeAgentAsyncStub, web: Path
) -> None:
    for signal in (-1, 32, 65, 2**31 - 1):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.KillPod(node_pb2.KillPodRequest(name="web", signal=signal))
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT, signal
        details = caught.value.details() or ""
        assert details.startswith(f"signal: Invalid value: {signal}: "), details
        assert "1-31, 34-64" in details
    for request, field in (
        (node_pb2.KillPodRequest(), "name: Required value"),
        (node_pb2.KillPodRequest(name="Web/.."), "name: Invalid value"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.KillPod(request)
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert (caught.value.details() or "").startswith(field)
    err = await refused(stub, tail_lines=-1)
    assert err.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (err.details() or "").startswith("tailLines: Invalid value: -1")

    listed = await stub.ListPods(node_pb2.ListPodsRequest())
    (status,) = [p.status for p in listed.pods if p.metadata.name == "web"]
    assert [c.restart_count for c in status.container_statuses] == [0, 0]
    assert all(c.state.HasField("running") for c in status.container_statuses)
    pid = (await stub.KillPod(node_pb2.KillPodRequest(name="web", signal=15))).pid
    assert pid > 0


def _link(directory: Path, target: str) -> Path:
    link = directory / ".planted"
    link.symlink_to(target)
    return link


def _modes(*paths: Path) -> list[int]:
    return [stat.S_IMODE(os.stat(path).st_mode) for path in paths]
