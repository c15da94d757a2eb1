"""Plumbing shared by the API verbs: settings, naming what to act on, running async code.

`Settings` holds `--server` and `-n/--namespace`. Both are accepted before the
verb (`kubelab -n shop get svc`) and after it (`kubelab get svc -n shop`), as
kubectl allows; the later one wins. The server address is resolved lazily
(`--server`, else $KUBELAB_SERVER, else cluster.json, see `kubelab.home`), so
commands that never talk to the API never read cluster.json.

`parse_targets` turns `svc shop cart`, `svc/shop pod/web-1` or `svc,pods` into
(kind, names) pairs with kubectl's rules and messages; it is pure and
unit-tested. Each verb runs its body with `run(...)`: one `asyncio.run` per
command, one gRPC channel per run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

from kubelab import credentials, home
from kubelab.cli.errors import CliError
from kubelab.client import Client
from kubelab.core import kinds, selectors
from kubelab.core.kinds import DEFAULT_NAMESPACE, KindInfo
from kubelab.core.printing import kind_ref, metadata

if TYPE_CHECKING:
    from kubelab.core.manifests import LoadedObject

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(slots=True)
class Settings:
    server: str | None = None
    namespace: str | None = None

    @property
    def target(self) -> str:
        return self.server or home.api_address()

    @property
    def explicit_namespace(self) -> bool:
        return self.namespace is not None

    def namespace_for(self, info: KindInfo) -> str:
        """The namespace a call about `info` uses ("" for cluster-scoped kinds)."""
        return (self.namespace or DEFAULT_NAMESPACE) if info.namespaced else ""


pass_settings = click.make_pass_decorator(Settings, ensure=True)


def _override(attr: str) -> Callable[[click.Context, click.Parameter, str | None], None]:
    def callback(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
        if value is not None:
            setattr(ctx.ensure_object(Settings), attr, value)

    return callback


def server_option(f: F) -> F:
    return click.option(
        "--server",
        "-s",
        metavar="HOST:PORT",
        expose_value=False,
        callback=_override("server"),
        help="The apiserver address (default: $KUBELAB_SERVER, else the running cluster's).",
    )(f)


def namespace_option(f: F) -> F:
    return click.option(
        "--namespace",
        "-n",
        metavar="NS",
        expose_value=False,
        callback=_override("namespace"),
        help="The namespace (default: default).",
    )(f)


def api_options(f: F) -> F:
    """--server and -n on a verb, overriding the ones given before it."""
    return server_option(namespace_option(f))


def run(body: Callable[[Client], Awaitable[T]], settings: Settings) -> T:
    """Run one command's async body with a client for the configured server."""

    try:
        # kubectl's credentials (`kubelab.credentials`): the CLI is one more client.
        found = credentials.default()
    except ValueError as err:
        raise CliError(f"error: {err}") from None

    async def main() -> T:
        async with Client.connect(settings.target, credentials=found) as client:
            return await body(client)

    return asyncio.run(main())


# ---------------------------------------------------------------- naming targets


def resolve_kind(name: str) -> KindInfo:
    """What the user typed as a kind, including kubectl's qualified spellings
    (`deployment.apps`, `endpointslices.discovery.k8s.io`) from `-o name` output."""
    try:
        return kinds.kind_info(name)
    except kinds.UnknownKindError:
        pass
    base, _, group = name.partition(".")
    if group:
        try:
            info = kinds.kind_info(base)
        except kinds.UnknownKindError:
            pass
        else:
            if kind_ref(info).partition(".")[2] == group:
                return info
    raise CliError(f'error: the server doesn\'t have a resource type "{name}"')


@dataclass(frozen=True, slots=True)
class Target:
    info: KindInfo
    names: tuple[str, ...]


def _mixed_forms(verb: str) -> CliError:
    return CliError(
        "error: there is no need to specify a resource type as a separate argument when "
        f"passing arguments in resource/name form (e.g. 'kubelab {verb} "
        f"resource/<resource_name>' instead of 'kubelab {verb} resource "
        "resource/<resource_name>')"
    )


