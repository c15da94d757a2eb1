"""The credentials the CLI and SDK present: the kubeconfig's, as kubectl's.

A kubeconfig whose current cluster is served over `https://` carries the cluster CA
(`certificate-authority-data` or `certificate-authority`) and the user's client
certificate and key (`client-certificate-data` / `client-key-data`, or file paths);
`kubelab up` writes one with the admin's. The same credentials then secure kubelab's
gRPC API: the channel trusts that CA and presents that certificate.

Which kubeconfig: `$KUBECONFIG` (its first file), else `$KUBELAB_HOME/kubeconfig`;
kubectl's `~/.kube/config` is never read (it is the user's other clusters'). None
when there is none or it names a plain-HTTP server (an apiserver without TLS).
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import yaml

from kubelab import home

KUBECONFIG_FILE = "kubeconfig"


@dataclass(frozen=True, slots=True)
class Credentials:
    ca: bytes  # PEM
    cert: bytes | None = None  # PEM client certificate
    key: bytes | None = None  # PEM private key

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert
        )


def from_files(ca: Path, cert: Path, key: Path) -> Credentials:
    """Credentials from PEM files (a PKI's CA and one of its pairs); OSError when one
    cannot be read."""
    return Credentials(ca.read_bytes(), cert.read_bytes(), key.read_bytes())


def kubeconfig_path() -> Path:
    listed = os.environ.get("KUBECONFIG", "")
    first = next((p for p in listed.split(os.pathsep) if p), "")
    return Path(first) if first else home.kubelab_home() / KUBECONFIG_FILE


def _named(items: Any, name: str) -> dict[str, Any]:
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and item.get("name") == name:
            found = item.get("cluster") or item.get("user") or item.get("context") or {}
            return found if isinstance(found, dict) else {}
    return {}


def _data(section: dict[str, Any], key: str, base: Path) -> bytes | None:
    inline = section.get(f"{key}-data")
    if isinstance(inline, str) and inline:
        return base64.b64decode(inline, validate=True)
    path = section.get(key)
    if isinstance(path, str) and path:
        return (base / path).read_bytes()
    return None


def from_kubeconfig(path: Path) -> Credentials | None:
    """The current context's credentials in `path`; None when it has none (no file, a
    plain-HTTP server). A kubeconfig that cannot be read is a ValueError naming it."""
    try:
        document = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"cannot read the kubeconfig {path}: {err}") from None
    if not isinstance(document, dict):
        return None
    context = _named(document.get("contexts"), str(document.get("current-context", "")))
    cluster = _named(document.get("clusters"), str(context.get("cluster", "")))
    user = _named(document.get("users"), str(context.get("user", "")))
    if not str(cluster.get("server", "")).startswith("https://"):
        return None
    try:
        ca = _data(cluster, "certificate-authority", path.parent)
        cert = _data(user, "client-certificate", path.parent)
        key = _data(user, "client-key", path.parent)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read the credentials in the kubeconfig {path}: {err}") from None
    if ca is None:
        raise ValueError(f"the kubeconfig {path} names no certificate authority for its server")
    return Credentials(ca, cert, key)


def default() -> Credentials | None:
    return from_kubeconfig(kubeconfig_path())
