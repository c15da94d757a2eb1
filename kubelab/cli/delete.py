"""`kubelab delete`: by manifest (`-f`), by name, or by selector (`-l`, `--all`).

Prints kubectl's `service "shop" deleted` per object. A missing object is
`Error from server (NotFound): ...` on stderr and exit 1, unless
`--ignore-not-found`; the other objects are still deleted.

A pod bound to a node is deleted gracefully by the server: it is marked, and
its node agent stops it within the grace period, then removes it. The grace
flags are kubectl's (`DeleteOptions.Complete`/`Validate`), settled by
`settle_grace_period` before anything is sent:

* none: the pod's own terminationGracePeriodSeconds (nothing is sent);
* `--grace-period N`: N seconds; 0 without `--force` becomes 1, as kubectl
  turns it, so a typo cannot skip the agent;
* `--now`: 1 second (not together with `--grace-period`);
* `--force`: 0, the object is removed at once without waiting for the agent,
  with kubectl's warning, and each line says `force deleted`; `--force` with
  a grace period above 0 is refused.
"""

from __future__ import annotations

import click
import grpc

from kubelab.cli.common import (
    Settings,
    api_options,
    check_selector,
    filename_option,
    load_objects,
    parse_targets,
    pass_settings,
    run,
    target_names,
)
from kubelab.cli.errors import CliError, from_api_error, stops_everything
from kubelab.client import ApiError, Client
from kubelab.core.kinds import KindInfo
from kubelab.core.printing import kind_ref, metadata

Victim = tuple[KindInfo, str, str]  # kind, namespace, name

FORCE_WARNING = (
    "warning: Immediate deletion does not wait for confirmation that the running resource "
    "has been terminated. The resource may continue to run on the cluster indefinitely."
)


def settle_grace_period(grace: int, force: bool, now: bool) -> tuple[int | None, str | None]:
    """The grace period to send (None: the object's own) and a warning to print."""
    if now:
        if grace != -1:
            raise CliError("error: --now and --grace-period cannot be specified together")
        grace = 1
    if grace == 0 and not force:
        grace = 1  # kubectl: 0 only with --force, against accidental data loss
    if force and grace < 0:
        grace = 0
    if force and grace > 0:
        raise CliError(
            "error: --force and --grace-period greater than 0 cannot be specified together"
        )
    if grace < 0:
        return None, None
    return grace, FORCE_WARNING if grace == 0 else None


async def delete_each(
    client: Client,
    victims: list[Victim],
    ignore_not_found: bool,
    grace_period_seconds: int | None = None,
) -> int:
    """Delete in order; returns how many failed (each already reported)."""
    failures = 0
    done = "force deleted" if grace_period_seconds == 0 else "deleted"
    for info, namespace, name in victims:
        try:
            await client.delete(
                info.resource, name, namespace, grace_period_seconds=grace_period_seconds
            )
        except ApiError as err:
            if stops_everything(err):
                raise
            if err.code == grpc.StatusCode.NOT_FOUND and ignore_not_found:
                continue
            failures += 1
            error = from_api_error(
                err, client.target, kind=info.kind, resource=info.resource, name=name
            )
            click.echo(error.message, err=True)
            continue
        click.echo(f'{kind_ref(info)} "{name}" {done}')
    return failures


@click.command("delete")
@click.argument("args", nargs=-1, metavar="[KIND NAME... | KIND/NAME...]")
@filename_option("delete")
@click.option("-l", "--selector", metavar="SELECTOR", help="Delete what this selector picks.")
@click.option("--all", "all_", is_flag=True, help="Delete every object of the kind.")
@click.option("--ignore-not-found", is_flag=True, help="A missing object is not an error.")
@click.option(
    "--grace-period",
    # An int64 on the wire: a larger number is a usage error, not a failed conversion.
    type=click.IntRange(-(2**63), 2**63 - 1),
    default=-1,
    metavar="SECONDS",
    help="Seconds a pod gets to stop (default -1: the pod's terminationGracePeriodSeconds). "
    "0 needs --force.",
)
@click.option("--now", is_flag=True, help="Stop pods at once: the same as --grace-period 1.")
@click.option(
    "--force",
    is_flag=True,
    help="Remove at once, without waiting for the node agent to stop the pod "
    "(implies --grace-period 0).",
)
@api_options
@pass_settings
def delete(
    settings: Settings,
    args: tuple[str, ...],
    filenames: tuple[str, ...],
    selector: str | None,
    all_: bool,
    ignore_not_found: bool,
    grace_period: int,
    now: bool,
    force: bool,
) -> None:
    """Delete objects by name, selector or manifest.

    kubelab delete svc shop; kubelab delete -f shop.yaml; kubelab delete svc -l app=shop;
    kubelab delete pod shop-x --grace-period 1
    """
    label_selector = check_selector(selector)
    grace, warning = settle_grace_period(grace_period, force, now)
    if warning:
        click.echo(warning, err=True)
    if filenames:
        if args or label_selector or all_:
            raise CliError("error: -f cannot be combined with names, -l or --all")
        loaded = load_objects(filenames, settings, "delete")
        victims = [(i.info, metadata(i.object).namespace, metadata(i.object).name) for i in loaded]

        async def by_file(client: Client) -> int:
            return await delete_each(client, victims, ignore_not_found, grace)

        failures = run(by_file, settings)
    else:
        targets = parse_targets(args, verb="delete")
        named = any(t.names for t in targets)
        if named and (label_selector or all_):
            raise CliError("error: names cannot be combined with -l or --all")
        if not named and not (label_selector or all_):
            raise CliError(
                "error: resource(s) were provided, but no name was specified "
                "(give names, -l SELECTOR or --all)"
            )

        async def by_name(client: Client) -> int:
            found: list[Victim] = []
            for target in targets:
                namespace = settings.namespace_for(target.info)
                names = await target_names(client, target, namespace, label_selector)
                found += [(target.info, namespace, name) for name in names]
            if not found:
                click.echo("No resources found", err=True)
            return await delete_each(client, found, ignore_not_found, grace)

        failures = run(by_name, settings)
    if failures:
        raise click.exceptions.Exit(1)
