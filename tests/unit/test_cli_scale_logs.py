"""`scale`, `logs`, `delete --grace-period` and the node agent client, without a cluster.

The apiserver is a small fake (`FakeApi`: get/update like the SDK); the node
agent is a real gRPC server in this process serving a fake `NodeAgent`, so the
agent client's address discovery, streaming and error codes go over the wire.
"""

from __future__ import annotations

import asyncio
import io
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any, TypeVar, cast

import click
import grpc
import pytest
from click.testing import CliRunner
from google.protobuf.message import Message

from kubelab.agent_client import AgentAddress, AgentClient, NoAgentAddressError, agent_address
from kubelab.cli.common import Settings
from kubelab.cli.delete import FORCE_WARNING, delete_each, settle_grace_period
from kubelab.cli.errors import CliError
from kubelab.cli.logs import (
    USAGE,
    LogsOptions,
    agent_error,
    parse_logs_args,
    pick_container,
    pod_node,
    request_tail,
    stream_logs,
)
from kubelab.cli.main import cli
from kubelab.cli.scale import (
    MAX_ATTEMPTS,
    REPLICAS_REQUIRED,
    check_counts,
    check_precondition,
    current_replicas,
    scale_one,
)
from kubelab.client import ApiError, Client
from kubelab.core import kinds
from kubelab.v1 import node_pb2, node_pb2_grpc, objects_pb2

T = TypeVar("T")
NODE = "node-1"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    # Never the user's ~/.kubelab, never a real server.
    monkeypatch.setenv("KUBELAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KUBELAB_SERVER", f"127.0.0.1:{closed_port()}")
    return CliRunner()


def make_deployment(replicas: int | None, resource_version: str = "1") -> objects_pb2.Deployment:
    deployment = objects_pb2.Deployment(api_version="apps/v1", kind="Deployment")
    deployment.metadata.name = "shop"
    deployment.metadata.namespace = "default"
    deployment.metadata.resource_version = resource_version
    if replicas is not None:
        deployment.spec.replicas = replicas
    return deployment


def make_pod(
    name: str = "web-1", node: str = NODE, containers: tuple[str, ...] = ("web",)
) -> objects_pb2.Pod:
    pod = objects_pb2.Pod(api_version="v1", kind="Pod")
    pod.metadata.name = name
    pod.metadata.namespace = "default"
    pod.spec.node_name = node
    for container in containers:
        pod.spec.containers.add(name=container, image="kubelab/echo")
    return pod


def make_node(host: str, port: int, name: str = NODE) -> objects_pb2.Node:
    node = objects_pb2.Node(api_version="v1", kind="Node")
    node.metadata.name = name
    if host:
        node.status.addresses.add(type="Hostname", address=name)
        node.status.addresses.add(type="InternalIP", address=host)
    node.status.daemon_endpoints.kubelet_endpoint.port = port
    return node


class FakeApi:
    """The SDK's get/update over a dict; optionally a writer that races the first updates."""

    target = "127.0.0.1:6443"

    def __init__(self, *objects: Message, races: int = 0, racer_replicas: int = 9) -> None:
        self.stored: dict[tuple[str, str], Message] = {}
        for obj in objects:
            self.put(obj)
        self.races = races
        self.racer_replicas = racer_replicas
        self.updates: list[Message] = []

    def put(self, obj: Message) -> None:
        info = kinds.info_of(obj)
        self.stored[(info.resource, cast(Any, obj).metadata.name)] = obj

    async def get(self, kind: str, name: str, namespace: str = "default") -> Message:
        found = self.stored.get((kinds.kind_info(kind).resource, name))
        if found is None:
            raise ApiError(grpc.StatusCode.NOT_FOUND, f'{kind} "{name}" not found')
        copy = type(found)()
        copy.CopyFrom(found)
        return copy

    async def update(self, obj: Message) -> Message:
        self.updates.append(obj)
        stored = cast(objects_pb2.Deployment, self.stored[("deployments", "shop")])
        if self.races:  # someone else wrote first
            self.races -= 1
            stored.spec.replicas = self.racer_replicas
            stored.metadata.resource_version = str(int(stored.metadata.resource_version) + 1)
        sent = cast(objects_pb2.Deployment, obj)
        if sent.metadata.resource_version != stored.metadata.resource_version:
            raise ApiError(grpc.StatusCode.ABORTED, "the object has been modified")
        stored.CopyFrom(sent)
        stored.metadata.resource_version = str(int(stored.metadata.resource_version) + 1)
        return obj


