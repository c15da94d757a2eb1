"""The cluster's certificates on disk: `$KUBELAB_HOME/pki`, laid out as kubeadm lays out
/etc/kubernetes/pki, created once and reused.

kubeadm's files, same names and same issuers:

    ca.crt, ca.key                        the cluster CA ("kubernetes")
    apiserver.crt, .key                   the apiserver's serving certificate
    apiserver-kubelet-client.crt, .key    the apiserver as a client of the node agents' API
    apiserver-etcd-client.crt, .key       the apiserver as a client of etcd (etcd CA)
    sa.key, sa.pub                        the ServiceAccount token signing key pair
    etcd/ca.crt, etcd/ca.key              etcd's own CA ("etcd-ca")
    etcd/server.crt, .key                 etcd's serving certificate (server + client usage)
    etcd/peer.crt, .key                   etcd's peer certificate (server + client usage)

kubelab's own, the client certificates kubeadm embeds in its *.conf kubeconfigs and the
kubelet keeps in /var/lib/kubelet/pki (one actor, one identity):

    admin.crt, .key                       kubernetes-admin, group system:masters (kubectl)
    controller-manager.crt, .key          system:kube-controller-manager
    scheduler.crt, .key                   system:kube-scheduler
    dns.crt, .key                         system:kube-dns (kube-dns' RBAC role is named so)
    cloud-stub.crt, .key                  system:cloud-controller-manager
    cloud-stub-server.crt, .key           the cloud-stub's serving certificate (its API)
    nodes/NAME/kubelet-client.crt, .key   system:node:NAME, group system:nodes
    nodes/NAME/kubelet.crt, .key          the node agent's serving certificate (port 10250)

Idempotent (`ensure_pki` every `kubelab up`): a pair is kept while its files read back, its key
matches its certificate, its CA signed it, it is valid at `now`, and it still says what is
wanted (subject, usages, SANs); anything else is issued anew from the existing CA. A new CA
(missing or broken) therefore re-issues every leaf it signs. Files are written whole: a temporary
file in the same directory, 0600 from its creation, fsynced, then renamed over the old one, and
the directory fsynced; the key of a pair is written before its certificate, so a crash between
the two leaves a mismatch the next run repairs. Private keys are 0600, certificates 0644 (as
kubeadm), every directory 0700, so nothing in here is readable by another user.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from kubelab.core import certs
from kubelab.core.allocators import DEFAULT_SERVICE_CIDR
from kubelab.core.validation.syntax import is_dns1123_subdomain

DIR_NAME = "pki"
_PRIVATE_DIR = 0o700
_PRIVATE_FILE = 0o600
_PUBLIC_FILE = 0o644

ADMIN = certs.Identity("kubernetes-admin", ("system:masters",))
CONTROLLER_MANAGER = certs.Identity("system:kube-controller-manager", ())
SCHEDULER = certs.Identity("system:kube-scheduler", ())
DNS = certs.Identity("system:kube-dns", ())
CLOUD_STUB = certs.Identity("system:cloud-controller-manager", ())
APISERVER_KUBELET_CLIENT = certs.Identity("kube-apiserver-kubelet-client", ("system:masters",))
APISERVER_ETCD_CLIENT = certs.Identity("kube-apiserver-etcd-client", ())
NODES_GROUP = "system:nodes"
MAX_COMMON_NAME = 64


def node_identity(name: str) -> certs.Identity:
    return certs.Identity(f"system:node:{name}", (NODES_GROUP,))


@dataclass(frozen=True, slots=True)
class Pair:
    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class NodePairs:
    client: Pair
    serving: Pair


@dataclass(frozen=True, slots=True)
class KubeconfigAuth:
    """What a kubeconfig carries for TLS: `cluster` goes beside `server` in
    `clusters[].cluster`, `user` is `users[].user` (base64 of the PEM files)."""

    cluster: dict[str, str]
    user: dict[str, str]


@dataclass(frozen=True)
class Pki:
    dir: Path
    ca: Pair
    apiserver: Pair
    apiserver_kubelet_client: Pair
    apiserver_etcd_client: Pair
    sa_key: Path
    sa_pub: Path
    etcd_ca: Pair
    etcd_server: Pair
    etcd_peer: Pair
    admin: Pair
    controller_manager: Pair
    scheduler: Pair
    dns: Pair
    cloud_stub: Pair
    cloud_stub_server: Pair
    nodes: Mapping[str, NodePairs]
    # The files this call wrote (relative to `dir`), in order; empty when everything was kept.
    written: tuple[str, ...] = field(default=())

    def kubeconfig_auth(self, pair: Pair) -> KubeconfigAuth:
        """The kubeconfig fields for the identity in `pair` against this cluster's CA."""
        return kubeconfig_auth(self.ca.cert, pair)


