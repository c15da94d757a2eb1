"""TLS for the actors' servers and their clients, from Kubernetes' flags.

Serving (`add_flags`/`from_args`): kube-apiserver's and the kubelet's own flags,
`--tls-cert-file`, `--tls-private-key-file` (the serving certificate) and
`--client-ca-file` (the CA whose client certificates authenticate a caller). All three
or none: without them an actor serves plain gRPC (and the apiserver plain HTTP) and asks
no one who they are (the test harness's default; `kubelab up` always gives them).

The apiserver's HTTP front asks for a client certificate without requiring one, as
kube-apiserver does: a request without is `system:anonymous`, which RBAC lets read
/version and little else. gRPC servers require one: grpc's Python server offers
"require and verify" or "do not ask", not kube-apiserver's "ask, verify if given", so a
gRPC caller without a certificate is refused at the handshake. Both refuse, at the
handshake, a certificate the client CA did not sign or that has expired; who may call
what is then `kubelab.rpc.access`'s (the node agents, the cloud-stub) or the apiserver's
authorizer.

Calling (`add_client_flags`/`client_from_args`): kube-apiserver's flags for its calls to
kubelets, `--kubelet-client-certificate`, `--kubelet-client-key` and
`--kubelet-certificate-authority`, and the same shape for other servers
(`--cloud-client-certificate`, ...): the caller's certificate and the CA it trusts.
"""

from __future__ import annotations

import argparse
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import grpc

    from kubelab.credentials import Credentials


@dataclass(frozen=True, slots=True)
class ServingTls:
    cert: bytes
    key: bytes
    client_ca: bytes
    cert_file: Path
    key_file: Path
    client_ca_file: Path

    def grpc_credentials(self) -> grpc.ServerCredentials:
        import grpc  # on use: the cloud-stub parses its flags before it imports grpc

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


def add_client_flags(parser: argparse.ArgumentParser, server: str, what: str) -> None:
    """`--<server>-client-certificate`, `--<server>-client-key`,
    `--<server>-certificate-authority`: how this actor calls `what` over TLS."""
    parser.add_argument(
        f"--{server}-client-certificate", type=Path, help=f"client certificate for {what}"
    )
    parser.add_argument(f"--{server}-client-key", type=Path, help="its private key")
    parser.add_argument(
        f"--{server}-certificate-authority", type=Path, help=f"the CA {what} is served under"
    )


def client_from_args(args: argparse.Namespace, server: str) -> Credentials | None:
    """The credentials the client flags of `server` give; None without them."""
    attribute = server.replace("-", "_")
    files = (
        getattr(args, f"{attribute}_certificate_authority"),
        getattr(args, f"{attribute}_client_certificate"),
        getattr(args, f"{attribute}_client_key"),
    )
    if not any(files):
        return None
    if not all(files):
        raise ValueError(
            f"--{server}-client-certificate, --{server}-client-key and "
            f"--{server}-certificate-authority go together"
        )
    from kubelab.credentials import from_files

    try:
        return from_files(*(Path(f) for f in files))
    except OSError as err:
        raise ValueError(f"cannot read a TLS file: {err}") from None


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
