"""`kubelab delete`: by manifest (`-f`), by name, or by selector (`-l`, `--all`).

Prints kubectl's `service "shop" deleted` per object. A missing object is
`Error from server (NotFound): ...` on stderr and exit 1, unless
`--ignore-not-found`; the other objects are still deleted.
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
from kubelab.cli.errors import CliError, from_api_error, is_connection_error
from kubelab.cli.printers import kind_ref, metadata
from kubelab.client import ApiError, Client
from kubelab.core.kinds import KindInfo

Victim = tuple[KindInfo, str, str]  # kind, namespace, name


async def delete_each(client: Client, victims: list[Victim], ignore_not_found: bool) -> int:
    """Delete in order; returns how many failed (each already reported)."""
    failures = 0
    for info, namespace, name in victims:
        try:
            await client.delete(info.resource, name, namespace)
        except ApiError as err:
            if is_connection_error(err):
                raise
            if err.code == grpc.StatusCode.NOT_FOUND and ignore_not_found:
                continue
            failures += 1
            error = from_api_error(
                err, client.target, kind=info.kind, resource=info.resource, name=name
            )
            click.echo(error.message, err=True)
            continue
        click.echo(f'{kind_ref(info)} "{name}" deleted')
    return failures


@click.command("delete")
@click.argument("args", nargs=-1, metavar="[KIND NAME... | KIND/NAME...]")
@filename_option("delete")
@click.option("-l", "--selector", metavar="SELECTOR", help="Delete what this selector picks.")
@click.option("--all", "all_", is_flag=True, help="Delete every object of the kind.")
@click.option("--ignore-not-found", is_flag=True, help="A missing object is not an error.")
@api_options
@pass_settings
def delete(
    settings: Settings,
    args: tuple[str, ...],
    filenames: tuple[str, ...],
    selector: str | None,
    all_: bool,
    ignore_not_found: bool,
) -> None:
    """Delete objects by name, selector or manifest.

    kubelab delete svc shop; kubelab delete -f shop.yaml; kubelab delete svc -l app=shop
    """
    label_selector = check_selector(selector)
    if filenames:
        if args or label_selector or all_:
            raise CliError("error: -f cannot be combined with names, -l or --all")
        loaded = load_objects(filenames, settings, "delete")
        victims = [(i.info, metadata(i.object).namespace, metadata(i.object).name) for i in loaded]

        async def by_file(client: Client) -> int:
            return await delete_each(client, victims, ignore_not_found)

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
            return await delete_each(client, found, ignore_not_found)

        failures = run(by_name, settings)
    if failures:
        raise click.exceptions.Exit(1)