def api(fake: FakeApi) -> Client:
    return cast(Client, fake)


def run_with(fake: FakeApi) -> Callable[[Callable[[Client], Awaitable[T]], Settings], T]:
    """A stand-in for `kubelab.cli.common.run` that talks to `fake`."""

    def run(body: Callable[[Client], Awaitable[T]], settings: Settings) -> T:
        async def main() -> T:
            return await body(api(fake))

        return asyncio.run(main())

    return run


# ---------------------------------------------------------------- scale


@pytest.mark.parametrize(
    ("replicas", "current", "message"),
    [
        pytest.param(None, -1, REPLICAS_REQUIRED, id="replicas-missing"),
        pytest.param(-1, -1, REPLICAS_REQUIRED, id="replicas-negative"),
        pytest.param(
            3,
            -2,
            "The --current-replicas must specify an integer of -1",
            id="current-below-minus-1",
        ),
    ],
)
def test_scale_counts_are_checked_like_kubectl(
    replicas: int | None, current: int, message: str
) -> None:
    with pytest.raises(CliError, match=message):
        check_counts(replicas, current)


@pytest.mark.parametrize("replicas", [pytest.param(0, id="zero"), pytest.param(6, id="six")])
def test_scale_counts_accept_zero_and_up(replicas: int) -> None:
    assert check_counts(replicas, -1) == replicas


def test_replicas_message_is_kubectls() -> None:
    assert REPLICAS_REQUIRED == (
        "error: The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0"
    )


def test_precondition() -> None:
    check_precondition(-1, 4)
    check_precondition(4, 4)
    with pytest.raises(CliError) as caught:
        check_precondition(3, 4)
    assert caught.value.message == "error: Expected replicas to be 3, was 4"


def test_unset_replicas_count_as_one() -> None:
    assert current_replicas(make_deployment(None)) == 1
    assert current_replicas(make_deployment(0)) == 0


async def test_scale_writes_replicas_with_the_read_resource_version() -> None:
    fake = FakeApi(make_deployment(4, resource_version="7"))
    await scale_one(api(fake), "default", "shop", 6)
    sent = cast(objects_pb2.Deployment, fake.updates[0])
    assert sent.spec.replicas == 6
    assert sent.metadata.resource_version == "7"


async def test_scale_retries_a_lost_compare_and_swap_from_a_fresh_read() -> None:
    fake = FakeApi(make_deployment(4), races=1, racer_replicas=5)
    await scale_one(api(fake), "default", "shop", 6)
    assert len(fake.updates) == 2
    stored = cast(objects_pb2.Deployment, fake.stored[("deployments", "shop")])
    assert stored.spec.replicas == 6


async def test_scale_rechecks_the_precondition_after_a_lost_race() -> None:
    fake = FakeApi(make_deployment(4), races=1, racer_replicas=5)
    with pytest.raises(CliError, match="Expected replicas to be 4, was 5"):
        await scale_one(api(fake), "default", "shop", 6, expected_current=4)
    stored = cast(objects_pb2.Deployment, fake.stored[("deployments", "shop")])
    assert stored.spec.replicas == 5


async def test_scale_gives_up_after_a_few_conflicts() -> None:
    fake = FakeApi(make_deployment(4), races=MAX_ATTEMPTS)
    with pytest.raises(CliError, match=r"^Error from server \(Conflict\)"):
        await scale_one(api(fake), "default", "shop", 6)
    assert len(fake.updates) == MAX_ATTEMPTS


async def test_scale_to_the_same_count_writes_nothing() -> None:
    fake = FakeApi(make_deployment(4))
    await scale_one(api(fake), "default", "shop", 4)
    assert fake.updates == []


