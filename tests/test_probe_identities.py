"""Client identities: minted in memory, loaded from PEM, and never leaking key material."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pki import Pki, make_pki

from mtls_audit.errors import InputFileError
from mtls_audit.probe.identities import (
    Identities,
    load_identity,
    load_private_key,
    make_expired,
    make_untrusted,
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), bundle_extra=0)


def _pem_key(key: object) -> bytes:
    return key.private_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def test_untrusted_identity_is_a_fresh_self_signed_client_cert() -> None:
    a, b = make_untrusted(), make_untrusted()
    cert = a.certificate
    assert cert.subject == cert.issuer
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert str(cn).startswith("mtls-audit-untrusted-")
    assert a.certificate.subject != b.certificate.subject  # random per run
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
    assert isinstance(a.private_key, ec.EllipticCurvePrivateKey)
    assert a.kind == "untrusted"


def test_expired_identity_is_signed_by_the_ca_and_expired(pki: Pki) -> None:
    ident = make_expired(pki.root.certificate, pki.root.private_key)
    cert = ident.certificate
    assert cert.issuer == pki.root.certificate.subject
    assert cert.not_valid_after_utc < dt.datetime.now(dt.UTC)
    cert.verify_directly_issued_by(pki.root.certificate)
    assert ident.chain == ()  # a self-signed root is not sent


def test_repr_and_str_never_show_the_key() -> None:
    ident = make_untrusted()
    secret = _pem_key(ident.private_key).decode()
    body = "".join(secret.splitlines()[1:-1])
    for text in (repr(ident), str(ident), repr(Identities(untrusted=ident))):
        assert "PRIVATE" not in text and body[:32] not in text and "private_key" not in text


def test_load_identity_checks_the_pair(pki: Pki) -> None:
    ident = load_identity("valid", pki.client.cert, pki.client.key)
    assert ident.subject.endswith("CN=alice") or "CN=alice" in ident.subject
    with pytest.raises(InputFileError, match="does not match the private key"):
        load_identity("valid", pki.client.cert, pki.revoked.key)


def test_encrypted_key_uses_the_passphrase_from_the_named_env_var(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    enc = tmp_path / "enc.key"
    enc.write_bytes(
        pki.client.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret-pass"),
        )
    )
    with pytest.raises(InputFileError, match="encrypted") as no_env:
        load_private_key(enc)
    with pytest.raises(InputFileError, match=r"MTLS_TEST_PASS.*not set"):
        load_private_key(enc, "MTLS_TEST_PASS")
    monkeypatch.setenv("MTLS_TEST_PASS", "wrong")
    with pytest.raises(InputFileError, match="wrong passphrase") as wrong:
        load_private_key(enc, "MTLS_TEST_PASS")
    monkeypatch.setenv("MTLS_TEST_PASS", "s3cret-pass")
    key = load_private_key(enc, "MTLS_TEST_PASS")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    for err in (no_env.value, wrong.value):
        assert "s3cret" not in str(err) and "BEGIN" not in str(err)
        assert err.__cause__ is None and err.__suppress_context__  # no parser traceback attached


def test_passphrase_for_an_unencrypted_key_is_ignored(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MTLS_TEST_PASS", "unused")
    assert isinstance(load_private_key(pki.client.key, "MTLS_TEST_PASS"), ec.EllipticCurvePrivateKey)


@pytest.mark.parametrize(
    "content", [b"", b"not a key at all", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"]
)
def test_bad_key_files_give_one_line_without_the_content(tmp_path: Path, content: bytes) -> None:
    f = tmp_path / "bad.key"
    f.write_bytes(content)
    with pytest.raises(InputFileError) as info:
        load_private_key(f)
    message = str(info.value)
    assert message.startswith(str(f)) and "\n" not in message
    assert "AAAA" not in message


def test_unreadable_and_bad_certificates(tmp_path: Path, pki: Pki) -> None:
    with pytest.raises(InputFileError, match="cannot read certificate"):
        load_identity("valid", tmp_path / "missing.pem", pki.client.key)
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    with pytest.raises(InputFileError, match="not a PEM or DER certificate"):
        load_identity("valid", junk, pki.client.key)


def test_identities_from_paths_builds_every_kind(pki: Pki) -> None:
    ids = Identities.from_paths(
        client_cert=pki.client.cert,
        client_key=pki.client.key,
        ca_cert=pki.root.cert,
        ca_key=pki.root.key,
        revoked_cert=pki.revoked.cert,
        revoked_key=pki.revoked.key,
    )
    assert ids.for_kind("no_cert") is None
    assert ids.for_kind("valid") is ids.valid and ids.valid is not None
    assert ids.expired is not None and ids.expired.certificate.issuer == pki.root.certificate.subject
    assert ids.revoked is not None and "revoked-rita" in ids.revoked.subject
    assert ids.untrusted.kind == "untrusted"


def test_identities_need_cert_and_key_together(pki: Pki) -> None:
    with pytest.raises(InputFileError, match="--client-key is missing"):
        Identities.from_paths(client_cert=pki.client.cert)
    with pytest.raises(InputFileError, match="--ca-cert is missing"):
        Identities.from_paths(ca_key=pki.root.key)


def test_minting_writes_nothing_to_disk(tmp_path: Path) -> None:
    code = (
        "from mtls_audit.probe.identities import make_untrusted, make_expired\n"
        "u = make_untrusted()\n"
        "make_expired(u.certificate, u.private_key)\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, env=_env())
    assert list(tmp_path.iterdir()) == []


def _env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_probe_package_import_does_not_load_openssl() -> None:
    code = (
        "import sys, mtls_audit.probe, mtls_audit.probe.types, mtls_audit.probe.targets\n"
        "assert 'OpenSSL' not in sys.modules, 'OpenSSL imported'\n"
        "assert 'cryptography.x509' not in sys.modules, 'cryptography imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=_env())
