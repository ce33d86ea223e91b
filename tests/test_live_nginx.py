"""Live probes against a real Nginx, one server per client-auth posture.

The ground truth is docs/nginx-mtls.md section 3.3 (observed on Nginx 1.22.1): Nginx completes
the handshake without a certificate and rejects afterwards, so only the HTTP answer (or the
stream closing) tells `on` from `optional`. Every live rule has a posture that makes it fail and
one that makes it pass (``LIVE_RULE_FIXTURES``, imported by the project's meta-test).

Nginx is started once per session (tests/nginx_harness.py); in CI a missing binary fails.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from nginx_harness import NginxEnv, nginx_env  # noqa: F401  (session fixture)

from mtls_audit.checks.live import CHECKS
from mtls_audit.context import CheckContext
from mtls_audit.engine import builtin_rules_dir, parse_rule
from mtls_audit.model import Status, Target
from mtls_audit.probe.runner import ProbeConfig, probe_all
from mtls_audit.probe.tls import local_can_offer
from mtls_audit.probe.types import EndpointProbe, ProbeSpec

TIMEOUT = 2.0
"""Per-connection timeout for the scan; the silent listener must give up within it."""

LIVE_RULE_FIXTURES: dict[str, tuple[str, str]] = {
    # rule: (endpoint that makes it fail or error, near-miss endpoint that makes it pass)
    "MTLS501": ("optional_nocheck", "optional_check"),
    "MTLS502": ("optional_no_ca", "optional_nocheck"),
    "MTLS503": ("error_page_app", "optional_no_ca"),
    "MTLS504": ("on", "on_crl"),
    "MTLS505": ("on_other_ca", "on"),
    "MTLS506": ("on_bundle", "on"),
    "MTLS507": ("legacy_tls", "tls12_only"),
    "MTLS508": ("server_untrusted", "on"),
    "MTLS509": ("silent", "on"),
    "MTLS601": ("deployed_off", "on"),
}
"""Endpoint names are harness postures, plus ``silent``/``closed`` listeners and ``deployed_off``
(the ``off`` server probed as if its config said ``on``: the wrong config is running)."""

A, R, E = "accepted", "rejected", "error"
KINDS = ("no_cert", "untrusted", "valid", "expired", "revoked")

# Outcome of each attempt (no_cert, untrusted, valid, expired, revoked) per endpoint; matches the
# matrix in nginx-mtls.md 3.3 (revoked is served unless ssl_crl lists it).
OUTCOMES: dict[str, tuple[str, ...]] = {
    "on": (R, R, A, R, A),
    "off": (A, A, A, A, A),
    "optional_nocheck": (A, R, A, R, A),
    "optional_check": (R, R, A, R, A),
    "optional_failed_check": (A, R, A, R, A),
    "optional_no_ca": (A, A, A, R, A),
    "on_crl": (R, R, A, R, R),
    "on_other_ca": (R, R, R, R, R),
    "on_bundle": (R, R, A, R, A),
    "tls13_only": (R, R, A, R, A),
    "tls12_only": (R, R, A, R, A),
    "legacy_tls": (R, R, A, R, A),
    "error_page_app": (A, A, A, A, A),
    "server_untrusted": (R, R, A, R, A),
    "stream_on": (R, R, A, R, A),
    "stream_off": (A, A, A, A, A),
    "stream_on_auto": (R, R, A, R, A),
    "deployed_off": (A, A, A, A, A),
}

P, F, X, S = "pass", "fail", "error", "skipped"
RULES = ("MTLS501", "MTLS502", "MTLS503", "MTLS504", "MTLS505", "MTLS506", "MTLS507", "MTLS508", "MTLS509", "MTLS601")
UNREACHABLE = (S, S, S, S, S, S, S, S, X, S)

# Status of MTLS501..509, MTLS601 per endpoint.
VERDICTS: dict[str, tuple[str, ...]] = {
    #                       501 502 503 504 505 506 507 508 509 601
    "on":                    (P, P, P, F, P, P, P, P, P, P),
    "off":                   (F, F, F, F, P, S, P, P, P, S),
    "optional_nocheck":      (F, P, P, F, P, P, P, P, P, P),
    "optional_check":        (P, P, P, F, P, P, P, P, P, P),
    "optional_failed_check": (F, P, P, F, P, P, P, P, P, P),
    "optional_no_ca":        (F, F, P, F, P, F, P, P, P, P),
    "on_crl":                (P, P, P, P, P, P, P, P, P, P),
    "on_other_ca":           (P, P, P, P, F, P, P, P, P, P),
    "on_bundle":             (P, P, P, F, P, F, P, P, P, P),
    "tls13_only":            (P, P, P, F, P, P, P, P, P, P),
    "tls12_only":            (P, P, P, F, P, P, P, P, P, P),
    "legacy_tls":            (P, P, P, F, P, P, F, P, P, P),
    "error_page_app":        (F, F, F, F, P, P, P, P, P, F),
    "server_untrusted":      (P, P, P, F, P, P, P, F, P, P),
    "stream_on":             (P, P, P, F, P, P, P, P, P, P),
    "stream_off":            (F, F, F, F, P, S, P, P, P, S),
    "stream_on_auto":        (P, P, P, F, P, P, P, P, P, P),
    "deployed_off":          (F, F, F, F, P, S, P, P, P, F),
    "plain_http":            UNREACHABLE,
    "silent":                UNREACHABLE,
    "closed":                UNREACHABLE,
}  # fmt: skip


@dataclass(frozen=True)
class Scan:
    env: NginxEnv
    probes: Mapping[str, EndpointProbe]
    elapsed: float
    statuses: Mapping[str, Mapping[str, str]]
    """endpoint -> rule -> status."""


def _specs(env: NginxEnv) -> dict[str, ProbeSpec]:
    specs: dict[str, ProbeSpec] = {}
    for name, posture in env.postures.items():
        target = Target("127.0.0.1", env.ports[name], None if posture.kind == "stream" else "localhost")
        specs[name] = ProbeSpec(target, posture.protocol, None, posture.config_verify)  # type: ignore[arg-type]
    if "stream_on" in env.postures:  # without the stream module (local runs only) they are absent
        stream_on = env.ports["stream_on"]
        specs["stream_on_auto"] = ProbeSpec(Target("127.0.0.1", stream_on), "auto", None, "on")
    specs["deployed_off"] = ProbeSpec(Target("127.0.0.1", env.ports["off"]), "http", None, "on")
    specs["silent"] = ProbeSpec(Target("127.0.0.1", env.ports["silent"]), "auto", None, "on")
    specs["closed"] = ProbeSpec(Target("127.0.0.1", env.ports["closed"]), "auto", None, "on")
    return specs


@pytest.fixture(scope="module")
def scan(nginx_env: NginxEnv) -> Scan:  # noqa: F811
    pki = nginx_env.pki
    config = ProbeConfig.from_paths(
        client_cert=pki.client.cert,
        client_key=pki.client.key,
        ca_cert=pki.root.cert,
        ca_key=pki.root.key,
        revoked_cert=pki.revoked.cert,
        revoked_key=pki.revoked.key,
        trust=pki.root.cert,
        timeout=TIMEOUT,
    )
    specs = _specs(nginx_env)
    started = time.monotonic()
    results = probe_all(list(specs.values()), config, progress=False)
    elapsed = time.monotonic() - started
    probes = dict(zip(specs, results, strict=True))
    statuses: dict[str, dict[str, str]] = {name: {} for name in probes}
    by_target = {id(p): name for name, p in probes.items()}
    for rule_id in RULES:
        rule = parse_rule(builtin_rules_dir() / f"{rule_id}.yaml")
        ctx = CheckContext(config=None, probes=results)
        findings = list(CHECKS[rule_id](ctx, rule))
        assert len(findings) == len(results)
        for probe, finding in zip(results, findings, strict=True):
            assert finding.target == probe.spec.target
            statuses[by_target[id(probe)]][rule_id] = finding.status.value
    return Scan(nginx_env, probes, elapsed, statuses)


def _present(scan: Scan, name: str) -> None:
    if name not in scan.probes:
        pytest.skip(f"{name}: not available here (stream module missing)")


def _skip_legacy_if_unsupported(name: str, rule_id: str | None = None) -> None:
    if (name == "legacy_tls" or rule_id == "MTLS507") and not local_can_offer("TLSv1"):
        pytest.skip("the local OpenSSL cannot offer TLS 1.0, so MTLS507 cannot be proven here")


@pytest.mark.parametrize("name", sorted(OUTCOMES))
def test_attempt_outcomes_per_posture(scan: Scan, name: str) -> None:
    _present(scan, name)
    probe = scan.probes[name]
    assert probe.error is None, f"{name}: {probe.error}\n{scan.env.error_log()[-2000:]}"
    seen = {a.kind: a.outcome for a in probe.attempts}
    expected = dict(zip(KINDS, OUTCOMES[name], strict=True))
    assert seen == expected, {a.kind: a.how for a in probe.attempts}


@pytest.mark.parametrize("name", sorted(VERDICTS))
def test_rule_verdicts_per_posture(scan: Scan, name: str) -> None:
    _present(scan, name)
    _skip_legacy_if_unsupported(name)
    expected = dict(zip(RULES, VERDICTS[name], strict=True))
    assert dict(scan.statuses[name]) == expected


def test_every_live_rule_has_a_trigger_and_a_near_miss(scan: Scan) -> None:
    live = sorted(p.stem for p in builtin_rules_dir().glob("*.yaml") if parse_rule(p).kind in ("live", "drift"))
    assert sorted(LIVE_RULE_FIXTURES) == live
    for rule_id, (trigger, near_miss) in LIVE_RULE_FIXTURES.items():
        if rule_id == "MTLS507" and not local_can_offer("TLSv1"):
            continue
        assert scan.statuses[trigger][rule_id] in (F, X), f"{rule_id} does not fire on {trigger}"
        assert scan.statuses[near_miss][rule_id] == P, f"{rule_id} does not pass on {near_miss}"


def test_nginx_completes_the_handshake_then_answers_400(scan: Scan) -> None:
    a = scan.probes["on"].attempt("no_cert")
    assert a is not None and a.tls_version is not None  # a handshake-only prober would call it open
    assert (a.http_status, a.how) == (400, "http 400 No required SSL certificate was sent")
    bad = scan.probes["on"].attempt("untrusted")
    assert bad is not None and bad.how == "http 400 The SSL certificate error"
    check = scan.probes["optional_check"].attempt("no_cert")
    assert check is not None and check.how == "http 403 Forbidden"


def test_fail_open_error_page_serves_the_app(scan: Scan) -> None:
    for kind in ("no_cert", "untrusted", "expired"):
        a = scan.probes["error_page_app"].attempt(kind)
        assert a is not None and (a.http_status, a.title) == (200, "app via error_page")


def test_tls13_and_tls12_only_servers(scan: Scan) -> None:
    assert scan.probes["tls13_only"].tls_version == "TLSv1.3"
    assert scan.probes["tls12_only"].tls_version == "TLSv1.2"
    for name in ("tls13_only", "tls12_only"):
        assert scan.probes[name].cert_requested is True


def test_certificate_request_and_ca_names(scan: Scan) -> None:
    root = scan.env.pki.root.certificate.subject.rfc4514_string()
    assert scan.probes["on"].ca_names == (root,)
    assert scan.probes["optional_no_ca"].cert_requested is True
    assert scan.probes["optional_no_ca"].ca_names == ()
    assert len(scan.probes["on_bundle"].ca_names) == scan.env.pki.bundle_size
    assert scan.probes["off"].cert_requested is False


def test_legacy_versions(scan: Scan) -> None:
    _skip_legacy_if_unsupported("legacy_tls")
    assert scan.probes["legacy_tls"].legacy_versions == ("TLSv1", "TLSv1.1")
    assert scan.probes["on"].legacy_versions == ()


def test_stream_rejection_is_a_closed_connection(scan: Scan) -> None:
    _present(scan, "stream_on")
    a = scan.probes["stream_on"].attempt("no_cert")
    assert a is not None and a.how == "stream closed after handshake" and a.tls_version
    ok = scan.probes["stream_on"].attempt("valid")
    assert ok is not None and ok.title == "stream ok"


def test_unreachable_endpoints_error_within_the_timeout(scan: Scan) -> None:
    assert scan.probes["closed"].error == "connection refused"
    assert scan.probes["plain_http"].error is not None and "TLS" in scan.probes["plain_http"].error
    silent = scan.probes["silent"]
    assert silent.error == "timed out waiting for a TLS handshake (no TLS answer)"
    assert silent.elapsed_ms <= TIMEOUT * 1000 + 500


def test_whole_scan_is_quick(scan: Scan) -> None:
    # 21 endpoints in parallel: bounded by the slowest (the silent one, TIMEOUT).
    assert scan.elapsed < TIMEOUT + 8


def test_config_plus_probe_end_to_end(nginx_env: NginxEnv) -> None:  # noqa: F811
    """`scan nginx.conf --probe`: live results point at listen lines and drift compares them."""
    from mtls_audit.cli import cli

    pki = nginx_env.pki
    args = [
        "scan", str(nginx_env.config), "--probe", "--format", "json", "--fail-on", "never",
        "--timeout", str(TIMEOUT), "--trust", str(pki.root.cert),
        "--client-cert", str(pki.client.cert), "--client-key", str(pki.client.key),
    ]  # fmt: skip
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code in (0, 1), res.output
    report = json.loads(res.stdout)
    lines = Path(nginx_env.config).read_text().splitlines()
    by_port = {port: name for name, port in nginx_env.ports.items()}
    drift: dict[str, str] = {}
    for r in report["results"]:
        if r["rule_id"] not in RULES:
            continue
        assert r["location"] is not None, r
        assert lines[r["location"]["line"] - 1].strip().startswith("listen "), r["location"]
        if r["rule_id"] == "MTLS601":
            drift[by_port[r["target"]["port"]]] = r["status"]
    assert drift["on"] == P and drift["error_page_app"] == F and drift["off"] == S
    assert Status.ERROR.value not in {r["status"] for r in report["results"] if r["rule_id"] == "MTLS509"}


def test_missing_nginx_fails_in_ci_and_skips_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    from nginx_harness import require_nginx

    monkeypatch.setenv("NGINX", "/nonexistent/nginx")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="nginx binary not found"):
        require_nginx()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        require_nginx()