async def test_scale_of_a_missing_deployment_is_not_found() -> None:
    with pytest.raises(CliError) as caught:
        await scale_one(api(FakeApi()), "default", "nope", 2)
    assert caught.value.message == 'Error from server (NotFound): deployments.apps "nope" not found'


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["scale", "deploy", "shop", "--replicas", "6"], id="kind-name"),
        pytest.param(["scale", "deployment/shop", "--replicas=6"], id="slash-form"),
        pytest.param(["scale", "--replicas", "6", "deployments.apps", "shop"], id="qualified"),
    ],
)
def test_scale_command_prints_kubectls_line(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    fake = FakeApi(make_deployment(4))
    monkeypatch.setattr("kubelab.cli.scale.run", run_with(fake))
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert result.stdout == "deployment.apps/shop scaled\n"


def test_scale_command_reports_a_missing_name_and_scales_the_rest(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeApi(make_deployment(4))
    monkeypatch.setattr("kubelab.cli.scale.run", run_with(fake))
    result = runner.invoke(cli, ["scale", "deploy", "nope", "shop", "--replicas", "2"])
    assert result.exit_code == 1
    assert result.stderr == 'Error from server (NotFound): deployments.apps "nope" not found\n'
    assert result.stdout == "deployment.apps/shop scaled\n"


def test_scale_command_precondition(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeApi(make_deployment(4))
    monkeypatch.setattr("kubelab.cli.scale.run", run_with(fake))
    result = runner.invoke(cli, ["scale", "deploy/shop", "--replicas", "6", "--current-replicas=3"])
    assert result.exit_code == 1
    assert result.stderr == "error: Expected replicas to be 3, was 4\n"
    assert fake.updates == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["scale", "deploy", "shop"], REPLICAS_REQUIRED, id="no-replicas"),
        pytest.param(
            ["scale", "deploy", "shop", "--replicas", "-3"], REPLICAS_REQUIRED, id="negative"
        ),
        pytest.param(
            ["scale", "svc", "shop", "--replicas", "2"],
            "error: cannot scale services",
            id="not-scalable",
        ),
        pytest.param(
            ["scale", "deploy", "--replicas", "2"], "no name was specified", id="no-names"
        ),
        pytest.param(
            ["scale", "deploy", "shop", "-l", "app=shop", "--replicas", "2"],
            "names cannot be combined with -l or --all",
            id="names-and-selector",
        ),
        pytest.param(
            ["scale", "--replicas", "2"], "you must specify the type of resource", id="nothing"
        ),
    ],
)
def test_scale_user_errors_exit_1_before_any_call(
    runner: CliRunner, args: list[str], message: str
) -> None:
    result = runner.invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert message in result.stderr
    assert "refused" not in result.stderr, "nothing may be sent"


# ---------------------------------------------------------------- delete grace flags


@pytest.mark.parametrize(
    ("grace", "force", "now", "expected"),
    [
        pytest.param(-1, False, False, (None, None), id="default-the-pods-own"),
        pytest.param(5, False, False, (5, None), id="explicit"),
        pytest.param(-7, False, False, (None, None), id="negative-ignored"),
        pytest.param(0, False, False, (1, None), id="zero-without-force-becomes-1"),
        pytest.param(0, True, False, (0, FORCE_WARNING), id="zero-with-force"),
        pytest.param(-1, True, False, (0, FORCE_WARNING), id="force-alone-means-zero"),
        pytest.param(-1, False, True, (1, None), id="now"),
    ],
)
def test_grace_period_flags(
    grace: int, force: bool, now: bool, expected: tuple[int | None, str | None]
) -> None:
    assert settle_grace_period(grace, force, now) == expected


@pytest.mark.parametrize(
    ("grace", "force", "now", "message"),
    [
        pytest.param(3, False, True, "--now and --grace-period cannot be specified together"),
        pytest.param(0, False, True, "--now and --grace-period cannot be specified together"),
        pytest.param(3, True, False, "--force and --grace-period greater than 0 cannot"),
        pytest.param(-1, True, True, "--force and --grace-period greater than 0 cannot"),
    ],
)
def test_grace_period_conflicts(grace: int, force: bool, now: bool, message: str) -> None:
    with pytest.raises(CliError, match=message):
        settle_grace_period(grace, force, now)


