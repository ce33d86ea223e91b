"""Trust-material rules MTLS201-210: behaviours the fixtures alone do not pin down.

The fixture folders prove where each rule fires; these tests prove how: every file is parsed
once per run, results are per directive rather than per server, paths resolve as Nginx resolves
them, severities drop to medium inside the warning window, dates are ISO 8601 UTC, and no key
material ever reaches a report. PKI is minted per test with `certgen` (nothing committed).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
from pathlib import Path
from typing import Any

import certgen
import pytest
from click.testing import CliRunner
from cryptography import x509
from fixture_support import FIXTURES, generate_pki, materialized, scan_json

from mtls_audit.certs import CertCache, load_system_roots
from mtls_audit.cli import cli
from mtls_audit.context import CheckContext, Options
from mtls_audit.engine import load_catalog, run_checks
from mtls_audit.model import Result, Status
from mtls_audit.nginx.effective import build_effective
from mtls_audit.nginx.load import load_config, load_dump
from mtls_audit.scan import parse_version

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def _write(folder: Path, conf: str, manifest: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nginx.conf").write_text(conf, encoding="utf-8")
    if manifest:
        (folder / "pki.yaml").write_text(manifest, encoding="utf-8")
        generate_pki(folder / "pki.yaml", folder)
    return folder / "nginx.conf"


def _run(conf: Path, options: Options | None = None) -> tuple[list[Result], CertCache]:
    cfg = build_effective(load_config(str(conf)))
    ctx = CheckContext(config=cfg, options=options or Options())
    results = run_checks(load_catalog(), ctx, kinds=("config",))
    cache = cfg.cache["certs"]
    assert isinstance(cache, CertCache)
    return results, cache


def _of(results: list[Result], rule_id: str, status: Status | None = None) -> list[Result]:
    return [r for r in results if r.rule_id == rule_id and (status is None or r.status is status)]


def _cli_json(conf: Path, *extra: str) -> tuple[str, dict[str, Any]]:
    res = CliRunner().invoke(cli, ["scan", str(conf), "--format", "json", "--fail-on", "never", *extra],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.stdout, json.loads(res.stdout)


BASIC_PKI = """
ca.pem: {kind: root}
server.pem: {kind: server, issuer: ca.pem}
server.key: {kind: key, of: server.pem}
crl.pem: {kind: crl, issuer: ca.pem}
"""


# ---------------------------------------------------------------- one parse, one result per file


def test_each_file_is_parsed_once_however_many_servers_reference_it(tmp_path: Path) -> None:
    servers = "\n".join(
        f"""
    server {{
        listen {8440 + i} ssl;
        ssl_certificate server.pem;
        ssl_certificate_key server.key;
        ssl_crl crl.pem;
    }}"""
        for i in range(6)
    )
    conf = _write(tmp_path, f"""events {{}}
http {{
    ssl_verify_client on;
    ssl_client_certificate ca.pem;
    ssl_trusted_certificate ca-link.pem;
{servers}
}}
""", BASIC_PKI)
    (tmp_path / "ca-link.pem").symlink_to(tmp_path / "ca.pem")
    results, cache = _run(conf)
    # ca.pem (also through a symlink), server.pem, server.key, crl.pem: four files, one parse
    # each, although ten rules ask about them for six servers.
    assert cache.stats.parses == 4
    assert len(cache) == 4
    assert cache.stats.hits >= 1  # the symlink met the parse of its target
    assert not [r for r in results if r.rule_id.startswith("MTLS2") and r.status is Status.ERROR]


def test_an_inherited_file_gives_one_result_not_one_per_server(tmp_path: Path) -> None:
    conf = _write(tmp_path, """events {}
http {
    ssl_certificate server.pem;
    ssl_certificate_key server.key;
    ssl_verify_client on;
    ssl_client_certificate missing-ca.pem;
    server { listen 443 ssl; server_name a; }
    server { listen 444 ssl; server_name b; }
    server { listen 445 ssl; server_name c; }
}
""", BASIC_PKI)
    results, _ = _run(conf)
    (fail,) = _of(results, "MTLS201", Status.FAIL)
    assert (fail.location and (fail.location.file, fail.location.line)) == ("nginx.conf", 6)
    assert fail.subject == "ssl_client_certificate missing-ca.pem in http block in nginx.conf"
    assert "no such file" in fail.message
    # One pass per file directive, not per server: the cert and the key lines.
    assert len(_of(results, "MTLS201", Status.PASS)) == 2
    assert len(_of(results, "MTLS209", Status.PASS)) == 2  # expiry of server.pem, and the pair


def test_a_snippet_included_by_two_servers_is_one_result_at_the_snippet_line(tmp_path: Path) -> None:
    (tmp_path / "snippets").mkdir()
    (tmp_path / "snippets" / "mtls.conf").write_text(
        "ssl_verify_client on;\nssl_client_certificate missing-ca.pem;\n", encoding="utf-8"
    )
    conf = _write(tmp_path, """events {}
