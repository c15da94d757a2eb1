"""`$KUBELAB_HOME/kubeconfig`: how the real kubectl and client libraries find kubelab.

`kubelab up` writes it once the cluster is up: a cluster, a user and a context, all
named `kubelab`, the context current and its namespace `default`, the server the
apiserver's Kubernetes HTTP API. The user's own `~/.kube/config` is never read or
written: `export KUBECONFIG=$KUBELAB_HOME/kubeconfig` (what `up` prints) points one
shell at kubelab and leaves every other alone. The file is 0600 like the rest of the
home, written whole (a temporary file renamed over it) so kubectl never reads half.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

NAME = "kubelab"
FILE_NAME = "kubeconfig"
_PRIVATE_FILE = 0o600


def kubeconfig(server: str) -> dict[str, Any]:
    """The kubeconfig document for an apiserver at `server` (`http://host:port`)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": NAME, "cluster": {"server": server}}],
        "users": [{"name": NAME, "user": {}}],
        "contexts": [
            {"name": NAME, "context": {"cluster": NAME, "user": NAME, "namespace": "default"}}
        ],
        "current-context": NAME,
        "preferences": {},
    }


def write_kubeconfig(home: Path, server: str) -> Path:
    path = home / FILE_NAME
    temporary = home / f"{FILE_NAME}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _PRIVATE_FILE)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(yaml.safe_dump(kubeconfig(server), sort_keys=False))
    temporary.replace(path)
    return path