def parse_targets(args: Sequence[str], *, verb: str) -> list[Target]:
    """kubectl's ways to name objects: `KIND [NAME...]`, `KIND,KIND [NAME...]` or
    `KIND/NAME...`. Targets of one kind are merged, in first-seen order."""
    if not args:
        known = ", ".join(i.resource for i in kinds.ALL_KINDS)
        raise CliError(f"error: you must specify the type of resource to {verb} (one of: {known})")
    if "/" in args[0]:
        merged: dict[str, list[str]] = {}
        infos: dict[str, KindInfo] = {}
        for arg in args:
            kind, slash, name = arg.partition("/")
            if not slash:
                raise _mixed_forms(verb)
            if not kind or not name:
                raise CliError(f"error: arguments in resource/name form must have a name: {arg}")
            info = resolve_kind(kind)
            infos[info.kind] = info
            merged.setdefault(info.kind, []).append(name)
        return [Target(infos[k], tuple(names)) for k, names in merged.items()]
    names = tuple(args[1:])
    if any("/" in name for name in names):
        raise _mixed_forms(verb)
    seen: dict[str, KindInfo] = {}
    for kind in args[0].split(","):
        if kind:
            info = resolve_kind(kind)
            seen.setdefault(info.kind, info)
    if not seen:
        raise CliError(f'error: the server doesn\'t have a resource type "{args[0]}"')
    return [Target(info, names) for info in seen.values()]


def check_selector(text: str | None) -> str:
    """The -l text after checking its syntax here, so a typo never reaches the server."""
    if not text:
        return ""
    try:
        selectors.parse_selector(text)
    except ValueError as err:
        raise CliError(f"error: {err}") from None
    return text


async def target_names(client: Client, target: Target, namespace: str, selector: str) -> list[str]:
    """The names a verb acts on: the ones given, else every object the selector
    picks (`delete svc -l app=shop`, `label svc --all`)."""
    if target.names:
        return list(target.names)
    items, _ = await client.list(target.info.resource, namespace, selector)
    return sorted(metadata(obj).name for obj in items)


def filename_option(verb: str) -> Callable[[F], F]:
    return click.option(
        "-f",
        "--filename",
        "filenames",
        multiple=True,
        metavar="FILE|DIR|-",
        help=f"Manifests to {verb}: a file, a directory of *.yaml/*.yml/*.json, or - for stdin.",
    )


def load_objects(filenames: Sequence[str], settings: Settings, verb: str) -> list[LoadedObject]:
    """Every object in the files, namespaced by -n where the manifest names none.

    All files are read and checked before anything is sent, so a typo in the
    third document changes nothing (DESIGN §8.5). A manifest namespace that
    contradicts an explicit -n is refused, as kubectl refuses it."""
    # Here, not at the top: YAML and the validation rules are for the verbs that read
    # manifests, and `kubelab get svc` should not pay for importing them.
    from kubelab.core import manifests

    if not filenames:
        raise CliError("error: must specify -f FILE (a file, a directory or - for stdin)")
    try:
        loaded = manifests.load_manifest_files(filenames)
    except manifests.ManifestError as err:
        raise CliError(f"error: {err}") from None
    for item in loaded:
        if not item.info.namespaced:
            continue
        meta = metadata(item.object)
        if meta.namespace and settings.explicit_namespace and meta.namespace != settings.namespace:
            raise CliError(
                f'error: the namespace from the provided object "{meta.namespace}" does not '
                f'match the namespace "{settings.namespace}". You must pass '
                f"'--namespace={meta.namespace}' to perform this operation."
            )
        if not meta.namespace:
            meta.namespace = settings.namespace_for(item.info)
    if not loaded:
        raise CliError(f"error: no objects passed to {verb}")
    return loaded
