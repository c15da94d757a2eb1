"""Who may use the apiserver: TLS, client certificates and RBAC on both fronts.

A real apiserver started with kube-apiserver's TLS flags and a cluster PKI
(`kubelab.pki`), driven by real clients: kubelab's gRPC client, the real kubectl, and
plain TLS sockets for what no client would send. For each front: the admin
(`system:masters`) is served; no certificate is `system:anonymous`, refused with
Kubernetes' 403 words; a user the bootstrap RBAC grants nothing is refused the same
way, by name; a certificate from another CA, an expired one and a plaintext client are
refused at the handshake, and none of them changed anything.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import grpc
import pytest

from kubelab.client import ApiError, Client
from kubelab.core import certs
from kubelab.credentials import Credentials
from kubelab.lab.kubeconfig import write_kubeconfig
from kubelab.pki import Pair, Pki, ensure_pki, kubeconfig_auth
from kubelab.testing.processes import ApiServerProcess, EtcdServer
from kubelab.testing.wait import until_blocking
from kubelab.v1 import objects_pb2

pytestmark = pytest.mark.integration

KUBECTL = Path(sys.executable).parent / "kubectl"
T = TypeVar("T")
NOW = datetime.datetime.now(datetime.UTC)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return ensure_pki(
        tmp_path_factory.mktemp("pki"), nodes=["node-1"], api_sans=["127.0.0.1"], now=NOW
    )


def _pair(directory: Path, name: str, made: certs.CertKey) -> Pair:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    cert.write_bytes(certs.cert_pem(made.cert))
    key.write_bytes(certs.key_pem(made.key))
    return Pair(cert, key)


@pytest.fixture(scope="module")
def others(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Pair]:
    """Client certificates the apiserver must not take as the admin's."""
    directory = tmp_path_factory.mktemp("others")
    ca = certs.CertKey(
        certs.load_cert(pki.ca.cert.read_bytes()), certs.load_key(pki.ca.key.read_bytes())
    )
    stranger = certs.self_signed_ca("another-cluster", now=NOW)
    long_ago = NOW - datetime.timedelta(days=800)
    return {
        "alice": _pair(directory, "alice", certs.sign_client(ca, "alice", now=NOW)),
        "other-ca": _pair(
            directory,
            "other-ca",
            certs.sign_client(stranger, "kubernetes-admin", ("system:masters",), now=NOW),
        ),
        "expired": _pair(
            directory,
            "expired",
            certs.sign_client(ca, "kubernetes-admin", ("system:masters",), now=long_ago),
        ),
    }


@pytest.fixture
def secure(etcd: EtcdServer, tmp_path: Path, pki: Pki) -> Iterator[ApiServerProcess]:
    process = ApiServerProcess(etcd.endpoint, tmp_path, pki=pki)
    process.start()
    yield process
    process.stop()


def shop() -> objects_pb2.Service:
    svc = objects_pb2.Service()
    svc.metadata.name, svc.metadata.namespace = "shop", "default"
    svc.spec.selector["app"] = "shop"
    svc.spec.ports.add(port=80)
    return svc


async def _names(client: Client) -> list[str]:
    items, _ = await client.list("services", "default")
    return [s.metadata.name for s in items]


def _grpc(
    secure: ApiServerProcess,
    credentials: Credentials | None,
    work: Callable[[Client], Awaitable[T]],
) -> T:
    async def go() -> T:
        async with Client(secure.address, timeout=5, credentials=credentials) as client:
            return await work(client)

    return asyncio.run(go())


def test_grpc_serves_the_admin_and_refuses_everyone_else(
    secure: ApiServerProcess, pki: Pki, others: dict[str, Pair]
) -> None:
    admin = secure.credentials()
    assert admin is not None
    created = _grpc(secure, admin, lambda c: c.create(shop()))
    assert created.spec.cluster_ip

    # No certificate: the gRPC front requires one (`kubelab.rpc.tls`).
    with pytest.raises(ApiError) as anonymous:
        _grpc(secure, Credentials(admin.ca), _names)
    assert anonymous.value.code == grpc.StatusCode.UNAVAILABLE

    with pytest.raises(ApiError) as alice:
        _grpc(
            secure,
            secure.credentials(others["alice"]),
            lambda c: c.delete("services", "shop", "default"),
        )
    assert alice.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert alice.value.message == (
        'services "shop" is forbidden: User "alice" cannot delete resource "services" in '
        'API group "" in the namespace "default"'
    )

    for refused in ("other-ca", "expired"):
        with pytest.raises(ApiError) as handshake:
            _grpc(secure, secure.credentials(others[refused]), _names)
        assert handshake.value.code == grpc.StatusCode.UNAVAILABLE, refused

    with pytest.raises(ApiError) as plaintext:
        _grpc(secure, None, _names)
    assert plaintext.value.code == grpc.StatusCode.UNAVAILABLE

    # Nobody but the admin changed anything.
    assert _grpc(secure, admin, _names) == ["shop"]


