"""The cluster's certificates on disk (kubelab.pki): kubeadm's layout, private modes, created
once and kept, anything missing or stale issued anew from the CA that is there."""

from __future__ import annotations

import base64
import datetime
import stat
from pathlib import Path

import pytest

from kubelab import pki
from kubelab.core import certs, sa_tokens

NOW = datetime.datetime(2030, 6, 1, 12, 0, 0, tzinfo=datetime.UTC)
NODES = ["node-1", "node-2"]
LAB_ADDRESSES = ["172.18.0.2", "apiserver"]


def ensure(directory: Path, now: datetime.datetime = NOW, **changes: object) -> pki.Pki:
    fields: dict[str, object] = {"nodes": NODES, "api_sans": LAB_ADDRESSES, "now": now}
    fields.update(changes)
    return pki.ensure_pki(directory, **fields)  # type: ignore[arg-type]


def cert(path: Path) -> certs.CertKey:
    return certs.CertKey(
        certs.load_cert(path.with_suffix(".crt").read_bytes()),
        certs.load_key(path.with_suffix(".key").read_bytes()),
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def contents(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


KUBEADM_FILES = {
    "ca.crt", "ca.key", "apiserver.crt", "apiserver.key",
    "apiserver-kubelet-client.crt", "apiserver-kubelet-client.key",
    "apiserver-etcd-client.crt", "apiserver-etcd-client.key", "sa.key", "sa.pub",
    "etcd/ca.crt", "etcd/ca.key", "etcd/server.crt", "etcd/server.key",
    "etcd/peer.crt", "etcd/peer.key",
}  # fmt: skip
KUBELAB_FILES = {
    f"{stem}.{ext}"
    for stem in (
        "admin", "controller-manager", "scheduler", "dns", "cloud-stub", "cloud-stub-server",
        *(f"nodes/{n}/{pair}" for n in NODES for pair in ("kubelet-client", "kubelet")),
    )
    for ext in ("crt", "key")
}  # fmt: skip


def test_the_layout_is_kubeadms_plus_one_pair_per_actor(tmp_path: Path) -> None:
    made = ensure(tmp_path / "pki")
    assert set(contents(made.dir)) == KUBEADM_FILES | KUBELAB_FILES
    assert set(made.written) == KUBEADM_FILES | KUBELAB_FILES
    assert made.nodes["node-2"].serving.cert == made.dir / "nodes/node-2/kubelet.crt"


def test_keys_are_0600_certificates_0644_directories_0700(tmp_path: Path) -> None:
    made = ensure(tmp_path / "pki")
    for name in contents(made.dir):
        wanted = 0o644 if name.endswith((".crt", ".pub")) else 0o600
        assert mode(made.dir / name) == wanted, name
    for directory in (made.dir, made.dir / "etcd", made.dir / "nodes", made.dir / "nodes/node-1"):
        assert mode(directory) == 0o700, directory


def test_a_loose_directory_is_closed(tmp_path: Path) -> None:
    (tmp_path / "pki").mkdir(mode=0o755)
    (tmp_path / "pki").chmod(0o755)
    assert mode(ensure(tmp_path / "pki").dir) == 0o700


def test_every_actor_has_its_own_identity_from_the_right_ca(tmp_path: Path) -> None:
    made = ensure(tmp_path / "pki")
    cluster_ca, etcd_ca = cert(made.dir / "ca").cert, cert(made.dir / "etcd/ca").cert
    wanted = {
        made.admin: ("kubernetes-admin", ("system:masters",)),
        made.controller_manager: ("system:kube-controller-manager", ()),
        made.scheduler: ("system:kube-scheduler", ()),
        made.dns: ("system:kube-dns", ()),
        made.cloud_stub: ("system:cloud-controller-manager", ()),
        made.nodes["node-1"].client: ("system:node:node-1", ("system:nodes",)),
        made.apiserver_kubelet_client: ("kube-apiserver-kubelet-client", ("system:masters",)),
    }
    for pair, identity in wanted.items():
        issued = certs.load_cert(pair.cert.read_bytes())
        assert certs.identity_of(issued) == identity
        assert certs.issued_by(issued, cluster_ca)
    for pair in (made.apiserver_etcd_client, made.etcd_server, made.etcd_peer):
        assert certs.issued_by(certs.load_cert(pair.cert.read_bytes()), etcd_ca)
        assert not certs.issued_by(certs.load_cert(pair.cert.read_bytes()), cluster_ca)


def test_the_serving_certificates_name_their_servers(tmp_path: Path) -> None:
    made = ensure(tmp_path / "pki", node_sans={"node-1": ["10.0.0.11"]}, etcd_sans=["etcd"])

    def sans(pair: pki.Pair) -> set[str]:
        return set(certs.san_names(certs.load_cert(pair.cert.read_bytes())))

    assert sans(made.apiserver) == {
        "127.0.0.1", "localhost", "172.18.0.2", "apiserver", "kubernetes", "kubernetes.default",
        "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "127.96.0.1",
    }  # fmt: skip
    assert sans(made.nodes["node-1"].serving) == {"node-1", "localhost", "127.0.0.1", "10.0.0.11"}
    assert sans(made.cloud_stub_server) == {"localhost", "127.0.0.1"}
    assert sans(made.etcd_server) == {"localhost", "127.0.0.1", "::1", "etcd"}
    peer = certs.load_cert(made.etcd_peer.cert.read_bytes())
    assert certs.key_usages(peer) == {certs.SERVER_AUTH, certs.CLIENT_AUTH}


def test_a_second_run_keeps_everything(tmp_path: Path) -> None:
    first = ensure(tmp_path / "pki")
    before = contents(first.dir)
    again = ensure(tmp_path / "pki", now=NOW + datetime.timedelta(days=30))
    assert again.written == ()
    assert contents(again.dir) == before


def test_a_missing_leaf_is_issued_from_the_existing_ca(tmp_path: Path) -> None:
    made = ensure(tmp_path / "pki")
    ca_before = made.ca.cert.read_bytes()
    made.admin.cert.unlink()
    again = ensure(tmp_path / "pki")
    assert again.written == ("admin.key", "admin.crt")
    assert again.ca.cert.read_bytes() == ca_before
    identity = certs.verify_client(made.admin.cert.read_bytes(), ca_before, NOW)
    assert identity == certs.Identity("kubernetes-admin", ("system:masters",))


def test_a_key_that_does_not_match_its_certificate_is_replaced(tmp_path: Path) -> None:
    made = ensure(tmp_path / "pki")
    made.scheduler.key.write_bytes(made.dns.key.read_bytes())
    assert ensure(tmp_path / "pki").written == ("scheduler.key", "scheduler.crt")


def test_a_new_cluster_ca_reissues_its_leaves_and_leaves_etcd_alone(tmp_path: Path) -> None:
    made = ensure(tmp_path / "pki")
    made.ca.key.unlink()
    written = set(ensure(tmp_path / "pki").written)
    assert {"ca.crt", "ca.key", "admin.crt", "apiserver.crt", "nodes/node-2/kubelet.crt"} <= written
    assert not any(name.startswith("etcd/") or "etcd-client" in name for name in written)
    assert "sa.key" not in written


def test_changed_addresses_reissue_only_the_apiserver(tmp_path: Path) -> None:
    ensure(tmp_path / "pki")
    again = ensure(tmp_path / "pki", api_sans=["172.18.0.9"])
    assert again.written == ("apiserver.key", "apiserver.crt")


def test_a_new_node_gets_only_its_own_pairs(tmp_path: Path) -> None:
    ensure(tmp_path / "pki")
    again = ensure(tmp_path / "pki", nodes=[*NODES, "node-3"])
    assert set(again.written) == {
        f"nodes/node-3/{pair}.{ext}"
        for pair in ("kubelet-client", "kubelet")
        for ext in ("crt", "key")
    }


def test_expired_leaves_are_reissued_under_the_kept_ca(tmp_path: Path) -> None:
    made = ensure(tmp_path / "pki")
    ca_before = made.ca.cert.read_bytes()
    later = NOW + datetime.timedelta(days=400)
    written = ensure(tmp_path / "pki", now=later).written
    assert "admin.crt" in written and "ca.crt" not in written
    assert certs.verify_client(made.admin.cert.read_bytes(), ca_before, later) is not None


def test_the_authenticator_takes_its_own_and_refuses_others(tmp_path: Path) -> None:
    ours, theirs = ensure(tmp_path / "ours"), ensure(tmp_path / "theirs")
    ca = ours.ca.cert.read_bytes()
    assert certs.verify_client(ours.nodes["node-1"].client.cert.read_bytes(), ca, NOW) == (
        certs.Identity("system:node:node-1", ("system:nodes",))
    )
    with pytest.raises(certs.CertificateRefused, match="signed by unknown authority"):
        certs.verify_client(theirs.admin.cert.read_bytes(), ca, NOW)
    with pytest.raises(certs.CertificateRefused, match="is after"):
        certs.verify_client(ours.admin.cert.read_bytes(), ca, NOW + datetime.timedelta(days=366))


def test_sa_keys_sign_and_verify_and_a_lost_public_half_is_rederived(tmp_path: Path) -> None:
    made = ensure(tmp_path / "pki")
    key_before = made.sa_key.read_bytes()
    made.sa_pub.unlink()
    assert ensure(tmp_path / "pki").written == ("sa.pub",)
    assert made.sa_key.read_bytes() == key_before
    token = sa_tokens.issue(
        certs.load_key(key_before),
        namespace="default",
        name="ci",
        uid="u",
        audiences=[],
        expiration_seconds=600,
        now=NOW,
    ).token
    public = certs.load_public_key(made.sa_pub.read_bytes())
    assert sa_tokens.verify(token, public, sa_tokens.DEFAULT_AUDIENCES, NOW).name == "ci"


def test_kubeconfig_auth_embeds_the_ca_and_the_identity(tmp_path: Path) -> None:
    made = ensure(tmp_path / "pki")
    auth = made.kubeconfig_auth(made.admin)
    ca = base64.b64decode(auth.cluster["certificate-authority-data"])
    client = base64.b64decode(auth.user["client-certificate-data"])
    key = base64.b64decode(auth.user["client-key-data"])
    assert (ca, key) == (made.ca.cert.read_bytes(), made.admin.key.read_bytes())
    assert certs.verify_client(client, ca, NOW) == pki.ADMIN


@pytest.mark.parametrize(
    ("node", "message"),
    [
        pytest.param("../etc", "invalid node name", id="path-escape"),
        pytest.param("Node_1", "invalid node name", id="not-dns"),
        pytest.param("n" * 53, "too long for its certificate: at most 52", id="cn-over-64"),
    ],
)
def test_node_names_must_be_safe_paths_and_cns(tmp_path: Path, node: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ensure(tmp_path / "pki", nodes=[node])
    assert not (tmp_path / "pki").exists()


def test_write_atomically_replaces_whole_and_private(tmp_path: Path) -> None:
    target = tmp_path / "secret.key"
    target.write_bytes(b"old")
    target.chmod(0o644)
    pki.write_atomically(target, b"new")
    assert (target.read_bytes(), mode(target)) == (b"new", 0o600)
    assert [p.name for p in tmp_path.iterdir()] == ["secret.key"]
