"""Certificate, CRL and key facts: what the MTLS2xx rules and the inventory stand on.

Every input is minted by `certgen` at test time; nothing here reads a committed certificate. The
one exception is the system trust store, which is the point of the public-root test.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import time
from pathlib import Path

import certgen as g
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from mtls_audit import certs
from mtls_audit.certs import CertCache, parse_file, parse_material

SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


@pytest.fixture(scope="module")
def root() -> g.Issued:
    return g.make_root()


@pytest.fixture(scope="module")
def inter(root: g.Issued) -> g.Issued:
    return g.make_intermediate(root)


@pytest.fixture(scope="module")
def alice(inter: g.Issued) -> g.Issued:
    return g.make_client(inter, "alice")


@pytest.fixture(scope="module")
def rsa1024() -> g.Issued:
    """RSA-1024 root: generated once per module because RSA key generation is the slow part."""
    return g.make_root("weak RSA root", kind="rsa", bits=1024)


def parse(path: Path) -> certs.FileFacts:
    return parse_file(str(path))


# --- bundles and block-by-block parsing -------------------------------------------------------


def test_bundle_yields_every_certificate_in_file_order(
    tmp_path: Path, root: g.Issued, inter: g.Issued, alice: g.Issued
) -> None:
    facts = parse(g.write_pem(tmp_path / "bundle.pem", root.cert, inter.cert, alice.cert))
    assert facts.kind == "certs"
    assert facts.encoding == "PEM"
    assert facts.problems == ()
    assert [c.index for c in facts.certs] == [0, 1, 2]
    assert [c.subject for c in facts.certs] == [
        "CN=mtls-audit Test Root CA,O=mtls-audit tests",
        "CN=mtls-audit Test Intermediate CA,O=mtls-audit tests",
        "CN=alice,O=mtls-audit tests",
    ]


def test_junk_between_blocks_is_a_problem_but_hides_nothing(tmp_path: Path, root: g.Issued, inter: g.Issued) -> None:
    facts = parse(g.write_pem(tmp_path / "b.pem", root.cert, b"oops, pasted text\n", inter.cert))
    assert len(facts.certs) == 2
    assert facts.problems == ("junk between PEM blocks (before block #1)",)


def test_comment_lines_between_blocks_are_not_junk(tmp_path: Path, root: g.Issued, inter: g.Issued) -> None:
    """certifi's bundle puts `# Issuer:` comments between blocks; OpenSSL ignores them."""
    facts = parse(g.write_pem(tmp_path / "b.pem", b"# Issuer: root\n", root.cert, b"\n# Issuer: x\n", inter.cert))
    assert facts.problems == ()


def test_one_corrupt_block_does_not_hide_the_others(
    tmp_path: Path, root: g.Issued, inter: g.Issued, alice: g.Issued
) -> None:
    bad = b"-----BEGIN CERTIFICATE-----\nMIIBnotbase64!!\n-----END CERTIFICATE-----\n"
    cut = g.pem(inter.cert)
    lines = cut.splitlines(keepends=True)
    cut_short = b"".join([*lines[:4], lines[-1]])  # valid base64, truncated DER
    facts = parse(g.write_pem(tmp_path / "b.pem", root.cert, bad, cut_short, alice.cert))
    assert [c.index for c in facts.certs] == [0, 3]
    assert facts.problems[0] == "block #1 (CERTIFICATE): invalid base64"
    assert facts.problems[1].startswith("block #2 (CERTIFICATE): certificate could not be parsed: truncated DER")


def test_block_without_end_line_is_reported_and_the_next_block_still_parsed(
    tmp_path: Path, root: g.Issued, inter: g.Issued
) -> None:
    head = g.pem(root.cert).split(b"-----END")[0]
    facts = parse(g.write_pem(tmp_path / "b.pem", head, inter.cert))
    assert [c.subject for c in facts.certs] == [parse_material(g.pem(inter.cert)).certs[0].subject]
    assert facts.problems == ("block #0 (CERTIFICATE): no END line (truncated PEM)",)