def _https(
    secure: ApiServerProcess, path: str, pair: Pair | None, method: str = "GET"
) -> tuple[int, dict[str, object]]:
    assert secure.pki is not None
    context = ssl.create_default_context(cafile=str(secure.pki.ca.cert))
    if pair is not None:
        context.load_cert_chain(pair.cert, pair.key)
    request = urllib.request.Request(f"{secure.http_url}{path}", method=method)
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_http_serves_the_admin_and_answers_others_with_kubernetes_statuses(
    secure: ApiServerProcess, pki: Pki, others: dict[str, Pair]
) -> None:
    path = "/api/v1/namespaces/default/services"
    code, body = _https(secure, path, pki.admin)
    assert code == 200 and body["kind"] == "ServiceList"

    code, body = _https(secure, path, None)
    assert code == 403
    assert body["reason"] == "Forbidden"
    assert body["message"] == (
        'services is forbidden: User "system:anonymous" cannot list resource "services" in '
        'API group "" in the namespace "default"'
    )
    assert body["details"] == {"kind": "services"}

    # A resource that is not there: not found for the admin, forbidden for the others
    # (authorization comes first, as in Kubernetes).
    assert _https(secure, "/api/v1/widgets", pki.admin)[0] == 404
    code, body = _https(secure, "/api/v1/widgets", None)
    assert code == 403, body
    assert body["message"] == (
        'widgets is forbidden: User "system:anonymous" cannot list resource "widgets" in API '
        'group "" at the cluster scope'
    )
    # What Kubernetes lets anyone read: the version.
    code, body = _https(secure, "/version", None)
    assert code == 200 and "gitVersion" in body
    # Discovery needs an authenticated user (system:discovery): alice has it, anonymous not.
    assert _https(secure, "/api", others["alice"])[0] == 200
    assert _https(secure, "/api", None)[0] == 403

    code, body = _https(secure, f"{path}/shop", others["alice"], method="DELETE")
    assert code == 403
    assert body["message"] == (
        'services "shop" is forbidden: User "alice" cannot delete resource "services" in '
        'API group "" in the namespace "default"'
    )

    for refused in ("other-ca", "expired"):
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
            _https(secure, path, others[refused])

    plain = secure.http_url.replace("https://", "http://")
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(f"{plain}{path}", timeout=10)


