"""The terminal table: worst first, passes on request, safe to print, summary last."""

from __future__ import annotations

import re

from report_factory import HOSTILE_DN, make_report, sample_report, sample_results

from mtls_audit.model import Status
from mtls_audit.render.table import remediation_hint, render, summary_line

ANSI = re.compile(r"\x1b\[[0-9;]*m")
SUMMARY = (
    "mtls-audit: 6 failed (2 critical, 2 high, 1 low, 1 info), 1 error, 2 passed, 1 skipped,"
    " 2 suppressed — gate: FAIL (fail-on high)"
)


def _row_order(text: str) -> list[str]:
    return re.findall(r"^\S+\s+(MTLS\d{3})\s", text, flags=re.MULTILINE)


def test_summary_line_is_the_last_line() -> None:
    lines = render(sample_report()).splitlines()
    assert lines[-1] == SUMMARY
    assert lines[-2] == ""


def test_summary_counts_each_result_once_and_names_the_gate() -> None:
    report = make_report([r for r in sample_results() if r.status is Status.PASS])
    assert summary_line(report) == (
        "mtls-audit: 0 failed, 0 errors, 2 passed, 0 skipped, 0 suppressed — gate: PASS (fail-on high)"
    )


def test_summary_reports_gate_pass_when_failures_are_below_fail_on() -> None:
    report = make_report(
        [r for r in sample_results() if r.rule_id in ("MTLS105", "MTLS104")], fail_on="medium"
    )
    assert summary_line(report).endswith(
        "1 failed (1 low), 0 errors, 1 passed, 0 skipped, 0 suppressed — gate: PASS (fail-on medium)"
    )


def test_failures_and_errors_come_before_skips_suppressions_and_passes() -> None:
    order = _row_order(render(sample_report(), show_passed=True))
    assert order == [
        "MTLS509",  # error
        "MTLS101",  # critical fails
        "MTLS501",
        "MTLS301",  # high
        "MTLS601",
        "MTLS105",  # low
        "MTLS506",  # info
        "MTLS107",  # skipped
        "MTLS104",  # passes
        "MTLS201",
        "MTLS206",  # suppressed last
        "MTLS302",
    ]


def test_passes_are_hidden_unless_show_passed() -> None:
    hidden = render(sample_report())
    assert "MTLS104" not in hidden and "MTLS201" not in hidden
    shown = render(sample_report(), show_passed=True)
    assert "MTLS104" in shown and "MTLS201" in shown


def test_columns_and_where() -> None:
    text = render(sample_report())
    assert text.splitlines()[0].split() == ["severity", "rule", "status", "where", "message"]
    assert re.search(r"^critical\s+MTLS101\s+fail\s+conf\.d/api\.conf:14\s", text, re.MULTILINE)
    assert re.search(r"^critical\s+MTLS501\s+fail\s+127\.0\.0\.1:8443/api\.internal\s", text, re.M)
    assert re.search(r"^high\s+MTLS509\s+error\s+\[::1\]:9443\s", text, re.MULTILINE)
    assert "conf.d/api.conf:7 (127.0.0.1:8443/api.internal)" in text


def test_failing_rows_show_the_first_line_of_the_remediation() -> None:
    text = render(sample_report())
    assert "fix: Reject requests whose client certificate did not verify." in text
    assert "return 403;" not in text  # only the first line


def test_suppressed_rows_are_marked_with_the_reason() -> None:
    text = render(sample_report())
    assert "suppressed (revocation via short-lived certs)" in text
    assert "suppressed (accepted in review 2026-11)" in text


def test_no_escape_codes_without_color_even_from_hostile_evidence() -> None:
    for verbose in (False, True):
        text = render(sample_report(), color=False, verbose=verbose, show_passed=True)
        assert "\x1b" not in text
        assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e]", text)
    assert HOSTILE_DN[:6] in render(sample_report())  # the DN is shown, defanged
    assert "CN=evil\\x1b[2J\\x1b[31m\\u202eNOTE" in render(sample_report())


def test_color_paints_severity_status_and_gate_only() -> None:
    text = render(sample_report(), color=True)
    assert "\x1b[1;31mcritical\x1b[0m" in text
    assert "\x1b[1;31mFAIL\x1b[0m" in text
    assert ANSI.sub("", text) == render(sample_report(), color=False)


def test_verbose_adds_evidence() -> None:
    assert "evidence:" not in render(sample_report())
    text = render(sample_report(), verbose=True)
    assert "evidence:" in text
    assert '  tls_versions: ["TLSv1.2", "TLSv1.3"]' in text
    assert "  severity_seen: critical" in text


def test_report_with_nothing_to_show_still_has_the_summary() -> None:
    passes_only = make_report([r for r in sample_results() if r.status is Status.PASS])
    assert render(passes_only).startswith("No failing, erroring or skipped results.\n\n")
    assert render(make_report([])).startswith("No results")
    assert render(make_report([])).splitlines()[-1].startswith("mtls-audit: 0 failed")


def test_hint_joins_wrapped_prose_and_stops_at_the_first_sentence() -> None:
    text = (
        "Use `ssl_verify_client on;` where every request needs a certificate. Where only\n"
        "some paths need one, check it:\n```nginx\nssl_verify_client optional;\n```\n"
    )
    assert remediation_hint(text) == "Use `ssl_verify_client on;` where every request needs a certificate."


def test_hint_drops_the_colon_that_introduces_a_snippet() -> None:
    text = (
        "Set the depth to the longest chain your client certificates\n"
        "really have:\n```nginx\nssl_verify_depth 2;\n```\n"
    )
    assert remediation_hint(text) == "Set the depth to the longest chain your client certificates really have"


def test_hint_keeps_version_numbers_whole() -> None:
    text = "Upgrade to Nginx 1.26.3 / 1.27.4 or newer. Until then split the sockets."
    assert remediation_hint(text) == "Upgrade to Nginx 1.26.3 / 1.27.4 or newer."


def test_hint_of_a_snippet_only_remediation_is_its_first_directive() -> None:
    text = "```nginx\nssl_verify_client on;\nssl_client_certificate /etc/nginx/ca.pem;\n```\n"
    assert remediation_hint(text) == "ssl_verify_client on;"
    assert remediation_hint("") == ""


def test_skipped_rows_are_listed_only_on_request() -> None:
    report = sample_report()
    assert any(r.status is Status.SKIPPED for r in report.results)
    skipped_ids = {r.rule_id for r in report.results if r.status is Status.SKIPPED}
    failing_ids = {r.rule_id for r in report.results if r.status in (Status.FAIL, Status.ERROR)}
    only_skipped = skipped_ids - failing_ids
    assert only_skipped
    default = render(report)
    assert "skipped" in default.splitlines()[-1]  # still counted in the summary
    for rid in only_skipped:
        assert rid not in "\n".join(default.splitlines()[:-1])
        assert rid in render(report, show_passed=True)
        assert rid in render(report, verbose=True)
