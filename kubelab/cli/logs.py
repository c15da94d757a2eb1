"""`kubelab logs POD [-c CONTAINER] [-f] [--tail N] [-p]`: a pod's output, from its node.

The path is kubectl's, with the apiserver's proxy hop left out: read the Pod,
take `spec.nodeName`, read that Node, and call the node agent where the Node
says it listens (`kubelab.agent_client`, InternalIP and kubelet endpoint
port). The agent's `Logs` stream is copied to stdout as raw bytes, flushed
per chunk, so `-f` is live and binary output survives; Ctrl-C ends it with
exit 130 (the group's KeyboardInterrupt rule) and `| head` ends it quietly.

What each failure says:

* no such pod or node: `Error from server (NotFound): pods "x" not found`;
* a pod no node has taken yet: `error: pod x is not scheduled to a node yet`;
* the agent has no logs for it (not started here, no previous instance):
  `Error from server (NotFound): <the agent's words>`;
* the agent cannot be reached: one line naming the node and its address.

Containers: each container's output is its own file on the node; `-c` (or
kubectl's positional `logs POD CONTAINER`) picks one, checked against the pod
(`error: container x is not valid for pod y`, as kubectl says). A pod with
several containers and no `-c` gets kubectl's `Defaulted container "a" out
of: a, b` note on stderr.

`--tail` keeps kubectl's meaning (-1: everything, 0: nothing, N: the last N
lines); the agent reads 0 as "everything", so `--tail 0` reads and discards,
which still reports a missing pod, and `--tail 0 -f` is refused because the
stream cannot tell the backlog from new lines. `-p -f` does not follow: the
previous instance's output is finished, and kubectl ends there too.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import BinaryIO

import click
import grpc

from kubelab import credentials
from kubelab.agent_client import AgentAddress, AgentClient, NoAgentAddressError
from kubelab.cli.common import Settings, api_options, pass_settings, resolve_kind, run
from kubelab.cli.errors import CliError, from_api_error, stops_everything
from kubelab.client import ApiError, Client
from kubelab.core import kinds
from kubelab.v1 import objects_pb2

USAGE = (
    "error: expected 'logs [-f] [-p] (POD | pod/NAME) [-c CONTAINER]'.\n"
    "POD or pod/NAME is a required argument for the logs command"
)

Connect = Callable[[Client, str], Awaitable[AgentClient]]


@dataclass(frozen=True, slots=True)
class LogsOptions:
    pod: str
    container: str = ""
    follow: bool = False
    tail: int = -1  # kubectl's: -1 everything, 0 nothing, N the last N lines
    previous: bool = False


def parse_logs_args(args: tuple[str, ...], container: str) -> tuple[str, str]:
    """(pod name, container) from `POD`, `pod/NAME`, optionally followed by a container."""
    if not args:
        raise CliError(USAGE, hint="See 'kubelab logs -h' for help and examples")
    if len(args) > 2:
        raise CliError(f"error: too many arguments: {' '.join(args[2:])}")
    if len(args) == 2:
        if container:
            raise CliError("error: only one of -c or an inline [CONTAINER] arg is allowed")
        container = args[1]
    kind, slash, name = args[0].rpartition("/")
    if slash:
        info = resolve_kind(kind)
        if info is not kinds.PODS:
            raise CliError(
                f"error: kubelab logs reads pods, not {info.resource}: "
                "name one of its pods (kubelab get pods)"
            )
    if not name:
        raise CliError(f"error: arguments in resource/name form must have a name: {args[0]}")
    return name, container


def request_tail(tail: int, follow: bool) -> int:
    """kubectl's --tail as the agent's `tail_lines` (0 there means every line)."""
    if tail < 0:
        return 0
    if tail == 0 and follow:
        raise CliError(
            "error: --tail=0 with -f is not supported: kubelab's node agent cannot skip "
            "the lines written so far"
        )
    return tail


def pod_node(pod: objects_pb2.Pod) -> str:
    node = pod.spec.node_name
    if not node:
        raise CliError(f"error: pod {pod.metadata.name} is not scheduled to a node yet")
    return node


def pick_container(pod: objects_pb2.Pod, container: str) -> tuple[str, str | None]:
    """The container whose logs are read and kubectl's note when it was defaulted."""
    names = [c.name for c in pod.spec.containers]
    if not names:
        raise CliError(f"error: pod {pod.metadata.name} has no containers")
    if not container:
        note = None
        if len(names) > 1:
            note = f'Defaulted container "{names[0]}" out of: {", ".join(names)}'
        return names[0], note
    if container not in names:
        raise CliError(f"error: container {container} is not valid for pod {pod.metadata.name}")
    return container, None


