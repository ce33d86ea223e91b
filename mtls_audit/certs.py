"""Certificate, CRL and private-key facts: every file parsed once per run, defensively.

The trust-material rules (MTLS201-210) and the `certs` inventory all ask questions about the same
few files, so the parsing lives here once and the answers are plain frozen values. Files are read
the way OpenSSL's PEM reader (and so Nginx) reads them: block by block, so one corrupt block is a
recorded problem next to the good ones instead of an exception that hides them. Reading is bounded
and refuses anything that is not a regular file, because the paths come from configs and command
lines we do not control (a FIFO or `/dev/zero` must not hang or exhaust the run).

Private keys are loaded only long enough to learn their public half: `KeyFacts` keeps the type,
size, whether the file is encrypted, and a fingerprint of the public key, never key bytes.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import errno
import functools
import hashlib
import os
import re
import stat
import threading
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InternalError, InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import (
    dsa,
    ec,
    ed448,
    ed25519,
    padding,
    rsa,
    x448,
    x25519,
)
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtendedKeyUsageOID

DEFAULT_MAX_BYTES = 16 * 1024 * 1024
"""Largest file we read. The biggest public CA bundles are well under 1 MiB; anything near this
is not trust material, and reading it whole would let a stray path exhaust memory."""

SYSTEM_ROOT_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Alpine
    "/etc/pki/tls/certs/ca-bundle.crt",  # RHEL, Fedora
    "/etc/ssl/cert.pem",  # Alpine, macOS, BSDs
    "/etc/ssl/ca-bundle.pem",  # openSUSE
)
"""Where distributions keep the public trust store; certifi's bundle is added when importable."""

MAX_PROBLEMS = 50
"""Problems listed per file before the rest are counted."""

WEAK_HASHES = frozenset({"sha1", "md5"})
MIN_RSA_BITS = 2048
MIN_EC_BITS = 256
MIN_DSA_BITS = 2048

_UTC = dt.UTC
_ONE_DAY = dt.timedelta(days=1)

_EKU_NAMES = {
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "anyExtendedKeyUsage",
}

_CERT_LABELS = frozenset({"CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE"})
_CRL_LABELS = frozenset({"X509 CRL"})
_KEY_LABELS = {
    "PRIVATE KEY": "PKCS#8",
    "ENCRYPTED PRIVATE KEY": "PKCS#8",
    "RSA PRIVATE KEY": "PKCS#1",
    "EC PRIVATE KEY": "SEC1",
    "DSA PRIVATE KEY": "DSA",
}
# The legacy labels name the algorithm even when the body is encrypted.
_LABEL_KEY_TYPE = {"RSA PRIVATE KEY": "RSA", "EC PRIVATE KEY": "EC", "DSA PRIVATE KEY": "DSA"}

_BEGIN = b"-----BEGIN "
_END = b"-----END "
_BEGIN_RE = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----[ \t]*\r?\n?")
_END_RE = re.compile(rb"-----END ([A-Z0-9 ]+)-----")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


EMPTY_FILE = "empty file"
NOT_PEM_OR_DER = "not PEM or DER"
NO_MATERIAL = "no certificate, CRL or private key in the file"
OTHER_DER = "DER data is not a certificate, CRL or private key"
NUL_IN_NAME = "file name contains a NUL byte"
_NOTHING_PROBLEMS = frozenset({EMPTY_FILE, NOT_PEM_OR_DER, NO_MATERIAL, OTHER_DER})


# --------------------------------------------------------------------------------------------
# Facts


@dataclass(frozen=True)
class CertFacts:
    """What the rules need to know about one certificate, computed once."""

    index: int
    """0-based position of the PEM block in its file (0 for DER), so problems can name it."""
    subject: str
    """RFC 4514, most specific first: the form of Nginx's `$ssl_client_s_dn` (>= 1.11.6)."""
    issuer: str
    serial: str
    """Uppercase hex, even length: how `openssl x509 -serial` and `$ssl_client_serial` print it."""
    sha256: str
    """SHA-256 of the DER certificate, lowercase hex without colons."""
    spki_sha256: str
    """SHA-256 of the SubjectPublicKeyInfo DER; pairs keys with certs, and re-issued roots with
    their originals (same key, same trust). Empty when the key type is unsupported."""
    not_before: dt.datetime
    not_after: dt.datetime
    is_ca: bool
    """basicConstraints CA:TRUE. Without it OpenSSL will not use the cert as an issuer."""
    has_basic_constraints: bool
    path_len: int | None
    has_key_usage: bool
    """When False the three flags below are False, but every usage is allowed (RFC 5280)."""
    key_cert_sign: bool
    crl_sign: bool
    digital_signature: bool
    ekus: tuple[str, ...] | None
    """Short names (`clientAuth`) or dotted OIDs; None when the extension is absent, which
    means any purpose, clientAuth included."""
    key_type: str
    """`RSA`, `EC`, `Ed25519`, `Ed448`, `DSA`, ... or `unknown`."""
    key_size: int | None
    curve: str | None
    signature_hash: str | None
    """`sha256`, `sha1`, `md5`, ...; None for Ed25519/Ed448 or an unknown algorithm."""
    signature_algorithm: str
    self_signed: bool
    """Subject equals issuer *and* the signature verifies with the cert's own key."""
    subject_key_id: str | None
    authority_key_id: str | None
    san_dns: tuple[str, ...]
    raw: x509.Certificate = field(compare=False, repr=False, hash=False)
    """The parsed certificate, kept for signature checks; not part of equality."""