http {
    ssl_certificate server.pem;
    ssl_certificate_key server.key;
    server { listen 443 ssl; server_name a; include snippets/mtls.conf; }
    server { listen 444 ssl; server_name b; include snippets/mtls.conf; }
}
""", BASIC_PKI)
    results, _ = _run(conf)
    (fail,) = _of(results, "MTLS201", Status.FAIL)
    assert fail.location is not None and (fail.location.file, fail.location.line) == ("snippets/mtls.conf", 2)


def test_subjects_name_the_block_the_directive_is_written_in() -> None:
    with materialized(FIXTURES / "MTLS201" / "fire_missing_files") as folder:
        results, _ = _run(folder / "nginx.conf")
    subjects = {r.evidence["path"]: r.subject for r in _of(results, "MTLS201", Status.FAIL)}
    server_a = "http server a.example [*:443] in nginx.conf"
    assert subjects == {
        "missing-client-ca.pem": "ssl_client_certificate missing-client-ca.pem in http block in nginx.conf",
        "missing-server.key": f"ssl_certificate_key missing-server.key in {server_a}",
        "/nonexistent/mtls-audit/client-ca.crl": f"ssl_crl /nonexistent/mtls-audit/client-ca.crl in {server_a}",
        "missing-upstream-client.pem": f"proxy_ssl_certificate missing-upstream-client.pem in {server_a} location /",
        "site-ca.pem": "ssl_client_certificate site-ca.pem in http server c.example [*:9443] in conf.d/site.conf",
    }


def test_subjects_leave_out_line_numbers_so_fingerprints_survive_edits(tmp_path: Path) -> None:
    body = """events {}
http {
    server {
        listen 443 ssl;
        ssl_certificate server.pem;
        ssl_certificate_key missing.key;
    }
}
"""
    first, _ = _run(_write(tmp_path / "a", body, BASIC_PKI))
    second, _ = _run(_write(tmp_path / "b", "# a comment\n\n" + body, BASIC_PKI))
    (f1,) = _of(first, "MTLS201", Status.FAIL)
    (f2,) = _of(second, "MTLS201", Status.FAIL)
    assert f1.location and f2.location and f1.location.line + 2 == f2.location.line
    assert f1.fingerprint == f2.fingerprint


# ---------------------------------------------------------------- path resolution


def test_relative_paths_resolve_against_the_prefix_not_the_including_file(tmp_path: Path) -> None:
    conf = _write(tmp_path / "conf", """events {}
http {
    server {
        listen 443 ssl;
        ssl_certificate server.pem;
        ssl_certificate_key server.key;
    }
}
""")
    generate_pki_dir = tmp_path / "prefix"
    generate_pki_dir.mkdir()
    (generate_pki_dir / "pki.yaml").write_text(BASIC_PKI, encoding="utf-8")
    generate_pki(generate_pki_dir / "pki.yaml", generate_pki_dir)

    _, without = _cli_json(conf)
    _, with_prefix = _cli_json(conf, "--prefix", str(generate_pki_dir))

    def statuses(report: dict[str, Any]) -> set[str]:
        return {r["status"] for r in report["results"] if r["rule_id"] == "MTLS201"}

    assert statuses(without) == {"fail"}
    assert statuses(with_prefix) == {"pass"}
    resolved = {r["evidence"]["resolved"] for r in with_prefix["results"] if r["rule_id"] == "MTLS201"}
    assert resolved == {str(generate_pki_dir / "server.pem"), str(generate_pki_dir / "server.key")}


@pytest.mark.parametrize("name", ["$ssl_server_name.pem", "data:$cert_pem", "engine:pkcs11:id_45"])
def test_names_only_the_running_nginx_can_resolve_are_skipped(tmp_path: Path, name: str) -> None:
    conf = _write(tmp_path, f"""events {{}}