def test_force_warning_is_kubectls() -> None:
    assert FORCE_WARNING.startswith(
        "warning: Immediate deletion does not wait for confirmation that the running resource "
        "has been terminated."
    )


class DeletingApi:
    target = "127.0.0.1:6443"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int | None]] = []

    async def delete(
        self,
        kind: str,
        name: str,
        namespace: str = "default",
        resource_version: str = "",
        grace_period_seconds: int | None = None,
    ) -> Message:
        self.calls.append((kind, name, grace_period_seconds))
        return objects_pb2.Pod()


@pytest.mark.parametrize(
    ("grace", "word"),
    [
        pytest.param(None, "deleted", id="default"),
        pytest.param(1, "deleted", id="graceful"),
        pytest.param(0, "force deleted", id="force"),
    ],
)
async def test_delete_passes_the_grace_period(
    capsys: pytest.CaptureFixture[str], grace: int | None, word: str
) -> None:
    fake = DeletingApi()
    failures = await delete_each(
        cast(Client, fake), [(kinds.PODS, "default", "web-1")], False, grace
    )
    assert failures == 0
    assert fake.calls == [("pods", "web-1", grace)]
    assert capsys.readouterr().out == f'pod "web-1" {word}\n'


def test_delete_force_warns_on_stderr(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = DeletingApi()

    def run(body: Callable[[Client], Awaitable[T]], settings: Settings) -> T:
        async def main() -> T:
            return await body(cast(Client, fake))

        return asyncio.run(main())

    monkeypatch.setattr("kubelab.cli.delete.run", run)
    result = runner.invoke(cli, ["delete", "pod", "web-1", "--force"])
    assert result.exit_code == 0, result.output
    assert result.stderr == FORCE_WARNING + "\n"
    assert result.stdout == 'pod "web-1" force deleted\n'
    assert fake.calls == [("pods", "web-1", 0)]


# ---------------------------------------------------------------- logs arguments


@pytest.mark.parametrize(
    ("args", "container", "expected"),
    [
        pytest.param(("web-1",), "", ("web-1", ""), id="pod"),
        pytest.param(("pod/web-1",), "", ("web-1", ""), id="slash-form"),
        pytest.param(("po/web-1",), "web", ("web-1", "web"), id="alias-and-c"),
        pytest.param(("web-1", "web"), "", ("web-1", "web"), id="inline-container"),
    ],
)
def test_parse_logs_args(args: tuple[str, ...], container: str, expected: tuple[str, str]) -> None:
    assert parse_logs_args(args, container) == expected


@pytest.mark.parametrize(
    ("args", "container", "message"),
    [
        pytest.param((), "", USAGE, id="nothing"),
        pytest.param(("a", "b"), "c", "only one of -c or an inline [CONTAINER] arg", id="c-twice"),
        pytest.param(("a", "b", "c"), "", "too many arguments: c", id="three"),
        pytest.param(("deploy/shop",), "", "reads pods, not deployments", id="not-a-pod"),
        pytest.param(("pod/",), "", "must have a name", id="no-name"),
        pytest.param(("gadget/x",), "", 'resource type "gadget"', id="unknown-kind"),
    ],
)
def test_parse_logs_args_errors(args: tuple[str, ...], container: str, message: str) -> None:
    with pytest.raises(CliError) as caught:
        parse_logs_args(args, container)
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("tail", "follow", "expected"),
    [
        pytest.param(-1, False, 0, id="all"),
        pytest.param(-1, True, 0, id="all-follow"),
        pytest.param(20, True, 20, id="last-20"),
        pytest.param(0, False, 0, id="none-read-and-dropped"),
    ],
)
def test_request_tail(tail: int, follow: bool, expected: int) -> None:
    assert request_tail(tail, follow) == expected


def test_tail_zero_with_follow_is_refused() -> None:
    with pytest.raises(CliError, match="--tail=0 with -f is not supported"):
        request_tail(0, True)