@dataclass(frozen=True)
class CrlFacts:
    """One CRL. An expired one makes Nginx reject every client certificate (`CRL has expired`)."""

    index: int
    issuer: str
    last_update: dt.datetime
    next_update: dt.datetime | None
    revoked_count: int
    signature_hash: str | None
    signature_algorithm: str
    authority_key_id: str | None
    sha256: str
    raw: x509.CertificateRevocationList = field(compare=False, repr=False, hash=False)

    def signed_by(self, cert: CertFacts) -> bool:
        """Whether `cert` issued this CRL: OpenSSL matches by issuer name, then checks the signature."""
        return crl_signed_by(self, cert)

    def is_expired(self, now: dt.datetime) -> bool:
        """nextUpdate in the past; a CRL without nextUpdate never expires."""
        return self.next_update is not None and as_utc(now) > self.next_update

    def is_revoked(self, serial: int) -> bool:
        return self.raw.get_revoked_certificate_by_serial_number(serial) is not None


@dataclass(frozen=True)
class KeyFacts:
    """A private key, described without its secret: type, size, encryption, public fingerprint."""

    index: int
    key_type: str
    """`unknown` for encrypted PKCS#8: its algorithm is inside the encrypted part."""
    key_size: int | None
    curve: str | None
    encrypted: bool
    """Detected from the PEM label or headers; we never ask for, or try, a passphrase."""
    spki_sha256: str | None
    """SHA-256 of the public key's SubjectPublicKeyInfo DER; None when encrypted."""
    format: str
    """`PKCS#8`, `PKCS#1`, `SEC1`, `DSA` or `DER`."""


@dataclass(frozen=True)
class Material:
    """Everything found in one blob of PEM or DER bytes."""

    certs: tuple[CertFacts, ...] = ()
    crls: tuple[CrlFacts, ...] = ()
    keys: tuple[KeyFacts, ...] = ()
    other_blocks: tuple[str, ...] = ()
    """Labels of PEM blocks that are none of the above (`EC PARAMETERS`, `CERTIFICATE REQUEST`)."""
    problems: tuple[str, ...] = ()
    encoding: str | None = None
    """`PEM` or `DER`; Nginx reads PEM only, so a DER file fails `nginx -t`."""


@dataclass(frozen=True)
class FileFacts:
    """A file as Nginx would meet it: can it be read, and what is in it."""

    path: str
    """As the caller named it."""
    realpath: str
    exists: bool
    readable: bool
    """The process may open it for reading; says nothing about the contents."""
    error: str | None
    """Why the file could not be read at all (missing, not a regular file, too large, ...)."""
    mode: int | None
    """Permission bits (`0o640`) of the file the path resolves to."""
    size: int | None
    group_readable: bool
    world_readable: bool
    kind: str
    """`certs`, `crl`, `key`, `mixed`, `empty` or `unknown` (also for unreadable files)."""
    encoding: str | None
    certs: tuple[CertFacts, ...] = ()
    crls: tuple[CrlFacts, ...] = ()
    keys: tuple[KeyFacts, ...] = ()
    other_blocks: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    """Content problems: junk between blocks, blocks that do not parse, truncated DER, ..."""

    @property
    def nothing_recognised(self) -> bool:
        """Read fine, but holds no trust material and nothing that tried to be (empty, plain text,
        another binary format). A directory walk skips such files instead of listing every README."""
        return (
            self.error is None
            and not (self.certs or self.crls or self.keys)
            and set(self.problems) <= _NOTHING_PROBLEMS
        )

    @property
    def group_or_other_access(self) -> bool:
        """Any permission bit for group or others; MTLS210 flags this on key files."""
        return self.mode is not None and bool(self.mode & 0o077)


# --------------------------------------------------------------------------------------------
# Helpers on facts


def as_utc(when: dt.datetime) -> dt.datetime:
    """Naive datetimes are taken as UTC (not local time), so callers cannot trigger naive/aware
    TypeErrors and every module reads a naive `now` the same way."""
    return when.replace(tzinfo=_UTC) if when.tzinfo is None else when


def days_until(when: dt.datetime, now: dt.datetime) -> int:
    """Whole days from `now` to `when`, rounded down: negative exactly when `when` has passed."""
    return (as_utc(when) - as_utc(now)) // _ONE_DAY


