"""The cluster's X.509 certificates: keys, the CA, server and client certificates, and the
apiserver's client-certificate authenticator. Pure: bytes and objects in, bytes and objects out;
kubelab.pki lays them out on disk.

Kubernetes' counterparts are kubeadm's `pkiutil` (what a cluster's certificates look like) and
the apiserver's x509 authenticator (`k8s.io/apiserver/pkg/authentication/request/x509`: who a
client certificate says its holder is). The shapes follow kubeadm:

- Validity: a CA for 10 years, a leaf for 1 year, both backdated 5 minutes so a clock a little
  behind still accepts them (kubeadm's `CertificateBackdate`). `now` is always a parameter, so
  tests make expired and not-yet-valid certificates without waiting.
- Keys are ECDSA P-256 (kubeadm's `encryptionAlgorithm: ECDSA-P256`), signed with SHA-256. Not
  RSA-2048, kubeadm's default: on the shared 2-core machine, busy, a P-256 key took 0.01 ms
  (median of 200) and a whole signed leaf 0.1-0.2 ms, where an RSA-2048 key took 34-78 ms
  (medians of two runs, up to 250 ms); a lab issues a few dozen at `kubelab up`.
- A server certificate carries its DNS names and IP addresses as SANs and `serverAuth`; a client
  certificate carries the user as CN, the groups as O (one O attribute per group) and
  `clientAuth`. etcd's server and peer certificates carry both usages, as kubeadm's do.

`identity_of` reads a certificate as Kubernetes' `CommonNameUserConversion` does: the user is the
subject's CN (the last CN attribute, as Go's `pkix.Name` keeps it), the groups its O attributes
in order; a certificate without a CN names nobody (None: Kubernetes answers "not authenticated by
this authenticator", not an error).

`verify_client` is the authenticator's check, with Go's x509 wording inside Kubernetes'
"verifying certificate SN=..., SKID=..., AKID=... failed: ..." frame, in Go's order: the
validity window, then the chain to the CA, then the `clientAuth` usage. The chain itself is
checked by cryptography's own verifier (`cryptography.x509.verification.PolicyBuilder` and its
`ClientVerifier`, RFC 5280 path building), run after kubelab's own three checks so each refusal
gets Kubernetes' words; its one relaxation is that a client leaf may lack a SAN (webpki
requires one; Kubernetes' client certificates have none).
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_VALIDITY = datetime.timedelta(days=3650)
LEAF_VALIDITY = datetime.timedelta(days=365)
BACKDATE = datetime.timedelta(minutes=5)
DEFAULT_CLUSTER_DOMAIN = "cluster.local"

PrivateKey = ec.EllipticCurvePrivateKey
PublicKey = ec.EllipticCurvePublicKey

SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH


@dataclass(frozen=True, slots=True)
class CertKey:
    """A certificate and the private key of its public key."""

    cert: x509.Certificate
    key: PrivateKey


class Identity(NamedTuple):
    """Who a credential names: Kubernetes' user.Info name and groups."""

    user: str
    groups: tuple[str, ...]


class CertificateRefused(Exception):
    """A client certificate the authenticator does not accept; the message is Kubernetes'."""