def test_an_unscheduled_pod_has_no_logs() -> None:
    with pytest.raises(CliError) as caught:
        pod_node(make_pod("shop-x", node=""))
    assert caught.value.message == "error: pod shop-x is not scheduled to a node yet"


@pytest.mark.parametrize(
    ("containers", "asked", "expected"),
    [
        pytest.param(("web",), "", ("web", None), id="only-one"),
        pytest.param(("web",), "web", ("web", None), id="named"),
        pytest.param(
            ("web", "side"),
            "",
            ("web", 'Defaulted container "web" out of: web, side'),
            id="defaulted",
        ),
    ],
)
def test_pick_container(
    containers: tuple[str, ...], asked: str, expected: tuple[str, str | None]
) -> None:
    assert pick_container(make_pod(containers=containers), asked) == expected


@pytest.mark.parametrize(
    ("asked", "message"),
    [
        pytest.param("db", "error: container db is not valid for pod web-1", id="unknown"),
    ],
)
def test_pick_container_errors(asked: str, message: str) -> None:
    with pytest.raises(CliError) as caught:
        pick_container(make_pod(containers=("web", "side")), asked)
    assert message in caught.value.message


ADDRESS = AgentAddress(NODE, "127.10.0.1", 10250)
REFUSED = (
    "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.10.0.1:10250: "
    "Failed to connect to remote host: Connection refused"
)


@pytest.mark.parametrize(
    ("code", "message", "streamed", "expected"),
    [
        pytest.param(
            grpc.StatusCode.UNAVAILABLE,
            REFUSED,
            False,
            "error: cannot reach the node agent of node-1 at 127.10.0.1:10250: connection refused",
            id="refused",
        ),
        pytest.param(
            grpc.StatusCode.UNAVAILABLE,
            "Socket closed",
            True,
            "error: lost the connection to the node agent of node-1 at 127.10.0.1:10250: "
            "Socket closed",
            id="lost-mid-stream",
        ),
        pytest.param(
            grpc.StatusCode.NOT_FOUND,
            'no logs for pod "web-1" on node node-1',
            False,
            'Error from server (NotFound): no logs for pod "web-1" on node node-1',
            id="not-found",
        ),
    ],
)
def test_agent_error_wording(
    code: grpc.StatusCode, message: str, streamed: bool, expected: str
) -> None:
    assert agent_error(ApiError(code, message), ADDRESS, streamed=streamed).message == expected


# ---------------------------------------------------------------- agent address


def test_agent_address_is_the_internal_ip_and_kubelet_port() -> None:
    address = agent_address(make_node("127.10.0.3", 10250, name="node-3"))
    assert address == AgentAddress("node-3", "127.10.0.3", 10250)
    assert address.target == "127.10.0.3:10250"


def test_an_ipv6_agent_address_is_bracketed() -> None:
    assert agent_address(make_node("fd00::3", 10250)).target == "[fd00::3]:10250"


@pytest.mark.parametrize(
    ("host", "port", "message"),
    [
        pytest.param("", 10250, "node node-1 has no InternalIP address", id="no-internal-ip"),
        pytest.param("127.10.0.1", 0, "node node-1 publishes no node agent port", id="no-port"),
    ],
)
def test_a_node_without_an_agent_address(host: str, port: int, message: str) -> None:
    with pytest.raises(NoAgentAddressError) as caught:
        agent_address(make_node(host, port))
    assert caught.value.message == message
    assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION


# ---------------------------------------------------------------- a node agent on the wire


