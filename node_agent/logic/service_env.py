"""Service environment variables: what a container learns about Services at start.

Kubernetes gives every container docker-link-style variables for the Services
that exist when it starts (`pkg/kubelet/envvars/envvars.go` FromServices and
makeLinkVariables), and kubelab copies them name for name:

    SHOP_SERVICE_HOST=127.96.0.12         SHOP_PORT=tcp://127.96.0.12:80
    SHOP_SERVICE_PORT=80                  SHOP_PORT_80_TCP=tcp://127.96.0.12:80
    SHOP_SERVICE_PORT_HTTP=80             SHOP_PORT_80_TCP_PROTO=tcp
                                          SHOP_PORT_80_TCP_PORT=80
                                          SHOP_PORT_80_TCP_ADDR=127.96.0.12

Only Services with a ClusterIP count: headless (`clusterIP: None`) and
ExternalName Services have no address to give (Kubernetes' IsServiceIPSet).
The variables are fixed when a container starts; Services created later reach
only containers started (or restarted) after them, as in Kubernetes, which is
why cluster DNS is the better discovery mechanism.

A bounded environment (`service_links`, what the node agent uses). Every port
adds about 7 variables, and the kubelet adds them for every Service of the pod's
namespace with no limit: a Service with 20,000 ports (valid) makes ~5 MB of them,
past the kernel's ARG_MAX (2 MiB with an 8 MiB stack), so exec fails with E2BIG and
every new pod in the namespace crash-loops ("argument list too long"). Kubernetes
leaves that to the user, who sets the pod's `enableServiceLinks: false` (kubelab has
no such field: cluster DNS is the way to find Services). kubelab keeps the pod
startable instead: the Services' variables share `SERVICE_LINKS_BUDGET` (256 KiB,
an eighth of ARG_MAX, leaving the rest to the pod's own env and args), smaller
Services first so the most Services fit, and a Service whose variables do not fit
is left out whole (its HOST without its PORT would mislead) and named in
`skipped`, for the node agent to log.

Pure: Services in, a dict out, in a stable order (by Service name).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kubelab.v1 import objects_pb2

__all__ = [
    "SERVICE_LINKS_BUDGET",
    "ServiceLinks",
    "env_size",
    "env_var_name",
    "service_environment",
    "service_links",
]

SERVICE_LINKS_BUDGET = 256 * 1024
_POINTER = 8  # exec counts each variable's envp slot against ARG_MAX too


@dataclass(frozen=True, slots=True)
class ServiceLinks:
    """The variables a container gets, and the Services left out to stay in budget."""

    env: dict[str, str]
    skipped: tuple[str, ...] = ()  # Service names


def env_var_name(name: str) -> str:
    """Kubernetes' makeEnvVariableName: upper-case, '-' becomes '_'."""
    return name.replace("-", "_").upper()


def service_environment(
    services: Iterable[objects_pb2.Service], *, namespace: str | None = None
) -> dict[str, str]:
    """The variables for `services`; with `namespace`, only that namespace's Services
    count (the kubelet offers a pod the Services of its own namespace)."""
    env: dict[str, str] = {}
    chosen = [s for s in services if namespace is None or s.metadata.namespace == namespace]
    for service in sorted(chosen, key=lambda s: s.metadata.name):
        env.update(_one_service(service))
    return env


def env_size(env: Mapping[str, str]) -> int:
    """What `env` costs exec against ARG_MAX: each "NAME=value" with its NUL and pointer."""
    return sum(len(k.encode()) + len(v.encode()) + 2 + _POINTER for k, v in env.items())


def service_links(
    services: Iterable[objects_pb2.Service], *, budget: int = SERVICE_LINKS_BUDGET
) -> ServiceLinks:
    """`service_environment`, bounded: the Services whose variables fit in `budget`
    bytes together, smaller ones first (ties by name); the others are `skipped`."""
    each: dict[str, dict[str, str]] = {}
    skipped: list[str] = []
    for service in services:
        if not _linked(service):
            continue
        # Four variables per port at the least: a Service that cannot fit is not built
        # (20,000 ports would be 140,000 variables, for every pod start).
        if 4 * len(service.spec.ports) * (2 + _POINTER) > budget:
            skipped.append(service.metadata.name)
        else:
            each[service.metadata.name] = _one_service(service)
    sizes = {name: env_size(env) for name, env in each.items() if env}
    kept: set[str] = set()
    used = 0
    for name in sorted(sizes, key=lambda n: (sizes[n], n)):
        if used + sizes[name] <= budget:
            used += sizes[name]
            kept.add(name)
        else:
            skipped.append(name)
    env: dict[str, str] = {}
    for name in sorted(kept):
        env.update(each[name])
    return ServiceLinks(env=env, skipped=tuple(sorted(skipped)))


def _linked(service: objects_pb2.Service) -> bool:
    spec = service.spec
    ip = spec.cluster_ip
    return bool(ip and ip != "None" and spec.type != "ExternalName" and spec.ports)


def _one_service(service: objects_pb2.Service) -> dict[str, str]:
    if not _linked(service):
        return {}
    spec = service.spec
    ip = spec.cluster_ip
    prefix = env_var_name(service.metadata.name)
    env = {
        f"{prefix}_SERVICE_HOST": ip,
        # The first port keeps the unnamed, backwards-compatible name.
        f"{prefix}_SERVICE_PORT": str(spec.ports[0].port),
    }
    for port in spec.ports:
        if port.name:
            env[f"{prefix}_SERVICE_PORT_{env_var_name(port.name)}"] = str(port.port)
    for i, port in enumerate(spec.ports):
        protocol = port.protocol or "TCP"
        url = f"{protocol.lower()}://{_host_port(ip, port.port)}"
        if i == 0:
            env[f"{prefix}_PORT"] = url  # Docker special-cases the first port
        at = f"{prefix}_PORT_{port.port}_{protocol.upper()}"
        env[at] = url
        env[f"{at}_PROTO"] = protocol.lower()
        env[f"{at}_PORT"] = str(port.port)
        env[f"{at}_ADDR"] = ip
    return env


def _host_port(ip: str, port: int) -> str:
    """Go's net.JoinHostPort: IPv6 addresses get brackets."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
