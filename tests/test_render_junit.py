"""JUnit XML that CI systems parse: one suite per family, the right counts, readable failures."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from report_factory import empty_report, sample_report

from mtls_audit.render.junit import render

COUNTS = ("tests", "failures", "errors", "skipped")


def _root(**kwargs: bool) -> ET.Element:
    return ET.fromstring(render(sample_report(), **kwargs).encode())


def _case(root: ET.Element, rule_id: str) -> ET.Element:
    (found,) = [c for c in root.iter("testcase") if c.get("classname") == f"mtls-audit.{rule_id}"]
    return found


def _counts(element: ET.Element) -> tuple[int, ...]:
    return tuple(int(element.get(key, "-1")) for key in COUNTS)


def test_output_is_well_formed_ascii_xml_with_a_declaration() -> None:
    text = render(sample_report())
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites')
    assert text.isascii()
    ET.fromstring(text.encode())


def test_one_suite_per_rule_family_with_its_counts() -> None:
    suites = {s.get("name"): _counts(s) for s in _root().iter("testsuite")}
    assert suites == {
        # tests, failures, errors, skipped
        "MTLS1xx": (4, 2, 0, 1),  # 101 fail, 105 fail, 107 skipped, 104 pass
        "MTLS2xx": (2, 0, 0, 1),  # 206 suppressed, 201 pass
        "MTLS3xx": (2, 1, 0, 1),  # 301 fail, 302 suppressed
        "MTLS5xx": (3, 2, 1, 0),  # 501 fail, 506 fail, 509 error
        "MTLS6xx": (1, 1, 0, 0),  # 601 fail
    }


def test_testsuites_totals_are_the_sum_of_the_suites() -> None:
    root = _root()
    assert root.tag == "testsuites"
    assert _counts(root) == (12, 6, 1, 3)
    per_suite = [_counts(s) for s in root.iter("testsuite")]
    assert tuple(map(sum, zip(*per_suite, strict=True))) == _counts(root)


def test_passes_are_listed_even_without_show_passed() -> None:
    case = _case(_root(show_passed=False), "MTLS104")
    assert case.get("name") == "MTLS104 server api.internal :443"
    assert list(case) == []


def test_failure_carries_message_severity_and_remediation() -> None:
    case = _case(_root(), "MTLS101")
    assert case.get("name") == "MTLS101 server api.internal :443 location /admin"
    (failure,) = case
    assert failure.tag == "failure"
    assert failure.get("type") == "critical"
    assert failure.get("message") == (
        'location "/admin" serves requests with $ssl_client_verify != SUCCESS '
        "(<optional> & unchecked) — café ✓"
    )
    assert failure.text is not None
    assert "where: conf.d/api.conf:14" in failure.text
    assert "Remediation:\nReject requests whose client certificate did not verify." in failure.text
    assert "if ($ssl_client_verify != SUCCESS) {" in failure.text


def test_status_error_is_an_error_element() -> None:
    (error,) = _case(_root(), "MTLS509")
    assert error.tag == "error"
    assert error.get("message") == "connection refused"
    assert error.text is not None and "where: [::1]:9443" in error.text


def test_skipped_and_suppressed_results_are_skipped_with_the_reason() -> None:
    root = _root()
    (skipped,) = _case(root, "MTLS107")
    assert (skipped.tag, skipped.get("message")) == (
        "skipped",
        "nginx version unknown; pass --nginx-version to evaluate",
    )
    (inline,) = _case(root, "MTLS206")
    assert (inline.tag, inline.get("message")) == (
        "skipped",
        "suppressed (inline): revocation via short-lived certs",
    )
    (baseline,) = _case(root, "MTLS302")
    assert baseline.get("message") == "suppressed (baseline): accepted in review 2026-11"


def test_control_characters_from_a_server_are_escaped_not_written_raw() -> None:
    (failure,) = _case(_root(), "MTLS506")
    message = failure.get("message")
    assert message is not None
    assert "\\x1b[2J" in message and "\\x00" in message and "\\u202e" in message
    assert 'O=<Lab> & "Co"' in message
    assert not any(ord(ch) < 0x20 for ch in message)


def test_empty_report_is_an_empty_testsuites() -> None:
    root = ET.fromstring(render(empty_report()).encode())
    assert _counts(root) == (0, 0, 0, 0)
    assert list(root) == []
