"""`kubelab apply -f`: create or update every object in the manifests.

The server decides what happened (`created`, `configured`, `unchanged`) and
the CLI prints kubectl's line for it. Fields kubelab ignores are reported on
stderr as `Warning: ...` before anything is sent. One object's API error does
not stop the others (kubectl's behaviour); the exit code is 1 if any failed.
An unreachable server stops at once: every later call would fail the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import click

from kubelab.cli.common import (
    Settings,
    api_options,
    filename_option,
    load_objects,
    pass_settings,
    run,
)
from kubelab.cli.errors import from_api_error, stops_everything
from kubelab.client import ApiError, Client
from kubelab.core.kinds import ApiObject
from kubelab.core.manifests import LoadedObject
from kubelab.core.printing import kind_ref, metadata


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
        async for item, (_, result, err) in _apply_all(client, loaded):
            name = metadata(item.object).name
            if err is not None:
                if stops_everything(err):
                    raise err
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


Outcome = tuple[ApiObject | None, str, ApiError | None]


async def _apply_all(
    client: Client, loaded: list[LoadedObject]
) -> AsyncIterator[tuple[LoadedObject, Outcome]]:
    """One ApplyStream for the lot (its objects are applied concurrently, in chunks);
    one Apply at a time when a manifest names the same object twice, so the last
    document wins as with kubectl."""
    keys = [
        (i.info.resource, metadata(i.object).namespace, metadata(i.object).name) for i in loaded
    ]
    if len(set(keys)) < len(keys):
        for item in loaded:
            try:
                written, result = await client.apply(item.object)
            except ApiError as err:
                yield item, (None, "", err)
                continue
            yield item, (written, result, None)
        return
    answers = client.apply_many([item.object for item in loaded])
    for item in loaded:
        answer, result = await anext(answers)
        if isinstance(answer, ApiError):
            yield item, (None, "", answer)
        else:
            yield item, (answer, result, None)
