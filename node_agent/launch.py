"""What process a container is: its argv and its environment.

kubelab has no images, so an image name only picks a default program:

- `kubelab/echo` (any tag, digest or registry prefix) is the built-in echo
  server, `python -m workloads.echo`, run with the interpreter of the agent.
- Any other image with neither `command` nor `args` runs the echo server too,
  so real manifests (`image: nginx`) apply and answer; the runtime logs a
  warning naming the pod and the image once when it starts such a pod.
- `command` set: that real program, `command + args` (Kubernetes semantics:
  command replaces the image's ENTRYPOINT, args its CMD).
- `args` alone: appended to the image's default. For echo that means extra
  echo arguments; any other image is taken to have no ENTRYPOINT (busybox,
  alpine, ubuntu), so, as in Docker, the args are the whole command.

The echo server's ports come from the container's ports (`echo_port_args`):

    protocol TCP, name starting with "tcp"       -> --tcp PORT   (raw byte echo)
    protocol TCP, name starting with "bulk"      -> --bulk PORT  (one-way streams)
    protocol TCP, any other name                 -> --http PORT  (HTTP echo)
    protocol UDP                                 -> --udp PORT   (datagram echo)
    protocol SCTP                                -> nothing listens

The environment, later entries winning: a few variables of the agent's own
(PATH, HOME, locale, TZ, TMPDIR: a container image would set its own), the
Service variables the caller passes (`node_agent.logic.service_env`), the pod's
identity (POD_NAME, POD_NAMESPACE, NODE_NAME, POD_IP, HOSTNAME; Kubernetes
gives these through the downward API, kubelab always), then the container's
own `env`, which wins as it does in Kubernetes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from kubelab.v1 import objects_pb2

__all__ = ["ECHO_IMAGE", "container_argv", "container_env", "echo_port_args", "is_echo_image"]

ECHO_IMAGE = "kubelab/echo"
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")


def is_echo_image(image: str) -> bool:
    """`kubelab/echo`, `kubelab/echo:1.0`, `docker.io/kubelab/echo@sha256:...`."""
    name = image.split("@", 1)[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    return name == ECHO_IMAGE or name.endswith("/" + ECHO_IMAGE)


def runs_echo(container: objects_pb2.Container) -> bool:
    """The container runs the echo server (by image, or as the stand-in for another image)."""
    if container.command:
        return False
    return is_echo_image(container.image) or not container.args


def echo_port_args(container: objects_pb2.Container) -> list[str]:
    args: list[str] = []
    for port in container.ports:
        protocol = port.protocol or "TCP"
        if protocol == "UDP":
            args += ["--udp", str(port.container_port)]
        elif protocol == "TCP":
            if port.name.startswith("tcp"):
                mode = "--tcp"
            elif port.name.startswith("bulk"):
                mode = "--bulk"
            else:
                mode = "--http"
            args += [mode, str(port.container_port)]
    return args


def container_argv(container: objects_pb2.Container) -> list[str]:
    if container.command:
        return [*container.command, *container.args]
    if runs_echo(container):
        return [
            sys.executable,
            "-m",
            "workloads.echo",
            *echo_port_args(container),
            *container.args,
        ]
    return list(container.args)


def container_env(
    container: objects_pb2.Container, *, identity: Mapping[str, str], services: Mapping[str, str]
) -> dict[str, str]:
    env = {name: os.environ[name] for name in _INHERITED if name in os.environ}
    if runs_echo(container):
        # The echo server must import workloads and kubelab even where they are not installed.
        path = os.environ.get("PYTHONPATH", "")
        env["PYTHONPATH"] = f"{_PACKAGE_ROOT}{os.pathsep}{path}" if path else _PACKAGE_ROOT
    env.update(services)
    env.update(identity)
    env.update((var.name, var.value) for var in container.env)
    return env