def _kubectl(
    home: Path, server: str, pki: Pki, pair: Pair, *args: str
) -> subprocess.CompletedProcess[str]:
    home.mkdir(parents=True, exist_ok=True)
    config = write_kubeconfig(home, server, kubeconfig_auth(pki.ca.cert, pair))
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "KUBECONFIG": str(config)}
    return subprocess.run(
        [str(KUBECTL), *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_kubectl_with_the_kubeconfig_credentials(
    secure: ApiServerProcess, pki: Pki, others: dict[str, Pair], tmp_path: Path
) -> None:
    assert KUBECTL.exists(), f"{KUBECTL} is missing: install kubelab with its dependencies"
    _grpc(secure, secure.credentials(), lambda c: c.create(shop()))

    admin = _kubectl(
        tmp_path / "admin", secure.http_url, pki, pki.admin, "get", "svc", "-o", "name"
    )
    assert admin.returncode == 0, admin.stderr
    assert admin.stdout.split() == ["service/shop"]

    alice = _kubectl(
        tmp_path / "alice", secure.http_url, pki, others["alice"], "delete", "svc", "shop"
    )
    assert alice.returncode == 1
    assert alice.stderr.strip() == (
        'Error from server (Forbidden): services "shop" is forbidden: User "alice" cannot '
        'delete resource "services" in API group "" in the namespace "default"'
    )
    assert _grpc(secure, secure.credentials(), _names) == ["shop"]


def test_kubectl_auth_can_i_whoami_and_impersonation(
    secure: ApiServerProcess, pki: Pki, others: dict[str, Pair], tmp_path: Path
) -> None:
    def admin(*args: str) -> subprocess.CompletedProcess[str]:
        return _kubectl(tmp_path / "admin", secure.http_url, pki, pki.admin, *args)

    def alice(*args: str) -> subprocess.CompletedProcess[str]:
        return _kubectl(tmp_path / "alice", secure.http_url, pki, others["alice"], *args)

    allowed = admin("auth", "can-i", "delete", "services")
    assert (allowed.returncode, allowed.stdout.strip()) == (0, "yes"), allowed.stderr
    refused = alice("auth", "can-i", "delete", "services")
    assert (refused.returncode, refused.stdout.strip()) == (1, "no"), refused.stderr
    # What RBAC's defaults give every authenticated user: discovery (a non-resource path).
    own = alice("auth", "can-i", "get", "/api")
    assert (own.returncode, own.stdout.strip()) == (0, "yes"), own.stderr

    whoami = alice("auth", "whoami")
    assert whoami.returncode == 0, whoami.stderr
    rows = [line.split(None, 1) for line in whoami.stdout.splitlines()]
    assert rows == [
        ["ATTRIBUTE", "VALUE"],
        ["Username", "alice"],
        ["Groups", "[system:authenticated]"],
    ]

    # The admin may act as anyone; bob is granted nothing.
    as_bob = admin("--as=bob", "get", "svc")
    assert as_bob.returncode == 1
    assert as_bob.stderr.strip() == (
        'Error from server (Forbidden): services is forbidden: User "bob" cannot list '
        'resource "services" in API group "" in the namespace "default"'
    )
    assert admin("--as=bob", "auth", "whoami").stdout.split()[-2:] == [
        "Groups",
        "[system:authenticated]",
    ]
    # alice may not act as anyone.
    as_admin = alice("--as=kubernetes-admin", "--as-group=system:masters", "get", "svc")
    assert as_admin.returncode == 1
    assert as_admin.stderr.strip() == (
        'Error from server (Forbidden): users "kubernetes-admin" is forbidden: User "alice" '
        'cannot impersonate resource "users" in API group "" at the cluster scope'
    )


def test_a_service_account_token_from_kubectl_create_token(
    secure: ApiServerProcess, pki: Pki, tmp_path: Path
) -> None:
    """The issue's walk: a ServiceAccount, a token for it, a RoleBinding of `view`; the
    token lists but cannot delete; a too-short duration is refused in Kubernetes' words;
    deleting the account revokes its token."""

    def admin(*args: str) -> subprocess.CompletedProcess[str]:
        return _kubectl(tmp_path / "admin", secure.http_url, pki, pki.admin, *args)

    # A kubeconfig with the cluster's CA and no certificate: only the token speaks.
    home = tmp_path / "token"
    home.mkdir()
    ca_only = kubeconfig_auth(pki.ca.cert, pki.admin)
    config = write_kubeconfig(home, secure.http_url, type(ca_only)(ca_only.cluster, {}))
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "KUBECONFIG": str(config)}

    def with_token(token: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(KUBECTL), f"--token={token}", *args],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    _grpc(secure, secure.credentials(), lambda c: c.create(shop()))
    assert admin("create", "serviceaccount", "ci").returncode == 0
    short = admin("create", "token", "ci", "--duration=1m")
    assert short.returncode == 1
    assert short.stderr.strip() == (
        'error: failed to create token: TokenRequest.authentication.k8s.io "ci" is invalid: '
        "spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 "
        "minutes"
    )
    issued = admin("create", "token", "ci", "--duration=10m")
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()
    assert admin("create", "rolebinding", "ci-view", "--clusterrole=view",
                 "--serviceaccount=default:ci").returncode == 0  # fmt: skip

    def lists() -> bool:
        return with_token(token, "get", "svc", "-o", "name").stdout.split() == ["service/shop"]

    until_blocking("the token lists services", lists, timeout=10, interval=0.1)
    refused = with_token(token, "delete", "svc", "shop")
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        'Error from server (Forbidden): services "shop" is forbidden: User '
        '"system:serviceaccount:default:ci" cannot delete resource "services" in API group "" '
        'in the namespace "default"'
    )
    whoami = with_token(token, "auth", "whoami")
    assert "system:serviceaccount:default:ci" in whoami.stdout, whoami.stderr

    assert admin("delete", "serviceaccount", "ci").returncode == 0

    def revoked() -> bool:
        gone = with_token(token, "get", "svc")
        return gone.returncode == 1 and "Unauthorized" in gone.stderr

    until_blocking("the deleted account's token is refused", revoked, timeout=10, interval=0.1)
    assert _grpc(secure, secure.credentials(), _names) == ["shop"]
