"""`kubelab get`: list or fetch objects and print them as kubectl does.

Named objects are fetched one `Get` each (a missing one is reported on stderr
after the others print, and the exit code is 1, as kubectl); otherwise a
`List` per kind, with the label selector applied by the server, paged
`--chunk-size` objects at a time (500, as kubectl). `-o yaml|json`
print the Kubernetes shape (`kubelab.core.manifests`): one object when exactly
one was named, else a `kind: List`.

`-w` lists first and then watches from the list's resourceVersion, so no
change between the two is missed and nothing is printed twice (kubectl's
list-then-watch). Rows keep the widths of the first table; a row wider than
that pushes its line out rather than re-printing the table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import click
import grpc
from google.protobuf.message import Message

from kubelab.cli import printers
from kubelab.cli.common import (
    Settings,
    Target,
    api_options,
    check_selector,
    parse_targets,
    pass_settings,
    run,
)
from kubelab.cli.errors import CliError, not_found
from kubelab.client import ApiError, Client
from kubelab.core import kinds, printing
from kubelab.core.keys import ObjectKey
from kubelab.core.kinds import KindInfo
from kubelab.limits import LIST_CHUNK
from kubelab.v1 import objects_pb2

OUTPUTS = ("wide", "yaml", "json", "name")


def sort_key(obj: Message) -> tuple[str, str]:
    meta = printing.metadata(obj)
    return meta.namespace, meta.name


def no_resources(settings: Settings, info: KindInfo, all_namespaces: bool) -> str:
    if all_namespaces or not info.namespaced:
        return "No resources found"
    return f"No resources found in {settings.namespace_for(info)} namespace."


def yaml_list(objects: Sequence[Message]) -> str:
    """A `kind: List` in YAML, items printed by `manifests.to_yaml` so they read
    exactly as single objects do."""
    from kubelab.core import manifests  # YAML and JSON output only (see load_objects)

    lines = ["apiVersion: v1", "items:" if objects else "items: []"]
    for obj in objects:
        body = manifests.to_yaml(obj).rstrip("\n").splitlines()
        lines += ["- " + body[0], *("  " + line if line else line for line in body[1:])]
    lines += ["kind: List", "metadata:", '  resourceVersion: ""']
    return "\n".join(lines) + "\n"


def json_list(objects: Sequence[Message]) -> str:
    from kubelab.core import manifests

    doc = {
        "apiVersion": "v1",
        "items": [manifests.to_kubernetes_dict(o) for o in objects],
        "kind": "List",
        "metadata": {"resourceVersion": ""},
    }
    return json.dumps(doc, indent=4, ensure_ascii=False) + "\n"


def object_name(info: KindInfo, obj: Message) -> str:
    return f"{printing.kind_ref(info)}/{printing.metadata(obj).name}"


async def fetch(
    client: Client,
    target: Target,
    namespace: str,
    selector: str,
    chunk_size: int = LIST_CHUNK,
    *,
    field_selector: str = "",
) -> tuple[list[Message], list[str]]:
    """The target's objects and the NotFound messages for names that do not exist."""
    if not target.names:
        items, _ = await client.list(
            target.info.resource,
            namespace,
            selector,
            chunk_size=chunk_size,
            field_selector=field_selector,
        )
        return sorted(items, key=sort_key), []
    found: list[Message] = []
    missing: list[str] = []
    for name in target.names:
        try:
            found.append(await client.get(target.info.resource, name, namespace))
        except ApiError as err:
            if err.code != grpc.StatusCode.NOT_FOUND:
                raise
            missing.append(not_found(target.info.resource, name))
    return found, missing


def print_tables(
    results: Sequence[tuple[Target, list[Message]]],
    output: str | None,
    all_namespaces: bool,
    served: Mapping[ObjectKey, str] | None = None,
) -> bool:
    """Print one table per kind that has objects; False when nothing was printed.
    `served`: the SERVED-AT cell of each Service (-o wide)."""
    now = datetime.now(UTC)
    printed = False
    for target, objects in results:
        if not objects:
            continue
        fmt = printers.RowFormat(
            wide=output == "wide",
            namespaces=all_namespaces and target.info.namespaced,
            kind_prefix=printing.kind_ref(target.info) + "/" if len(results) > 1 else "",
        )
        rows = [printers.header(target.info, fmt)]
        rows += [printers.row(target.info, obj, now, fmt) for obj in objects]
        if served is not None and target.info is kinds.SERVICES:
            rows[0].append("SERVED-AT")
            for cells, obj in zip(rows[1:], objects, strict=True):
                meta = printing.metadata(obj)
                cells.append(served.get(ObjectKey((meta.namespace, meta.name)), printing.NONE))
        if printed:
            click.echo()
        for line in printers.render(rows):
            click.echo(line)
        printed = True
    return printed


def print_objects(
    results: Sequence[tuple[Target, list[Message]]], output: str, single: bool
) -> bool:
    """-o name|yaml|json. One named object prints alone, anything else as a List
    (an empty List too, as kubectl); False when nothing was printed."""
    objects = [obj for _, objs in results for obj in objs]
    if output == "name":
        for target, objs in results:
            for obj in objs:
                click.echo(object_name(target.info, obj))
        return bool(objects)
    if single:
        for obj in objects:
            click.echo(object_text(obj, output), nl=False)
        return bool(objects)
    click.echo(yaml_list(objects) if output == "yaml" else json_list(objects), nl=False)
    return True


