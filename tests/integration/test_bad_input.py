"""The bad-input campaign: generated mistakes against one real cluster (etcd, apiserver,
a node agent), through the SDK, the real `kubelab apply -f -` and raw gRPC.

Whatever a client sends, the answer is never INTERNAL or UNKNOWN, the apiserver logs no
traceback, the CLI never calls its own output a kubelab bug, a refused object is not
stored, and the cluster serves afterwards. Inputs come from `kubelab.testing.badinput`,
drawn deterministically, so a failure here reproduces on every run.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Awaitable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest

from kubelab.client import ApiError, Client
from kubelab.core import kinds, manifests
from kubelab.core.kinds import ApiObject
from kubelab.core.printing import kind_ref
from kubelab.core.validation.namespaces import SYSTEM_NAMESPACES
from kubelab.testing import badinput
from kubelab.testing.processes import ApiServerProcess, NodeAgentProcess
from kubelab.v1 import api_pb2, objects_pb2
from services.apiserver.logic.rbac_bootstrap import default_objects

pytestmark = pytest.mark.integration

MANIFESTS = 2000
RAW_PER_METHOD = 70
CLI_BATCH = 400
# Documents the client itself refuses stop a CLI run at the first of them (nothing is
# sent); every one is checked against the same loader in-process, a sample through the CLI.
CLI_REFUSED_SAMPLE = 12
SERVER_FAULTS = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
# What a client's grpc says when the server's answer itself was refused (too large).
BROKEN_ANSWER = "Stream removed"
_RESULT_LINE = re.compile(r"^(\S+)/(\S+) (created|configured|unchanged)$")

Key = tuple[str, str, str]  # resource, namespace, name


def _key(obj: ApiObject) -> Key:
    info = kinds.info_of(obj)
    return info.resource, obj.metadata.namespace or "", obj.metadata.name


def _load(text: str) -> list[manifests.LoadedObject] | None:
    """What the CLI would send; None when the client refuses it (a ManifestError, worded
    for the user). Any other exception is the CLI's "kubelab bug" and fails the test."""
    try:
        return manifests.load_manifests(text)
    except manifests.ManifestError:
        return None


async def _bounded(calls: Sequence[Awaitable[None]], limit: int = 12) -> None:
    gate = asyncio.Semaphore(limit)

    async def one(call: Awaitable[None]) -> None:
        async with gate:
            await call

    await asyncio.gather(*(one(c) for c in calls))


def _identity(data: bytes) -> bytes:
    return data


async def _through_sdk(api: Client, docs: list[Any]) -> tuple[set[Key], set[Key], Counter[str]]:
    accepted: set[Key] = set()
    refused: set[Key] = set()
    codes: Counter[str] = Counter()
    calls: list[Awaitable[None]] = []

    async def call(obj: ApiObject) -> None:
        try:
            written, _ = await api.apply(obj)
        except ApiError as err:
            assert err.code not in SERVER_FAULTS, (err, obj)
            assert err.message and BROKEN_ANSWER not in err.message, err
            codes[err.code.name] += 1
            refused.add(_key(obj))
            return
        codes["OK"] += 1
        accepted.add(_key(written))

    for number, doc in enumerate(docs):
        loaded = _load(badinput.render(doc, f"sdk-{number}"))
        if loaded is None:
            codes["refused by the client"] += 1
            continue
        for item in loaded:
            if item.info.namespaced and not item.object.metadata.namespace:
                item.object.metadata.namespace = "default"
            calls.append(call(item.object))
    await _bounded(calls)
    return accepted, refused, codes