def days_left(cert: CertFacts, now: dt.datetime) -> int:
    """Whole days until notAfter, rounded down: negative exactly when the cert has expired."""
    return days_until(cert.not_after, now)


def is_expired(cert: CertFacts, now: dt.datetime) -> bool:
    """notAfter is inclusive (RFC 5280), so a cert is still valid at that very second."""
    return as_utc(now) > cert.not_after


def expires_within(cert: CertFacts, now: dt.datetime, days: int) -> bool:
    """Expired already, or notAfter falls within the next `days` days (`--warn-days`)."""
    return cert.not_after <= as_utc(now) + dt.timedelta(days=days)


def is_not_yet_valid(cert: CertFacts, now: dt.datetime) -> bool:
    return as_utc(now) < cert.not_before


def key_matches_cert(key: KeyFacts, cert: CertFacts) -> bool:
    """An encrypted key cannot be compared (we never decrypt), so it matches nothing."""
    return key.spki_sha256 is not None and key.spki_sha256 == cert.spki_sha256


def issued_by(child: CertFacts, issuer: CertFacts) -> bool:
    """Name chaining plus a signature check: what OpenSSL needs to build a chain link."""
    if child.raw.issuer != issuer.raw.subject:
        return False
    public_key = _public_key(issuer.raw)
    return public_key is not None and _cert_signature_ok(child.raw, public_key)


def crl_signed_by(crl: CrlFacts, cert: CertFacts) -> bool:
    """Whether `cert` issued `crl`. OpenSSL only uses a CRL whose issuer name equals the CA's
    subject, so a valid signature under another name does not count."""
    if crl.raw.issuer != cert.raw.subject:
        return False
    public_key = _public_key(cert.raw)
    if public_key is None:
        return False
    raw = crl.raw
    try:
        hash_alg = raw.signature_hash_algorithm
        params = raw.signature_algorithm_parameters
    except (UnsupportedAlgorithm, ValueError):
        return False
    return _signature_ok(public_key, raw.signature, raw.tbs_certlist_bytes, hash_alg, params)


def weak_reasons(item: CertFacts | CrlFacts | KeyFacts) -> list[str]:
    """Why the material is weak (MTLS208), empty when it is not.

    A self-signed certificate's own SHA-1/MD5 signature is not a reason: nobody verifies a trust
    anchor's self-signature, which is why SHA-1 roots stayed trusted after the SHA-1 sunset.
    """
    reasons: list[str] = []
    if isinstance(item, (CertFacts, KeyFacts)):
        reasons.extend(_weak_key_reasons(item.key_type, item.key_size, item.curve))
    if isinstance(item, (CertFacts, CrlFacts)):
        signature_checked = not (isinstance(item, CertFacts) and item.self_signed)
        if signature_checked and item.signature_hash in WEAK_HASHES:
            reasons.append(f"signed with {item.signature_hash.upper()}")
    return reasons


def _weak_key_reasons(key_type: str, key_size: int | None, curve: str | None) -> list[str]:
    if key_size is None:
        return []
    if key_type == "RSA" and key_size < MIN_RSA_BITS:
        return [f"RSA key of {key_size} bits (< {MIN_RSA_BITS})"]
    if key_type == "DSA" and key_size < MIN_DSA_BITS:
        return [f"DSA key of {key_size} bits (< {MIN_DSA_BITS})"]
    if key_type == "EC" and key_size < MIN_EC_BITS:
        return [f"EC key on {curve} ({key_size} bits < {MIN_EC_BITS})"]
    return []


# --------------------------------------------------------------------------------------------
# Public trust store


@functools.lru_cache(maxsize=8)
def _load_roots(paths: tuple[str, ...]) -> frozenset[tuple[str, str]]:
    roots: set[tuple[str, str]] = set()
    seen: set[str] = set()
    for path in paths:
        real = os.path.realpath(path)
        if real in seen:
            continue
        seen.add(real)
        roots.update(_bundle_roots(path))
    return frozenset(roots)


def _bundle_roots(path: str) -> list[tuple[str, str]]:
    """(subject, SPKI sha256) of a root bundle, without the full facts of every certificate.

    The full parse (extensions, self-signature checks) of the system bundles took 0.16 s on
    every scan with a verifying server; names and keys are all MTLS205 compares. A bundle that
    does not load in one go (a bad block, an odd name) goes through the tolerant parser.
    """
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > DEFAULT_MAX_BYTES:
            raise ValueError("not a regular bundle")
        with open(path, "rb") as f, warnings.catch_warnings():
            # Real roots with a non-positive serial draw a deprecation warning; not the user's concern.
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            certs = x509.load_pem_x509_certificates(f.read(DEFAULT_MAX_BYTES + 1))
        return [(c.subject.rfc4514_string(), _spki_sha256(c.public_key())) for c in certs]
    except (OSError, *_CERT_ERRORS):
        return [(c.subject, c.spki_sha256) for c in parse_file(path).certs if c.spki_sha256]