http {{
    server {{
        listen 443 ssl;
        ssl_certificate server.pem;
        ssl_certificate_key "{name}";
    }}
}}
""", BASIC_PKI)
    results, _ = _run(conf)
    skipped = [r for r in _of(results, "MTLS201", Status.SKIPPED)]
    assert [r.evidence["path"] for r in skipped] == [name]
    assert "variables" in skipped[0].message
    assert not [r for r in results if r.rule_id.startswith("MTLS2") and r.status in (Status.FAIL, Status.ERROR)
                and r.rule_id not in ("MTLS206",)]


def test_a_dump_from_another_host_skips_file_rules_but_still_checks_revocation() -> None:
    dump = """# configuration file /nonexistent/mtls-audit/etc/nginx/nginx.conf:
events {}
http {
    server {
        listen 443 ssl;
        ssl_certificate /etc/nginx/tls/server.pem;
        ssl_certificate_key /etc/nginx/tls/server.key;
        ssl_client_certificate /etc/nginx/tls/ca.pem;
        ssl_verify_client on;
    }
}
"""
    cfg = build_effective(load_dump(dump))
    results = run_checks(load_catalog(), CheckContext(config=cfg), kinds=("config",))
    for rid in ("MTLS201", "MTLS202", "MTLS203", "MTLS204", "MTLS205", "MTLS207", "MTLS208", "MTLS209", "MTLS210"):
        assert {r.status for r in _of(results, rid)} == {Status.SKIPPED}, rid
    assert [r.status for r in _of(results, "MTLS206")] == [Status.FAIL]


# ---------------------------------------------------------------- severities and dates


def test_expired_ca_is_high_and_ca_in_the_warning_window_is_medium() -> None:
    _, report = scan_json(FIXTURES / "MTLS204" / "fire_expired_and_expiring", "--fail-on", "never")
    sev = {r["location"]["line"]: r["severity"] for r in report["results"]
           if r["rule_id"] == "MTLS204" and r["status"] == "fail"}
    assert sev == {11: "high", 18: "medium", 24: "high"}


def test_server_certificate_expired_is_high_and_expiring_is_medium() -> None:
    _, report = scan_json(FIXTURES / "MTLS209" / "fire_server_certificates", "--fail-on", "never")
    sev = {r["location"]["line"]: r["severity"] for r in report["results"]
           if r["rule_id"] == "MTLS209" and r["status"] == "fail"}
    assert sev == {7: "high", 14: "medium", 22: "high", 30: "high"}


def test_warn_days_moves_the_window(tmp_path: Path) -> None:
    conf = _write(tmp_path, """events {}
http {
    server {
        listen 443 ssl;
        ssl_certificate server.pem;
        ssl_certificate_key server.key;
    }
}
""", """
ca.pem: {kind: root}
server.pem: {kind: server, issuer: ca.pem, days: 20}
server.key: {kind: key, of: server.pem}
""")
    default, _ = _run(conf)
    narrow, _ = _run(conf, Options(warn_days=10))
    assert [r.severity.value for r in _of(default, "MTLS209", Status.FAIL)] == ["medium"]
    assert _of(narrow, "MTLS209", Status.FAIL) == []


def test_dates_in_evidence_are_iso_8601_utc() -> None:
    _, report = scan_json(FIXTURES / "MTLS207" / "fire_crl_problems", "--fail-on", "never")
    dates: list[str] = []

    def collect(value: Any, key: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                collect(v, k)
        elif isinstance(value, list):
            for v in value:
                collect(v, key)
        elif key in ("not_after", "next_update", "last_update", "now") and value is not None:
            dates.append(value)

    for r in report["results"]:
        if r["rule_id"].startswith("MTLS2"):
            collect(r["evidence"])
    assert dates and all(ISO_Z.match(d) for d in dates), dates


# ---------------------------------------------------------------- secrets


def test_no_key_material_reaches_any_result(tmp_path: Path) -> None:
    conf = _write(tmp_path, """events {}
