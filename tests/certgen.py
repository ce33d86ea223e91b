"""Test-time PKI: every certificate, CRL and key a test needs, minted in memory on demand.

Why not committed files: certificates expire and break the suite on a date nobody chose, and
committed private keys look like leaks to secret scanners. Dates here are relative to the moment
of the call, so "expires in 10 days" stays true whenever the suite runs.

Plain functions returning cryptography objects, plus `write_pem`/`write_der`/`write_key`, so any
test file (rule fixtures included) can compose exactly the PKI it needs:

    root = make_root()
    inter = make_intermediate(root)
    alice = make_client(inter, "alice")
    write_pem(tmp_path / "ca.pem", root.cert, inter.cert)
    write_key(tmp_path / "alice.key", alice.key)

Keys are cached per (name, type, size) for the whole session: EC P-256 costs microseconds, but
RSA costs tens of milliseconds each, and most tests only need *a* key, not a fresh one. Certs
with different common names get different keys by default, so key/cert mismatches are real.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
KeyKind = Literal["ec", "rsa", "ed25519", "ec224"]
SignHash: TypeAlias = hashes.SHA224 | hashes.SHA256 | hashes.SHA384 | hashes.SHA512
"""What cryptography will sign with; SHA-1/MD5 certificates come from `resign_legacy`."""
Writable: TypeAlias = x509.Certificate | x509.CertificateRevocationList | PrivateKey | bytes

CLIENT_AUTH = (ExtendedKeyUsageOID.CLIENT_AUTH,)
SERVER_AUTH = (ExtendedKeyUsageOID.SERVER_AUTH,)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@functools.cache
def new_key(name: str = "default", kind: KeyKind = "ec", bits: int = 2048) -> PrivateKey:
    """A key for `name`, generated once per session. `bits` only matters for RSA."""
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "ec224":
        return ec.generate_private_key(ec.SECP224R1())
    return ec.generate_private_key(ec.SECP256R1())


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key; the key is kept out of repr so it never hits a log."""

    cert: x509.Certificate
    key: PrivateKey = field(repr=False)

    @property
    def name(self) -> x509.Name:
        return self.cert.subject