def _default_root_paths() -> tuple[str, ...]:
    paths = list(SYSTEM_ROOT_BUNDLES)
    try:
        import certifi
    except ImportError:
        pass
    else:
        paths.append(certifi.where())
    return tuple(paths)


def load_system_roots(paths: Sequence[str] | None = None) -> frozenset[tuple[str, str]]:
    """(subject, SPKI sha256) of every publicly trusted root on this machine, read once.

    Defaults to the distribution bundles that exist plus certifi's; missing bundles are skipped,
    so the set may be empty on a minimal image (callers that must know can check `len()`).
    """
    return _load_roots(tuple(paths) if paths is not None else _default_root_paths())


def is_public_root(cert: CertFacts, roots: Iterable[tuple[str, str]] | None = None) -> bool:
    """Matched on the public key, not the name: a root re-issued or cross-signed with the same
    key carries the same public trust whatever its subject says (MTLS205)."""
    if not cert.spki_sha256:
        return False
    pool = load_system_roots() if roots is None else roots
    return any(spki == cert.spki_sha256 for _subject, spki in pool)


# --------------------------------------------------------------------------------------------
# Building facts from cryptography objects


_E = TypeVar("_E", bound=x509.ExtensionType)

_CERT_ERRORS = (
    ValueError,
    UnsupportedAlgorithm,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
    x509.InvalidVersion,
    TypeError,
)
"""What loading or reading a malformed certificate or CRL can raise. InvalidVersion (a version
field other than v1 or v3) derives from Exception, not ValueError; OpenSSL refuses such a
certificate too (`X509_R_INVALID_VERSION`). TypeError comes from names parsed lazily: a DN
attribute encoded as a BIT STRING (`oid must be X500_UNIQUE_IDENTIFIER for BitString type`)."""


def _ext(exts: x509.Extensions, cls: type[_E]) -> _E | None:
    try:
        return exts.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None


def _public_key(cert: x509.Certificate) -> PublicKeyTypes | None:
    try:
        return cert.public_key()
    except (UnsupportedAlgorithm, ValueError):
        return None


def _key_info(key: PublicKeyTypes | None) -> tuple[str, int | None, str | None]:
    """(type, bits, curve) of a public key."""
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size, None
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", key.curve.key_size, key.curve.name
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256, None
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 448, None
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size, None
    if isinstance(key, x25519.X25519PublicKey):
        return "X25519", 256, None
    if isinstance(key, x448.X448PublicKey):
        return "X448", 448, None
    return "unknown", None, None


