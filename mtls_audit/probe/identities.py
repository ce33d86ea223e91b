"""Client identities for the probes: minted in memory, or loaded from the user's PEM files.

Why in memory: a throwaway key written to disk is a key someone can find later, and a key that
shows up in a log or a traceback is a leak. Keys here live only inside ``ClientIdentity`` objects,
whose ``repr``/``str`` name the certificate and never the key, and reach OpenSSL through
``PKey.from_cryptography_key`` in ``tls.py``. Passphrases come from an environment variable the
user names (``--client-key-pass-env``), never from the command line, where ``ps`` would show it.

Every problem with a user file is an ``InputFileError`` with one line naming the file; messages
never quote key material (and key parsing errors are not chained, so no traceback shows it).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..errors import InputFileError
from .types import AttemptKind

PrivateKey: TypeAlias = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
    | dsa.DSAPrivateKey
)
"""Key types OpenSSL can use for TLS client authentication (and pyOpenSSL can convert)."""

_SUPPORTED_KEYS = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
    dsa.DSAPrivateKey,
)


@dataclass(frozen=True, repr=False, eq=False)
class ClientIdentity:
    """A client certificate (plus chain) and its private key, for one kind of attempt."""

    kind: AttemptKind
    certificate: x509.Certificate
    private_key: PrivateKey = field(repr=False, compare=False)
    """For ``tls.py`` only; never log or format it."""
    chain: tuple[x509.Certificate, ...] = ()
    """Intermediates sent after the leaf (not the trust anchor)."""

    @property
    def subject(self) -> str:
        """RFC 4514 subject of the leaf, for evidence."""
        return self.certificate.subject.rfc4514_string()

    def __repr__(self) -> str:
        return f"ClientIdentity(kind={self.kind!r}, subject={self.subject!r})"

    __str__ = __repr__


@dataclass(frozen=True, repr=False)
class Identities:
    """The identities a scan presents; ``untrusted`` always exists, the rest when the user gave them."""

    untrusted: ClientIdentity
    valid: ClientIdentity | None = None
    expired: ClientIdentity | None = None
    revoked: ClientIdentity | None = None

    def for_kind(self, kind: AttemptKind) -> ClientIdentity | None:
        """The identity for an attempt kind (``None`` for ``no_cert`` or when not given)."""
        if kind == "no_cert":
            return None
        return {
            "untrusted": self.untrusted,
            "valid": self.valid,
            "expired": self.expired,
            "revoked": self.revoked,
        }[kind]

    def __repr__(self) -> str:
        given = [k for k in ("valid", "expired", "revoked") if getattr(self, k) is not None]
        return f"Identities(untrusted, {', '.join(given) or 'nothing else'})"

    @classmethod
    def minted(cls) -> Identities:
        """Only the throwaway untrusted identity (no user material)."""
        return cls(untrusted=make_untrusted())

    @classmethod
    def from_paths(
        cls,
        *,
        client_cert: str | os.PathLike[str] | None = None,
        client_key: str | os.PathLike[str] | None = None,
        ca_cert: str | os.PathLike[str] | None = None,
        ca_key: str | os.PathLike[str] | None = None,
        revoked_cert: str | os.PathLike[str] | None = None,
        revoked_key: str | os.PathLike[str] | None = None,
        key_pass_env: str | None = None,
    ) -> Identities:
        """Build from the CLI's file options; pairs must be given together.

        ``key_pass_env`` names the environment variable holding the passphrase of any encrypted
        key among them (client, CA, revoked); unencrypted keys ignore it.
        """
        _pair("--client-cert", client_cert, "--client-key", client_key)
        _pair("--ca-cert", ca_cert, "--ca-key", ca_key)
        _pair("--revoked-cert", revoked_cert, "--revoked-key", revoked_key)
        valid = revoked = expired = None
        if client_cert and client_key:
            valid = load_identity("valid", client_cert, client_key, key_pass_env)
        if revoked_cert and revoked_key:
            revoked = load_identity("revoked", revoked_cert, revoked_key, key_pass_env)
        if ca_cert and ca_key:
            certs, key = load_ca(ca_cert, ca_key, key_pass_env)
            expired = make_expired(certs[0], key, chain=certs[1:])
        return cls(untrusted=make_untrusted(), valid=valid, expired=expired, revoked=revoked)


def _pair(cert_opt: str, cert: object, key_opt: str, key: object) -> None:
    if bool(cert) != bool(key):
        missing = key_opt if cert else cert_opt
        raise InputFileError(f"{cert_opt} and {key_opt} go together: {missing} is missing")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _client_leaf(
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    signer: PrivateKey,
    not_before: dt.datetime,
    not_after: dt.datetime,
    issuer_cert: x509.Certificate | None = None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if issuer_cert is not None:
        try:
            ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
        except x509.ExtensionNotFound:
            aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(
                issuer_cert.public_key()  # type: ignore[arg-type]
            )
        builder = builder.add_extension(aki, critical=False)
    eddsa = isinstance(signer, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey))
    algorithm = None if eddsa else hashes.SHA256()
    return builder.sign(signer, algorithm)


def make_untrusted() -> ClientIdentity:
    """A fresh self-signed clientAuth certificate no server should trust (MTLS502).

    Self-signed on purpose: ``optional_no_ca`` lets exactly this through (nginx-mtls.md 1.1),
    while ``on``/``optional`` answer 400 "The SSL certificate error".
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mtls-audit probe"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"mtls-audit-untrusted-{secrets.token_hex(4)}"),
        ]
    )
    now = _now()
    cert = _client_leaf(name, name, key, key, now - dt.timedelta(minutes=5), now + dt.timedelta(days=1))
    return ClientIdentity("untrusted", cert, key)