def test_glued_end_and_begin_lines_are_flagged(tmp_path: Path, root: g.Issued, inter: g.Issued) -> None:
    """`-----END CERTIFICATE----------BEGIN CERTIFICATE-----` on one line: OpenSSL reads neither
    block and `nginx -t` fails with "bad end line" (checked with Nginx 1.22 / OpenSSL 3.0). A BEGIN
    that merely follows junk on its line passes `nginx -t`, and OpenSSL loads only the first cert."""
    data = g.pem(root.cert).rstrip(b"\n") + g.pem(inter.cert)
    facts = parse(g.write_pem(tmp_path / "b.pem", data))
    assert "block #0 (CERTIFICATE): text after the END line; OpenSSL cannot read this block" in facts.problems
    assert "block #1 (CERTIFICATE): BEGIN line does not start a line; OpenSSL skips it" in facts.problems


def test_duplicate_certificates_in_a_bundle_are_flagged(tmp_path: Path, root: g.Issued, inter: g.Issued) -> None:
    facts = parse(g.write_pem(tmp_path / "b.pem", root.cert, inter.cert, root.cert))
    assert facts.problems == (f"block #2: duplicate of block #0 ({facts.certs[0].subject})",)


def test_trusted_certificate_blocks_are_read(tmp_path: Path, root: g.Issued) -> None:
    """OpenSSL's `TRUSTED CERTIFICATE` form (cert DER + trust settings); Nginx >= 1.27.2 reads it."""
    aux = bytes.fromhex("300c300a06082b06010505070302")  # trust: clientAuth
    body = base64.encodebytes(g.der(root.cert) + aux)
    data = b"-----BEGIN TRUSTED CERTIFICATE-----\n" + body + b"-----END TRUSTED CERTIFICATE-----\n"
    facts = parse(g.write_pem(tmp_path / "t.pem", data))
    assert facts.problems == ()
    assert facts.certs[0].sha256 == root.cert.fingerprint(hashes.SHA256()).hex()


def test_other_pem_blocks_are_named_not_parsed(tmp_path: Path, alice: g.Issued) -> None:
    params = b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
    facts = parse(g.write_pem(tmp_path / "k.pem", params, g.key_pem(alice.key, fmt="traditional")))
    assert facts.other_blocks == ("EC PARAMETERS",)
    assert facts.kind == "key"
    assert facts.problems == ()


# --- DER and non-certificate content ----------------------------------------------------------


def test_der_certificate_crl_and_key(tmp_path: Path, root: g.Issued, alice: g.Issued) -> None:
    cert = parse(g.write_der(tmp_path / "c.der", alice.cert))
    crl = parse(g.write_der(tmp_path / "r.der", g.make_crl(root)))
    key = parse(g.write_der(tmp_path / "k.der", alice.key))
    assert (cert.kind, cert.encoding, cert.certs[0].subject) == (
        "certs",
        "DER",
        "CN=alice,O=mtls-audit tests",
    )
    assert (crl.kind, crl.crls[0].issuer) == ("crl", root.cert.subject.rfc4514_string())
    assert (key.kind, key.keys[0].key_type, key.keys[0].format) == ("key", "EC", "DER")


def test_truncated_der_says_how_much_is_missing(tmp_path: Path, alice: g.Issued) -> None:
    der = g.der(alice.cert)
    facts = parse(g.write_pem(tmp_path / "c.der", der[:100]))
    assert facts.certs == ()
    assert facts.kind == "unknown"
    assert facts.problems == (f"truncated DER (100 of {len(der)} bytes)",)


def test_trailing_bytes_after_der_are_reported_and_the_object_still_read(tmp_path: Path, alice: g.Issued) -> None:
    facts = parse(g.write_pem(tmp_path / "c.der", g.der(alice.cert) + b"\x00\x00"))
    assert len(facts.certs) == 1
    assert facts.problems == ("2 bytes of trailing data after the DER object",)


def test_text_that_starts_like_der_is_not_called_truncated(tmp_path: Path) -> None:
    """'0' is 0x30, the DER SEQUENCE tag; a text file starting with it is just not a cert."""
    facts = parse(g.write_pem(tmp_path / "notes.txt", b"0.9 release notes\n"))
    assert facts.problems == (certs.NOT_PEM_OR_DER,)
    assert facts.nothing_recognised


def test_random_binary_is_not_pem_or_der(tmp_path: Path) -> None:
    facts = parse(g.write_pem(tmp_path / "blob", b"\x89PNG\r\n\x1a\n\x00\x00"))
    assert facts.problems == (certs.NOT_PEM_OR_DER,)