def name(cn: str, org: str = "mtls-audit tests") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _sign_hash(key: PrivateKey, hash_alg: SignHash | None) -> SignHash | None:
    """Ed25519 signs without a separate hash; everything else defaults to SHA-256."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    return hash_alg or hashes.SHA256()


def make_cert(
    cn: str,
    *,
    issuer: Issued | None = None,
    key: PrivateKey | None = None,
    kind: KeyKind = "ec",
    bits: int = 2048,
    ca: bool = False,
    path_len: int | None = None,
    basic_constraints: bool = True,
    key_usage: bool = True,
    eku: Sequence[x509.ObjectIdentifier] | None = None,
    san_dns: Sequence[str] = (),
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    days: float = 365,
    serial: int | None = None,
    subject: x509.Name | None = None,
    hash_alg: SignHash | None = None,
) -> Issued:
    """The one builder behind the named helpers; `issuer=None` makes it self-signed.

    Validity defaults to one hour ago until `days` from now: the hour of slack keeps tests
    immune to clock skew between "now" here and "now" in the code under test.
    """
    key = key or new_key(cn, kind, bits)
    subject = subject or name(cn)
    signer_key = issuer.key if issuer else key
    issuer_name = issuer.cert.subject if issuer else subject
    now = utcnow()
    not_before = not_before or now - dt.timedelta(hours=1)
    not_after = not_after or now + dt.timedelta(days=days)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()), critical=False)
    )
    if basic_constraints:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=ca, path_length=path_len if ca else None), critical=True
        )
    if key_usage:
        builder = builder.add_extension(_key_usage(ca=ca), critical=True)
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    if san_dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in san_dns]), critical=False)
    return Issued(builder.sign(signer_key, _sign_hash(signer_key, hash_alg)), key)


def make_root(cn: str = "mtls-audit Test Root CA", **kw: Any) -> Issued:
    """A self-signed CA valid for ten years."""
    kw.setdefault("days", 3650)
    return make_cert(cn, ca=True, **kw)


def make_intermediate(issuer: Issued, cn: str = "mtls-audit Test Intermediate CA", **kw: Any) -> Issued:
    """A CA under `issuer` that may only issue leaves (pathLen 0), like most issuing CAs."""
    kw.setdefault("days", 1825)
    kw.setdefault("path_len", 0)
    return make_cert(cn, issuer=issuer, ca=True, **kw)


def make_client(issuer: Issued, cn: str = "alice", **kw: Any) -> Issued:
    """A client certificate: clientAuth EKU, what `ssl_verify_client` accepts."""
    kw.setdefault("eku", CLIENT_AUTH)
    return make_cert(cn, issuer=issuer, **kw)


def make_server(issuer: Issued, cn: str = "server.test", **kw: Any) -> Issued:
    """A server certificate: serverAuth EKU and the CN as DNS SAN."""
    kw.setdefault("eku", SERVER_AUTH)
    kw.setdefault("san_dns", (cn,))
    return make_cert(cn, issuer=issuer, **kw)


def make_self_signed_leaf(cn: str = "self-signed-eve", **kw: Any) -> Issued:
    """What an attacker mints against `optional_no_ca`: CA:FALSE, signed by its own key."""
    kw.setdefault("eku", CLIENT_AUTH)
    return make_cert(cn, **kw)


def make_expired(issuer: Issued | None, cn: str = "expired-eve", *, days_ago: float = 30, **kw: Any) -> Issued:
    """A certificate whose notAfter passed `days_ago` days ago (valid for a year before that)."""
    now = utcnow()
    kw.setdefault("eku", CLIENT_AUTH)
    return make_cert(
        cn,
        issuer=issuer,
        not_before=now - dt.timedelta(days=days_ago + 365),
        not_after=now - dt.timedelta(days=days_ago),
        **kw,
    )


def make_crl(
    issuer: Issued,
    revoked: Iterable[x509.Certificate | int] = (),
    *,
    last_update: dt.datetime | None = None,
    next_update: dt.datetime | None = None,
    next_update_days: float = 7,
    signer_key: PrivateKey | None = None,
) -> x509.CertificateRevocationList:
    """A CRL from `issuer` (signed with `signer_key` to forge one), valid `next_update_days`."""
    now = utcnow()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(last_update or now - dt.timedelta(hours=1))
        .next_update(next_update or now + dt.timedelta(days=next_update_days))
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False)
        .add_extension(x509.CRLNumber(1), critical=False)
    )
    for item in revoked:
        serial = item if isinstance(item, int) else item.serial_number
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(now - dt.timedelta(minutes=30))
            .build()
        )
    key = signer_key or issuer.key
    return builder.sign(key, _sign_hash(key, None))


def make_expired_crl(issuer: Issued, *, days_ago: float = 1) -> x509.CertificateRevocationList:
    """nextUpdate `days_ago` days in the past: Nginx then rejects every client certificate."""
    now = utcnow()
    return make_crl(
        issuer,
        last_update=now - dt.timedelta(days=days_ago + 7),
        next_update=now - dt.timedelta(days=days_ago),
    )


# --- legacy signatures ------------------------------------------------------------------------
# cryptography refuses to sign with SHA-1 or MD5, yet the weak-material rule must be tested on
# exactly such certificates. Both RSA OIDs below have the same length as sha256WithRSAEncryption,
# so swapping the AlgorithmIdentifier inside the TBS keeps every DER length intact.

_RSA_SHA256_ALG = bytes.fromhex("06092a864886f70d01010b0500")
_RSA_LEGACY_ALG = {
    "sha1": (bytes.fromhex("06092a864886f70d0101050500"), hashes.SHA1()),
    "md5": (bytes.fromhex("06092a864886f70d0101040500"), hashes.MD5()),
}


def _tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def resign_legacy(cert: x509.Certificate, signer_key: rsa.RSAPrivateKey, hash_name: str = "sha1") -> x509.Certificate:
    """Re-sign an RSA/SHA-256 certificate with SHA-1 or MD5 (`hash_name`)."""
    alg, hash_alg = _RSA_LEGACY_ALG[hash_name]
    tbs = cert.tbs_certificate_bytes
    if tbs.count(_RSA_SHA256_ALG) != 1:
        raise ValueError("resign_legacy needs a certificate signed with sha256WithRSAEncryption")
    tbs = tbs.replace(_RSA_SHA256_ALG, alg)
    signature = signer_key.sign(tbs, padding.PKCS1v15(), hash_alg)
    der = _tlv(0x30, tbs + _tlv(0x30, alg) + _tlv(0x03, b"\x00" + signature))
    return x509.load_der_x509_certificate(der)


# --- serialisation --------------------------------------------------------------------------


def key_pem(
    key: PrivateKey,
    *,
    fmt: Literal["pkcs8", "traditional"] = "pkcs8",
    password: bytes | None = None,
) -> bytes:
    """PKCS#8 by default; `traditional` gives `RSA PRIVATE KEY` / `EC PRIVATE KEY` blocks."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    private_format = (
        serialization.PrivateFormat.TraditionalOpenSSL if fmt == "traditional" else serialization.PrivateFormat.PKCS8
    )
    return key.private_bytes(serialization.Encoding.PEM, private_format, encryption)


def pem(obj: Writable) -> bytes:
    """PEM of a certificate, CRL or (unencrypted PKCS#8) key; bytes pass through unchanged."""
    if isinstance(obj, bytes):
        return obj
    if isinstance(obj, (x509.Certificate, x509.CertificateRevocationList)):
        return obj.public_bytes(serialization.Encoding.PEM)
    return key_pem(obj)


def der(obj: x509.Certificate | x509.CertificateRevocationList | PrivateKey) -> bytes:
    if isinstance(obj, (x509.Certificate, x509.CertificateRevocationList)):
        return obj.public_bytes(serialization.Encoding.DER)
    return obj.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path | str, data: bytes, mode: int | None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mode is not None:
        os.chmod(path, mode)
    return path


def write_pem(path: Path | str, *objs: Writable, mode: int | None = None) -> Path:
    """Concatenate the PEM of `objs` (raw bytes too, to plant junk) into `path`."""
    return _write(path, b"".join(pem(o) for o in objs), mode)


def write_der(
    path: Path | str,
    obj: x509.Certificate | x509.CertificateRevocationList | PrivateKey,
    mode: int | None = None,
) -> Path:
    return _write(path, der(obj), mode)


def write_key(
    path: Path | str,
    key: PrivateKey,
    *,
    fmt: Literal["pkcs8", "traditional"] = "pkcs8",
    password: bytes | None = None,
    mode: int = 0o600,
) -> Path:
    """A key file with the mode Nginx deployments should use (0600) unless a test says otherwise."""
    return _write(path, key_pem(key, fmt=fmt, password=password), mode)
