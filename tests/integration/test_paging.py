"""Lists of any size (issue 13): paged with limit / continue end to end, no message over a
limit, and actors that start over a cluster larger than one gRPC message.

The reproduction: 17 Services with a 250 kB annotation each (valid; 4.25 MB in all) used
to answer `apply` with an error although all were stored, answer `get svc -A` with
INTERNAL, and keep any restarted actor from listing its state."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import dns.asyncquery
import dns.message
import grpc
import pytest
from google.protobuf import json_format

from kubelab.client import ApiError, Client
from kubelab.core.endpointslices import SERVICE_NAME_LABEL
from kubelab.core.kinds import ApiObject
from kubelab.etcd_process import etcd_binary
from kubelab.testing import wait
from kubelab.testing.processes import (
    ApiServerProcess,
    ControllerProcess,
    DnsProcess,
    EtcdServer,
    NodeAgentProcess,
)
from kubelab.v1 import objects_pb2

pytestmark = pytest.mark.integration

BIG = 17
ANNOTATION = 250_000


def service(name: str, labels: dict[str, str] | None = None) -> objects_pb2.Service:
    body = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80}]},
    }
    return json_format.ParseDict(body, objects_pb2.Service())


def names(items: Sequence[ApiObject]) -> list[str]:
    return sorted(i.metadata.name for i in items)


@pytest.fixture
async def api(apiserver: ApiServerProcess) -> AsyncIterator[Client]:
    async with Client(apiserver.address, timeout=30) as client:
        yield client


def kubelab(apiserver: ApiServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBELAB_SERVER": apiserver.address}
    command = [sys.executable, "-m", "kubelab.cli.main", *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    return result


async def compact(etcd: EtcdServer, revision: str) -> None:
    etcdctl = Path(etcd_binary()).with_name("etcdctl")
    done = await asyncio.create_subprocess_exec(
        str(etcdctl),
        f"--endpoints={etcd.endpoint}",
        "compact",
        revision,
        stdout=asyncio.subprocess.DEVNULL,
    )
    assert await done.wait() == 0


async def test_pages_with_a_selector_are_one_snapshot(api: Client) -> None:
    for n in range(12):
        await api.create(service(f"s{n:02}", {"env": "prod" if n % 3 == 0 else "dev"}))
    seen: list[ApiObject] = []
    pages = 0
    token = ""
    first_rv = ""
    while True:
        page = await api.list_page("svc", "default", "env=prod", limit=5, continue_token=token)
        pages += 1
        assert len(page.items) <= 5
        first_rv = first_rv or page.resource_version
        assert page.resource_version == first_rv
        seen += page.items
        if pages == 1:
            # Written after the first page: not in this list's snapshot.
            await api.create(service("s99", {"env": "prod"}))
            await api.delete("svc", "s00")
        token = page.continue_token
        if not token:
            break
    # 12 Services in pages of 5 read: the selector keeps only a part of each page.
    assert pages == 3
    assert names(seen) == ["s00", "s03", "s06", "s09"]
    everything, _ = await api.list("svc", label_selector="env=prod", chunk_size=2)
    assert names(everything) == ["s03", "s06", "s09", "s99"]


async def test_an_exact_last_page_ends_the_list(api: Client) -> None:
    for n in range(4):
        await api.create(service(f"e{n}"))
    first = await api.list_page("svc", limit=2)
    assert first.continue_token
    second = await api.list_page("svc", limit=2, continue_token=first.continue_token)
    assert names(second.items) == ["e2", "e3"] and second.continue_token == ""


async def test_a_continue_token_after_compaction_is_out_of_range(
    etcd: EtcdServer, api: Client
) -> None:
    for n in range(5):
        await api.create(service(f"c{n}"))
    page = await api.list_page("svc", limit=2)
    await api.create(service("later"))
    _, now = await api.list("svc")
    await compact(etcd, now)
    with pytest.raises(ApiError) as caught:
        await api.list_page("svc", limit=2, continue_token=page.continue_token)
    assert caught.value.code is grpc.StatusCode.OUT_OF_RANGE
    assert "continue parameter is too old" in caught.value.message
    # A new list (no token) works at once.
    items, _ = await api.list("svc", chunk_size=2)
    assert len(items) == 6


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("garbage", id="garbage"),
        pytest.param(
            # {"v":"meta.k8s.io/v1","rv":5,"start":"../allocations/"}
            "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6NSwic3RhcnQiOiIuLi9hbGxvY2F0aW9ucy8ifQ",
            id="escapes-the-prefix",
        ),
        pytest.param(
            # {"v":"meta.k8s.io/v1","rv":99999999,"start":"default/a"}
            "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6OTk5OTk5OTksInN0YXJ0IjoiZGVmYXVsdC9hIn0",
            id="future-revision",
        ),
    ],
)
async def test_a_forged_continue_token_is_invalid_argument(api: Client, token: str) -> None:
    with pytest.raises(ApiError) as caught:
        await api.list_page("svc", limit=2, continue_token=token)
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "invalid continue token" in caught.value.message


def big_manifests() -> str:
    docs = [
        f"apiVersion: v1\nkind: Service\nmetadata:\n  name: big{n}\n"
        f"  annotations:\n    blob: {'x' * ANNOTATION}\n"
        f"spec:\n  selector: {{app: big{n}}}\n  ports: [{{port: 80, name: web}}]\n"
        for n in range(BIG)
    ]
    return "---\n".join(docs)


async def until_resolves(server: DnsProcess, name: str, want: str) -> None:
    async def answer() -> list[str]:
        query = dns.message.make_query(name, "A")
        reply = await dns.asyncquery.udp(query, server.host, port=server.port, timeout=2)
        return [r.to_text() for rrset in reply.answer for r in rrset]

    await wait.until(f"{name} to resolve to {want}", answer, lambda got: got == [want], timeout=30)


async def until_sliced(api: Client, service_names: list[str]) -> None:
    async def missing() -> list[str]:
        slices, _ = await api.list("endpointslices", "default")
        owners = {s.metadata.labels.get(SERVICE_NAME_LABEL) for s in slices}
        return [n for n in service_names if n not in owners]

    await wait.until(
        "an EndpointSlice for every Service",
        missing,
        lambda names: not names,
        timeout=30,
        interval=0.1,
        describe=lambda names: f"none for {names}",
    )


async def test_services_larger_than_a_message_apply_list_and_restart(
    etcd: EtcdServer, apiserver: ApiServerProcess, api: Client, tmp_path: Path
) -> None:
    controller = ControllerProcess(etcd.endpoint, tmp_path)
    node = NodeAgentProcess(
        etcd.endpoint,
        tmp_path,
        1,
        ip_base=f"127.10.{random.randint(100, 254)}",
        pod_base=f"127.{random.randint(200, 250)}",
    )
    dns_server = DnsProcess(etcd.endpoint, tmp_path)
    controller.start()
    dns_server.start()
    try:
        manifest = tmp_path / "big.yaml"
        manifest.write_text(big_manifests())
        applied = kubelab(apiserver, "apply", "-f", str(manifest))
        assert applied.returncode == 0, applied.stderr
        assert applied.stdout.count(" created") == BIG

        listed = kubelab(apiserver, "get", "svc", "-A")
        assert listed.returncode == 0, listed.stderr
        assert sum(f" big{n} " in listed.stdout for n in range(BIG)) == BIG

        chunked = kubelab(apiserver, "get", "svc", "--chunk-size", "3", "-o", "name")
        assert chunked.returncode == 0, chunked.stderr
        assert sorted(chunked.stdout.split()) == sorted(f"service/big{n}" for n in range(BIG))

        items, _ = await api.list("svc", "default")
        assert names(items) == sorted(f"big{n}" for n in range(BIG))
        added: list[ApiObject] = []
        async for event in api.watch("svc", "default"):
            if event.type == "BOOKMARK":
                break
            assert event.type == "ADDED" and event.object is not None
            added.append(event.object)
        assert names(added) == names(items)
        # No count limit asked: the page still ends at its byte budget.
        page = await api.list_page("svc", "default", limit=0)
        assert 0 < len(page.items) < BIG and page.continue_token

        # Actors that die and start again over this state list it and serve; a node
        # agent (its proxy lists every Service) joins over it.
        controller.kill()
        dns_server.stop()
        await api.delete("endpointslices", *(await slice_of(api, "big3")))
        controller.start()
        dns_server.start()
        node.start()
        big3 = await api.get("svc", "big3")
        assert isinstance(big3, objects_pb2.Service)
        await until_resolves(dns_server, "big3.default.svc.cluster.local.", big3.spec.cluster_ip)
        await until_sliced(api, [f"big{n}" for n in range(BIG)])
        await until_ready(api, node.name)
    finally:
        node.stop()
        dns_server.stop()
        controller.stop()


async def until_ready(api: Client, node_name: str) -> None:
    async def conditions() -> dict[str, str]:
        node = await api.get("nodes", node_name, "")
        assert isinstance(node, objects_pb2.Node)
        return {c.type: c.status for c in node.status.conditions}

    await wait.until(
        f"{node_name} Ready",
        conditions,
        lambda c: c.get("Ready") == "True",
        timeout=30,
        interval=0.1,
    )


async def slice_of(api: Client, service_name: str) -> tuple[str, str]:
    async def slices() -> list[ApiObject]:
        items, _ = await api.list(
            "endpointslices", "default", f"{SERVICE_NAME_LABEL}={service_name}"
        )
        return items

    found = await wait.until(
        f"an EndpointSlice for {service_name}", slices, timeout=30, interval=0.1
    )
    return found[0].metadata.name, "default"