def test_key_where_a_cert_should_be_has_no_certs(tmp_path: Path, alice: g.Issued) -> None:
    """MTLS202 reads `certs == ()`: a CA file that holds only a key holds no usable CA."""
    facts = parse(g.write_key(tmp_path / "ca.pem", alice.key))
    assert facts.certs == ()
    assert facts.kind == "key"
    assert len(facts.keys) == 1


def test_crl_where_certs_were_expected_and_mixed_files(tmp_path: Path, root: g.Issued, alice: g.Issued) -> None:
    assert parse(g.write_pem(tmp_path / "crl.pem", g.make_crl(root))).kind == "crl"
    mixed = parse(g.write_pem(tmp_path / "m.pem", alice.cert, alice.key))
    assert mixed.kind == "mixed"


def test_empty_and_whitespace_files(tmp_path: Path) -> None:
    for content in (b"", b"\n  \n"):
        facts = parse(g.write_pem(tmp_path / "empty.pem", content))
        assert facts.kind == "empty"
        assert facts.problems == (certs.EMPTY_FILE,)
        assert facts.error is None


# --- files that are not files ---------------------------------------------------------------


def test_directory_given_as_file(tmp_path: Path) -> None:
    facts = parse(tmp_path)
    assert facts.exists
    assert facts.error == "not a regular file: a directory"
    assert facts.certs == ()


def test_missing_file(tmp_path: Path) -> None:
    facts = parse(tmp_path / "nope.pem")
    assert (facts.exists, facts.readable, facts.error) == (False, False, "no such file or directory")


def test_dangling_symlink_and_symlink_loop(tmp_path: Path) -> None:
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    assert parse(tmp_path / "dangling").error == "dangling symlink"
    assert parse(tmp_path / "a").error == "symlink loop"


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    start = time.monotonic()
    assert parse(fifo).error == "not a regular file: a FIFO"
    assert time.monotonic() - start < 1


def test_devices_are_refused() -> None:
    assert parse_file("/dev/zero").error == "not a regular file: a character device"


def test_huge_file_is_refused_from_stat_alone(tmp_path: Path) -> None:
    huge = tmp_path / "huge.pem"
    with open(huge, "wb") as f:
        f.truncate(20 * 1024 * 1024)  # sparse: 20 MiB apparent size, no disk used
    start = time.monotonic()
    facts = parse(huge)
    assert time.monotonic() - start < 0.5
    assert facts.error is not None and facts.error.startswith("file too large (20971520 bytes, limit 16777216)")
    assert facts.size == 20 * 1024 * 1024


def test_size_limit_is_configurable(tmp_path: Path, root: g.Issued) -> None:
    path = g.write_pem(tmp_path / "ca.pem", root.cert)
    assert parse_file(str(path), max_bytes=100).error is not None
    assert CertCache(max_bytes=100).get(str(path)).error is not None


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path: Path, root: g.Issued) -> None:
    path = g.write_pem(tmp_path / "ca.pem", root.cert, mode=0o000)
    facts = parse(path)
    assert (facts.exists, facts.readable, facts.error) == (True, False, "permission denied")


# --- certificate facts -------------------------------------------------------------------------


def test_ca_and_leaf_detection(root: g.Issued, inter: g.Issued, alice: g.Issued) -> None:
    r, i, a = (certs.cert_facts(x.cert) for x in (root, inter, alice))
    assert (r.is_ca, r.has_basic_constraints, r.path_len, r.key_cert_sign, r.crl_sign) == (
        True,
        True,
        None,
        True,
        True,
    )
    assert (i.is_ca, i.path_len) == (True, 0)
    assert (a.is_ca, a.has_basic_constraints, a.key_cert_sign, a.digital_signature) == (
        False,
        True,
        False,
        True,
    )
    assert a.ekus == ("clientAuth",)
    assert r.ekus is None


def test_leaf_without_basic_constraints_is_not_a_ca(root: g.Issued) -> None:
    facts = certs.cert_facts(g.make_cert("bare", issuer=root, basic_constraints=False, key_usage=False).cert)
    assert (facts.is_ca, facts.has_basic_constraints, facts.has_key_usage) == (False, False, False)


