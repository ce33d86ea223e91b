"""Suppressions (inline comments, baselines), fingerprints, and the exit-code gate.

Suppressed results stay in the report with `suppressed` set and do not fail the gate
(report-contract.md, "Suppressions" and "Exit codes").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pki import make_pki

from mtls_audit.cli import cli

SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}

HEAD = """events {}
http {
    ssl_protocols TLSv1.2 TLSv1.3;
"""

# Real files (tests/pki.py), so that the file and trust rules have nothing to say.
TLS = """        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_crl {crl};
"""

CLEAN = HEAD + """    server {
        listen 443 ssl;
        server_name api.internal;
""" + TLS + """        ssl_verify_client on;
        ssl_client_certificate {ca};
        location / { return 200; }
    }
}
"""

# MTLS104 (high): ssl_verify_client on with no CA file
HIGH_ONLY = CLEAN.replace("        ssl_client_certificate {ca};\n", "")

# MTLS105 (low): a verify depth larger than any private PKI needs
LOW_ONLY = CLEAN.replace("ssl_verify_client on;", "ssl_verify_client on;\n        ssl_verify_depth 9;")

# MTLS101 (critical): optional and nothing checks $ssl_client_verify
OPTIONAL = HEAD + """    server {
        listen 443 ssl;
        server_name partners.internal;
""" + TLS + """        {comment}
        ssl_verify_client optional;{same_line}
        ssl_client_certificate {ca};
        location / { root /srv/www; }
    }
}
"""

# Several failures in several servers and rules (files need not exist here)
MANY = HEAD + """    server {
        listen 443 ssl;
        listen 80;
        server_name portal.internal;
        ssl_certificate server.pem;
        ssl_certificate_key server.key;
        ssl_verify_client optional;
        ssl_client_certificate ca.pem;
        ssl_verify_depth 9;
        location / { root /srv/www; }
    }
    server {
        listen 8443 ssl;
        server_name api.internal;
        ssl_certificate server.pem;
        ssl_certificate_key server.key;
        ssl_verify_client on;
    }
}
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    pki = make_pki(tmp_path_factory.mktemp("pki"), bundle_extra=0)
    return {
        "{cert}": str(pki.server.cert),
        "{key}": str(pki.server.key),
        "{ca}": str(pki.root.cert),
        "{crl}": str(pki.crl),
    }


def fill(template: str, files: dict[str, str], **extra: str) -> str:
    for k, v in {**files, **{f"{{{k}}}": v for k, v in extra.items()}}.items():
        template = template.replace(k, v)
    return template


def optional_conf(files: dict[str, str], comment: str = "", same_line: str = "") -> str:
    return fill(OPTIONAL, files, comment=comment, same_line=same_line)


def scan(tmp_path: Path, text: str, *extra: str) -> tuple[int, dict[str, Any]]:
    conf = tmp_path / "nginx.conf"
    conf.write_text(text, encoding="utf-8")
    res = CliRunner().invoke(cli, ["scan", str(conf), "--format", "json", *extra])
    assert res.exit_code in (0, 1), res.output
    return res.exit_code, json.loads(res.stdout)


def fails(report: dict[str, Any], rule_id: str | None = None) -> list[dict[str, Any]]:
    return [
        r
        for r in report["results"]
        if r["status"] == "fail" and (rule_id is None or r["rule_id"] == rule_id)
    ]


def others_at_or_above(report: dict[str, Any], rule_id: str, severity: str) -> list[str]:
    """Failures of other rules at or above `severity`: a precondition of the gate tests."""
    return [
        f"{r['rule_id']} {r['severity']}: {r['message']}"
        for r in fails(report)
        if r["rule_id"] != rule_id and SEVERITY_RANK[r["severity"]] >= SEVERITY_RANK[severity]
    ]


# ---------------------------------------------------------------- inline

INLINE = '# mtls-audit: ignore MTLS101 reason="partners use app auth"'


def test_inline_suppression_on_the_line_before(tmp_path: Path, files: dict[str, str]) -> None:
    code, report = scan(tmp_path, optional_conf(files, comment=INLINE))
    (r,) = fails(report, "MTLS101")
    assert r["suppressed"] == {"kind": "inline", "reason": "partners use app auth"}
    assert (r["location"]["file"], r["location"]["line"]) == ("nginx.conf", 11)
    assert others_at_or_above(report, "MTLS101", "high") == []  # MTLS101 was the only failure
    assert report["summary"]["gate"] == "pass"
    assert report["summary"]["suppressed"] >= 1
    assert code == 0


def test_inline_suppression_on_the_same_line(tmp_path: Path, files: dict[str, str]) -> None:
    same = '  # mtls-audit: ignore MTLS101 reason="same line"'
    code, report = scan(tmp_path, optional_conf(files, same_line=same))
    (r,) = fails(report, "MTLS101")
    assert r["suppressed"] == {"kind": "inline", "reason": "same line"}
    assert code == 0