http {
    server {
        listen 443 ssl;
        ssl_certificate server.pem;
        ssl_certificate_key server.key;
        ssl_verify_client on;
        ssl_client_certificate server.key;
        ssl_trusted_certificate wrong.key;
        ssl_crl server.key;
    }
    server {
        listen 444 ssl;
        ssl_certificate server.pem;
        ssl_certificate_key wrong.key;
    }
}
""", """
ca.pem: {kind: root}
server.pem: {kind: server, issuer: ca.pem, key: rsa}
server.key: {kind: key, of: server.pem, mode: "0644", format: traditional}
other.pem: {kind: server, issuer: ca.pem}
wrong.key: {kind: key, of: other.pem, mode: "0640"}
""")
    text, report = _cli_json(conf)
    assert {(r["rule_id"], r["status"]) for r in report["results"]} >= {
        ("MTLS202", "fail"), ("MTLS207", "fail"), ("MTLS209", "fail"), ("MTLS210", "fail"),
    }
    assert "PRIVATE KEY" not in text
    for key_file in ("server.key", "wrong.key"):
        body = [ln for ln in (tmp_path / key_file).read_text().splitlines() if ln and not ln.startswith("-----")]
        assert body and not any(line[:40] in text for line in body)
        der = base64.b64decode("".join(body))
        assert der.hex()[:64] not in text
    (f210,) = [r for r in report["results"]
               if r["rule_id"] == "MTLS210" and r["status"] == "fail" and r["location"]["line"] == 6]
    assert f210["evidence"]["mode"] == "0644" and f210["evidence"]["key_type"] == "RSA"
    assert set(f210["evidence"]) == {"directive", "path", "resolved", "mode", "key_type", "encrypted"}


# ---------------------------------------------------------------- rule details


def test_a_trusted_file_of_crls_loads_but_anchors_nothing(tmp_path: Path) -> None:
    conf = _write(tmp_path, """events {}
http {
    server {
        listen 443 ssl;
        ssl_certificate server.pem;
        ssl_certificate_key server.key;
        ssl_verify_client on;
        ssl_client_certificate ca.pem;
        ssl_trusted_certificate crl.pem;
        ssl_crl crl.pem;
    }
}
""", BASIC_PKI)
    results, _ = _run(conf)
    (fail,) = _of(results, "MTLS202", Status.FAIL)
    assert "loads, but anchors nothing" in fail.message
    assert fail.evidence["contents"] == "1 CRL(s)"


def test_a_crl_under_the_ca_name_with_another_key_breaks_every_verification(tmp_path: Path) -> None:
    root = certgen.make_root("Forged Name Root")
    impostor = certgen.make_root("Forged Name Root", key=certgen.new_key("impostor"))
    srv = certgen.make_server(root)
    certgen.write_pem(tmp_path / "ca.pem", root.cert)
    certgen.write_pem(tmp_path / "server.pem", srv.cert)
    certgen.write_key(tmp_path / "server.key", srv.key)
    certgen.write_pem(tmp_path / "crl.pem", certgen.make_crl(impostor))
    conf = _write(tmp_path, """events {}
http {
    server {
        listen 443 ssl;
        ssl_certificate server.pem;
        ssl_certificate_key server.key;
        ssl_verify_client on;
        ssl_client_certificate ca.pem;
        ssl_crl crl.pem;
    }
}
""")
    results, _ = _run(conf)
    (fail,) = _of(results, "MTLS207", Status.FAIL)
    assert "CRL signature failure" in fail.message
    assert fail.evidence["cas_without_crl"] == ["CN=Forged Name Root,O=mtls-audit tests"]


def test_an_encrypted_key_is_not_compared_with_its_certificate(tmp_path: Path) -> None:
    conf = _write(tmp_path, """events {}
http {
    server {
        listen 443 ssl;
        ssl_certificate server.pem;
        ssl_certificate_key locked.key;
    }
}
""", BASIC_PKI + 'locked.key: {kind: key, of: ca.pem, password: "x"}\n')
    results, _ = _run(conf)
    pair = [r for r in _of(results, "MTLS209") if r.subject.startswith("key pair")]
    assert [r.status for r in pair] == [Status.SKIPPED]
    assert pair[0].evidence["encrypted"] is True


@pytest.mark.parametrize(
    ("version", "fires"),
    [("1.27.1", False), ("1.27.2", True), ("1.28.2", True), ("1.28.3", False),
     ("1.29.0", True), ("1.29.6", True), ("1.29.7", False), (None, False)],
)
def test_stream_ocsp_counts_as_no_revocation_only_on_cve_2026_28755_versions(
    tmp_path: Path, version: str | None, fires: bool
) -> None:
    conf = _write(tmp_path, """events {}