def test_identity_fields(inter: g.Issued, alice: g.Issued) -> None:
    facts = certs.cert_facts(alice.cert, index=4)
    assert facts.index == 4
    assert facts.issuer == "CN=mtls-audit Test Intermediate CA,O=mtls-audit tests"
    assert facts.serial == format(alice.cert.serial_number, "X").rjust(len(facts.serial), "0")
    assert len(facts.serial) % 2 == 0
    assert len(facts.sha256) == 64 and ":" not in facts.sha256 and facts.sha256 == facts.sha256.lower()
    assert (facts.key_type, facts.key_size, facts.curve) == ("EC", 256, "secp256r1")
    assert (facts.signature_hash, facts.signature_algorithm) == ("sha256", "ecdsa-with-SHA256")
    assert facts.authority_key_id == certs.cert_facts(inter.cert).subject_key_id
    assert facts.not_after.tzinfo is not None


def test_serial_formats_like_openssl() -> None:
    assert certs._serial_hex(0) == "00"
    assert certs._serial_hex(0xABC) == "0ABC"
    assert certs._serial_hex(0x80) == "80"


def test_server_cert_san(root: g.Issued) -> None:
    facts = certs.cert_facts(g.make_server(root, "api.internal").cert)
    assert facts.san_dns == ("api.internal",)
    assert facts.ekus == ("serverAuth",)


def test_self_signed_detection(root: g.Issued, inter: g.Issued) -> None:
    assert certs.cert_facts(root.cert).self_signed
    assert certs.cert_facts(g.make_self_signed_leaf().cert).self_signed
    assert not certs.cert_facts(inter.cert).self_signed


def test_same_subject_and_issuer_but_foreign_signature_is_not_self_signed(root: g.Issued) -> None:
    """Name equality is not enough: the signature must verify with the cert's own key."""
    impostor = g.make_cert("twin", subject=root.cert.subject, issuer=root, key=g.new_key("twin-key"), ca=True).cert
    assert impostor.subject == impostor.issuer
    assert not certs.cert_facts(impostor).self_signed


def test_ed25519_and_rsa_pss_free_signatures_verify() -> None:
    facts = certs.cert_facts(g.make_root("ed root", kind="ed25519").cert)
    assert (facts.key_type, facts.signature_hash, facts.self_signed) == ("Ed25519", None, True)


def test_issued_by(root: g.Issued, inter: g.Issued, alice: g.Issued) -> None:
    r, i, a = (certs.cert_facts(x.cert) for x in (root, inter, alice))
    assert certs.issued_by(i, r)
    assert certs.issued_by(a, i)
    assert not certs.issued_by(a, r)


# --- expiry --------------------------------------------------------------------------------


def test_expiry_math_rounds_down_and_not_after_is_inclusive(root: g.Issued) -> None:
    facts = certs.cert_facts(root.cert)
    end = facts.not_after
    assert certs.days_left(facts, end - dt.timedelta(days=10, hours=1)) == 10
    assert certs.days_left(facts, end - dt.timedelta(hours=23)) == 0
    assert certs.days_left(facts, end) == 0
    assert not certs.is_expired(facts, end)
    assert certs.is_expired(facts, end + dt.timedelta(seconds=1))
    assert certs.days_left(facts, end + dt.timedelta(seconds=1)) == -1
    assert certs.expires_within(facts, end - dt.timedelta(days=30), 30)
    assert not certs.expires_within(facts, end - dt.timedelta(days=30, seconds=1), 30)


def test_expired_cert(inter: g.Issued) -> None:
    facts = certs.cert_facts(g.make_expired(inter, days_ago=3).cert)
    now = dt.datetime.now(dt.UTC)
    assert certs.is_expired(facts, now)
    assert certs.days_left(facts, now) in (-4, -3)


def test_naive_now_is_taken_as_utc(root: g.Issued) -> None:
    facts = certs.cert_facts(root.cert)
    naive = facts.not_after.replace(tzinfo=None) + dt.timedelta(seconds=1)
    assert certs.is_expired(facts, naive)


def test_not_yet_valid(root: g.Issued) -> None:
    now = dt.datetime.now(dt.UTC)
    facts = certs.cert_facts(g.make_cert("future", issuer=root, not_before=now + dt.timedelta(days=2)).cert)
    assert certs.is_not_yet_valid(facts, now)


