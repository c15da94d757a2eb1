"""`kubelab scale deploy NAME... --replicas N`: set a Deployment's spec.replicas.

Each Deployment is read, its `spec.replicas` set, and written back with the
resourceVersion that was read (compare-and-swap, as `label` does): a
concurrent writer makes the server answer ABORTED and we start again from a
fresh read, a few times, then give up with kubectl's Conflict wording. The
`--current-replicas` precondition is checked against every fresh read, so it
holds for the value actually replaced (kubectl's `ScalePrecondition`). An
unset `spec.replicas` counts as 1, the Kubernetes default. Scaling to the
count already set writes nothing and still says `scaled`, as kubectl does.

Only Deployments have replicas in kubelab (no ReplicaSets, StatefulSets);
other kinds are refused before anything is sent. Names are handled in order:
a missing one is reported (`Error from server (NotFound): ...`) and the others
are still scaled, then the exit code is 1, as in `delete`. The controller
does the rest: `scale` returns once the new count is stored, not when the
pods exist (kubectl without `--timeout`).

Messages are kubectl's: `deployment.apps/shop scaled`,
`error: The --replicas=COUNT flag is required, and COUNT must be greater
than or equal to 0`, `error: Expected replicas to be 3, was 4`.
"""

from __future__ import annotations

import click
import grpc

from kubelab.cli.common import (
    Settings,
    Target,
    api_options,
    check_selector,
    parse_targets,
    pass_settings,
    run,
    target_names,
)
from kubelab.cli.errors import CliError, from_api_error, stops_everything
from kubelab.client import ApiError, Client
from kubelab.core import kinds
from kubelab.core.printing import kind_ref
from kubelab.v1 import objects_pb2

MAX_ATTEMPTS = 5
DEFAULT_REPLICAS = 1  # Kubernetes' default for an unset spec.replicas

REPLICAS_REQUIRED = (
    "error: The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0"
)


def check_counts(replicas: int | None, current_replicas: int) -> int:
    """The requested count after kubectl's checks of both flags."""
    if replicas is None or replicas < 0:
        raise CliError(REPLICAS_REQUIRED)
    if current_replicas < -1:
        raise CliError("error: The --current-replicas must specify an integer of -1 or greater")
    return replicas


def check_scalable(targets: list[Target]) -> None:
    for target in targets:
        if target.info is not kinds.DEPLOYMENTS:
            raise CliError(
                f"error: cannot scale {target.info.resource}: "
                "only deployments have replicas in kubelab"
            )


def current_replicas(deployment: objects_pb2.Deployment) -> int:
    spec = deployment.spec
    return spec.replicas if spec.HasField("replicas") else DEFAULT_REPLICAS


def check_precondition(expected: int, actual: int) -> None:
    """kubectl's `--current-replicas` (-1: no precondition)."""
    if expected != -1 and expected != actual:
        raise CliError(f"error: Expected replicas to be {expected}, was {actual}")


async def scale_one(
    client: Client, namespace: str, name: str, replicas: int, expected_current: int = -1
) -> None:
    """Set one Deployment's replicas with compare-and-swap; CliError on failure."""
    info = kinds.DEPLOYMENTS
    for _ in range(MAX_ATTEMPTS):
        try:
            obj = await client.get(info.resource, name, namespace)
        except ApiError as err:
            if stops_everything(err):
                raise
            raise from_api_error(
                err, client.target, kind=info.kind, resource=info.resource, name=name
            ) from None
        if not isinstance(obj, objects_pb2.Deployment):
            raise CliError(f"error: {info.resource}/{name} is not a Deployment")
        check_precondition(expected_current, current_replicas(obj))
        if obj.spec.HasField("replicas") and obj.spec.replicas == replicas:
            return
        obj.spec.replicas = replicas
        try:
            await client.update(obj)  # carries the resourceVersion read above
        except ApiError as err:
            if err.code == grpc.StatusCode.ABORTED:
                continue
            if stops_everything(err):
                raise
            raise from_api_error(
                err, client.target, kind=info.kind, resource=info.resource, name=name
            ) from None
        return
    raise CliError(
        f'Error from server (Conflict): Operation cannot be fulfilled on {info.resource} "{name}": '
        f"the object kept changing ({MAX_ATTEMPTS} attempts); try again"
    )


@click.command("scale")
@click.argument("args", nargs=-1, metavar="deploy NAME... | deploy/NAME...")
@click.option("--replicas", type=int, metavar="COUNT", help="The new number of replicas. Required.")
@click.option(
    "--current-replicas",
    type=int,
    default=-1,
    metavar="COUNT",
    help="Precondition: scale only if the current count is this (-1: no check).",
)
@click.option("-l", "--selector", metavar="SELECTOR", help="Scale what this selector picks.")
@click.option("--all", "all_", is_flag=True, help="Scale every Deployment in the namespace.")
@api_options
@pass_settings
def scale(
    settings: Settings,
    args: tuple[str, ...],
    replicas: int | None,
    current_replicas: int,
    selector: str | None,
    all_: bool,
) -> None:
    """Set the number of replicas of Deployments.

    kubelab scale deploy shop --replicas 6; kubelab scale deploy/shop --replicas 0
    """
    count = check_counts(replicas, current_replicas)
    targets = parse_targets(args, verb="scale")
    check_scalable(targets)
    label_selector = check_selector(selector)
    named = any(t.names for t in targets)
    if named and (label_selector or all_):
        raise CliError("error: names cannot be combined with -l or --all")
    if not named and not (label_selector or all_):
        raise CliError("error: resource(s) were provided, but no name was specified")

    async def body(client: Client) -> int:
        failures = 0
        for target in targets:
            namespace = settings.namespace_for(target.info)
            names = await target_names(client, target, namespace, label_selector)
            if not names:
                click.echo("No resources found", err=True)
            for name in names:
                try:
                    await scale_one(client, namespace, name, count, current_replicas)
                except CliError as err:
                    failures += 1
                    click.echo(err.message, err=True)
                    continue
                click.echo(f"{kind_ref(target.info)}/{name} scaled")
        return failures

    if run(body, settings):
        raise click.exceptions.Exit(1)