def new_key() -> PrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def self_signed_ca(
    common_name: str,
    *,
    now: datetime.datetime,
    validity: datetime.timedelta = CA_VALIDITY,
    key: PrivateKey | None = None,
) -> CertKey:
    """A root CA (kubeadm's `kubernetes` CA, or `etcd-ca`), signing itself."""
    key = key or new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        _builder(name, name, key.public_key(), now=now, validity=validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return CertKey(builder.sign(key, hashes.SHA256()), key)


def sign_server(
    ca: CertKey,
    common_name: str,
    *,
    sans: Sequence[str],
    now: datetime.datetime,
    organizations: Sequence[str] = (),
    client_auth: bool = False,
    validity: datetime.timedelta = LEAF_VALIDITY,
    key: PrivateKey | None = None,
) -> CertKey:
    """A serving certificate for `sans` (DNS names and IP addresses, in any mix);
    `client_auth` adds the client usage too (etcd's server and peer certificates)."""
    if not sans:
        raise ValueError("a server certificate needs at least one SAN")
    usages = [SERVER_AUTH, CLIENT_AUTH] if client_auth else [SERVER_AUTH]
    return _sign_leaf(ca, _subject(common_name, organizations), usages, sans, now, validity, key)


def sign_client(
    ca: CertKey,
    user: str,
    groups: Sequence[str] = (),
    *,
    now: datetime.datetime,
    validity: datetime.timedelta = LEAF_VALIDITY,
    key: PrivateKey | None = None,
) -> CertKey:
    """A client certificate naming `user` (CN) in `groups` (O), as the apiserver reads them."""
    if not user:
        raise ValueError("a client certificate needs a user (its CN)")
    return _sign_leaf(ca, _subject(user, groups), [CLIENT_AUTH], (), now, validity, key)


def first_service_ip(service_cidr: str) -> str:
    """The first address of the Service range, the `kubernetes` Service's ClusterIP
    (Kubernetes' `GetIndexedIP(serviceCIDR, 1)`)."""
    network = ipaddress.ip_network(service_cidr, strict=False)
    return str(network.network_address + 1)


def apiserver_sans(
    addresses: Sequence[str],
    *,
    service_cidr: str,
    cluster_domain: str = DEFAULT_CLUSTER_DOMAIN,
) -> list[str]:
    """Every name the apiserver answers to, as kubeadm's `apiserver` certificate lists them:
    loopback, the given addresses, the `kubernetes` Service's names and its ClusterIP."""
    wanted = [
        "127.0.0.1",
        "localhost",
        *addresses,
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        f"kubernetes.default.svc.{cluster_domain}",
        first_service_ip(service_cidr),
    ]
    return list(dict.fromkeys(wanted))


# PEM: certificates as "CERTIFICATE", private keys as SEC1 "EC PRIVATE KEY" (what kubeadm
# writes for an ECDSA key), public keys as "PUBLIC KEY" (kubeadm's sa.pub).


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def public_key_pem(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_cert(data: bytes) -> x509.Certificate:
    """A certificate from PEM or DER (`ssl.SSLSocket.getpeercert(binary_form=True)` gives DER);
    ValueError when it is neither."""
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def load_key(data: bytes) -> PrivateKey:
    """An unencrypted ECDSA private key from PEM; ValueError for anything else."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (TypeError, UnsupportedAlgorithm) as err:
        raise ValueError(str(err)) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"not an ECDSA private key: {type(key).__name__}")
    return key


def load_public_key(data: bytes) -> PublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except UnsupportedAlgorithm as err:
        raise ValueError(str(err)) from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError(f"not an ECDSA public key: {type(key).__name__}")
    return key


def same_key(public: PublicKey, private: PrivateKey) -> bool:
    return public.public_numbers() == private.public_key().public_numbers()


def valid_at(cert: x509.Certificate, now: datetime.datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """Whether `ca` signed `cert` (issuer name and signature)."""
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def san_names(cert: x509.Certificate) -> list[str]:
    """The SANs as text (DNS names, then IP addresses); empty without the extension."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    ips = [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
    return [*sans.get_values_for_type(x509.DNSName), *ips]


def key_usages(cert: x509.Certificate) -> frozenset[x509.ObjectIdentifier]:
    """The extended key usages; empty without the extension."""
    try:
        return frozenset(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return frozenset()


def identity_of(cert: x509.Certificate) -> Identity | None:
    """The user and groups the certificate names, None when it has no CN."""
    names = [_text(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if not names or not names[-1]:
        return None
    groups = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return Identity(names[-1], tuple(_text(g.value) for g in groups))


def verify_client(cert: bytes, ca_pem: bytes, now: datetime.datetime) -> Identity | None:
    """Who a client certificate (PEM or DER) authenticates as against the CA bundle `ca_pem`
    at `now`; None for a good certificate without a CN. CertificateRefused otherwise."""
    try:
        leaf = load_cert(cert)
    except ValueError as err:
        raise CertificateRefused(f"x509: malformed certificate: {err}") from None
    cas = x509.load_pem_x509_certificates(ca_pem)
    problem = _problem(leaf, cas, now)
    if problem:
        raise CertificateRefused(f"verifying certificate {_identifier(leaf)} failed: {problem}")
    return identity_of(leaf)


def _problem(
    leaf: x509.Certificate, cas: Sequence[x509.Certificate], now: datetime.datetime
) -> str:
    window = "x509: certificate has expired or is not yet valid: current time"
    if now < leaf.not_valid_before_utc:
        return f"{window} {_rfc3339(now)} is before {_rfc3339(leaf.not_valid_before_utc)}"
    if now > leaf.not_valid_after_utc:
        return f"{window} {_rfc3339(now)} is after {_rfc3339(leaf.not_valid_after_utc)}"
    if not any(issued_by(leaf, ca) for ca in cas):
        return "x509: certificate signed by unknown authority"
    if CLIENT_AUTH not in key_usages(leaf):
        return "x509: certificate specifies an incompatible key usage"
    try:
        _client_verifier(cas, now).verify(leaf, [])
    except verification.VerificationError as err:
        return f"x509: {err}"
    return ""


def _client_verifier(
    cas: Sequence[x509.Certificate], now: datetime.datetime
) -> verification.ClientVerifier:
    leaf_policy = verification.ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.SubjectAlternativeName, verification.Criticality.AGNOSTIC, None
    )
    return (
        verification.PolicyBuilder()
        .store(verification.Store(list(cas)))
        .time(now)
        .extension_policies(
            ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(), ee_policy=leaf_policy
        )
        .build_client_verifier()
    )


def _identifier(cert: x509.Certificate) -> str:
    """Kubernetes' `certificateIdentifier`: serial in decimal, key ids in colon-separated hex."""
    return f"SN={cert.serial_number}, SKID={_key_id(cert, False)}, AKID={_key_id(cert, True)}"


def _key_id(cert: x509.Certificate, authority: bool) -> str:
    try:
        if authority:
            value = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
            digest = value.key_identifier or b""
        else:
            digest = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return ""
    return ":".join(f"{byte:02X}" for byte in digest)


def _rfc3339(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _subject(common_name: str, organizations: Sequence[str]) -> x509.Name:
    # Go's pkix order: O before CN.
    return x509.Name(
        [
            *(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _san(text: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(text))
    except ValueError:
        return x509.DNSName(text)


def _sign_leaf(
    ca: CertKey,
    subject: x509.Name,
    usages: list[x509.ObjectIdentifier],
    sans: Sequence[str],
    now: datetime.datetime,
    validity: datetime.timedelta,
    key: PrivateKey | None,
) -> CertKey:
    key = key or new_key()
    ca_key_id = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        _builder(subject, ca.cert.subject, key.public_key(), now=now, validity=validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_key_id),
            critical=False,
        )
    )
    if sans:
        names = list(dict.fromkeys(sans))
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_san(n) for n in names]), critical=False
        )
    return CertKey(builder.sign(ca.key, hashes.SHA256()), key)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: PublicKey,
    *,
    now: datetime.datetime,
    validity: datetime.timedelta,
) -> x509.CertificateBuilder:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + validity)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    # ECDSA keys sign; key encipherment is an RSA usage (kubeadm adds it for RSA keys only).
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