# --- CRLs ---------------------------------------------------------------------------------


def test_crl_parse_and_signature_check(tmp_path: Path, root: g.Issued, inter: g.Issued, alice: g.Issued) -> None:
    facts = parse(g.write_pem(tmp_path / "crl.pem", g.make_crl(root, [inter.cert, 7])))
    crl = facts.crls[0]
    r, i = certs.cert_facts(root.cert), certs.cert_facts(inter.cert)
    assert crl.revoked_count == 2
    assert crl.is_revoked(inter.cert.serial_number)
    assert not crl.is_revoked(alice.cert.serial_number)
    assert crl.issuer == r.subject
    assert crl.authority_key_id == r.subject_key_id
    assert crl.signed_by(r)
    assert certs.crl_signed_by(crl, r)
    assert not crl.signed_by(i)
    assert not crl.is_expired(dt.datetime.now(dt.UTC))


def test_forged_crl_with_the_right_issuer_name_is_not_signed_by_the_ca(root: g.Issued) -> None:
    forged = certs.crl_facts(g.make_crl(root, signer_key=g.new_key("mallory")))
    assert forged.issuer == root.cert.subject.rfc4514_string()
    assert not forged.signed_by(certs.cert_facts(root.cert))


def test_expired_crl(tmp_path: Path, root: g.Issued) -> None:
    crl = parse(g.write_pem(tmp_path / "crl.pem", g.make_expired_crl(root, days_ago=2))).crls[0]
    now = dt.datetime.now(dt.UTC)
    assert crl.is_expired(now)
    assert crl.next_update is not None and certs.days_until(crl.next_update, now) in (-3, -2)  # rounds down


def test_crl_facts_equality_ignores_the_raw_object(root: g.Issued) -> None:
    crl = g.make_crl(root)
    assert certs.crl_facts(crl) == certs.crl_facts(x509.load_der_x509_crl(g.der(crl)))
    assert "raw" not in repr(certs.crl_facts(crl))


# --- weak material ----------------------------------------------------------------------------


def test_weak_rsa_1024(rsa1024: g.Issued) -> None:
    facts = certs.cert_facts(rsa1024.cert)
    assert (facts.key_type, facts.key_size) == ("RSA", 1024)
    assert certs.weak_reasons(facts) == ["RSA key of 1024 bits (< 2048)"]


def test_sha1_and_md5_signatures_are_weak(rsa1024: g.Issued) -> None:
    for name in ("sha1", "md5"):
        leaf = g.make_client(rsa1024, f"{name}-leaf", kind="rsa", bits=2048).cert
        facts = certs.cert_facts(g.resign_legacy(leaf, rsa1024.key, name))  # type: ignore[arg-type]
        assert facts.signature_hash == name
        assert certs.weak_reasons(facts) == [f"signed with {name.upper()}"]
        assert certs.issued_by(facts, certs.cert_facts(rsa1024.cert))


def test_sha1_self_signature_of_a_root_is_not_a_weakness() -> None:
    """Nobody verifies a trust anchor's self-signature; its key size still counts."""
    root = g.make_root("sha1 root", kind="rsa", bits=2048)
    facts = certs.cert_facts(g.resign_legacy(root.cert, root.key, "sha1"))  # type: ignore[arg-type]
    assert facts.self_signed  # verified by hand: cryptography's own check refuses SHA-1
    assert certs.weak_reasons(facts) == []


def test_small_ec_curve_is_weak_and_p256_is_not(root: g.Issued) -> None:
    small = certs.cert_facts(g.make_cert("p224", issuer=root, kind="ec224").cert)
    assert certs.weak_reasons(small) == ["EC key on secp224r1 (224 bits < 256)"]
    assert certs.weak_reasons(certs.cert_facts(root.cert)) == []


def test_weak_key_file(tmp_path: Path, rsa1024: g.Issued) -> None:
    key = parse(g.write_key(tmp_path / "weak.key", rsa1024.key)).keys[0]
    assert certs.weak_reasons(key) == ["RSA key of 1024 bits (< 2048)"]


