"""The apiserver's TLS, from kube-apiserver's flags: `--tls-cert-file`,
`--tls-private-key-file` (its serving certificate) and `--client-ca-file` (the CA
whose client certificates authenticate a user). All three or none: without them the
apiserver serves plain gRPC and HTTP and asks no one who they are (the test harness's
default; `kubelab up` always gives them).

The HTTP front asks for a client certificate without requiring one, as kube-apiserver
does: a request without is `system:anonymous`, which RBAC lets read /version and
little else (403 otherwise). The gRPC front requires one: grpc's Python server offers
"require and verify" or "do not ask", not kube-apiserver's "ask, verify if given", so a
gRPC caller without a certificate is refused at the handshake. Both refuse, at the
handshake, a certificate the client CA did not sign or that has expired.
"""

from __future__ import annotations

import argparse
import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc


@dataclass(frozen=True, slots=True)
class ServingTls:
    cert: bytes
    key: bytes
    client_ca: bytes
    cert_file: Path
    key_file: Path
    client_ca_file: Path

    def grpc_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.key, self.cert)], root_certificates=self.client_ca, require_client_auth=True
        )

    def http_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2  # kube-apiserver's default floor
        context.load_cert_chain(self.cert_file, self.key_file)
        context.load_verify_locations(cafile=str(self.client_ca_file))
        context.verify_mode = ssl.CERT_OPTIONAL
        return context


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tls-cert-file", type=Path, help="the serving certificate (PEM)")
    parser.add_argument("--tls-private-key-file", type=Path, help="its private key (PEM)")
    parser.add_argument(
        "--client-ca-file", type=Path, help="CA whose client certificates authenticate users"
    )


def from_args(args: argparse.Namespace) -> ServingTls | None:
    """The TLS the flags ask for; None without them. ValueError when only some are given
    or a file cannot be read."""
    files = (args.tls_cert_file, args.tls_private_key_file, args.client_ca_file)
    if not any(files):
        return None
    if not all(files):
        raise ValueError("--tls-cert-file, --tls-private-key-file and --client-ca-file go together")
    try:
        cert, key, ca = (Path(f).read_bytes() for f in files)
    except OSError as err:
        raise ValueError(f"cannot read a TLS file: {err}") from None
    return ServingTls(cert, key, ca, *files)