def kubeconfig_auth(ca_cert: Path, pair: Pair) -> KubeconfigAuth:
    def data(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode("ascii")

    return KubeconfigAuth(
        cluster={"certificate-authority-data": data(ca_cert)},
        user={"client-certificate-data": data(pair.cert), "client-key-data": data(pair.key)},
    )


@dataclass(frozen=True, slots=True)
class _Leaf:
    """What one leaf pair must say; `sans` empty for a client certificate."""

    path: str
    identity: certs.Identity
    sans: tuple[str, ...] = ()
    client_auth: bool = True


def ensure_pki(
    directory: Path,
    *,
    nodes: Sequence[str],
    api_sans: Sequence[str],
    now: datetime.datetime,
    service_cidr: str = DEFAULT_SERVICE_CIDR,
    cluster_domain: str = certs.DEFAULT_CLUSTER_DOMAIN,
    etcd_sans: Sequence[str] = (),
    node_sans: Mapping[str, Sequence[str]] | None = None,
    cloud_sans: Sequence[str] = (),
) -> Pki:
    """Every certificate the cluster needs under `directory`, keeping what is still good.

    `api_sans` are the lab's addresses for the apiserver (loopback, the `kubernetes` Service's
    names and its ClusterIP in `service_cidr` are added); `etcd_sans` and `node_sans[name]` are
    the extra names of etcd and of each node agent (loopback and the node's name are added)."""
    for name in nodes:
        if problems := is_dns1123_subdomain(name):
            raise ValueError(f'invalid node name "{name}": {"; ".join(problems)}')
        if len(node_identity(name).user) > MAX_COMMON_NAME:
            # RFC 5280's upper bound on a CN, which cryptography enforces (Go does not).
            limit = MAX_COMMON_NAME - len(node_identity("").user)
            raise ValueError(f'node name "{name}" is too long for its certificate: at most {limit}')
    run = _Run(directory, now)
    run.directory("")
    run.directory("etcd")
    cluster_ca = run.ca("ca", "kubernetes")
    etcd_ca = run.ca("etcd/ca", "etcd-ca")
    run.sa_keys()
    wanted_api = certs.apiserver_sans(
        api_sans, service_cidr=service_cidr, cluster_domain=cluster_domain
    )
    run.leaf(cluster_ca, _Leaf("apiserver", _named("kube-apiserver"), tuple(wanted_api), False))
    run.leaf(cluster_ca, _Leaf("apiserver-kubelet-client", APISERVER_KUBELET_CLIENT))
    run.leaf(etcd_ca, _Leaf("apiserver-etcd-client", APISERVER_ETCD_CLIENT))
    local = ("localhost", "127.0.0.1", "::1", *etcd_sans)
    run.leaf(etcd_ca, _Leaf("etcd/server", _named("kube-etcd"), local))
    run.leaf(etcd_ca, _Leaf("etcd/peer", _named("kube-etcd-peer"), local))
    for stem, identity in _ACTORS.items():
        run.leaf(cluster_ca, _Leaf(stem, identity))
    cloud_serving = ("localhost", "127.0.0.1", *cloud_sans)
    run.leaf(cluster_ca, _Leaf("cloud-stub-server", _named("cloud-stub"), cloud_serving, False))
    node_pairs: dict[str, NodePairs] = {}
    for name in nodes:
        run.directory("nodes")
        run.directory(f"nodes/{name}")
        identity = node_identity(name)
        serving_sans = (name, "localhost", "127.0.0.1", *(node_sans or {}).get(name, ()))
        run.leaf(cluster_ca, _Leaf(f"nodes/{name}/kubelet-client", identity))
        run.leaf(cluster_ca, _Leaf(f"nodes/{name}/kubelet", identity, serving_sans, False))
        node_pairs[name] = NodePairs(
            run.pair(f"nodes/{name}/kubelet-client"), run.pair(f"nodes/{name}/kubelet")
        )
    return Pki(
        dir=directory,
        ca=run.pair("ca"),
        apiserver=run.pair("apiserver"),
        apiserver_kubelet_client=run.pair("apiserver-kubelet-client"),
        apiserver_etcd_client=run.pair("apiserver-etcd-client"),
        sa_key=directory / "sa.key",
        sa_pub=directory / "sa.pub",
        etcd_ca=run.pair("etcd/ca"),
        etcd_server=run.pair("etcd/server"),
        etcd_peer=run.pair("etcd/peer"),
        admin=run.pair("admin"),
        controller_manager=run.pair("controller-manager"),
        scheduler=run.pair("scheduler"),
        dns=run.pair("dns"),
        cloud_stub=run.pair("cloud-stub"),
        cloud_stub_server=run.pair("cloud-stub-server"),
        nodes=node_pairs,
        written=tuple(run.written),
    )


_ACTORS = {
    "admin": ADMIN,
    "controller-manager": CONTROLLER_MANAGER,
    "scheduler": SCHEDULER,
    "dns": DNS,
    "cloud-stub": CLOUD_STUB,
}


def _named(common_name: str) -> certs.Identity:
    return certs.Identity(common_name, ())


class _Run:
    """One `ensure_pki` call: reads what is there, writes what is missing or stale."""

    def __init__(self, root: Path, now: datetime.datetime) -> None:
        self.root = root
        self.now = now
        self.written: list[str] = []

    def pair(self, stem: str) -> Pair:
        return Pair(self.root / f"{stem}.crt", self.root / f"{stem}.key")

    def directory(self, relative: str) -> None:
        path = self.root / relative
        path.mkdir(mode=_PRIVATE_DIR, parents=True, exist_ok=True)
        path.chmod(_PRIVATE_DIR)

    def ca(self, stem: str, common_name: str) -> certs.CertKey:
        kept = self._read(self.pair(stem))
        if kept and _is_ca(kept.cert) and certs.issued_by(kept.cert, kept.cert):
            if certs.valid_at(kept.cert, self.now):
                return kept
        issued = certs.self_signed_ca(common_name, now=self.now)
        self._write_pair(stem, issued)
        return issued

    def leaf(self, ca: certs.CertKey, leaf: _Leaf) -> None:
        kept = self._read(self.pair(leaf.path))
        if kept and _still_good(kept.cert, ca.cert, leaf, self.now):
            return
        user, groups = leaf.identity
        if leaf.sans:
            issued = certs.sign_server(
                ca,
                user,
                sans=leaf.sans,
                now=self.now,
                organizations=groups,
                client_auth=leaf.client_auth,
            )
        else:
            issued = certs.sign_client(ca, user, groups, now=self.now)
        self._write_pair(leaf.path, issued)

    def sa_keys(self) -> None:
        key_path, pub_path = self.root / "sa.key", self.root / "sa.pub"
        try:
            key = certs.load_key(key_path.read_bytes())
        except (OSError, ValueError):
            key = certs.new_key()
            self._write("sa.key", certs.key_pem(key), _PRIVATE_FILE)
        try:
            public = certs.load_public_key(pub_path.read_bytes())
            if certs.same_key(public, key):
                return
        except (OSError, ValueError):
            pass
        self._write("sa.pub", certs.public_key_pem(key.public_key()), _PUBLIC_FILE)

    def _read(self, pair: Pair) -> certs.CertKey | None:
        try:
            cert = certs.load_cert(pair.cert.read_bytes())
            key = certs.load_key(pair.key.read_bytes())
        except (OSError, ValueError):
            return None
        public = cert.public_key()
        if not isinstance(public, certs.PublicKey) or not certs.same_key(public, key):
            return None
        return certs.CertKey(cert, key)

    def _write_pair(self, stem: str, issued: certs.CertKey) -> None:
        self._write(f"{stem}.key", certs.key_pem(issued.key), _PRIVATE_FILE)
        self._write(f"{stem}.crt", certs.cert_pem(issued.cert), _PUBLIC_FILE)

    def _write(self, relative: str, data: bytes, mode: int) -> None:
        write_atomically(self.root / relative, data, mode)
        self.written.append(relative)


def write_atomically(path: Path, data: bytes, mode: int = _PRIVATE_FILE) -> None:
    """`data` as the whole of `path`, never half of it, never readable beyond `mode` (mkstemp
    creates the temporary file 0600; a wider `mode` is set only once it is complete)."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _still_good(
    cert: x509.Certificate, ca: x509.Certificate, leaf: _Leaf, now: datetime.datetime
) -> bool:
    if not certs.issued_by(cert, ca) or not certs.valid_at(cert, now):
        return False
    if certs.identity_of(cert) != leaf.identity:
        return False
    usages = {certs.CLIENT_AUTH} if leaf.client_auth else set()
    if leaf.sans:
        usages.add(certs.SERVER_AUTH)
    return certs.key_usages(cert) == usages and set(certs.san_names(cert)) == {
        _normal(name) for name in leaf.sans
    }


def _normal(name: str) -> str:
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name
