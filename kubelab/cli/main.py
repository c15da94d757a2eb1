"""The `kubelab` command: a click group whose verbs live one per module, as kind's do.

Failure policy (issue #2): whatever goes wrong, the user sees a clear message
on stderr and a non-zero exit, never a Python traceback. Commands raise
`CliError` for what they detect; `ApiError`s that a verb did not word itself
are worded here with kubectl's phrases for the server that was asked. Any other
exception is a bug: it is reported in one line with a pointer to
KUBELAB_DEBUG=1, which re-raises it for the traceback. Ctrl-C exits 130
quietly (`get -w` ends that way).
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from kubelab.cli.common import Settings, namespace_option, server_option
from kubelab.cli.errors import CliError, from_api_error
from kubelab.client import ApiError

# Each verb's module is imported only when that verb runs (or help lists it): `up`
# alone pulls in the launcher and rich, `dns` dnspython, `describe` its printers, and
# a `kubelab get svc` that imported them all spent most of its time importing.
VERBS: dict[str, tuple[str, str]] = {
    "up": ("kubelab.cli.cluster", "up"),
    "down": ("kubelab.cli.cluster", "down"),
    "status": ("kubelab.cli.cluster", "status"),
    "apply": ("kubelab.cli.apply", "apply"),
    "create": ("kubelab.cli.create", "create"),
    "get": ("kubelab.cli.get", "get"),
    "describe": ("kubelab.cli.describe", "describe"),
    "delete": ("kubelab.cli.delete", "delete"),
    "label": ("kubelab.cli.label", "label"),
    "scale": ("kubelab.cli.scale", "scale"),
    "logs": ("kubelab.cli.logs", "logs"),
    "dns": ("kubelab.cli.dns", "dns_command"),
}


def _fail(error: CliError) -> None:
    click.echo(error.message, err=True)
    if error.hint:
        click.echo(error.hint, err=True)
    raise click.exceptions.Exit(error.code)


class KubelabGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(VERBS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        where = VERBS.get(cmd_name)
        if where is None:
            return None
        command = getattr(importlib.import_module(where[0]), where[1])
        assert isinstance(command, click.Command)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except CliError as err:
            _fail(err)
        except ApiError as err:
            _fail(from_api_error(err, ctx.ensure_object(Settings).target))
        except KeyboardInterrupt:
            raise click.exceptions.Exit(130) from None
        except BrokenPipeError:
            # `kubelab get svc | head`: the reader left; stop writing, quietly.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise click.exceptions.Exit(1) from None
        except Exception as err:
            if os.environ.get("KUBELAB_DEBUG"):
                raise
            _fail(
                CliError(
                    f"error: unexpected {type(err).__name__}: {err}",
                    hint="This is a kubelab bug; KUBELAB_DEBUG=1 shows the traceback.",
                )
            )
        return None


@click.group(
    cls=KubelabGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@server_option
@namespace_option
@click.pass_context
def cli(ctx: click.Context) -> None:
    """kubelab: Kubernetes Service networking, built for real and small enough to read.

    Start a cluster with `kubelab up`, then use it as you would kubectl:
    `kubelab apply -f examples/shop-service.yaml`, `kubelab get svc`.
    """
    ctx.ensure_object(Settings)


def main() -> None:
    cli(prog_name="kubelab")


if __name__ == "__main__":
    main()
