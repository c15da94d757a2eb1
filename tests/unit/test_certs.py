"""The cluster's certificates (kubelab.core.certs): what kubeadm would issue, and the
apiserver's client-certificate authenticator accepting and refusing them in Kubernetes' words."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from kubelab.core import certs

NOW = datetime.datetime(2030, 6, 1, 12, 0, 0, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)
CA = certs.self_signed_ca("kubernetes", now=NOW)
OTHER_CA = certs.self_signed_ca("kubernetes", now=NOW)
ADMIN = certs.sign_client(CA, "kubernetes-admin", ["system:masters"], now=NOW)


def pem(issued: certs.CertKey) -> bytes:
    return certs.cert_pem(issued.cert)


def test_the_ca_is_a_ca_for_ten_years_backdated_five_minutes() -> None:
    cert = CA.cert
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert cert.not_valid_before_utc == NOW - datetime.timedelta(minutes=5)
    assert cert.not_valid_after_utc == NOW + datetime.timedelta(days=3650)
    assert certs.issued_by(cert, cert)


def test_a_leaf_is_no_ca_lives_a_year_and_names_its_issuer_key() -> None:
    cert = ADMIN.cert
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.not_valid_after_utc == NOW + datetime.timedelta(days=365)
    issuer_key = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_key = CA.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert issuer_key.key_identifier == ca_key.digest
    assert certs.issued_by(cert, CA.cert)
    assert not certs.issued_by(cert, OTHER_CA.cert)


@pytest.mark.parametrize(
    ("client_auth", "usages"),
    [
        pytest.param(False, {certs.SERVER_AUTH}, id="apiserver-serves-only"),
        pytest.param(True, {certs.SERVER_AUTH, certs.CLIENT_AUTH}, id="etcd-peer-both"),
    ],
)
def test_server_certificates_carry_their_sans_and_usages(
    client_auth: bool, usages: set[x509.ObjectIdentifier]
) -> None:
    served = certs.sign_server(
        CA,
        "kube-apiserver",
        sans=["localhost", "10.0.0.5", "::1"],
        now=NOW,
        client_auth=client_auth,
    )
    assert certs.key_usages(served.cert) == usages
    assert certs.san_names(served.cert) == ["localhost", "10.0.0.5", "::1"]


def test_a_server_certificate_needs_a_san() -> None:
    with pytest.raises(ValueError, match="at least one SAN"):
        certs.sign_server(CA, "kube-apiserver", sans=[], now=NOW)


@pytest.mark.parametrize(
    ("cidr", "first"),
    [
        pytest.param("10.96.0.0/12", "10.96.0.1", id="kubernetes-default"),
        pytest.param("127.96.0.0/16", "127.96.0.1", id="kubelab-default"),
        pytest.param("10.96.5.7/12", "10.96.0.1", id="host-bits-ignored"),
        pytest.param("fd00:10:96::/108", "fd00:10:96::1", id="ipv6"),
    ],
)
def test_first_service_ip(cidr: str, first: str) -> None:
    assert certs.first_service_ip(cidr) == first


def test_apiserver_sans_are_kubeadms_plus_the_labs_addresses_once_each() -> None:
    sans = certs.apiserver_sans(
        ["172.18.0.2", "apiserver", "127.0.0.1"], service_cidr="10.96.0.0/12"
    )
    assert sans == [
        "127.0.0.1",
        "localhost",
        "172.18.0.2",
        "apiserver",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "10.96.0.1",
    ]


@pytest.mark.parametrize(
    ("user", "groups"),
    [
        pytest.param("kubernetes-admin", ("system:masters",), id="admin"),
        pytest.param("system:node:node-1", ("system:nodes",), id="node"),
        pytest.param("system:kube-scheduler", (), id="no-groups"),
        pytest.param("jane", ("dev", "ops", "dev"), id="groups-in-order-repeats-kept"),
    ],
)
def test_identity_reads_back_cn_and_o(user: str, groups: tuple[str, ...]) -> None:
    issued = certs.sign_client(CA, user, groups, now=NOW)
    assert certs.identity_of(issued.cert) == certs.Identity(user, groups)
    assert certs.key_usages(issued.cert) == {certs.CLIENT_AUTH}


def _with_subject(subject: x509.Name) -> x509.Certificate:
    """A client certificate with a hand-made subject, which sign_client would not make."""
    key = certs.new_key()
    ca_key_id = CA.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(CA.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + DAY)
        .add_extension(x509.ExtendedKeyUsage([certs.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_key_id),
            critical=False,
        )
        .sign(CA.key, hashes.SHA256())
    )


def test_no_cn_names_nobody_and_the_last_cn_wins() -> None:
    org = x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters")
    nameless = _with_subject(x509.Name([org]))
    assert certs.identity_of(nameless) is None
    assert certs.verify_client(certs.cert_pem(nameless), pem(CA), NOW) is None
    twice = x509.Name(
        [
            org,
            x509.NameAttribute(NameOID.COMMON_NAME, "a"),
            x509.NameAttribute(NameOID.COMMON_NAME, "b"),
        ]
    )
    assert certs.identity_of(_with_subject(twice)) == certs.Identity("b", ("system:masters",))


def test_verify_client_accepts_the_admin_as_pem_and_der() -> None:
    wanted = certs.Identity("kubernetes-admin", ("system:masters",))
    assert certs.verify_client(pem(ADMIN), pem(CA), NOW) == wanted
    der = ADMIN.cert.public_bytes(serialization.Encoding.DER)
    assert certs.verify_client(der, pem(CA), NOW) == wanted
    bundle = pem(OTHER_CA) + pem(CA)
    assert certs.verify_client(pem(ADMIN), bundle, NOW) == wanted


EXPIRED_AT = NOW + 400 * DAY


@pytest.mark.parametrize(
    ("cert", "ca", "now", "reason"),
    [
        pytest.param(
            pem(ADMIN),
            pem(CA),
            EXPIRED_AT,
            "x509: certificate has expired or is not yet valid: current time "
            "2031-07-06T12:00:00Z is after 2031-06-01T12:00:00Z",
            id="expired",
        ),
        pytest.param(
            pem(ADMIN),
            pem(CA),
            NOW - datetime.timedelta(minutes=6),
            "x509: certificate has expired or is not yet valid: current time "
            "2030-06-01T11:54:00Z is before 2030-06-01T11:55:00Z",
            id="not-yet-valid",
        ),
        pytest.param(
            pem(ADMIN),
            pem(OTHER_CA),
            NOW,
            "x509: certificate signed by unknown authority",
            id="another-ca",
        ),
        pytest.param(
            pem(certs.sign_client(OTHER_CA, "kubernetes-admin", ["system:masters"], now=NOW)),
            pem(CA),
            NOW,
            "x509: certificate signed by unknown authority",
            id="same-names-other-ca",
        ),
        pytest.param(
            pem(certs.sign_server(CA, "kube-apiserver", sans=["localhost"], now=NOW)),
            pem(CA),
            NOW,
            "x509: certificate specifies an incompatible key usage",
            id="server-only-usage",
        ),
    ],
)
def test_verify_client_refuses_in_kubernetes_words(
    cert: bytes, ca: bytes, now: datetime.datetime, reason: str
) -> None:
    with pytest.raises(certs.CertificateRefused) as refused:
        certs.verify_client(cert, ca, now)
    message = str(refused.value)
    assert message.startswith("verifying certificate SN=")
    assert message.endswith(f" failed: {reason}")


def test_the_refusal_names_the_certificate_as_kubernetes_does() -> None:
    with pytest.raises(certs.CertificateRefused) as refused:
        certs.verify_client(pem(ADMIN), pem(OTHER_CA), NOW)
    ca_key_id = CA.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    akid = ":".join(f"{b:02X}" for b in ca_key_id.digest)
    assert f"SN={ADMIN.cert.serial_number}, SKID=, AKID={akid} failed" in str(refused.value)


def test_garbage_is_a_malformed_certificate() -> None:
    with pytest.raises(certs.CertificateRefused, match="x509: malformed certificate"):
        certs.verify_client(b"not a certificate", pem(CA), NOW)


def test_pem_round_trips_and_keys_are_sec1_ecdsa() -> None:
    assert certs.load_cert(pem(ADMIN)) == ADMIN.cert
    key_text = certs.key_pem(ADMIN.key)
    assert key_text.startswith(b"-----BEGIN EC PRIVATE KEY-----")
    assert certs.same_key(ADMIN.cert.public_key(), certs.load_key(key_text))  # type: ignore[arg-type]
    public = certs.load_public_key(certs.public_key_pem(ADMIN.key.public_key()))
    assert certs.same_key(public, ADMIN.key)
    assert not certs.same_key(public, CA.key)


def test_an_rsa_key_is_refused() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    text = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ValueError, match="not an ECDSA private key"):
        certs.load_key(text)
    with pytest.raises(ValueError):
        certs.load_key(b"-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n")


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        certs.self_signed_ca("kubernetes", now=datetime.datetime(2030, 1, 1))


# X.509 caps a name at 64 (cryptography counts its UTF-8 bytes).
_names = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=64).filter(
    lambda name: len(name.encode()) <= 64
)


@settings(max_examples=40)
@given(user=_names, groups=st.lists(_names, max_size=4), offset=st.integers(0, 364))
def test_any_identity_verifies_back_within_its_year(
    user: str, groups: list[str], offset: int
) -> None:
    issued = certs.sign_client(CA, user, groups, now=NOW)
    at = NOW + offset * DAY
    assert certs.verify_client(pem(issued), pem(CA), at) == certs.Identity(user, tuple(groups))
