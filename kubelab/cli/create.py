"""`kubelab create namespace NAME`: kubectl's imperative create, for namespaces.

Prints kubectl's `namespace/NAME created`; an existing one is
`Error from server (AlreadyExists): namespaces "NAME" already exists` and exit 1,
a bad name the server's Invalid message (a namespace name is a DNS-1123 label).
Everything else is created from manifests with `kubelab apply -f`.
"""

from __future__ import annotations

import click

from kubelab.cli.common import Settings, api_options, pass_settings, run
from kubelab.cli.errors import from_api_error
from kubelab.client import ApiError, Client
from kubelab.core import kinds
from kubelab.core.printing import kind_ref
from kubelab.v1 import meta_pb2, objects_pb2


@click.group("create")
def create() -> None:
    """Create an object from the command line: kubelab create namespace dev."""


@create.command("namespace")
@click.argument("name")
@api_options
@pass_settings
def create_namespace(settings: Settings, name: str) -> None:
    """Create a namespace: kubelab create namespace dev (alias: ns)."""
    info = kinds.NAMESPACES

    async def body(client: Client) -> None:
        try:
            await client.create(objects_pb2.Namespace(metadata=meta_pb2.ObjectMeta(name=name)))
        except ApiError as err:
            raise from_api_error(
                err, client.target, kind=info.kind, resource=info.resource, name=name
            ) from None

    run(body, settings)
    click.echo(f"{kind_ref(info)}/{name} created")


create.add_command(create_namespace, "ns")
