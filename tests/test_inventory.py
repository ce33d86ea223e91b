"""`mtls-audit certs`: rows, alerts, renderings and exit codes, on PKI minted per test."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import certgen as g
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from mtls_audit.certs import CertCache
from mtls_audit.cli_certs import certs_command
from mtls_audit.inventory import (
    Inventory,
    Role,
    build_inventory,
    exit_code,
    render_inventory_json,
    render_inventory_table,
)


@pytest.fixture(scope="module")
def root() -> g.Issued:
    return g.make_root()


@pytest.fixture(scope="module")
def inter(root: g.Issued) -> g.Issued:
    return g.make_intermediate(root)


def inventory(*paths: Path | str, warn_days: int = 30, cache: CertCache | None = None) -> Inventory:
    return build_inventory([str(p) for p in paths], warn_days=warn_days, cache=cache)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(certs_command, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


# --- rows --------------------------------------------------------------------------------------


def test_bundle_rows_carry_identity_and_expiry(tmp_path: Path, root: g.Issued, inter: g.Issued) -> None:
    inv = inventory(g.write_pem(tmp_path / "ca.pem", root.cert, inter.cert))
    assert [(i.index, i.role) for i in inv.items] == [(0, Role.CA), (1, Role.CA)]
    first = inv.items[0]
    assert first.subject == first.issuer == "CN=mtls-audit Test Root CA,O=mtls-audit tests"
    assert first.serial and first.sha256 and len(first.sha256) == 64
    assert first.not_after is not None and first.not_after.endswith("Z") and "T" in first.not_after
    assert first.days_left is not None and first.days_left >= 3649
    assert first.problems == ()
    assert not inv.alert


def test_expired_and_expiring_certs_raise_the_alert(tmp_path: Path, inter: g.Issued) -> None:
    expired = g.write_pem(tmp_path / "old.pem", g.make_expired(inter, "old").cert)
    soon = g.write_pem(tmp_path / "soon.pem", g.make_client(inter, "soon", days=10).cert)
    later = g.write_pem(tmp_path / "later.pem", g.make_client(inter, "later", days=90).cert)
    inv = inventory(expired, soon, later)
    old, near, far = inv.items
    assert (old.expired, old.expiring, old.alert) == (True, False, True)
    assert old.problems[0].startswith("expired ")
    assert old.days_left is not None and old.days_left < 0
    assert (near.expired, near.expiring, near.alert) == (False, True, True)
    assert near.problems == (f"expires in {near.days_left} days (warning window 30)",)
    assert (far.alert, far.problems) == (False, ())
    assert inv.alert
    assert exit_code(inv) == 1
    assert not inventory(later).alert
    assert inventory(later, warn_days=120).alert


def test_warn_days_zero_alerts_only_on_expired(tmp_path: Path, inter: g.Issued) -> None:
    soon = g.write_pem(tmp_path / "soon.pem", g.make_client(inter, "soon", days=1).cert)
    assert not inventory(soon, warn_days=0).alert


def test_crls(tmp_path: Path, root: g.Issued) -> None:
    inv = inventory(
        g.write_pem(tmp_path / "expired.crl", g.make_expired_crl(root)),
        g.write_pem(tmp_path / "weekly.crl", g.make_crl(root, next_update_days=7)),
        g.write_pem(tmp_path / "monthly.crl", g.make_crl(root, next_update_days=60)),
    )
    expired, weekly, monthly = inv.items
    assert all(i.role is Role.CRL for i in inv.items)
    assert expired.expired and "Nginx rejects every client certificate" in expired.problems[0]
    assert weekly.expiring and weekly.problems[0].startswith("CRL nextUpdate in ")
    assert not monthly.alert
    assert expired.issuer == root.cert.subject.rfc4514_string()
    assert inv.alert


def test_keys_show_only_type_size_encryption_and_mode(tmp_path: Path, root: g.Issued) -> None:
    inv = inventory(
        g.write_key(tmp_path / "tight.key", root.key, mode=0o600),
        g.write_key(tmp_path / "loose.key", root.key, mode=0o644),
        g.write_key(tmp_path / "enc.key", root.key, password=b"pw", mode=0o600),
    )
    tight, loose, enc = inv.items
    assert (tight.role, tight.key_type, tight.key_size, tight.encrypted, tight.mode) == (
        Role.KEY,
        "EC",
        256,
        False,
        "0600",
    )
    assert (tight.subject, tight.sha256, tight.problems) == (None, None, ())
    assert loose.problems == ("private key file mode 0644 gives group/others access (use 0600 or 0400)",)
    assert (enc.encrypted, enc.key_type) == (True, "unknown")
    assert not inv.alert  # a loose key is a problem, not an expiry


def test_group_only_access_is_flagged_too(tmp_path: Path, root: g.Issued) -> None:
    item = inventory(g.write_key(tmp_path / "k.key", root.key, mode=0o640)).items[0]
    assert item.problems and "0640" in item.problems[0]


def test_weak_material_is_a_problem(tmp_path: Path) -> None:
    weak = g.make_root("weak", kind="rsa", bits=1024)
    item = inventory(g.write_pem(tmp_path / "weak.pem", weak.cert)).items[0]
    assert item.problems == ("RSA key of 1024 bits (< 2048)",)


def test_unparseable_and_empty_files_get_file_rows(tmp_path: Path, root: g.Issued) -> None:
    truncated = g.write_pem(tmp_path / "cut.der", g.der(root.cert)[:50])
    empty = g.write_pem(tmp_path / "empty.pem", b"")
    text = g.write_pem(tmp_path / "README", b"hello\n")
    inv = inventory(truncated, empty, text)
    assert [(i.role, i.path) for i in inv.items] == [(Role.FILE, str(p)) for p in (truncated, empty, text)]
    assert inv.items[0].problems[0].startswith("truncated DER")
    assert inv.items[1].problems == ("empty file",)
    assert inv.items[2].problems == ("not PEM or DER",)
    assert exit_code(inv) == 0


def test_file_problems_come_before_the_items_of_that_file(tmp_path: Path, root: g.Issued, inter: g.Issued) -> None:
    path = g.write_pem(tmp_path / "b.pem", root.cert, b"junk\n", inter.cert)
    roles = [i.role for i in inventory(path).items]
    assert roles == [Role.FILE, Role.CA, Role.CA]


def test_missing_path_is_a_row_and_alone_means_exit_2(tmp_path: Path, root: g.Issued) -> None:
    missing = tmp_path / "missing.pem"
    alone = inventory(missing)
    assert alone.items[0].problems == ("no such file or directory",)
    assert alone.nothing_readable and exit_code(alone) == 2
    mixed = inventory(missing, g.write_pem(tmp_path / "ca.pem", root.cert))
    assert mixed.unusable_inputs == (str(missing),)
    assert exit_code(mixed) == 0


# --- folders -----------------------------------------------------------------------------------


def test_folder_walk(tmp_path: Path, root: g.Issued, inter: g.Issued) -> None:
    ca = g.write_pem(tmp_path / "ca.pem", root.cert)
    g.write_pem(tmp_path / "sub" / "inter.pem", inter.cert)
    g.write_pem(tmp_path / ".git" / "hidden.pem", inter.cert)
    g.write_pem(tmp_path / "README.md", b"# notes\n")
    g.write_pem(tmp_path / "empty.txt", b"")
    (tmp_path / "zz-link.pem").symlink_to(ca)  # listed once, under the first name met
    (tmp_path / "loop").symlink_to(tmp_path)  # symlinked folders are not followed
    inv = inventory(tmp_path)
    assert [Path(i.path).relative_to(tmp_path).as_posix() for i in inv.items] == ["ca.pem", "sub/inter.pem"]


def test_folder_shows_broken_cert_files_but_not_unrelated_files(tmp_path: Path, root: g.Issued) -> None:
    g.write_pem(tmp_path / "cut.pem", g.pem(root.cert)[:200])
    g.write_pem(tmp_path / "script.sh", b"#!/bin/sh\necho hi\n")
    inv = inventory(tmp_path)
    assert [(Path(i.path).name, i.role) for i in inv.items] == [("cut.pem", Role.FILE)]
    assert inv.items[0].problems == ("block #0 (CERTIFICATE): no END line (truncated PEM)",)


def test_empty_folder(tmp_path: Path) -> None:
    inv = inventory(tmp_path)
    assert inv.items[0].problems == ("no certificate, CRL or key files in this folder",)
    assert exit_code(inv) == 0


def test_each_file_is_parsed_once_even_when_named_twice(tmp_path: Path, root: g.Issued) -> None:
    ca = g.write_pem(tmp_path / "ca.pem", root.cert)
    cache = CertCache()
    inv = inventory(ca, tmp_path, ca, cache=cache)
    assert len(inv.items) == 1
    assert cache.stats.parses == 1


# --- rendering -----------------------------------------------------------------------------------


def test_json_document(tmp_path: Path, root: g.Issued) -> None:
    inv = inventory(g.write_pem(tmp_path / "ca.pem", root.cert), g.write_pem(tmp_path / "c.crl", g.make_crl(root)))
    doc = json.loads(render_inventory_json(inv))
    assert doc["schema_version"] == "1.0"
    assert doc["warn_days"] == 30
    assert dt.datetime.strptime(doc["generated_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert [i["role"] for i in doc["items"]] == ["CA", "CRL"]
    assert set(doc["items"][0]) >= {
        "path",
        "role",
        "subject",
        "issuer",
        "serial",
        "sha256",
        "not_after",
        "days_left",
        "problems",
    }
    assert doc["summary"]["certificates"] == 1 and doc["summary"]["crls"] == 1
    assert doc["summary"]["alert"] is True  # a 7-day CRL is within the 30-day window


def test_table_has_rows_and_a_summary_line(tmp_path: Path, root: g.Issued, inter: g.Issued) -> None:
    inv = inventory(
        g.write_pem(tmp_path / "ca.pem", root.cert),
        g.write_pem(tmp_path / "old.pem", g.make_expired(inter).cert),
    )
    table = render_inventory_table(inv)
    assert "CN=mtls-audit Test Root CA" in table
    assert table.rstrip("\n").splitlines()[-1] == (
        "2 certificates (1 CA), 0 CRLs, 0 keys; 1 expired, 0 expiring within 30 days; 1 with problems"
    )


def test_table_neutralises_control_characters_in_subjects(tmp_path: Path, root: g.Issued) -> None:
    """A DN is attacker-controlled text; it must not reach the terminal as escape codes."""
    evil = g.make_cert("x\x1b[2J\u202eevil", issuer=root)
    table = render_inventory_table(inventory(g.write_pem(tmp_path / "evil.pem", evil.cert)))
    assert "\x1b" not in table and "\u202e" not in table


# --- the command ---------------------------------------------------------------------------------


def test_exit_0_when_nothing_expires(tmp_path: Path, root: g.Issued) -> None:
    code, out, _ = run(str(g.write_pem(tmp_path / "ca.pem", root.cert)))
    assert code == 0
    assert "CN=mtls-audit Test Root CA" in out


def test_exit_1_when_something_expired_or_expiring(tmp_path: Path, inter: g.Issued) -> None:
    expired = g.write_pem(tmp_path / "old.pem", g.make_expired(inter).cert)
    assert run(str(expired))[0] == 1
    soon = g.write_pem(tmp_path / "soon.pem", g.make_client(inter, "soon", days=20).cert)
    assert run(str(soon))[0] == 1
    assert run(str(soon), "--warn-days", "10")[0] == 0


def test_exit_2_when_no_path_exists(tmp_path: Path) -> None:
    code, out, err = run(str(tmp_path / "a.pem"), str(tmp_path / "b.pem"))
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and "no such file or directory" in err


def test_exit_2_on_usage_errors(tmp_path: Path) -> None:
    assert run()[0] == 2
    assert run(str(tmp_path), "--format", "xml")[0] == 2
    assert run(str(tmp_path), "--warn-days", "-1")[0] == 2


def test_missing_path_beside_a_good_one_is_a_row(tmp_path: Path, root: g.Issued) -> None:
    code, out, _ = run(str(tmp_path / "gone.pem"), str(g.write_pem(tmp_path / "ca.pem", root.cert)))
    assert code == 0
    assert "no such file or directory" in out


def test_json_output_file_is_written_atomically(tmp_path: Path, root: g.Issued) -> None:
    ca = g.write_pem(tmp_path / "in" / "ca.pem", root.cert)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "inventory.json"
    target.write_text("old")
    code, stdout, _ = run(str(ca), "--format", "json", "--output", str(target))
    assert code == 0 and stdout == ""
    assert json.loads(target.read_text())["items"][0]["role"] == "CA"
    assert os.listdir(out_dir) == ["inventory.json"]  # no temp file left behind


def test_unwritable_output_is_one_line_and_exit_2(tmp_path: Path, root: g.Issued) -> None:
    ca = g.write_pem(tmp_path / "ca.pem", root.cert)
    code, _, err = run(str(ca), "--output", str(tmp_path / "no" / "such" / "dir" / "x.json"))
    assert code == 2
    assert err.startswith("mtls-audit: error: ") and err.count("\n") == 1


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_no_output_contains_key_material(tmp_path: Path, fmt: str) -> None:
    ec_key = g.new_key("secret-ec")
    rsa_key = g.new_key("secret-rsa", "rsa", 2048)
    files = [
        g.write_key(tmp_path / "ec.key", ec_key),
        g.write_key(tmp_path / "ec-sec1.key", ec_key, fmt="traditional"),
        g.write_key(tmp_path / "rsa.key", rsa_key, fmt="traditional", mode=0o644),
        g.write_key(tmp_path / "enc.key", rsa_key, password=b"hunter2"),
        g.write_der(tmp_path / "ec.der", ec_key),
        g.write_pem(tmp_path / "combined.pem", g.make_root("combined", key=ec_key).cert, ec_key),
    ]
    code, out, err = run(str(tmp_path), "--format", fmt)
    assert code == 0, err
    assert "PRIVATE KEY" not in out
    for path in files:
        for line in path.read_bytes().splitlines():
            if len(line) >= 16 and not line.startswith(b"-----"):
                assert line.decode("ascii", "replace") not in out
    assert isinstance(ec_key, ec.EllipticCurvePrivateKey) and isinstance(rsa_key, rsa.RSAPrivateKey)
    secrets = [
        ec_key.private_numbers().private_value,
        rsa_key.private_numbers().d,
        rsa_key.private_numbers().p,
    ]
    for number in secrets:
        assert format(number, "x")[:32] not in out.lower()
        assert str(number)[:32] not in out
    assert "hunter2" not in out


def test_special_files_in_a_folder_are_rows_not_hangs(tmp_path: Path, root: g.Issued) -> None:
    g.write_pem(tmp_path / "ca.pem", root.cert)
    os.mkfifo(tmp_path / "pipe")
    inv = inventory(tmp_path)
    assert [(Path(i.path).name, i.role, i.problems) for i in inv.items] == [
        ("ca.pem", Role.CA, ()),
        ("pipe", Role.FILE, ("not a regular file: a FIFO",)),
    ]
