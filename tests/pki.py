"""Test-time PKI, made fresh for each test session with `cryptography`.

Why not committed PEM files: certificates expire and committed private keys look like leaks to
scanners (sslyze commits binaries; we do not). EC P-256 keeps generation to milliseconds.

What it makes, mirroring the experiments in docs/nginx-mtls.md section 3.3:

* ``root``: the client CA nginx trusts (``ssl_client_certificate``), also the issuer of the server cert.
* ``other``: a second CA nginx does not trust; also signs an alternative server certificate.
* ``server``: serverAuth cert for ``localhost`` and ``127.0.0.1`` signed by ``root``.
* ``server_other``: the same names, signed by ``other`` (untrusted when ``--trust root``).
* ``client``: valid clientAuth cert from ``root`` (CN=alice).
* ``revoked``: clientAuth cert from ``root`` that ``crl`` lists as revoked (CN=revoked-rita).
* ``expired``: clientAuth cert from ``root`` whose notAfter has passed (CN=expired-eve).
* ``crl``: CRL issued by ``root`` listing ``revoked``.
* ``bundle``: ``root`` plus 24 extra throwaway CAs: a stand-in for a public CA bundle (MTLS506).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_NOW = dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Issued:
    """A certificate with its key, written to ``cert`` and ``key`` (PEM)."""

    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey
    cert: Path
    key: Path

    def __repr__(self) -> str:  # never show the key, even in test output
        return f"Issued(cert={self.cert})"


@dataclass(frozen=True)
class Pki:
    """Every file a test needs, all under ``directory``."""

    directory: Path
    root: Issued
    other: Issued
    server: Issued
    server_other: Issued
    client: Issued
    revoked: Issued
    expired: Issued
    crl: Path
    bundle: Path
    bundle_size: int


def _name(cn: str, org: str = "mtls-audit tests") -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org), x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write(directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Issued:
    cert_path = directory / f"{stem}.pem"
    key_path = directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return Issued(cert, key, cert_path, key_path)


def make_ca(directory: Path, stem: str, cn: str) -> Issued:
    """A self-signed CA valid from yesterday for ten years."""
    key = _key()
    name = _name(cn)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_NOW - dt.timedelta(days=1))
        .not_valid_after(_NOW + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _write(directory, stem, cert, key)


def issue(
    directory: Path,
    stem: str,
    ca: Issued,
    cn: str,
    *,
    server: bool = False,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> Issued:
    """A leaf signed by ``ca``: clientAuth by default, serverAuth for localhost when ``server``."""
    key = _key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or _NOW - dt.timedelta(days=1))
        .not_valid_after(not_after or _NOW + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.private_key.public_key()),
            critical=False,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    cert = builder.sign(ca.private_key, hashes.SHA256())
    return _write(directory, stem, cert, key)


def make_crl(path: Path, ca: Issued, revoked: list[x509.Certificate]) -> Path:
    """A CRL from ``ca`` valid for a week, listing ``revoked`` (nginx needs one per CA: CRL_CHECK_ALL)."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(_NOW - dt.timedelta(hours=1))
        .next_update(_NOW + dt.timedelta(days=7))
    )
    for cert in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(cert.serial_number)
            .revocation_date(_NOW - dt.timedelta(minutes=30))
            .build()
        )
    crl = builder.sign(ca.private_key, hashes.SHA256())
    path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    return path


def make_pki(directory: Path, bundle_extra: int = 24) -> Pki:
    """Build the whole PKI under ``directory`` (created if needed)."""
    directory.mkdir(parents=True, exist_ok=True)
    root = make_ca(directory, "root-ca", "mtls-audit test root CA")
    other = make_ca(directory, "other-ca", "mtls-audit test other CA")
    server = issue(directory, "server", root, "localhost", server=True)
    server_other = issue(directory, "server-other", other, "localhost", server=True)
    client = issue(directory, "client", root, "alice")
    revoked = issue(directory, "revoked", root, "revoked-rita")
    expired = issue(
        directory,
        "expired",
        root,
        "expired-eve",
        not_before=_NOW - dt.timedelta(days=60),
        not_after=_NOW - dt.timedelta(days=30),
    )
    crl = make_crl(directory / "root-ca.crl", root, [revoked.certificate])
    bundle = directory / "bundle.pem"
    parts = [root.certificate.public_bytes(serialization.Encoding.PEM)]
    (directory / "bundle.d").mkdir(exist_ok=True)
    for i in range(bundle_extra):
        extra = make_ca(directory / "bundle.d", f"ca-{i:02d}", f"Bundle CA {i:02d}")
        parts.append(extra.certificate.public_bytes(serialization.Encoding.PEM))
    bundle.write_bytes(b"".join(parts))
    return Pki(
        directory=directory,
        root=root,
        other=other,
        server=server,
        server_other=server_other,
        client=client,
        revoked=revoked,
        expired=expired,
        crl=crl,
        bundle=bundle,
        bundle_size=len(parts),
    )
