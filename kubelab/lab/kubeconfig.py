"""`$KUBELAB_HOME/kubeconfig`: how the real kubectl and client libraries find kubelab.

`kubelab up` writes it once the cluster is up: a cluster, a user and a context, all
named `kubelab`, the context current and its namespace `default`, the server the
apiserver's Kubernetes HTTP API. The user's own `~/.kube/config` is never read or
written: `export KUBECONFIG=$KUBELAB_HOME/kubeconfig` (what `up` prints) points one
shell at kubelab and leaves every other alone. The file is 0600 like the rest of the
home, written whole (a temporary file renamed over it) so kubectl never reads half.

The container lab (`make lab`, compose/lab.yaml) has one too, for its apiserver's
public address: `python -m kubelab.lab.kubeconfig SERVER PATH` writes it and prints the
`export KUBECONFIG=...` line, as `up` does (`make lab` runs it; `make lab-down`
removes the file).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import yaml

from kubelab.pki import KubeconfigAuth

NAME = "kubelab"
FILE_NAME = "kubeconfig"
_PRIVATE_FILE = 0o600


def kubeconfig(server: str, auth: KubeconfigAuth | None = None) -> dict[str, Any]:
    """The kubeconfig document for an apiserver at `server` (`http://host:port`, or
    `https://` with `auth`: the cluster CA and the user's client certificate)."""
    cluster: dict[str, Any] = {"server": server}
    user: dict[str, Any] = {}
    if auth is not None:
        cluster.update(auth.cluster)
        user.update(auth.user)
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": NAME, "cluster": cluster}],
        "users": [{"name": NAME, "user": user}],
        "contexts": [
            {"name": NAME, "context": {"cluster": NAME, "user": NAME, "namespace": "default"}}
        ],
        "current-context": NAME,
        "preferences": {},
    }


def write_kubeconfig(home: Path, server: str, auth: KubeconfigAuth | None = None) -> Path:
    return write_kubeconfig_file(home / FILE_NAME, server, auth)


def write_kubeconfig_file(path: Path, server: str, auth: KubeconfigAuth | None = None) -> Path:
    temporary = path.with_name(f"{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _PRIVATE_FILE)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(yaml.safe_dump(kubeconfig(server, auth), sort_keys=False))
    temporary.replace(path)
    return path


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[0].startswith(("http://", "https://")):
        print("usage: python -m kubelab.lab.kubeconfig http://HOST:PORT PATH", file=sys.stderr)
        return 2
    path = write_kubeconfig_file(Path(argv[1]).absolute(), argv[0])
    print(f"export KUBECONFIG={path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