def _spki_sha256(key: PublicKeyTypes) -> str:
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def _signature_ok(
    public_key: PublicKeyTypes,
    signature: bytes,
    data: bytes,
    hash_alg: hashes.HashAlgorithm | None,
    params: object,
) -> bool:
    """Verify by hand rather than with `verify_directly_issued_by`, which refuses SHA-1 and MD5:
    we must still recognise a legacy self-signed root or a legacy-signed CRL for what it is."""
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            if params is None:
                params = padding.PKCS1v15()  # cryptography reports no parameters for md5WithRSA
            if hash_alg is None or not isinstance(params, (padding.PKCS1v15, padding.PSS)):
                return False
            public_key.verify(signature, data, params, hash_alg)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            if not isinstance(params, ec.ECDSA):
                return False
            public_key.verify(signature, data, params)
        elif isinstance(public_key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            public_key.verify(signature, data)
        elif isinstance(public_key, dsa.DSAPublicKey):
            if hash_alg is None:
                return False
            public_key.verify(signature, data, hash_alg)
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False
    return True


def _cert_signature_ok(cert: x509.Certificate, public_key: PublicKeyTypes) -> bool:
    try:
        hash_alg = cert.signature_hash_algorithm
        params = cert.signature_algorithm_parameters
    except (UnsupportedAlgorithm, ValueError):
        return False
    return _signature_ok(public_key, cert.signature, cert.tbs_certificate_bytes, hash_alg, params)


def _hash_name(signed: x509.Certificate | x509.CertificateRevocationList) -> str | None:
    """`signature_hash_algorithm` raises for algorithms cryptography does not know."""
    try:
        alg = signed.signature_hash_algorithm
    except (UnsupportedAlgorithm, ValueError):
        return None
    return alg.name if alg is not None else None


def _oid_name(oid: x509.ObjectIdentifier) -> str:
    name = getattr(oid, "_name", None)
    return name if isinstance(name, str) and name != "Unknown OID" else oid.dotted_string


def _serial_hex(serial: int) -> str:
    text = format(serial, "X")
    return text if len(text) % 2 == 0 else "0" + text


def cert_facts(cert: x509.Certificate, index: int = 0) -> CertFacts:
    """Facts of a loaded certificate (also for certificates seen in a live handshake).

    Raises ValueError when the extensions are malformed (duplicates, bad encodings); the file
    parser turns that into a problem on the block.
    """
    exts = cert.extensions
    bc = _ext(exts, x509.BasicConstraints)
    ku = _ext(exts, x509.KeyUsage)
    eku = _ext(exts, x509.ExtendedKeyUsage)
    ski = _ext(exts, x509.SubjectKeyIdentifier)
    aki = _ext(exts, x509.AuthorityKeyIdentifier)
    san = _ext(exts, x509.SubjectAlternativeName)
    public_key = _public_key(cert)
    key_type, key_size, curve = _key_info(public_key)
    self_signed = cert.issuer == cert.subject and public_key is not None and _cert_signature_ok(cert, public_key)
    return CertFacts(
        index=index,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=_serial_hex(cert.serial_number),
        sha256=cert.fingerprint(hashes.SHA256()).hex(),
        spki_sha256=_spki_sha256(public_key) if public_key is not None else "",
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        is_ca=bool(bc and bc.ca),
        has_basic_constraints=bc is not None,
        path_len=bc.path_length if bc else None,
        has_key_usage=ku is not None,
        key_cert_sign=bool(ku and ku.key_cert_sign),
        crl_sign=bool(ku and ku.crl_sign),
        digital_signature=bool(ku and ku.digital_signature),
        ekus=tuple(_EKU_NAMES.get(oid, oid.dotted_string) for oid in eku) if eku else None,
        key_type=key_type,
        key_size=key_size,
        curve=curve,
        signature_hash=_hash_name(cert),
        signature_algorithm=_oid_name(cert.signature_algorithm_oid),
        self_signed=self_signed,
        subject_key_id=ski.digest.hex() if ski else None,
        authority_key_id=aki.key_identifier.hex() if aki and aki.key_identifier else None,
        san_dns=tuple(san.get_values_for_type(x509.DNSName)) if san else (),
        raw=cert,
    )


def crl_facts(crl: x509.CertificateRevocationList, index: int = 0) -> CrlFacts:
    aki = _ext(crl.extensions, x509.AuthorityKeyIdentifier)
    return CrlFacts(
        index=index,
        issuer=crl.issuer.rfc4514_string(),
        last_update=crl.last_update_utc,
        next_update=crl.next_update_utc,
        revoked_count=len(crl),
        signature_hash=_hash_name(crl),
        signature_algorithm=_oid_name(crl.signature_algorithm_oid),
        authority_key_id=aki.key_identifier.hex() if aki and aki.key_identifier else None,
        sha256=crl.fingerprint(hashes.SHA256()).hex(),
        raw=crl,
    )


def _private_key_facts(key: PrivateKeyTypes, index: int, fmt: str) -> KeyFacts:
    """Keep the public half's facts; the private object goes out of scope with the caller."""
    public_key = key.public_key()
    key_type, key_size, curve = _key_info(public_key)
    return KeyFacts(
        index=index,
        key_type=key_type,
        key_size=key_size,
        curve=curve,
        encrypted=False,
        spki_sha256=_spki_sha256(public_key),
        format=fmt,
    )


def _encrypted_key(index: int, fmt: str, key_type: str = "unknown") -> KeyFacts:
    return KeyFacts(
        index=index,
        key_type=key_type,
        key_size=None,
        curve=None,
        encrypted=True,
        spki_sha256=None,
        format=fmt,
    )


# --------------------------------------------------------------------------------------------
# Parsing bytes


def _der_extent(data: bytes) -> tuple[int, int] | None:
    """(header length, content length) of the outer DER element, None if the header is cut."""
    if len(data) < 2:
        return None
    first = data[1]
    if first < 0x80:
        return 2, first
    count = first & 0x7F
    if count == 0 or count > 4 or len(data) < 2 + count:
        return None  # indefinite length is BER, not DER; > 4 bytes is not a file we accept
    return 2 + count, int.from_bytes(data[2 : 2 + count], "big")


def _der_shape_problem(der: bytes) -> str | None:
    """A precise reason for the commonest DER failures: cut-off downloads and stray bytes."""
    if not der or der[0] != 0x30:
        return NOT_PEM_OR_DER
    extent = _der_extent(der)
    if extent is None:
        return "truncated DER (length header cut short)"
    total = extent[0] + extent[1]
    if total > len(der):
        return f"truncated DER ({len(der)} of {total} bytes)"
    if total < len(der):
        return f"{len(der) - total} bytes of trailing data after the DER object"
    return None


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


class _Collector:
    """Accumulates one blob's facts; a class only so the block handlers share the lists."""

    def __init__(self) -> None:
        self.certs: list[CertFacts] = []
        self.crls: list[CrlFacts] = []
        self.keys: list[KeyFacts] = []
        self.other: list[str] = []
        self.problems: list[str] = []

    def add_signed_der(self, der: bytes, index: int, where: str, *, crl: bool, quiet: bool = False) -> bool:
        """Load a certificate or CRL; on failure record why, unless `quiet` (DER sniffing)."""
        what = "CRL" if crl else "certificate"
        with warnings.catch_warnings(record=True) as caught:
            # cryptography warns about RFC 5280 violations it still accepts (a zero serial in an
            # old public root); for an auditor those are findings, not noise on stderr.
            warnings.simplefilter("always", CryptographyDeprecationWarning)
            try:
                if crl:
                    self.crls.append(crl_facts(x509.load_der_x509_crl(der), index))
                else:
                    self.certs.append(cert_facts(x509.load_der_x509_certificate(der), index))
            except _CERT_ERRORS as e:
                if not quiet:
                    reason = _der_shape_problem(der) or _short(e)
                    self.problems.append(f"{where}: {what} could not be parsed: {reason}")
                return False
        notes = dict.fromkeys(_warning_note(str(w.message)) for w in caught)
        self.problems.extend(f"{where}: {note}" for note in notes)
        return True

    def add_pem_key(self, block: bytes, label: str, headers: bytes, index: int, where: str) -> None:
        fmt = _KEY_LABELS[label]
        if label == "ENCRYPTED PRIVATE KEY" or b"ENCRYPTED" in headers:
            # Never decrypt: the passphrase is not ours to ask for, and facts suffice.
            self.keys.append(_encrypted_key(index, fmt, _LABEL_KEY_TYPE.get(label, "unknown")))
            return
        try:
            key = serialization.load_pem_private_key(block, password=None, unsafe_skip_rsa_key_validation=True)
        except TypeError:
            self.keys.append(_encrypted_key(index, fmt, _LABEL_KEY_TYPE.get(label, "unknown")))
        except (ValueError, UnsupportedAlgorithm, InternalError):
            # The library's message could quote the input; say only what failed. InternalError:
            # OpenSSL's "key setup failed" for a raw key of the wrong size (an empty Ed25519 key).
            self.problems.append(f"{where}: private key could not be parsed")
        else:
            self.keys.append(_private_key_facts(key, index, fmt))

    def material(self, encoding: str | None) -> Material:
        return Material(
            certs=tuple(self.certs),
            crls=tuple(self.crls),
            keys=tuple(self.keys),
            other_blocks=tuple(self.other),
            problems=_capped(self.problems + _duplicate_problems(self.certs)),
            encoding=encoding,
        )


def _capped(problems: list[str]) -> tuple[str, ...]:
    """A file with a million broken blocks needs a few examples and a count, not a million lines."""
    if len(problems) <= MAX_PROBLEMS:
        return tuple(problems)
    return (*problems[:MAX_PROBLEMS], f"... and {len(problems) - MAX_PROBLEMS} more problems")


def _warning_note(message: str) -> str:
    if "serial number" in message:
        return "serial number is zero or negative (RFC 5280 requires a positive one)"
    return message.split(". ")[0]


def _duplicate_problems(certs: Sequence[CertFacts]) -> list[str]:
    first: dict[str, int] = {}
    problems = []
    for cert in certs:
        if cert.sha256 in first:
            problems.append(f"block #{cert.index}: duplicate of block #{first[cert.sha256]} ({cert.subject})")
        else:
            first[cert.sha256] = cert.index
    return problems


def _is_junk(gap: bytes) -> bool:
    """Text outside PEM blocks that is more than blank lines or `#` comments (as in certifi)."""
    return any(line.strip() and not line.lstrip().startswith(b"#") for line in gap.splitlines())


def _split_headers(body: bytes) -> tuple[bytes, bytes]:
    """RFC 1421 headers (`Proc-Type: 4,ENCRYPTED`) end at the first blank line."""
    stripped = body.lstrip(b"\r\n")
    first_line = stripped.split(b"\n", 1)[0]
    if b":" not in first_line:
        return b"", body
    parts = re.split(rb"\r?\n[ \t]*\r?\n", stripped, maxsplit=1)
    return (parts[0], parts[1]) if len(parts) == 2 else (parts[0], b"")


class _Marker:
    """Next occurrence of a marker at or after a position that only moves forward.

    Re-searching from every block start would make a crafted file (thousands of BEGIN lines and
    one END at the very end) quadratic; remembering the last hit keeps the whole scan linear.
    """

    def __init__(self, data: bytes, marker: bytes) -> None:
        self.data = data
        self.marker = marker
        self.hit = -2  # not searched yet; -1 once no occurrence remains

    def find(self, start: int) -> int:
        if self.hit != -1 and self.hit < start:
            self.hit = self.data.find(self.marker, start)
        return self.hit


def _parse_pem(data: bytes) -> Material:
    out = _Collector()
    begins = _Marker(data, _BEGIN)
    ends = _Marker(data, _END)
    pos = 0
    index = 0
    while True:
        begin = begins.find(pos)
        gap = data[pos:] if begin < 0 else data[pos:begin]
        if _is_junk(gap):
            if begin < 0:
                out.problems.append("junk after the last PEM block")
            elif index == 0:
                out.problems.append("junk before the first PEM block")
            else:
                out.problems.append(f"junk between PEM blocks (before block #{index})")
        if begin < 0:
            break
        where = f"block #{index}"
        m = _BEGIN_RE.match(data, begin)
        if m is None:
            out.problems.append(f"{where}: malformed BEGIN line")
            pos = begin + len(_BEGIN)
            index += 1
            continue
        label = m.group(1).decode("ascii")
        where = f"block #{index} ({label})"
        body_start = m.end()
        end = ends.find(body_start)
        next_begin = begins.find(body_start)
        end_match = _END_RE.match(data, end) if end >= 0 else None
        if end_match is None or 0 <= next_begin < end:
            out.problems.append(f"{where}: no END line (truncated PEM)")
            pos = next_begin if next_begin >= 0 else len(data)
            index += 1
            continue
        if begin > 0 and data[begin - 1 : begin] not in (b"\n", b"\r"):
            # OpenSSL's reader looks for BEGIN at the start of a line: "-----END X----------BEGIN"
            # glued together makes Nginx silently skip this block.
            out.problems.append(f"{where}: BEGIN line does not start a line; OpenSSL skips it")
        if data[end_match.end() : end_match.end() + 80].split(b"\n", 1)[0].strip():
            # "-----END X----------BEGIN X-----" on one line: OpenSSL cannot read this block and
            # SSL_CTX_load_verify_locations fails, so `nginx -t` refuses the file.
            out.problems.append(f"{where}: text after the END line; OpenSSL cannot read this block")
        end_label = end_match.group(1).decode("ascii")
        if end_label != label:
            out.problems.append(f"{where}: END line says {end_label}")
        _handle_block(out, data[begin : end_match.end()], label, data[body_start:end], index)
        pos = end_match.end()
        index += 1
    return out.material("PEM")


def _handle_block(out: _Collector, block: bytes, label: str, body: bytes, index: int) -> None:
    where = f"block #{index} ({label})"
    headers, b64 = _split_headers(body)
    if label in _KEY_LABELS:
        out.add_pem_key(block, label, headers, index, where)
        return
    if label not in _CERT_LABELS and label not in _CRL_LABELS:
        out.other.append(label)
        return
    try:
        der = base64.b64decode(b"".join(b64.split()), validate=True)
    except (binascii.Error, ValueError):
        out.problems.append(f"{where}: invalid base64")
        return
    if label == "TRUSTED CERTIFICATE":
        # OpenSSL's "auxiliary" form: the certificate, then trust settings. Nginx >= 1.27.2 reads it.
        extent = _der_extent(der)
        if extent is not None:
            der = der[: extent[0] + extent[1]]
    out.add_signed_der(der, index, where, crl=label in _CRL_LABELS)


def _is_text(data: bytes) -> bool:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return _CONTROL.search(text) is None


def _parse_der(data: bytes) -> Material:
    """A DER file holds one object; try certificate, CRL, then private key."""
    out = _Collector()
    if _is_text(data):
        # DER always holds bytes below 0x20 (tags, lengths); a text file that happens to start
        # with "0" (0x30, SEQUENCE) must not be reported as a truncated certificate.
        out.problems.append(NOT_PEM_OR_DER)
        return out.material(None)
    shape = _der_shape_problem(data)
    extent = _der_extent(data)
    if shape is not None:
        if extent is None or extent[0] + extent[1] > len(data) or data[0] != 0x30:
            out.problems.append(shape)
            return out.material(None)
        out.problems.append(shape)  # trailing bytes: OpenSSL reads the first object only
        data = data[: extent[0] + extent[1]]
    if out.add_signed_der(data, 0, "DER", crl=False, quiet=True) or out.add_signed_der(
        data, 0, "DER", crl=True, quiet=True
    ):
        return out.material("DER")
    try:
        key = serialization.load_der_private_key(data, password=None, unsafe_skip_rsa_key_validation=True)
    except TypeError:
        out.keys.append(_encrypted_key(0, "DER"))
    except (ValueError, UnsupportedAlgorithm, InternalError):
        out.problems.append(OTHER_DER)
        return out.material(None)
    else:
        out.keys.append(_private_key_facts(key, 0, "DER"))
    return out.material("DER")


def parse_material(data: bytes) -> Material:
    """Facts from PEM or DER bytes. Never raises on bad input: problems are data."""
    if not data.strip():
        return Material()
    if _BEGIN in data:
        return _parse_pem(data)
    return _parse_der(data)


# --------------------------------------------------------------------------------------------
# Reading files


_FILE_TYPES = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _not_regular(mode: int) -> str:
    for test, name in _FILE_TYPES:
        if test(mode):
            return f"not a regular file: {name}"
    return "not a regular file"


def _kind(material: Material, empty: bool) -> str:
    present = [
        name for name, items in (("certs", material.certs), ("crl", material.crls), ("key", material.keys)) if items
    ]
    if len(present) > 1:
        return "mixed"
    if present:
        return present[0]
    return "empty" if empty else "unknown"


def _failed(path: str, real: str, error: str, *, exists: bool, st: os.stat_result | None = None) -> FileFacts:
    mode = stat.S_IMODE(st.st_mode) if st is not None else None
    return FileFacts(
        path=path,
        realpath=real,
        exists=exists,
        readable=exists and os.access(path, os.R_OK),
        error=error,
        mode=mode,
        size=st.st_size if st is not None else None,
        group_readable=bool(mode is not None and mode & stat.S_IRGRP),
        world_readable=bool(mode is not None and mode & stat.S_IROTH),
        kind="unknown",
        encoding=None,
    )


def _stat_error(path: str, exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        return "dangling symlink" if os.path.islink(path) else "no such file or directory"
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    if exc.errno == errno.EACCES:
        return "permission denied"
    if exc.errno == errno.ENOTDIR:
        return "a parent of the path is not a directory"
    return exc.strerror or _short(exc)


def parse_file(path: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> FileFacts:
    """Read and parse one file; never raises for bad input and never blocks on special files.

    Anything that is not a regular file is refused from `stat` alone, and so is anything over
    `max_bytes`, before a byte is read. The file is opened non-blocking and re-checked with
    `fstat`, so a path swapped for a FIFO between the two calls cannot hang the run.
    """
    if "\0" in path:
        # A config can spell one (`ssl_crl "a\0b"`); every os call would raise ValueError.
        return _failed(path, path, NUL_IN_NAME, exists=False)
    real = os.path.realpath(path)
    try:
        st = os.stat(path)
    except OSError as e:
        return _failed(path, real, _stat_error(path, e), exists=os.path.lexists(path))
    if not stat.S_ISREG(st.st_mode):
        return _failed(path, real, _not_regular(st.st_mode), exists=True, st=st)
    too_large = f"file too large ({st.st_size} bytes, limit {max_bytes}): not read"
    if st.st_size > max_bytes:
        return _failed(path, real, too_large, exists=True, st=st)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        return _failed(path, real, _stat_error(path, e), exists=True, st=st)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            return _failed(path, real, _not_regular(st.st_mode), exists=True, st=st)
        try:
            data = f.read(max_bytes + 1)
        except OSError as e:
            return _failed(path, real, _stat_error(path, e), exists=True, st=st)
    if len(data) > max_bytes:
        return _failed(path, real, too_large, exists=True, st=st)
    material = parse_material(data)
    empty = not data.strip()
    mode = stat.S_IMODE(st.st_mode)
    problems = material.problems
    if empty:
        problems = (EMPTY_FILE, *problems)
    elif not (material.certs or material.crls or material.keys or material.problems):
        problems = (NO_MATERIAL,)
    return FileFacts(
        path=path,
        realpath=real,
        exists=True,
        readable=True,
        error=None,
        mode=mode,
        size=len(data),
        group_readable=bool(mode & stat.S_IRGRP),
        world_readable=bool(mode & stat.S_IROTH),
        kind=_kind(material, empty),
        encoding=material.encoding,
        certs=material.certs,
        crls=material.crls,
        keys=material.keys,
        other_blocks=material.other_blocks,
        problems=problems,
    )


@dataclass
class CacheStats:
    """Counters that let tests prove each file was parsed once."""

    parses: int = 0
    hits: int = 0


class CertCache:
    """One parse per file per run, keyed by real path so symlinks and `../` spellings share it.

    Rules MTLS201-210 look at the same CA file from many servers; without the cache a config
    with fifty vhosts would parse the bundle fifty times. The lock makes concurrent `get` calls
    safe (a file is still parsed once); results are immutable, so sharing them is safe.
    """

    def __init__(self, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.stats = CacheStats()
        self._facts: dict[str, FileFacts] = {}
        self._lock = threading.Lock()

    def get(self, path: str) -> FileFacts:
        """Facts for `path`, carrying `path` as the caller spelled it."""
        key = os.path.realpath(path) if "\0" not in path else path
        with self._lock:
            facts = self._facts.get(key)
            if facts is None:
                facts = parse_file(path, max_bytes=self.max_bytes)
                self._facts[key] = facts
                self.stats.parses += 1
            else:
                self.stats.hits += 1
        return facts if facts.path == path else replace(facts, path=path)

    def __len__(self) -> int:
        return len(self._facts)
