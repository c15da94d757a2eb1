"""`kubelab apply -f`: create or update every object in the manifests.

The server decides what happened (`created`, `configured`, `unchanged`) and
the CLI prints kubectl's line for it. Fields kubelab ignores are reported on
stderr as `Warning: ...` before anything is sent. One object's API error does
not stop the others (kubectl's behaviour); the exit code is 1 if any failed.
An unreachable server stops at once: every later call would fail the same way.
"""

from __future__ import annotations

import click

from kubelab.cli.common import (
    Settings,
    api_options,
    filename_option,
    load_objects,
    pass_settings,
    run,
)
from kubelab.cli.errors import from_api_error, is_connection_error
from kubelab.cli.printers import kind_ref, metadata
from kubelab.client import ApiError, Client


@click.command("apply")
@filename_option("apply")
@api_options
@pass_settings
def apply(settings: Settings, filenames: tuple[str, ...]) -> None:
    """Create or update objects from manifests.

    kubelab apply -f shop.yaml  (repeat -f; a directory; - for stdin)
    """
    loaded = load_objects(filenames, settings, "apply")
    for item in loaded:
        ref = f"{kind_ref(item.info)}/{metadata(item.object).name}"
        for warning in item.warnings:
            click.echo(f"Warning: {ref}: {warning}", err=True)

    async def body(client: Client) -> int:
        failures = 0
        for item in loaded:
            name = metadata(item.object).name
            try:
                _, result = await client.apply(item.object)
            except ApiError as err:
                if is_connection_error(err):
                    raise
                failures += 1
                error = from_api_error(
                    err,
                    client.target,
                    kind=item.info.kind,
                    resource=item.info.resource,
                    name=name,
                )
                click.echo(error.message, err=True)
                continue
            click.echo(f"{kind_ref(item.info)}/{name} {result}")
        return failures

    if run(body, settings):
        raise click.exceptions.Exit(1)
