"""Where an embedded cluster keeps its state: `$KUBELAB_HOME` (default ~/.kubelab).

`cluster.json` in there is written by `kubelab up` (kubelab.lab) and read by
the CLI and SDK to find the apiserver and the cluster DNS. Its shape:
`{"api": "127.0.0.1:6443", "etcd": "127.0.0.1:2379", "dns": "127.96.0.10:53",
"cluster_domain": "cluster.local", "processes": [...], "supervisor": {...},
"layout": {...}}`. The home is the user's alone (0700, its files 0600), so
reading cluster.json needs nothing but being that user.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

DEFAULT_API_ADDRESS = "127.0.0.1:6443"
DEFAULT_CLUSTER_DOMAIN = "cluster.local"


def kubelab_home() -> Path:
    return Path(os.environ.get("KUBELAB_HOME") or Path.home() / ".kubelab")


def state_file() -> Path:
    return kubelab_home() / "cluster.json"


def _recorded(key: str) -> str | None:
    """A string field of the running cluster's cluster.json, None when absent."""
    try:
        state = json.loads(state_file().read_text())
    except (OSError, ValueError):
        return None
    value = state.get(key) if isinstance(state, dict) else None
    return value if isinstance(value, str) and value else None


def api_address() -> str:
    """The apiserver address: $KUBELAB_SERVER, else the running cluster's, else the default."""
    return os.environ.get("KUBELAB_SERVER") or _recorded("api") or DEFAULT_API_ADDRESS


def dns_address() -> str | None:
    """The cluster DNS address: $KUBELAB_DNS, else the running cluster's, else None."""
    return os.environ.get("KUBELAB_DNS") or _recorded("dns")


def cluster_domain() -> str:
    return _recorded("cluster_domain") or DEFAULT_CLUSTER_DOMAIN