class FakeAgent(node_pb2_grpc.NodeAgentServicer):
    """What a node agent answers, recording what it was asked."""

    def __init__(self) -> None:
        self.logs: dict[tuple[str, str], list[bytes]] = {}
        self.requests: list[node_pb2.LogsRequest] = []
        self.killed: list[node_pb2.KillPodRequest] = []

    def ListPods(
        self, request: node_pb2.ListPodsRequest, context: grpc.ServicerContext
    ) -> node_pb2.ListPodsResponse:
        return node_pb2.ListPodsResponse(pods=[make_pod()])

    def KillPod(
        self, request: node_pb2.KillPodRequest, context: grpc.ServicerContext
    ) -> node_pb2.KillPodResponse:
        if (request.namespace, request.name) not in self.logs:
            context.abort(grpc.StatusCode.NOT_FOUND, f'pod "{request.name}" is not running')
        self.killed.append(request)
        return node_pb2.KillPodResponse(pid=4242)

    def Logs(
        self, request: node_pb2.LogsRequest, context: grpc.ServicerContext
    ) -> Iterator[node_pb2.LogChunk]:
        self.requests.append(request)
        chunks = self.logs.get((request.namespace, request.name))
        if chunks is None:
            context.abort(
                grpc.StatusCode.NOT_FOUND, f'no logs for pod "{request.name}" on node {NODE}'
            )
        for data in chunks or ():
            yield node_pb2.LogChunk(data=data)


@pytest.fixture
def agent() -> Iterator[tuple[FakeAgent, int]]:
    """A FakeAgent served on 127.0.0.1 (threads, so sync and async tests can call it)."""
    fake = FakeAgent()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    node_pb2_grpc.add_NodeAgentServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield fake, port
    server.stop(None)


LINES = [b"echo: pod default/web-1 on 127.244.1.2: http/8080\n", b"\xff\xfe raw bytes\n"]


async def test_agent_client_for_node_talks_to_the_nodes_agent(agent: tuple[FakeAgent, int]) -> None:
    fake, port = agent
    fake.logs[("default", "web-1")] = LINES
    client = await AgentClient.for_node(api(FakeApi(make_node("127.0.0.1", port))), NODE)
    async with client:
        assert client.target == f"127.0.0.1:{port}"
        assert [p.metadata.name for p in await client.list_pods()] == ["web-1"]
        assert await client.kill_pod("default", "web-1") == 4242
        assert fake.killed[0].signal == signal.SIGKILL
        await client.kill_pod("default", "web-1", signal.SIGTERM)
        assert fake.killed[1].signal == signal.SIGTERM
        got = [data async for data in client.logs("default", "web-1", True, 5, False)]
    assert got == LINES
    assert (fake.requests[0].follow, fake.requests[0].tail_lines) == (True, 5)


async def test_agent_client_errors_are_api_errors(agent: tuple[FakeAgent, int]) -> None:
    _, port = agent
    async with AgentClient(AgentAddress(NODE, "127.0.0.1", port)) as client:
        with pytest.raises(ApiError) as killed:
            await client.kill_pod("default", "nope")
        assert killed.value.code == grpc.StatusCode.NOT_FOUND
        with pytest.raises(ApiError) as logged:
            [data async for data in client.logs("default", "nope")]
        assert logged.value.code == grpc.StatusCode.NOT_FOUND


async def test_agent_client_for_a_missing_node_is_not_found() -> None:
    with pytest.raises(ApiError) as caught:
        await AgentClient.for_node(api(FakeApi()), "node-9")
    assert caught.value.code == grpc.StatusCode.NOT_FOUND


async def test_stream_logs_copies_raw_bytes(agent: tuple[FakeAgent, int]) -> None:
    fake, port = agent
    fake.logs[("default", "web-1")] = LINES
    out = io.BytesIO()
    api_fake = FakeApi(make_pod(), make_node("127.0.0.1", port))
    await stream_logs(api(api_fake), "default", LogsOptions("web-1", tail=10, follow=True), out)
    assert out.getvalue() == b"".join(LINES)
    request = fake.requests[0]
    assert (request.namespace, request.name) == ("default", "web-1")
    assert (request.follow, request.tail_lines, request.previous) == (True, 10, False)


async def test_stream_logs_previous_does_not_follow(agent: tuple[FakeAgent, int]) -> None:
    fake, port = agent
    fake.logs[("default", "web-1")] = LINES
    api_fake = FakeApi(make_pod(), make_node("127.0.0.1", port))
    options = LogsOptions("web-1", follow=True, previous=True)
    await stream_logs(api(api_fake), "default", options, io.BytesIO())
    assert (fake.requests[0].follow, fake.requests[0].previous) == (False, True)