def test_weak_crl_signature() -> None:
    fake = certs.CrlFacts(
        index=0,
        issuer="CN=x",
        last_update=dt.datetime.now(dt.UTC),
        next_update=None,
        revoked_count=0,
        signature_hash="sha1",
        signature_algorithm="sha1WithRSAEncryption",
        authority_key_id=None,
        sha256="00",
        raw=g.make_crl(g.make_root()),
    )
    assert certs.weak_reasons(fake) == ["signed with SHA1"]


# --- keys -------------------------------------------------------------------------------------


def test_key_formats(tmp_path: Path, alice: g.Issued) -> None:
    rsa_key = g.new_key("rsa-2048", "rsa", 2048)
    cases = {
        "pkcs8-ec": (g.key_pem(alice.key), ("EC", 256, False, "PKCS#8")),
        "sec1-ec": (g.key_pem(alice.key, fmt="traditional"), ("EC", 256, False, "SEC1")),
        "pkcs1-rsa": (g.key_pem(rsa_key, fmt="traditional"), ("RSA", 2048, False, "PKCS#1")),
        "pkcs8-rsa": (g.key_pem(rsa_key), ("RSA", 2048, False, "PKCS#8")),
        "enc-pkcs8": (g.key_pem(alice.key, password=b"pw"), ("unknown", None, True, "PKCS#8")),
        "enc-pkcs1": (g.key_pem(rsa_key, fmt="traditional", password=b"pw"), ("RSA", None, True, "PKCS#1")),
    }
    for name, (data, expected) in cases.items():
        key = parse(g.write_pem(tmp_path / f"{name}.key", data)).keys[0]
        assert (key.key_type, key.key_size, key.encrypted, key.format) == expected, name