def object_text(obj: Message, output: str) -> str:
    from kubelab.core import manifests

    return manifests.to_yaml(obj) if output == "yaml" else manifests.to_json(obj)


async def watch(
    client: Client,
    target: Target,
    namespace: str,
    selector: str,
    output: str | None,
    all_namespaces: bool,
    settings: Settings,
    chunk_size: int = LIST_CHUNK,
    *,
    field_selector: str = "",
) -> None:
    info = target.info
    items, revision = await client.list(
        info.resource, namespace, selector, chunk_size=chunk_size, field_selector=field_selector
    )
    wanted = set(target.names)
    items = sorted(
        (o for o in items if not wanted or printing.metadata(o).name in wanted), key=sort_key
    )
    fmt = printers.RowFormat(wide=output == "wide", namespaces=all_namespaces and info.namespaced)
    widths: list[int] = []

    def show(obj: Message) -> None:
        nonlocal widths
        if output in ("yaml", "json"):
            if output == "yaml":
                click.echo("---")
            click.echo(object_text(obj, output), nl=False)
        elif output == "name":
            click.echo(object_name(info, obj))
        else:
            cells = printers.row(info, obj, datetime.now(UTC), fmt)
            if not widths:
                head = printers.header(info, fmt)
                widths = printers.column_widths([head, cells])
                click.echo(printers.render_row(head, widths))
            click.echo(printers.render_row(cells, widths))

    if items and output in (None, "wide"):
        # The first table is aligned as a whole; later rows keep its widths.
        now = datetime.now(UTC)
        rows = [printers.header(info, fmt), *(printers.row(info, o, now, fmt) for o in items)]
        widths = printers.column_widths(rows)
        for line in printers.render(rows):
            click.echo(line)
    else:
        for obj in items:
            show(obj)
    if not items:
        click.echo(no_resources(settings, info, all_namespaces), err=True)
    async for event in client.watch(
        info.resource, namespace, selector, revision, field_selector=field_selector
    ):
        if event.object is None or event.type == "BOOKMARK":
            continue
        if wanted and printing.metadata(event.object).name not in wanted:
            continue
        show(event.object)


@click.command("get")
@click.argument("args", nargs=-1, metavar="KIND [NAME...] | KIND/NAME...")
@api_options
@click.option("-A", "--all-namespaces", is_flag=True, help="List across every namespace.")
@click.option("-l", "--selector", metavar="SELECTOR", help="Label selector: env=prod,app!=web")
@click.option(
    "--field-selector",
    default="",
    metavar="SELECTOR",
    help="Field selector: involvedObject.name=shop,type=Warning (the fields Kubernetes "
    "lets each kind select on).",
)
@click.option("-o", "--output", type=click.Choice(OUTPUTS), help="Output format.")
@click.option("-w", "--watch", "watch_", is_flag=True, help="Stream changes after listing.")
@click.option(
    "--chunk-size",
    type=click.IntRange(min=0),
    default=LIST_CHUNK,
    show_default=True,
    help="Return large lists in chunks rather than all at once. Pass 0 to disable "
    "(the server still ends a page at a few MiB).",
)
@pass_settings
def get(
    settings: Settings,
    args: tuple[str, ...],
    all_namespaces: bool,
    selector: str | None,
    field_selector: str,
    output: str | None,
    watch_: bool,
    chunk_size: int,
) -> None:
    """List or fetch objects.

    kubelab get svc; kubelab get pods -l app=shop -o wide; kubelab get svc shop -o yaml
    """
    targets = parse_targets(args, verb="get")
    label_selector = check_selector(selector)
    named = any(t.names for t in targets)
    if named and label_selector:
        raise CliError("error: name cannot be provided when a selector is specified")
    if named and all_namespaces:
        raise CliError("error: a resource cannot be retrieved by name across all namespaces")
    if watch_ and len(targets) > 1:
        raise CliError("error: watch is only supported on individual resources")

    def namespace(info: KindInfo) -> str:
        return "" if all_namespaces else settings.namespace_for(info)

    if watch_:
        target = targets[0]
        run(
            lambda client: watch(
                client,
                target,
                namespace(target.info),
                label_selector,
                output,
                all_namespaces,
                settings,
                chunk_size,
                field_selector=field_selector,
            ),
            settings,
        )
        return

    async def body(client: Client) -> tuple[list[tuple[Target, list[Message]]], list[str]]:
        results: list[tuple[Target, list[Message]]] = []
        missing: list[str] = []
        for target in targets:
            found, absent = await fetch(
                client,
                target,
                namespace(target.info),
                label_selector,
                chunk_size,
                field_selector=field_selector,
            )
            results.append((target, found))
            missing += absent
        if output == "wide":
            services = [
                o for _, objs in results for o in objs if isinstance(o, objects_pb2.Service)
            ]
            if services:
                from kubelab.cli.served import served_cells  # -o wide only

                served.update(await served_cells(client, services))
        return results, missing

    served: dict[ObjectKey, str] = {}
    results, missing = run(body, settings)
    if output in ("yaml", "json", "name"):
        single = len(targets) == 1 and len(targets[0].names) == 1
        printed = print_objects(results, output, single)
    else:
        printed = print_tables(
            results, output, all_namespaces, served if output == "wide" else None
        )
    if not printed and not named:
        click.echo(no_resources(settings, targets[0].info, all_namespaces), err=True)
    for message in missing:
        click.echo(message, err=True)
    if missing:
        raise click.exceptions.Exit(1)
