"""Where an embedded cluster keeps its state: `$KUBELAB_HOME` (default ~/.kubelab).

`cluster.json` in there is written by `kubelab up` (kubelab.lab) and read by
the CLI and SDK to find the apiserver. Its shape:
`{"api": "127.0.0.1:6443", "etcd": "127.0.0.1:2379", "processes": [...]}`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

DEFAULT_API_ADDRESS = "127.0.0.1:6443"


def kubelab_home() -> Path:
    return Path(os.environ.get("KUBELAB_HOME") or Path.home() / ".kubelab")


def state_file() -> Path:
    return kubelab_home() / "cluster.json"


def api_address() -> str:
    """The apiserver address: $KUBELAB_SERVER, else the running cluster's, else the default."""
    explicit = os.environ.get("KUBELAB_SERVER")
    if explicit:
        return explicit
    try:
        state = json.loads(state_file().read_text())
    except (OSError, ValueError):
        return DEFAULT_API_ADDRESS
    address = state.get("api") if isinstance(state, dict) else None
    return address if isinstance(address, str) and address else DEFAULT_API_ADDRESS