def test_encrypted_key_is_never_decrypted(tmp_path: Path, alice: g.Issued, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("tried to load an encrypted key")

    monkeypatch.setattr(serialization, "load_pem_private_key", refuse)
    key = parse(g.write_key(tmp_path / "k.pem", alice.key, password=b"secret")).keys[0]
    assert key.encrypted and key.spki_sha256 is None


def test_key_matches_its_cert_only(tmp_path: Path, root: g.Issued, alice: g.Issued) -> None:
    key = parse(g.write_key(tmp_path / "alice.key", alice.key)).keys[0]
    encrypted = parse(g.write_key(tmp_path / "enc.key", alice.key, password=b"pw")).keys[0]
    assert certs.key_matches_cert(key, certs.cert_facts(alice.cert))
    assert not certs.key_matches_cert(key, certs.cert_facts(root.cert))
    assert not certs.key_matches_cert(encrypted, certs.cert_facts(alice.cert))


def test_key_facts_hold_no_key_material(tmp_path: Path, alice: g.Issued) -> None:
    path = g.write_key(tmp_path / "alice.key", alice.key)
    facts = parse(path)
    text = repr(facts)
    assert "PRIVATE KEY" not in text
    body_lines = [line for line in path.read_text().splitlines() if not line.startswith("-----")]
    assert not any(line in text for line in body_lines)
    assert isinstance(alice.key, ec.EllipticCurvePrivateKey)
    assert format(alice.key.private_numbers().private_value, "x") not in text


def test_key_file_mode(tmp_path: Path, alice: g.Issued) -> None:
    loose = parse(g.write_key(tmp_path / "loose.key", alice.key, mode=0o644))
    tight = parse(g.write_key(tmp_path / "tight.key", alice.key, mode=0o600))
    assert (loose.mode, loose.group_readable, loose.world_readable, loose.group_or_other_access) == (
        0o644,
        True,
        True,
        True,
    )
    assert (tight.mode, tight.group_or_other_access) == (0o600, False)


# --- public roots -------------------------------------------------------------------------------


def _system_bundle_or_skip() -> str:
    if not os.path.exists(SYSTEM_BUNDLE):
        if os.environ.get("CI"):
            pytest.fail(f"{SYSTEM_BUNDLE} is missing in CI; install ca-certificates")
        pytest.skip(f"{SYSTEM_BUNDLE} not present")
    return SYSTEM_BUNDLE


def test_a_real_public_root_is_detected() -> None:
    bundle = _system_bundle_or_skip()
    public = parse_file(bundle).certs[0]
    assert certs.is_public_root(public)
    assert (public.subject, public.spki_sha256) in certs.load_system_roots()


def test_a_private_root_is_not_public(root: g.Issued) -> None:
    assert not certs.is_public_root(certs.cert_facts(root.cert))


def test_roots_can_come_from_a_given_bundle(tmp_path: Path, root: g.Issued, inter: g.Issued) -> None:
    bundle = g.write_pem(tmp_path / "store.pem", root.cert)
    roots = certs.load_system_roots([str(bundle), str(tmp_path / "missing.pem")])
    r = certs.cert_facts(root.cert)
    assert roots == frozenset({(r.subject, r.spki_sha256)})
    assert certs.is_public_root(r, roots)
    assert not certs.is_public_root(certs.cert_facts(inter.cert), roots)


def test_a_reissued_root_with_the_same_key_is_still_public(root: g.Issued) -> None:
    """Match on the key: a re-issued or cross-signed root keeps its public trust."""
    r = certs.cert_facts(root.cert)
    reissued = certs.cert_facts(g.make_root("renamed root", key=root.key).cert)
    assert certs.is_public_root(reissued, {(r.subject, r.spki_sha256)})


# --- cache --------------------------------------------------------------------------------------


def test_cache_parses_each_file_once(tmp_path: Path, root: g.Issued) -> None:
    path = g.write_pem(tmp_path / "ca.pem", root.cert)
    (tmp_path / "link.pem").symlink_to(path)
    (tmp_path / "sub").mkdir()
    cache = CertCache()
    first = cache.get(str(path))
    again = cache.get(str(path))
    via_link = cache.get(str(tmp_path / "link.pem"))
    via_dots = cache.get(str(tmp_path / "sub" / ".." / "ca.pem"))
    assert cache.stats.parses == 1
    assert cache.stats.hits == 3
    assert again is first
    assert via_link.certs == first.certs
    assert via_link.path == str(tmp_path / "link.pem")  # the caller's spelling, for messages
    assert via_dots.certs == first.certs
    assert len(cache) == 1


def test_cache_remembers_missing_files_too(tmp_path: Path) -> None:
    cache = CertCache()
    for _ in range(3):
        assert not cache.get(str(tmp_path / "missing.pem")).exists
    assert cache.stats.parses == 1


# --- robustness -------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    material = parse_material(data)
    assert material.certs == () or material.encoding in ("PEM", "DER")


@settings(max_examples=150, deadline=None)
@given(cut=st.integers(min_value=0, max_value=10_000), flip=st.integers(min_value=0, max_value=10_000))
def test_truncated_or_corrupted_bundles_never_raise(cut: int, flip: int) -> None:
    root = g.make_root()
    data = bytearray(g.pem(root.cert) + g.pem(g.make_crl(root)) + g.key_pem(g.new_key("fuzz")))
    data = data[: cut % (len(data) + 1)]
    if data:
        data[flip % len(data)] ^= 0x5A
    material = parse_material(bytes(data))
    assert len(material.certs) <= 1 and len(material.crls) <= 1 and len(material.keys) <= 1


def test_crafted_pem_is_parsed_in_linear_time() -> None:
    """Thousands of BEGIN lines and one END must not make the scan quadratic."""
    data = b"-----BEGIN CERTIFICATE-----\n" * 50_000 + b"-----END CERTIFICATE-----\n"
    start = time.monotonic()
    material = parse_material(data)
    assert time.monotonic() - start < 2
    assert len(material.problems) == certs.MAX_PROBLEMS + 1
    assert material.problems[-1] == f"... and {50_000 - certs.MAX_PROBLEMS} more problems"


def test_a_corrupt_key_block_is_reported_without_quoting_it(tmp_path: Path, alice: g.Issued) -> None:
    lines = g.key_pem(alice.key).splitlines(keepends=True)
    corrupt = b"".join([lines[0], lines[1][:-8] + b"AAAAAAA\n", *lines[2:]])
    facts = parse(g.write_pem(tmp_path / "k.pem", corrupt))
    assert facts.keys == ()
    assert facts.problems == ("block #0 (PRIVATE KEY): private key could not be parsed",)
    body = [line for line in corrupt.decode().splitlines() if not line.startswith("-----")]
    assert not any(line[:20] in repr(facts) for line in body)