def test_without_the_comment_the_same_failure_fails_the_gate(tmp_path: Path, files: dict[str, str]) -> None:
    code, report = scan(tmp_path, optional_conf(files, comment="# a plain comment"))
    (r,) = fails(report, "MTLS101")
    assert r["suppressed"] is None
    assert code == 1


def test_inline_suppression_for_another_rule_does_not_apply(tmp_path: Path, files: dict[str, str]) -> None:
    comment = '# mtls-audit: ignore MTLS102 reason="x"'
    code, report = scan(tmp_path, optional_conf(files, comment=comment))
    (r,) = fails(report, "MTLS101")
    assert r["suppressed"] is None
    assert code == 1


# ---------------------------------------------------------------- baseline


def test_write_baseline_then_baseline_suppresses_every_failure(tmp_path: Path) -> None:
    bl = tmp_path / "b.json"
    code, first = scan(tmp_path, MANY, "--write-baseline", str(bl))
    assert code == 1
    assert {"MTLS101", "MTLS104", "MTLS109"} <= {r["rule_id"] for r in fails(first)}
    assert json.loads(bl.read_text(encoding="utf-8"))["fingerprints"].keys() == {
        r["fingerprint"] for r in fails(first)
    }
    code, second = scan(tmp_path, MANY, "--baseline", str(bl))
    assert code == 0
    assert {r["fingerprint"] for r in fails(second)} == {r["fingerprint"] for r in fails(first)}
    assert all(r["suppressed"]["kind"] == "baseline" for r in fails(second))
    assert second["summary"]["gate"] == "pass"


def test_baseline_does_not_suppress_a_new_failure(tmp_path: Path, files: dict[str, str]) -> None:
    bl = tmp_path / "b.json"
    scan(tmp_path, fill(CLEAN, files), "--write-baseline", str(bl))
    code, report = scan(tmp_path, fill(HIGH_ONLY, files), "--baseline", str(bl))
    (r,) = fails(report, "MTLS104")
    assert r["suppressed"] is None
    assert code == 1


def test_fingerprints_are_stable_when_lines_move(tmp_path: Path) -> None:
    _, before = scan(tmp_path, MANY, "--fail-on", "never")
    moved = MANY.replace("http {\n", "\n\n\nhttp {\n\n").replace("    server {\n", "\n    server {\n\n")
    _, after = scan(tmp_path, moved, "--fail-on", "never")

    def by_fp(report: dict[str, Any]) -> dict[str, int]:
        return {r["fingerprint"]: r["location"]["line"] for r in report["results"] if r["location"]}

    assert by_fp(before).keys() == by_fp(after).keys()
    assert {r["fingerprint"] for r in before["results"]} == {r["fingerprint"] for r in after["results"]}
    assert all(by_fp(after)[fp] > line for fp, line in by_fp(before).items())  # lines did move


def test_baseline_keeps_working_after_lines_move(tmp_path: Path) -> None:
    bl = tmp_path / "b.json"
    scan(tmp_path, MANY, "--write-baseline", str(bl))
    code, report = scan(tmp_path, "\n\n" + MANY, "--baseline", str(bl))
    assert code == 0
    assert fails(report) and all(r["suppressed"] for r in fails(report))


# ---------------------------------------------------------------- exit codes


def test_clean_config_exits_0(tmp_path: Path, files: dict[str, str]) -> None:
    code, report = scan(tmp_path, fill(CLEAN, files))
    assert others_at_or_above(report, "", "high") == []
    assert code == 0
    assert report["summary"]["gate"] == "pass"
    assert report["summary"]["pass"] > 0


def test_high_failure_exits_1_under_default_fail_on(tmp_path: Path, files: dict[str, str]) -> None:
    code, report = scan(tmp_path, fill(HIGH_ONLY, files))
    (r,) = fails(report, "MTLS104")
    assert r["severity"] == "high"
    assert report["summary"]["fail_on"] == "high"
    assert code == 1


def test_fail_on_critical_passes_when_only_high_fails(tmp_path: Path, files: dict[str, str]) -> None:
    code, report = scan(tmp_path, fill(HIGH_ONLY, files), "--fail-on", "critical")
    assert fails(report, "MTLS104")
    assert others_at_or_above(report, "MTLS104", "critical") == []
    assert code == 0
    assert report["summary"]["gate"] == "pass"


def test_fail_on_never_exits_0_with_failures(tmp_path: Path) -> None:
    code, report = scan(tmp_path, MANY, "--fail-on", "never")
    assert any(r["severity"] == "critical" for r in fails(report))
    assert code == 0


@pytest.mark.parametrize(("fail_on", "code"), [("low", 1), ("medium", 0)])
def test_fail_on_threshold_compares_severity(
    tmp_path: Path, files: dict[str, str], fail_on: str, code: int
) -> None:
    got, report = scan(tmp_path, fill(LOW_ONLY, files), "--fail-on", fail_on)
    (r,) = fails(report, "MTLS105")
    assert r["severity"] == "low"
    assert others_at_or_above(report, "MTLS105", "medium") == []
    assert got == code