def make_expired(
    ca_cert: x509.Certificate, ca_key: PrivateKey, chain: Sequence[x509.Certificate] = ()
) -> ClientIdentity:
    """A clientAuth certificate signed by the user's CA whose notAfter passed a month ago (MTLS503).

    ``chain`` (intermediates from the CA file, the CA itself when it is not self-signed) is sent
    along so a server trusting only the root can still build the path and reject on expiry.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mtls-audit probe"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"mtls-audit-expired-{secrets.token_hex(4)}"),
        ]
    )
    now = _now()
    cert = _client_leaf(
        subject,
        ca_cert.subject,
        key,
        ca_key,
        now - dt.timedelta(days=60),
        now - dt.timedelta(days=30),
        issuer_cert=ca_cert,
    )
    send = tuple(c for c in (ca_cert, *chain) if c.subject != c.issuer)
    return ClientIdentity("expired", cert, key, send)


def _read(path: str | os.PathLike[str], what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise InputFileError(f"{os.fspath(path)}: cannot read {what}: {e.strerror or e}") from None


def load_certificates(path: str | os.PathLike[str], what: str = "certificate") -> list[x509.Certificate]:
    """Every certificate in a PEM file (leaf first), or a single DER certificate."""
    data = _read(path, what)
    try:
        if b"-----BEGIN" in data:
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise InputFileError(f"{os.fspath(path)}: not a PEM or DER {what}") from None
    if not certs:
        raise InputFileError(f"{os.fspath(path)}: no {what} found")
    return certs


_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _passphrase(pass_env: str | None, path: str | os.PathLike[str]) -> bytes | None:
    if not pass_env:
        return None
    if not _ENV_NAME_RE.match(pass_env):  # most likely the passphrase itself: never echo it
        raise InputFileError(
            f"{os.fspath(path)}: --client-key-pass-env takes the NAME of an environment variable "
            "holding the passphrase (letters, digits, _), not the passphrase"
        )
    value = os.environ.get(pass_env)
    if value is None:
        raise InputFileError(f"{os.fspath(path)}: environment variable {pass_env} (the key passphrase) is not set")
    return value.encode()


def load_private_key(path: str | os.PathLike[str], pass_env: str | None = None) -> PrivateKey:
    """Load a PEM (or DER) private key, decrypting it with the passphrase from ``$pass_env``.

    Errors never include the key bytes or the passphrase, and are raised ``from None`` so the
    parser's own exception (and its context) stays out of tracebacks.
    """
    where = os.fspath(path)
    data = _read(path, "private key")
    password = _passphrase(pass_env, path)
    loader = serialization.load_pem_private_key if b"-----BEGIN" in data else serialization.load_der_private_key
    key: object
    try:
        key = loader(data, password)
    except TypeError:
        if password is None:
            raise InputFileError(
                f"{where}: private key is encrypted; name the environment variable holding its "
                "passphrase with --client-key-pass-env"
            ) from None
        try:  # a passphrase was given for an unencrypted key: fine, ignore it
            key = loader(data, None)
        except (TypeError, ValueError):
            raise InputFileError(f"{where}: not a usable private key") from None
    except ValueError:
        if password is not None:
            raise InputFileError(f"{where}: cannot decrypt private key (wrong passphrase?)") from None
        raise InputFileError(f"{where}: not a PEM or DER private key") from None
    except Exception:  # unsupported algorithms raise UnsupportedAlgorithm
        raise InputFileError(f"{where}: unsupported private key") from None
    if not isinstance(key, _SUPPORTED_KEYS):
        raise InputFileError(f"{where}: unsupported private key type for TLS client auth")
    return key


def _spki(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _check_match(cert: x509.Certificate, key: PrivateKey, cert_path: object, key_path: object) -> None:
    if _spki(cert.public_key()) != _spki(key.public_key()):
        raise InputFileError(f"{cert_path}: certificate does not match the private key in {key_path}")


def load_identity(
    kind: AttemptKind,
    cert_path: str | os.PathLike[str],
    key_path: str | os.PathLike[str],
    pass_env: str | None = None,
) -> ClientIdentity:
    """A user-provided client identity: leaf (first certificate) plus any chain after it."""
    certs = load_certificates(cert_path, "certificate")
    key = load_private_key(key_path, pass_env)
    _check_match(certs[0], key, os.fspath(cert_path), os.fspath(key_path))
    return ClientIdentity(kind, certs[0], key, tuple(certs[1:]))


def load_ca(
    cert_path: str | os.PathLike[str],
    key_path: str | os.PathLike[str],
    pass_env: str | None = None,
) -> tuple[list[x509.Certificate], PrivateKey]:
    """The client CA (first certificate, with any chain above it) and its signing key."""
    certs = load_certificates(cert_path, "CA certificate")
    key = load_private_key(key_path, pass_env)
    _check_match(certs[0], key, os.fspath(cert_path), os.fspath(key_path))
    return certs, key