def agent_error(err: ApiError, address: AgentAddress, *, streamed: bool) -> CliError:
    """kubectl-style words for a failed Logs call; UNAVAILABLE names the node and address."""
    where = f"the node agent of {address.node} at {address.target}"
    if err.code == grpc.StatusCode.UNAVAILABLE:
        message = err.message.strip()
        if "connection refused" in message.lower():
            message = "connection refused"
        if streamed:
            return CliError(f"error: lost the connection to {where}: {message}")
        return CliError(f"error: cannot reach {where}: {message}")
    if err.code == grpc.StatusCode.UNIMPLEMENTED:
        return CliError(f"error: {where} does not serve logs ({err.message})")
    return from_api_error(err, address.target)


async def read_pod(api: Client, namespace: str, name: str) -> objects_pb2.Pod:
    info = kinds.PODS
    try:
        pod = await api.get(info.resource, name, namespace)
    except ApiError as err:
        if stops_everything(err):
            raise
        raise from_api_error(
            err, api.target, kind=info.kind, resource=info.resource, name=name
        ) from None
    if not isinstance(pod, objects_pb2.Pod):
        raise CliError(f"error: pods/{name} is not a Pod")
    return pod


async def connect_agent(api: Client, node: str) -> AgentClient:
    try:
        # The node agents ask for a certificate of the cluster: the kubeconfig's.
        return await AgentClient.for_node(api, node, credentials=credentials.default())
    except NoAgentAddressError as err:
        raise CliError(f"error: {err.message}") from None
    except ApiError as err:
        if stops_everything(err):
            raise
        info = kinds.NODES
        raise from_api_error(
            err, api.target, kind=info.kind, resource=info.resource, name=node
        ) from None


async def stream_logs(
    api: Client,
    namespace: str,
    options: LogsOptions,
    out: BinaryIO,
    *,
    connect: Connect = connect_agent,
) -> None:
    """Find the pod's agent and copy its Logs stream to `out`."""
    tail_lines = request_tail(options.tail, options.follow)
    pod = await read_pod(api, namespace, options.pod)
    container, note = pick_container(pod, options.container)
    node = pod_node(pod)
    if note:
        click.echo(note, err=True)
    agent = await connect(api, node)
    streamed = False
    try:
        chunks = agent.logs(
            namespace,
            options.pod,
            follow=options.follow and not options.previous,
            tail_lines=tail_lines,
            previous=options.previous,
            container=container,
        )
        async for data in chunks:
            streamed = True
            if options.tail == 0:
                continue
            out.write(data)
            out.flush()
    except ApiError as err:
        raise agent_error(err, agent.address, streamed=streamed) from None
    finally:
        await agent.close()


@click.command("logs")
@click.argument("args", nargs=-1, metavar="(POD | pod/NAME) [CONTAINER]")
@click.option(
    "-c",
    "--container",
    default="",
    metavar="NAME",
    help="The container (default: the pod's first).",
)
@click.option("-f", "--follow", is_flag=True, help="Keep streaming new output (Ctrl-C to stop).")
@click.option(
    "--tail",
    type=int,
    default=-1,
    metavar="N",
    help="Only the last N lines (default -1: everything).",
)
@click.option(
    "-p", "--previous", is_flag=True, help="The output of the instance before the last restart."
)
@api_options
@pass_settings
def logs(
    settings: Settings,
    args: tuple[str, ...],
    container: str,
    follow: bool,
    tail: int,
    previous: bool,
) -> None:
    """Print a pod's output, read from the node agent that runs it.

    kubelab logs shop-7d4f9-abcde; kubelab logs pod/shop-7d4f9-abcde -f --tail 20
    """
    name, container = parse_logs_args(args, container)
    options = LogsOptions(name, container, follow, tail, previous)
    request_tail(tail, follow)  # refuse what cannot be asked before any call
    namespace = settings.namespace_for(kinds.PODS)
    out = sys.stdout.buffer  # raw bytes: logs need not be text

    async def body(client: Client) -> None:
        await stream_logs(client, namespace, options, out)

    run(body, settings)
