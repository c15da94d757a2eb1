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

Pure: Services in, a dict out, in a stable order (by Service name).
"""

from __future__ import annotations

from collections.abc import Iterable

from kubelab.v1 import objects_pb2

__all__ = ["env_var_name", "service_environment"]


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


def _one_service(service: objects_pb2.Service) -> dict[str, str]:
    spec = service.spec
    ip = spec.cluster_ip
    if not ip or ip == "None" or spec.type == "ExternalName" or not spec.ports:
        return {}
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
