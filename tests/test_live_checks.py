"""Live and drift checks on hand-built observations: no network, one behaviour per test."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from mtls_audit.checks.live import CHECKS
from mtls_audit.context import CheckContext, Options
from mtls_audit.model import Finding, RuleMeta, Severity, SourceLocation, Status, Target
from mtls_audit.probe.types import Attempt, AttemptKind, EndpointProbe, ProbeSpec, ServerCert

TARGET = Target("127.0.0.1", 8443, "api.test")
LISTEN = SourceLocation("conf.d/api.conf", 3, ("api.test",), ("127.0.0.1:8443 ssl",))
REJECT_400 = "http 400 No required SSL certificate was sent"


def rule(rule_id: str, **params: Any) -> RuleMeta:
    return RuleMeta(id=rule_id, title="t", severity=Severity.HIGH, description="d", remediation="r", params=params)


def attempt(kind: AttemptKind, outcome: str, how: str = "", **kw: Any) -> Attempt:
    return Attempt(kind=kind, outcome=outcome, how=how or outcome, cert_requested=True, **kw)  # type: ignore[arg-type]


def good_cert(**kw: Any) -> ServerCert:
    base = ServerCert("CN=localhost", "CN=root", "2027-12-03T00:00:00Z", 365, True, True, None, "api.test")
    return replace(base, **kw)


def probe(*attempts: Attempt, config_verify: str | None = None, **kw: Any) -> EndpointProbe:
    spec = ProbeSpec(TARGET, "http", LISTEN, config_verify)
    defaults: dict[str, Any] = {
        "cert_requested": True,
        "ca_names": ("CN=root",),
        "tls_version": "TLSv1.3",
        "legacy_not_tested": ("SSLv3",),
        "server_cert": good_cert(),
    }
    defaults.update(kw)
    return EndpointProbe(spec=spec, attempts=attempts, **defaults)


def run(rule_id: str, probes: Sequence[EndpointProbe], **opts: Any) -> list[Finding]:
    ctx = CheckContext(config=None, probes=probes, options=Options(**opts))
    return list(CHECKS[rule_id](ctx, rule(rule_id, max_ca_names=20)))


def only(rule_id: str, p: EndpointProbe, **opts: Any) -> Finding:
    [finding] = run(rule_id, [p], **opts)
    return finding


UNREACHABLE = EndpointProbe(
    spec=ProbeSpec(TARGET), attempts=(attempt("no_cert", "error", "connection refused"),), error="connection refused"
)


def test_every_live_rule_id_has_a_check() -> None:
    assert sorted(CHECKS) == [f"MTLS50{i}" for i in range(1, 10)] + ["MTLS601"]


def test_findings_point_at_the_listen_line_and_the_target() -> None:
    f = only("MTLS501", probe(attempt("no_cert", "rejected", REJECT_400)))
    assert f.location == LISTEN and f.target == TARGET and f.subject == "endpoint 127.0.0.1:8443/api.test"
    assert f.evidence["how"] == REJECT_400 and f.evidence["attempt"] == "no_cert"


@pytest.mark.parametrize(
    ("rule_id", "kind"),
    [("MTLS501", "no_cert"), ("MTLS502", "untrusted"), ("MTLS503", "expired"), ("MTLS504", "revoked")],
)
def test_must_reject_rules(rule_id: str, kind: AttemptKind) -> None:
    assert only(rule_id, probe(attempt(kind, "accepted", "http 200"))).status is Status.FAIL
    assert only(rule_id, probe(attempt(kind, "rejected", "http 400 The SSL certificate error"))).status is Status.PASS
    err = only(rule_id, probe(attempt(kind, "error", "timed out", error="timed out during the TLS handshake")))
    assert err.status is Status.ERROR and "timed out during the TLS handshake" in err.message


@pytest.mark.parametrize(
    ("rule_id", "flag"), [("MTLS503", "--ca-cert"), ("MTLS504", "--revoked-cert"), ("MTLS505", "--client-cert")]
)
def test_rules_needing_user_material_are_skipped_without_it(rule_id: str, flag: str) -> None:
    f = only(rule_id, probe(attempt("no_cert", "rejected", REJECT_400)))
    assert f.status is Status.SKIPPED and flag in f.message


def test_valid_certificate_rejected_fails_mtls505() -> None:
    assert only("MTLS505", probe(attempt("valid", "rejected", "http 400 The SSL certificate error"))).status is (
        Status.FAIL
    )
    assert only("MTLS505", probe(attempt("valid", "accepted", "http 200"))).status is Status.PASS
    assert only("MTLS505", probe(attempt("valid", "error", "x", error="reset"))).status is Status.ERROR


def test_no_cert_served_without_even_a_certificate_request_says_so() -> None:
    a = replace(attempt("no_cert", "accepted", "http 200"), cert_requested=False)
    assert "did not even request" in only("MTLS501", probe(a)).message


def test_unreachable_endpoint_is_an_error_for_509_and_skipped_elsewhere() -> None:
    f = only("MTLS509", UNREACHABLE)
    assert f.status is Status.ERROR and "connection refused" in f.message
    for rule_id in sorted(set(CHECKS) - {"MTLS509"}):
        f = only(rule_id, UNREACHABLE)
        assert f.status is Status.SKIPPED, rule_id
    assert only("MTLS509", probe(attempt("no_cert", "rejected"))).status is Status.PASS


def test_ca_names_empty_many_or_fine() -> None:
    assert only("MTLS506", probe(ca_names=())).status is Status.FAIL
    many = tuple(f"CN=ca{i}" for i in range(21))
    f = only("MTLS506", probe(ca_names=many))
    assert f.status is Status.FAIL and f.evidence["ca_names_count"] == 21
    assert only("MTLS506", probe(ca_names=many[:20])).status is Status.PASS
    assert only("MTLS506", probe(cert_requested=False, ca_names=())).status is Status.SKIPPED


def test_ca_names_limit_comes_from_rule_params() -> None:
    ctx = CheckContext(config=None, probes=[probe(ca_names=("CN=a", "CN=b", "CN=c"))])
    [f] = CHECKS["MTLS506"](ctx, rule("MTLS506", max_ca_names=2))
    assert f.status is Status.FAIL


def test_legacy_versions() -> None:
    f = only("MTLS507", probe(legacy_versions=("TLSv1", "TLSv1.1")))
    assert f.status is Status.FAIL and f.evidence["accepted_versions"] == ["TLSv1", "TLSv1.1"]
    ok = only("MTLS507", probe())
    assert ok.status is Status.PASS and "not tested: SSLv3" in ok.message
    assert only("MTLS507", probe(legacy_not_tested=("SSLv3", "TLSv1", "TLSv1.1"))).status is Status.SKIPPED


def test_server_certificate_problems() -> None:
    assert only("MTLS508", probe()).status is Status.PASS
    expired = only("MTLS508", probe(server_cert=good_cert(days_left=-3)))
    assert expired.status is Status.FAIL and expired.severity is None and "expired" in expired.message
    untrusted = only("MTLS508", probe(server_cert=good_cert(trusted=False, verify_error="self-signed certificate")))
    assert untrusted.status is Status.FAIL and "self-signed" in untrusted.message
    assert only("MTLS508", probe(server_cert=good_cert(name_matches=False))).status is Status.FAIL
    soon = only("MTLS508", probe(server_cert=good_cert(days_left=10)), warn_days=30)
    assert soon.status is Status.FAIL and soon.severity is Severity.MEDIUM
    assert only("MTLS508", probe(server_cert=good_cert(days_left=10)), warn_days=5).status is Status.PASS
    assert only("MTLS508", probe(server_cert=None)).status is Status.SKIPPED


def test_drift_on_config_served_without_certificate() -> None:
    p = probe(attempt("no_cert", "accepted", "http 200"), attempt("untrusted", "rejected"), config_verify="on")
    f = only("MTLS601", p)
    assert f.status is Status.FAIL and "ssl_verify_client on" in f.message


def test_drift_passes_when_live_matches_config() -> None:
    p = probe(attempt("no_cert", "rejected", REJECT_400), attempt("untrusted", "rejected"), config_verify="on")
    assert only("MTLS601", p).status is Status.PASS


def test_drift_only_flags_what_the_mode_itself_forbids() -> None:
    # optional serves requests without a certificate by design (MTLS501/101 cover that) ...
    optional = probe(attempt("no_cert", "accepted"), attempt("untrusted", "rejected"), config_verify="optional")
    assert only("MTLS601", optional).status is Status.PASS
    # ... but Nginx itself answers 400 to an untrusted certificate under optional.
    served = probe(attempt("no_cert", "accepted"), attempt("untrusted", "accepted"), config_verify="optional")
    assert only("MTLS601", served).status is Status.FAIL
    no_ca = probe(attempt("no_cert", "accepted"), attempt("untrusted", "accepted"), config_verify="optional_no_ca")
    assert only("MTLS601", no_ca).status is Status.PASS


def test_drift_when_no_certificate_request_is_sent() -> None:
    p = probe(attempt("no_cert", "rejected", "http 403"), cert_requested=False, config_verify="optional_no_ca")
    f = only("MTLS601", p)
    assert f.status is Status.FAIL and "no CertificateRequest" in f.message


def test_drift_skipped_without_config_or_when_config_does_not_verify() -> None:
    assert only("MTLS601", probe(attempt("no_cert", "accepted"))).status is Status.SKIPPED
    assert only("MTLS601", probe(attempt("no_cert", "accepted"), config_verify="off")).status is Status.SKIPPED


def test_one_finding_per_endpoint_per_rule() -> None:
    probes = [probe(attempt("no_cert", "rejected")), UNREACHABLE, probe(attempt("no_cert", "accepted"))]
    for rule_id in CHECKS:
        assert len(run(rule_id, probes)) == 3, rule_id
