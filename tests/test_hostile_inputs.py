"""Hostile configs, certificate files and rule files, end to end through `mtls-audit scan`.

Complements test_cli_errors.py (missing files, syntax errors, include cycles, bad YAML), test_loader.py
(directory includes, deep nesting, non-UTF-8 bytes) and test_certs.py (parse_file on FIFOs,
devices, huge files). Here the same kinds of input arrive the way users send them: named by a
config, scanned with `--format json --output out.json`.

* A config that cannot be read is an input error: exit 2, one line on stderr naming file:line
  (where there is a line), no traceback, and no out.json.
* A certificate, CRL or key file that cannot be used is a finding: the scan runs (exit 0 or 1),
  the trust rules (MTLS201/202) report the file, and no rule crashes.
* Nothing blocks: FIFOs and devices are refused from stat, and files of hundreds of MB (sparse,
  so they cost no disk) are refused by size before a byte is read. `deadline` turns a hang
  into a failure instead of a stuck CI job.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import certgen as g
import pytest
from click.testing import CliRunner, Result

from mtls_audit.cli import cli
from mtls_audit.nginx import load

HUGE = 300 * 1024 * 1024
SERVER = """events {{}}
http {{
    server {{
        listen 443 ssl;
        server_name api.test;
        ssl_certificate server.pem;
        ssl_certificate_key server.key;
        ssl_verify_client on;
        ssl_client_certificate {ca};
        ssl_crl {crl};
    }}
}}
"""


class Hang(Exception):
    pass


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail (instead of hanging the suite) when the body blocks, e.g. on opening a FIFO."""

    def expire(signum: int, frame: Any) -> None:
        raise Hang(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def sparse(path: Path, size: int = HUGE) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def scan(tmp: Path, main: Path | str, *extra: str, seconds: int = 30) -> tuple[Result, dict[str, Any] | None]:
    """`scan MAIN --format json --output out.json`; the report when out.json was written."""
    out = tmp / "out.json"
    with deadline(seconds):
        res = CliRunner().invoke(cli, ["scan", str(main), "--format", "json", "--output", str(out), *extra])
    assert "Traceback" not in res.output
    report = json.loads(out.read_text(encoding="utf-8")) if out.exists() else None
    return res, report


def assert_input_error(tmp: Path, main: Path | str, pattern: str, *extra: str) -> str:
    res, report = scan(tmp, main, *extra)
    assert res.exit_code == 2, (res.exit_code, res.output)
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    line = lines[0]
    assert line.startswith("mtls-audit: error: "), line
    assert re.search(pattern, line), (pattern, line)
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", line), repr(line)
    assert report is None  # no partial report
    assert not [p for p in tmp.iterdir() if p.name.startswith(".mtls-audit-")]
    return line


def write_conf(tmp: Path, text: str | bytes, name: str = "nginx.conf") -> Path:
    p = tmp / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return p


def including(tmp: Path, target: str) -> Path:
    return write_conf(tmp, f'events {{}}\nhttp {{\n    include "{target}";\n}}\n')


# --------------------------------------------------------------------------------------------
# Configs that cannot be read: exit 2, one line naming file:line, no report


def test_include_of_dev_zero_is_refused_without_reading_it(tmp_path: Path) -> None:
    assert_input_error(tmp_path, including(tmp_path, "/dev/zero"), r'nginx\.conf:3: include "/dev/zero": not a regular file$')


def test_include_of_dev_null_is_refused(tmp_path: Path) -> None:
    # Nginx would read /dev/null as an empty file; a device is never a config we audit
    assert_input_error(tmp_path, including(tmp_path, "/dev/null"), r'nginx\.conf:3: include "/dev/null": not a regular file$')


def test_include_of_a_fifo_does_not_block(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.conf")
    assert_input_error(tmp_path, including(tmp_path, "pipe.conf"), r'nginx\.conf:3: include "pipe\.conf": not a regular file$')


def test_fifo_matched_by_an_include_glob_does_not_block(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "a.conf").write_text("map $a $b { default 1; }\n")
    os.mkfifo(tmp_path / "conf.d" / "b.conf")
    assert_input_error(
        tmp_path, including(tmp_path, "conf.d/*.conf"), r'nginx\.conf:3: include "conf\.d/\*\.conf" \(conf\.d/b\.conf\): not a regular file$'
    )


def test_main_config_that_is_a_fifo_or_a_device(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "nginx.conf")
    assert_input_error(tmp_path, tmp_path / "nginx.conf", re.escape(f"{tmp_path / 'nginx.conf'}: not a regular file"))
    assert_input_error(tmp_path, "/dev/zero", r"error: /dev/zero: not a regular file$")


def test_include_of_a_symlink_loop(tmp_path: Path) -> None:
    os.symlink("b.conf", tmp_path / "a.conf")
    os.symlink("a.conf", tmp_path / "b.conf")
    assert_input_error(tmp_path, including(tmp_path, "a.conf"), r'nginx\.conf:3: include "a\.conf": Too many levels of symbolic links$')


def test_main_config_that_is_a_symlink_loop(tmp_path: Path) -> None:
    os.symlink("nginx.conf", tmp_path / "nginx.conf")
    assert_input_error(tmp_path, tmp_path / "nginx.conf", r"nginx\.conf: Too many levels of symbolic links$")


def test_unreadable_include(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    p = write_conf(tmp_path, "map $a $b { default 1; }\n", "secret.conf")
    p.chmod(0)
    assert_input_error(tmp_path, including(tmp_path, "secret.conf"), r'nginx\.conf:3: include "secret\.conf": permission denied$')


def test_config_of_hundreds_of_mb_is_refused_by_size_at_once(tmp_path: Path) -> None:
    main = sparse(tmp_path / "nginx.conf")
    start = time.monotonic()
    assert_input_error(tmp_path, main, rf"nginx\.conf: file is {HUGE} bytes, over the {load.MAX_CONFIG_BYTES} byte limit$")
    assert time.monotonic() - start < 5


def test_included_file_of_hundreds_of_mb_is_refused_naming_the_include(tmp_path: Path) -> None:
    sparse(tmp_path / "big.conf")
    start = time.monotonic()
    assert_input_error(tmp_path, including(tmp_path, "big.conf"), rf'nginx\.conf:3: include "big\.conf": file is {HUGE} bytes')
    assert time.monotonic() - start < 5


def _garbage(seed: int, size: int = 4096) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_binary_garbage_config_is_one_clean_error_line(tmp_path: Path, seed: int) -> None:
    # the line quotes a token of the garbage: control bytes in it arrive escaped, never raw
    assert_input_error(tmp_path, write_conf(tmp_path, _garbage(seed)), r"nginx\.conf:\d+: ")


def test_binary_garbage_in_an_included_file_names_that_file(tmp_path: Path) -> None:
    write_conf(tmp_path, _garbage(1), "junk.conf")
    assert_input_error(tmp_path, including(tmp_path, "junk.conf"), r"junk\.conf:\d+: ")


def test_control_characters_in_an_error_are_escaped(tmp_path: Path) -> None:
    # ESC [2J clears the terminal; U+2028 is a line break to str.splitlines()
    main = write_conf(tmp_path, b'events {}\nhttp {\n    ssl_session_tickets "\x1b[2J";\n}\n')
    line = assert_input_error(tmp_path, main, r'nginx\.conf:3: invalid value "\\x1b\[2J" in "ssl_session_tickets"')
    assert "\x1b" not in line
    main = write_conf(tmp_path, b'events {}\nhttp {\n    "evil\xe2\x80\xa8name" x }\n')
    assert_input_error(tmp_path, main, r'nginx\.conf:3: directive "evil\\u2028name" is not terminated by ";"$')


def test_nul_byte_in_an_include_path_is_an_input_error(tmp_path: Path) -> None:
    # os.stat() raises ValueError for it: this used to escape as a traceback
    main = write_conf(tmp_path, b'events {}\nhttp {\n    include "a\x00b.conf";\n}\n')
    assert_input_error(tmp_path, main, r'nginx\.conf:3: include "a\\x00b\.conf": file name contains a NUL byte$')


def test_percent_in_a_flag_value_names_the_line(tmp_path: Path) -> None:
    # crossplane %-formats the value into its message: "%x format: an integer is required", no line
    main = write_conf(tmp_path, 'events {}\nhttp {\n    ssl_session_tickets "50%x";\n}\n')
    assert_input_error(tmp_path, main, r'nginx\.conf:3: invalid value "50%x" in "ssl_session_tickets" directive, it must be "on" or "off"$')


def test_empty_included_file_scans(tmp_path: Path) -> None:
    write_conf(tmp_path, b"", "empty.conf")
    res, report = scan(tmp_path, including(tmp_path, "empty.conf"), "--fail-on", "never")
    assert res.exit_code == 0, res.output
    assert report is not None and report["results"] == []


def test_empty_main_config_scans_with_no_results(tmp_path: Path) -> None:
    """Decision: an empty nginx.conf is syntactically valid (`nginx -t` says "syntax is ok", then
    refuses it only for lacking an `events` block, which this tool does not model), so it scans:
    exit 0 and a report with no results, rather than an input error."""
    res, report = scan(tmp_path, write_conf(tmp_path, b""))
    assert res.exit_code == 0, res.output
    assert report is not None
    assert report["results"] == [] and report["summary"]["gate"] == "pass"
    res, report = scan(tmp_path, write_conf(tmp_path, b"  \n# only a comment\n\n"))
    assert res.exit_code == 0 and report is not None and report["results"] == []


def test_non_utf8_bytes_in_an_included_file_scan(tmp_path: Path) -> None:
    write_conf(
        tmp_path,
        b"server {\n    listen 443 ssl;\n    server_name caf\xe9.test;\n    ssl_verify_client optional;\n}\n",
        "latin1.conf",
    )
    res, report = scan(tmp_path, including(tmp_path, "latin1.conf"), "--fail-on", "never")
    assert res.exit_code == 0, res.output
    assert report is not None
    hits = [r for r in report["results"] if r["rule_id"] == "MTLS101" and r["status"] == "fail"]
    assert hits and hits[0]["location"] == {**hits[0]["location"], "file": "latin1.conf", "line": 4}


# --------------------------------------------------------------------------------------------
# Broken rule files given with --rules: exit 2 naming the file and the problem


GOOD = "events {}\nhttp { server { listen 80; } }\n"


def test_rule_file_that_is_a_fifo_does_not_block(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    os.mkfifo(rules / "CUST001.yaml")
    assert_input_error(tmp_path, write_conf(tmp_path, GOOD), re.escape(f"{rules / 'CUST001.yaml'}: not a regular file") + "$", "--rules", str(rules))


def test_rule_file_of_hundreds_of_mb_is_refused_by_size(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    sparse(rules / "CUST001.yaml")
    start = time.monotonic()
    assert_input_error(tmp_path, write_conf(tmp_path, GOOD), rf"CUST001\.yaml: rule file is {HUGE} bytes, over the", "--rules", str(rules))
    assert time.monotonic() - start < 5


def test_rule_file_with_control_characters_is_one_line(tmp_path: Path) -> None:
    # PyYAML's reader error spans two lines; NUL is not allowed in YAML at all
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "CUST001.yaml").write_bytes(b"id: CUST001\x00\n")
    assert_input_error(tmp_path, write_conf(tmp_path, GOOD), r"CUST001\.yaml: invalid YAML: unacceptable character #x0000", "--rules", str(rules))


def test_rule_file_with_binary_garbage_or_nothing(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "CUST001.yaml").write_bytes(_garbage(7, 512))
    assert_input_error(tmp_path, write_conf(tmp_path, GOOD), r"CUST001\.yaml: (cannot read rule file|invalid YAML)", "--rules", str(rules))
    (rules / "CUST001.yaml").write_bytes(b"")
    assert_input_error(tmp_path, write_conf(tmp_path, GOOD), r"CUST001\.yaml: a rule file must be a mapping of keys$", "--rules", str(rules))


def test_rule_file_with_a_yaml_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    """Ten levels of ten aliases: 10^10 strings once expanded; str() of it never finished."""
    levels = ["    l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"    l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 10)]
    text = (
        "id: CUST001\ntitle: t\nseverity: high\nkind: config\ndescription: d\nremediation: r\n"
        "compliance:\n" + "\n".join(levels) + "\n"
    )
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "CUST001.yaml").write_text(text)
    start = time.monotonic()
    assert_input_error(tmp_path, write_conf(tmp_path, GOOD), r"CUST001\.yaml: compliance\.l1 must be a list of plain values$", "--rules", str(rules))
    assert time.monotonic() - start < 5


def test_rule_file_keys_cannot_break_the_error_line(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "CUST001.yaml").write_text('id: CUST001\n"evil\\nkey\\e[31m": 1\n')
    assert_input_error(tmp_path, write_conf(tmp_path, GOOD), r"CUST001\.yaml: unknown key\(s\): evil key\\x1b\[31m$", "--rules", str(rules))


# --------------------------------------------------------------------------------------------
# Certificate files that cannot be used: the scan runs and the trust rules say why


def pem_block(der: bytes, label: str = "CERTIFICATE") -> bytes:
    import base64

    return f"-----BEGIN {label}-----\n".encode() + base64.encodebytes(der) + f"-----END {label}-----\n".encode()


EMPTY_ED25519 = bytes.fromhex("300e020100300506032b657004020400")


@pytest.fixture(scope="module")
def pki() -> dict[str, bytes]:
    root = g.make_root()
    inter = g.make_intermediate(root)
    server = g.make_server(inter)
    alice = g.make_client(inter)
    bad_version = bytearray(g.der(root.cert))
    at = bad_version.find(bytes([0xA0, 0x03, 0x02, 0x01, 0x02]))  # [0] EXPLICIT INTEGER 2 (v3)
    bad_version[at + 4] = 5  # "v6": cryptography raises InvalidVersion, not ValueError
    bit_string_dn = bytearray(g.der(root.cert))
    at = bit_string_dn.find(bytes([0x06, 0x03, 0x55, 0x04, 0x03, 0x0C]))  # issuer CN, a UTF8String
    bit_string_dn[at + 5] = 0x03  # a BIT STRING: cryptography raises TypeError when it reads the name
    return {
        "server.pem": g.pem(server.cert) + g.pem(inter.cert),
        "server.key": g.key_pem(server.key),
        "ca.pem": g.pem(root.cert) + g.pem(inter.cert),
        "crl.pem": g.pem(g.make_crl(root)) + g.pem(g.make_crl(inter)),
        "key-as-ca.pem": g.key_pem(alice.key),
        "junk-between.pem": g.pem(root.cert) + b"not base64 at all\n" + g.pem(inter.cert),
        "truncated.der": g.der(root.cert)[:200],
        "bad-version.pem": pem_block(bytes(bad_version)),
        "bad-version.der": bytes(bad_version),
        "bit-string-dn.pem": pem_block(bytes(bit_string_dn)),
        # PKCS#8, Ed25519, with an empty private key: OpenSSL "key setup failed", which
        # cryptography raises as InternalError
        "empty-ed25519.key": pem_block(EMPTY_ED25519, "PRIVATE KEY"),
        "empty-ed25519.der": EMPTY_ED25519,
        "garbage.pem": _garbage(3, 2048),
        "empty.pem": b"",
    }


def trust_scan(tmp: Path, pki: dict[str, bytes], ca: str, crl: str = "crl.pem", seconds: int = 30) -> dict[str, Any]:
    for name, data in pki.items():
        (tmp / name).write_bytes(data)
    main = write_conf(tmp, SERVER.format(ca=f'"{ca}"', crl=f'"{crl}"'))
    res, report = scan(tmp, main, "--fail-on", "never", seconds=seconds)
    assert res.exit_code == 0, res.output
    assert report is not None
    crashed = [r["message"] for r in report["results"] if r["status"] == "error"]
    assert not crashed, crashed
    return report


def result(report: dict[str, Any], rule_id: str, path: str) -> dict[str, Any]:
    hits: list[dict[str, Any]] = [
        r for r in report["results"] if r["rule_id"] == rule_id and r["evidence"].get("path") == path
    ]
    assert len(hits) == 1, [(r["rule_id"], r["status"], r["message"]) for r in report["results"] if r["rule_id"] == rule_id]
    return hits[0]


def test_ca_bundle_of_hundreds_of_mb_is_not_read(tmp_path: Path, pki: dict[str, bytes]) -> None:
    sparse(tmp_path / "huge.pem")
    start = time.monotonic()
    report = trust_scan(tmp_path, pki, "huge.pem")
    assert time.monotonic() - start < 10
    r = result(report, "MTLS201", "huge.pem")
    assert r["status"] == "fail" and r["location"]["line"] == 9
    assert f"file too large ({HUGE} bytes" in r["message"]


def test_device_and_fifo_as_trust_files_do_not_block(tmp_path: Path, pki: dict[str, bytes]) -> None:
    os.mkfifo(tmp_path / "pipe.crl")
    report = trust_scan(tmp_path, pki, "/dev/zero", crl="pipe.crl")
    assert "not a regular file: a character device" in result(report, "MTLS201", "/dev/zero")["message"]
    assert "not a regular file: a FIFO" in result(report, "MTLS201", "pipe.crl")["message"]


def test_symlink_loop_as_a_ca_file(tmp_path: Path, pki: dict[str, bytes]) -> None:
    os.symlink("loop.pem", tmp_path / "loop.pem")
    report = trust_scan(tmp_path, pki, "loop.pem")
    assert "symlink loop" in result(report, "MTLS201", "loop.pem")["message"]


def test_a_key_where_the_ca_certificate_should_be(tmp_path: Path, pki: dict[str, bytes]) -> None:
    report = trust_scan(tmp_path, pki, "key-as-ca.pem")
    r = result(report, "MTLS202", "key-as-ca.pem")
    assert r["status"] == "fail"
    assert "holds no parseable certificate (1 private key(s))" in r["message"]
    assert "PRIVATE" not in json.dumps(report)  # the key's contents never reach the report


def test_pem_with_junk_between_blocks_still_loads_and_says_so(tmp_path: Path, pki: dict[str, bytes]) -> None:
    # OpenSSL's PEM reader skips text between blocks: both CAs load (checked with nginx -t 1.22.1)
    report = trust_scan(tmp_path, pki, "junk-between.pem")
    r = result(report, "MTLS202", "junk-between.pem")
    assert r["status"] == "pass" and r["evidence"]["certificates"] == 2
    assert r["evidence"]["problems"] == ["junk between PEM blocks (before block #1)"]


def test_truncated_der_as_a_ca_file(tmp_path: Path, pki: dict[str, bytes]) -> None:
    report = trust_scan(tmp_path, pki, "truncated.der")
    r = result(report, "MTLS202", "truncated.der")
    assert r["status"] == "fail" and "truncated DER (200 of " in r["message"]


@pytest.mark.parametrize("name", ["garbage.pem", "empty.pem"])
def test_garbage_or_empty_ca_file(tmp_path: Path, pki: dict[str, bytes], name: str) -> None:
    report = trust_scan(tmp_path, pki, name)
    r = result(report, "MTLS202", name)
    assert r["status"] == "fail"
    assert ("empty file" if name == "empty.pem" else "not PEM or DER") in r["message"]


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("bad-version.pem", "5 is not a valid X509 version"),
        ("bad-version.der", None),
        ("bit-string-dn.pem", "oid must be X500_UNIQUE_IDENTIFIER for BitString type."),
    ],
)
def test_certificate_cryptography_refuses_with_an_unusual_exception_is_a_problem_not_a_crash(
    tmp_path: Path, pki: dict[str, bytes], name: str, problem: str | None
) -> None:
    # InvalidVersion and TypeError are not ValueErrors: parse_material raised, every trust rule crashed
    report = trust_scan(tmp_path, pki, name)
    r = result(report, "MTLS202", name)
    assert r["status"] == "fail"
    if problem is not None:
        assert r["evidence"]["problems"] == [f"block #0 (CERTIFICATE): certificate could not be parsed: {problem}"]


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("empty-ed25519.key", "block #0 (PRIVATE KEY): private key could not be parsed"),
        ("empty-ed25519.der", "DER data is not a certificate, CRL or private key"),
    ],
)
def test_private_key_openssl_cannot_set_up_is_a_problem_not_a_crash(
    tmp_path: Path, pki: dict[str, bytes], name: str, problem: str
) -> None:
    # found by fuzz/fuzz_certs.py: cryptography.exceptions.InternalError escaped parse_material
    report = trust_scan(tmp_path, pki, name)
    r = result(report, "MTLS202", name)
    assert r["status"] == "fail" and r["evidence"]["problems"] == [problem]


def test_nul_byte_in_a_trust_file_path_is_a_finding(tmp_path: Path, pki: dict[str, bytes]) -> None:
    # os.path.realpath() raises ValueError for it: six trust rules used to crash
    report = trust_scan(tmp_path, pki, "ca\x00.pem")
    r = result(report, "MTLS201", "ca\x00.pem")
    assert r["status"] == "fail" and "file name contains a NUL byte" in r["message"]
