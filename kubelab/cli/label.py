"""`kubelab label KIND NAME k=v k2- [--overwrite]`: change labels with compare-and-swap.

Each object is read, its labels changed, and written back with the
resourceVersion that was read, so a concurrent writer is never overwritten
blindly: the server answers ABORTED and we start again from a fresh read (a
few times, then give up with kubectl's Conflict message). Re-checking
`--overwrite` on every attempt matters: the value that makes the change a
conflict may have arrived in between.

Messages are kubectl's: `service/shop labeled`, `unlabeled` (only removals),
`not labeled` (nothing to change), and without --overwrite
`error: 'env' already has a value (prod), and --overwrite is false`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

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
from kubelab.cli.errors import CliError, from_api_error
from kubelab.client import ApiError, Client
from kubelab.core import selectors
from kubelab.core.printing import kind_ref, metadata

MAX_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class LabelChanges:
    set: dict[str, str] = field(default_factory=dict)
    remove: tuple[str, ...] = ()


def is_label_change(arg: str) -> bool:
    """`k=v` or `k-`: object names never contain `=` nor end in `-` (DNS-1123)."""
    return "=" in arg or arg.endswith("-")


def split_args(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """(resource args, label changes): changes follow the resources, as in kubectl."""
    first = next((i for i, a in enumerate(args) if is_label_change(a)), len(args))
    resources, changes = list(args[:first]), list(args[first:])
    stray = [a for a in changes if not is_label_change(a)]
    if stray:
        raise CliError(f"error: invalid label spec: {stray[0]} (labels come after the names)")
    return resources, changes


def parse_label_changes(args: Sequence[str]) -> LabelChanges:
    """`k=v` sets, `k-` removes; keys and values checked with Kubernetes' rules."""
    to_set: dict[str, str] = {}
    remove: list[str] = []
    for arg in args:
        if "=" in arg:
            key, _, value = arg.partition("=")
            problems = selectors.label_key_problems(key) or selectors.label_value_problems(value)
            if problems:
                raise CliError(f"error: invalid label spec: {arg}: {problems[0]}")
            if key in to_set and to_set[key] != value:
                raise CliError(f"error: invalid label spec: {key} is given twice")
            to_set[key] = value
        elif arg.endswith("-"):
            key = arg[:-1]
            problems = selectors.label_key_problems(key)
            if problems:
                raise CliError(f"error: invalid label spec: {arg}: {problems[0]}")
            remove.append(key)
        else:
            raise CliError(f"error: invalid label spec: {arg}")
    both = sorted(set(to_set) & set(remove))
    if both:
        raise CliError(
            f"error: can not both modify and remove a label in the same command: {both[0]}"
        )
    if not to_set and not remove:
        raise CliError("error: at least one label update is required")
    return LabelChanges(to_set, tuple(remove))


def relabel(
    current: dict[str, str], changes: LabelChanges, overwrite: bool
) -> tuple[dict[str, str], list[str]]:
    """The new labels and warnings for removals of absent keys; CliError on a
    conflicting value without --overwrite."""
    for key, value in changes.set.items():
        if key in current and current[key] != value and not overwrite:
            raise CliError(
                f"error: '{key}' already has a value ({current[key]}), and --overwrite is false"
            )
    labels = {**current, **changes.set}
    warnings = []
    for key in changes.remove:
        if key in labels:
            del labels[key]
        else:
            warnings.append(f'label "{key}" not found.')
    return labels, warnings


def outcome(changes: LabelChanges, changed: bool) -> str:
    if not changed:
        return "not labeled"
    return "unlabeled" if changes.remove and not changes.set else "labeled"


async def label_one(
    client: Client,
    target: Target,
    namespace: str,
    name: str,
    changes: LabelChanges,
    overwrite: bool,
) -> str:
    info = target.info
    for _ in range(MAX_ATTEMPTS):
        try:
            obj = await client.get(info.resource, name, namespace)
        except ApiError as err:
            raise from_api_error(
                err, client.target, kind=info.kind, resource=info.resource, name=name
            ) from None
        meta = metadata(obj)
        current = dict(meta.labels)
        labels, warnings = relabel(current, changes, overwrite)
        for warning in warnings:
            click.echo(warning, err=True)
        if labels == current:
            return outcome(changes, changed=False)
        meta.labels.clear()
        meta.labels.update(labels)
        try:
            await client.update(obj)  # carries the resourceVersion read above
        except ApiError as err:
            if err.code == grpc.StatusCode.ABORTED:
                continue
            raise from_api_error(
                err, client.target, kind=info.kind, resource=info.resource, name=name
            ) from None
        return outcome(changes, changed=True)
    raise CliError(
        f'Error from server (Conflict): Operation cannot be fulfilled on {info.resource} "{name}": '
        f"the object kept changing ({MAX_ATTEMPTS} attempts); try again"
    )


@click.command("label")
@click.argument("args", nargs=-1, metavar="KIND NAME... KEY=VALUE... KEY-...")
@click.option("--overwrite", is_flag=True, help="Allow replacing an existing value.")
@click.option("-l", "--selector", metavar="SELECTOR", help="Label what this selector picks.")
@click.option("--all", "all_", is_flag=True, help="Label every object of the kind.")
@api_options
@pass_settings
def label(
    settings: Settings, args: tuple[str, ...], overwrite: bool, selector: str | None, all_: bool
) -> None:
    """Add, change (--overwrite) or remove (KEY-) labels.

    kubelab label svc shop env=prod; kubelab label svc shop env-
    """
    resource_args, change_args = split_args(args)
    changes = parse_label_changes(change_args)
    targets = parse_targets(resource_args, verb="label")
    label_selector = check_selector(selector)
    named = any(t.names for t in targets)
    if named and (label_selector or all_):
        raise CliError("error: names cannot be combined with -l or --all")
    if not named and not (label_selector or all_):
        raise CliError("error: resource(s) were provided, but no name was specified")

    async def body(client: Client) -> None:
        for target in targets:
            namespace = settings.namespace_for(target.info)
            for name in await target_names(client, target, namespace, label_selector):
                result = await label_one(client, target, namespace, name, changes, overwrite)
                click.echo(f"{kind_ref(target.info)}/{name} {result}")

    run(body, settings)