async def test_stream_logs_tail_zero_prints_nothing(agent: tuple[FakeAgent, int]) -> None:
    fake, port = agent
    fake.logs[("default", "web-1")] = LINES
    out = io.BytesIO()
    api_fake = FakeApi(make_pod(), make_node("127.0.0.1", port))
    await stream_logs(api(api_fake), "default", LogsOptions("web-1", tail=0), out)
    assert out.getvalue() == b""


async def test_stream_logs_notes_a_defaulted_container(
    agent: tuple[FakeAgent, int], capsys: pytest.CaptureFixture[str]
) -> None:
    fake, port = agent
    fake.logs[("default", "web-1")] = LINES
    api_fake = FakeApi(make_pod(containers=("web", "side")), make_node("127.0.0.1", port))
    await stream_logs(api(api_fake), "default", LogsOptions("web-1"), io.BytesIO())
    assert capsys.readouterr().err == 'Defaulted container "web" out of: web, side\n'


async def test_stream_logs_agent_not_found(agent: tuple[FakeAgent, int]) -> None:
    _, port = agent
    api_fake = FakeApi(make_pod(), make_node("127.0.0.1", port))
    with pytest.raises(CliError) as caught:
        await stream_logs(api(api_fake), "default", LogsOptions("web-1"), io.BytesIO())
    assert caught.value.message == (
        'Error from server (NotFound): no logs for pod "web-1" on node node-1'
    )


async def test_stream_logs_unreachable_agent_names_node_and_address() -> None:
    port = closed_port()
    api_fake = FakeApi(make_pod(), make_node("127.0.0.1", port))
    with pytest.raises(CliError) as caught:
        await stream_logs(api(api_fake), "default", LogsOptions("web-1"), io.BytesIO())
    assert caught.value.message == (
        f"error: cannot reach the node agent of node-1 at 127.0.0.1:{port}: connection refused"
    )


@pytest.mark.parametrize(
    ("objects", "message"),
    [
        pytest.param((), 'Error from server (NotFound): pods "web-1" not found', id="no-pod"),
        pytest.param(
            (make_pod(),),
            'Error from server (NotFound): nodes "node-1" not found',
            id="no-node",
        ),
        pytest.param(
            (make_pod(), make_node("", 10250)),
            "error: node node-1 has no InternalIP address",
            id="node-without-address",
        ),
        pytest.param(
            (make_pod(node=""),),
            "error: pod web-1 is not scheduled to a node yet",
            id="unscheduled",
        ),
    ],
)
async def test_stream_logs_failures_before_the_agent(
    objects: tuple[Message, ...], message: str
) -> None:
    with pytest.raises(CliError) as caught:
        await stream_logs(api(FakeApi(*objects)), "default", LogsOptions("web-1"), io.BytesIO())
    assert caught.value.message == message


def test_logs_command_writes_bytes_to_stdout(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, agent: tuple[FakeAgent, int]
) -> None:
    fake, port = agent
    fake.logs[("shop", "web-1")] = LINES
    api_fake = FakeApi(make_pod(), make_node("127.0.0.1", port))
    monkeypatch.setattr("kubelab.cli.logs.run", run_with(api_fake))
    result = runner.invoke(cli, ["logs", "-n", "shop", "pod/web-1", "--tail", "3"])
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == b"".join(LINES)
    assert (fake.requests[0].namespace, fake.requests[0].tail_lines) == ("shop", 3)


def test_logs_command_failure_is_one_line(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("kubelab.cli.logs.run", run_with(FakeApi(make_pod("shop-x", node=""))))
    result = runner.invoke(cli, ["logs", "shop-x"])
    assert result.exit_code == 1
    assert result.stderr == "error: pod shop-x is not scheduled to a node yet\n"


def test_a_second_container_can_be_picked() -> None:
    assert pick_container(make_pod(containers=("web", "side")), "side") == ("side", None)


def test_logs_help_says_what_c_defaults_to(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["logs", "--help"])
    assert result.exit_code == 0
    assert "default: the pod's first" in click.unstyle(result.output)