def _cli(server: str, home: Path, text: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBELAB_HOME": str(home)}
    env.pop("KUBELAB_SERVER", None)
    env.pop("KUBELAB_DEBUG", None)
    result = subprocess.run(
        [sys.executable, "-m", "kubelab.cli.main", "apply", "-f", "-", "--server", server],
        input=text,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode in (0, 1), output[-2000:]
    for fault in ("kubelab bug", "Traceback", "InternalError", "(Unknown)", "internal error"):
        assert fault not in output, output[-2000:]
    return result


def _through_cli(server: str, home: Path, docs: list[Any]) -> tuple[set[Key], int]:
    """The keys of what the CLI said it applied, and how many documents it sent."""
    sendable: list[str] = []
    refused: list[str] = []
    keys: dict[tuple[str, str], Key] = {}
    for number, doc in enumerate(docs):
        text = badinput.render(doc, f"cli-{number}")
        loaded = _load(text)
        if loaded is None:
            refused.append(text)
            continue
        sendable.append(text)
        for item in loaded:
            meta = item.object.metadata
            namespace = (meta.namespace or "default") if item.info.namespaced else ""
            keys[kind_ref(item.info), meta.name] = (item.info.resource, namespace, meta.name)
    applied: set[Key] = set()
    for start in range(0, len(sendable), CLI_BATCH):
        batch = sendable[start : start + CLI_BATCH]
        result = _cli(server, home, "\n---\n".join(batch))
        for line in result.stdout.splitlines():
            match = _RESULT_LINE.match(line)
            assert match, line
            applied.add(keys[match[1], match[2]])
    sample = refused[:: max(1, len(refused) // CLI_REFUSED_SAMPLE)]
    with ThreadPoolExecutor(3) as pool:
        for result in pool.map(lambda text: _cli(server, home, text), sample):
            assert result.returncode == 1 and result.stderr.startswith("error: "), result.stderr
            assert not result.stdout
    return applied, len(sendable)


async def _stored(api: Client, keys: set[Key]) -> set[Key]:
    """Which of `keys` name a stored object."""
    found: set[Key] = set()

    async def probe(key: Key) -> None:
        resource, namespace, name = key
        try:
            await api.get(resource, name, namespace)
        except ApiError as err:
            assert err.code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT), err
            return
        found.add(key)

    await _bounded([probe(k) for k in keys])
    return found


def _valid_requests() -> dict[str, tuple[str, list[bytes]]]:
    """Per Api method: its shape and valid requests' bytes, to damage."""
    svc = objects_pb2.Service()
    svc.metadata.name = "raw"
    svc.spec.ports.add(port=80)
    wrapped = kinds.wrap(svc)
    key = api_pb2.ObjectKey(kind="services", namespace="default", name="raw")
    return {
        "Create": ("unary", [api_pb2.CreateRequest(object=wrapped).SerializeToString()]),
        "Update": ("unary", [api_pb2.UpdateRequest(object=wrapped).SerializeToString()]),
        "Apply": ("unary", [api_pb2.ApplyRequest(object=wrapped).SerializeToString()]),
        "ApplyStream": ("stream", [api_pb2.ApplyChunk(objects=[wrapped]).SerializeToString()]),
        "Get": ("unary", [api_pb2.GetRequest(key=key).SerializeToString()]),
        "List": ("unary", [api_pb2.ListRequest(kind="pods").SerializeToString()]),
        "Delete": (
            "unary",
            [api_pb2.DeleteRequest(key=key, resource_version="5").SerializeToString()],
        ),
        "Watch": (
            "watch",
            [api_pb2.WatchRequest(kind="svc", resource_version="1").SerializeToString()],
        ),
    }


async def _raw_call(channel: grpc.aio.Channel, path: str, shape: str, data: bytes) -> str:
    """The status code the server answers `data` with (the first message of a stream)."""
    try:
        if shape == "unary":
            unary = channel.unary_unary(path, _identity, _identity)
            await unary(data, timeout=10)
        elif shape == "watch":
            async for _ in channel.unary_stream(path, _identity, _identity)(data, timeout=3):
                break
        else:
            stream = channel.stream_stream(path, _identity, _identity)
            async for _ in stream(iter([data]), timeout=10):
                pass
    except grpc.aio.AioRpcError as err:
        if shape == "watch" and err.code() is grpc.StatusCode.DEADLINE_EXCEEDED:
            return "OK"  # a valid watch with nothing to send yet
        assert err.code() not in SERVER_FAULTS, (path, data, err.code(), err.details())
        assert BROKEN_ANSWER not in (err.details() or ""), (path, data, err.details())
        return str(err.code().name)
    return "OK"


async def _raw(api_address: str, node_address: str) -> Counter[str]:
    codes: Counter[str] = Counter()
    targets: list[tuple[str, str, str, list[bytes]]] = [
        (api_address, f"/kubelab.v1.Api/{method}", shape, valid)
        for method, (shape, valid) in _valid_requests().items()
    ]
    # The same registration serves every actor and the health service.
    targets.append((node_address, "/kubelab.v1.NodeAgent/ListPods", "unary", [b""]))
    targets.append((api_address, "/grpc.health.v1.Health/Check", "unary", [b""]))
    options = [("grpc.max_receive_message_length", -1), ("grpc.enable_http_proxy", 0)]
    channels = {
        address: grpc.aio.insecure_channel(address, options=options)
        for address in (api_address, node_address)
    }
    try:

        async def call(address: str, path: str, shape: str, data: bytes) -> None:
            codes[await _raw_call(channels[address], path, shape, data)] += 1

        calls = [
            call(address, path, shape, data)
            for address, path, shape, valid in targets
            for data in badinput.examples(badinput.raw_messages(valid), RAW_PER_METHOD)
        ]
        await _bounded(calls)
    finally:
        for channel in channels.values():
            await channel.close()
    return codes


async def test_bad_input_never_meets_a_server_fault(
    apiserver: ApiServerProcess, node: NodeAgentProcess, tmp_path: Path
) -> None:
    docs = badinput.examples(badinput.mutated(), MANIFESTS)
    async with Client(apiserver.address, timeout=30) as api:
        accepted, refused, codes = await _through_sdk(api, docs)
        assert codes["OK"] and codes["INVALID_ARGUMENT"], codes

        applied, sent = await asyncio.to_thread(
            _through_cli, apiserver.address, tmp_path / "home", docs
        )
        assert sent > 100 and applied, (sent, applied)

        # A refused object is not stored; an accepted one is.
        assert await _stored(api, refused - accepted) == set()
        assert await _stored(api, accepted) == accepted
        assert await _stored(api, applied) == applied
        # And nothing else was stored, under any key: the node, the system namespaces and
        # the default RBAC policy were there before (events are what the node agent says
        # of accepted pods).
        everything = {
            _key(obj)
            for info in kinds.ALL_KINDS
            if info is not kinds.EVENTS
            for obj in (await api.list(info.resource))[0]
        }
        system = {("namespaces", "", name) for name in SYSTEM_NAMESPACES}
        roles, bindings = default_objects()
        system |= {("clusterroles", "", role.metadata.name) for role in roles}
        system |= {("clusterrolebindings", "", b.metadata.name) for b in bindings}
        assert everything - accepted - applied == {("nodes", "", node.name), *system}

        raw = await _raw(apiserver.address, node.address)
        assert sum(raw.values()) >= 500 and raw["INVALID_ARGUMENT"], raw

        # The cluster still serves.
        svc = objects_pb2.Service()
        svc.metadata.name = "after-campaign"
        svc.spec.ports.add(port=80)
        written, _ = await api.apply(svc)
        assert (await api.get("svc", "after-campaign")).metadata.uid == written.metadata.uid
        nodes, _ = await api.list("nodes")
        assert node.name in {n.metadata.name for n in nodes}
    assert node.process is not None and node.process.poll() is None
    for log in (apiserver.log_path, node.log_path):
        assert "Traceback" not in log.read_text(errors="replace"), log