stream {
    server {
        listen 6443 ssl;
        ssl_certificate server.pem;
        ssl_certificate_key server.key;
        ssl_client_certificate ca.pem;
        ssl_verify_client on;
        ssl_ocsp on;
        proxy_pass 127.0.0.1:6000;
    }
}
""")
    results, _ = _run(conf, Options(nginx_version=parse_version(version) if version else None))
    (r,) = _of(results, "MTLS206")
    assert (r.status is Status.FAIL) is fires
    if fires:
        assert r.evidence["cve"] == "CVE-2026-28755"


def test_a_ca_issued_under_a_public_root_name_counts_as_public(tmp_path: Path) -> None:
    roots = load_system_roots()
    if not roots:
        pytest.skip("no public root store on this machine")
    public_subject = sorted(s for s, _ in roots)[0]
    # Same name as a public root, another key: the name is all the heuristic looks at.
    stand_in = certgen.make_cert("stand-in", subject=x509.Name.from_rfc4514_string(public_subject), ca=True)
    inter = certgen.make_intermediate(stand_in, "Public Intermediate")
    certgen.write_pem(tmp_path / "ca.pem", inter.cert)
    srv = certgen.make_server(inter)
    certgen.write_pem(tmp_path / "server.pem", srv.cert)
    certgen.write_key(tmp_path / "server.key", srv.key)
    conf = _write(tmp_path, """events {}
http {
    server {
        listen 443 ssl;
        ssl_certificate server.pem;
        ssl_certificate_key server.key;
        ssl_verify_client on;
        ssl_client_certificate ca.pem;
    }
}
""")
    results, _ = _run(conf)
    (fail,) = _of(results, "MTLS205", Status.FAIL)
    assert fail.evidence["public_intermediates"] == ["CN=Public Intermediate,O=mtls-audit tests"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file; permissions cannot make it unreadable")
def test_an_unreadable_file_fails_like_a_missing_one(tmp_path: Path) -> None:
    conf = _write(tmp_path, """events {}
http {
    server {
        listen 443 ssl;
        ssl_certificate server.pem;
        ssl_certificate_key server.key;
    }
}
""", BASIC_PKI.replace("{kind: key, of: server.pem}", '{kind: key, of: server.pem, mode: "0000"}'))
    results, _ = _run(conf)
    (fail,) = _of(results, "MTLS201", Status.FAIL)
    assert "permission denied" in fail.message


# ---------------------------------------------------------------- the fixture PKI itself


def test_fixture_manifests_mint_fresh_files_with_the_modes_they_ask_for(tmp_path: Path) -> None:
    (tmp_path / "pki.yaml").write_text("""
ca.pem: {kind: root}
leaf.pem: {kind: client_leaf, issuer: ca.pem, days: 3}
leaf.key: {kind: key, of: leaf.pem}
open.key: {kind: key, of: leaf.pem, mode: "0644"}
bundle.pem: [ca.pem, leaf.pem]
sub/crl.pem: {kind: crl, issuer: ca.pem, next_update_days: -2}
""", encoding="utf-8")
    written = generate_pki(tmp_path / "pki.yaml", tmp_path)
    assert set(written) == {"ca.pem", "leaf.pem", "leaf.key", "open.key", "bundle.pem", "sub/crl.pem"}
    assert (tmp_path / "leaf.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "open.key").stat().st_mode & 0o777 == 0o644
    assert written["bundle.pem"] == written["ca.pem"] + written["leaf.pem"]
    facts = CertCache().get(str(tmp_path / "sub" / "crl.pem"))
    now = dt.datetime.now(dt.UTC)
    assert facts.crls and facts.crls[0].is_expired(now)
    leaf = CertCache().get(str(tmp_path / "leaf.pem")).certs[0]
    assert dt.timedelta(days=2) < leaf.not_after - now <= dt.timedelta(days=3)


def test_der_crl_and_der_key_are_refused_like_nginx_does(tmp_path: Path) -> None:
    """Nginx reads ssl_crl and ssl_certificate_key as PEM only (`nginx -t` fails on DER)."""
    root = certgen.make_root()
    server = certgen.make_server(root)
    folder = tmp_path / "conf"
    folder.mkdir()
    certgen.write_pem(folder / "ca.pem", root.cert)
    certgen.write_der(folder / "crl.der", certgen.make_crl(root))
    certgen.write_pem(folder / "server.pem", server.cert)
    certgen.write_der(folder / "server.key", server.key, mode=0o600)
    conf = _write(
        folder,
        "events {}\nhttp {\n  server {\n    listen 443 ssl;\n    ssl_certificate server.pem;\n"
        "    ssl_certificate_key server.key;\n    ssl_verify_client on;\n    ssl_client_certificate ca.pem;\n"
        "    ssl_crl crl.der;\n  }\n}\n",
    )
    results, _ = _run(conf)
    (crl,) = _of(results, "MTLS207", Status.FAIL)
    assert "DER-encoded CRL" in crl.message and crl.location is not None and crl.location.line == 9
    key = [r for r in _of(results, "MTLS209", Status.FAIL) if "DER-encoded key" in r.message]
    assert key and key[0].location is not None and key[0].location.line == 6
