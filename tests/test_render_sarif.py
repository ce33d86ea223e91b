"""SARIF 2.1.0 that code-scanning dashboards accept: valid, with rules, levels and suppressions."""

from __future__ import annotations

import json
from typing import Any

import pytest
from report_factory import (
    API_TARGET,
    RULES,
    empty_report,
    make_report,
    sample_report,
    sample_results,
    validate_sarif,
)

from mtls_audit.model import Status
from mtls_audit.render.sarif import artifact_location, camel_case, fence_nginx, render


def _run(**kwargs: Any) -> dict[str, Any]:
    log = json.loads(render(sample_report(**kwargs)))
    run: dict[str, Any] = log["runs"][0]
    return run


def _result(run: dict[str, Any], rule_id: str) -> dict[str, Any]:
    matches: list[dict[str, Any]] = [r for r in run["results"] if r["ruleId"] == rule_id]
    (found,) = matches
    return found


def _rule(run: dict[str, Any], rule_id: str) -> dict[str, Any]:
    matches: list[dict[str, Any]] = [r for r in run["tool"]["driver"]["rules"] if r["id"] == rule_id]
    (found,) = matches
    return found


def test_sample_report_is_valid_sarif() -> None:
    validate_sarif(json.loads(render(sample_report(), show_passed=True)))


def test_empty_report_is_valid_sarif() -> None:
    validate_sarif(json.loads(render(empty_report())))


def test_report_whose_rules_are_missing_from_the_catalog_is_still_valid() -> None:
    log = json.loads(render(make_report(rules=[])))
    validate_sarif(log)
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]


def test_one_run_with_the_tool_and_a_successful_invocation() -> None:
    log = json.loads(render(sample_report()))
    assert log["version"] == "2.1.0"
    assert len(log["runs"]) == 1
    driver = log["runs"][0]["tool"]["driver"]
    assert (driver["name"], driver["version"]) == ("mtls-audit", "0.1.0")
    assert log["runs"][0]["invocations"] == [
        {
            "executionSuccessful": True,
            "startTimeUtc": "2026-12-03T16:00:00Z",
            "endTimeUtc": "2026-12-03T16:00:02Z",
        }
    ]


def test_rules_are_the_catalog_in_order_and_rule_index_points_at_them() -> None:
    run = _run()
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == list(RULES)
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]


def test_rule_descriptor_carries_the_catalog_documentation() -> None:
    meta = RULES["MTLS101"]
    rule = _rule(_run(), "MTLS101")
    assert rule["name"] == "OptionalClientVerificationWithoutASslClientVerifyCheck"
    assert rule["shortDescription"] == {"text": meta.title}
    assert rule["fullDescription"] == {"text": meta.description}
    assert rule["help"]["text"] == f"{meta.description}\n\nRemediation:\n{meta.remediation}"
    assert rule["helpUri"] == meta.references[0]
    assert rule["defaultConfiguration"] == {"level": "error"}
    assert rule["properties"] == {
        "security-severity": "9.5",
        "tags": ["security", "external/cwe/cwe-295", "external/cwe/cwe-306", "mtls", "nginx"],
        "precision": "high",
    }


def test_help_markdown_fences_the_nginx_snippet() -> None:
    markdown = _rule(_run(), "MTLS101")["help"]["markdown"]
    assert "```nginx\nif ($ssl_client_verify != SUCCESS) {\n    return 403;\n}\n```" in markdown
    assert markdown.startswith(RULES["MTLS101"].description)


def test_rule_without_references_has_no_help_uri() -> None:
    assert "helpUri" not in _rule(_run(), "MTLS201")


@pytest.mark.parametrize(
    ("rule_id", "score", "level"),
    [
        ("MTLS101", "9.5", "error"),
        ("MTLS301", "8.0", "error"),
        ("MTLS206", "5.5", "warning"),
        ("MTLS105", "3.0", "note"),
    ],
)
def test_security_severity_and_default_level_follow_the_rule_severity(
    rule_id: str, score: str, level: str
) -> None:
    rule = _rule(_run(), rule_id)
    assert rule["properties"]["security-severity"] == score
    assert rule["defaultConfiguration"]["level"] == level


def test_only_failures_and_errors_become_results() -> None:
    run = _run(fail_on="never")
    expected = [r for r in sample_results() if r.status in (Status.FAIL, Status.ERROR)]
    assert sorted(r["partialFingerprints"]["mtlsAudit/v1"] for r in run["results"]) == sorted(
        r.fingerprint for r in expected
    )
    assert {"MTLS104", "MTLS201", "MTLS107"}.isdisjoint(r["ruleId"] for r in run["results"])


@pytest.mark.parametrize(
    ("rule_id", "level"),
    [
        ("MTLS101", "error"),  # critical
        ("MTLS301", "error"),  # high
        ("MTLS206", "warning"),  # medium
        ("MTLS105", "note"),  # low
        ("MTLS506", "note"),  # severity overridden to info
        ("MTLS509", "error"),  # status error
    ],
)
def test_result_level_follows_severity_and_status(rule_id: str, level: str) -> None:
    assert _result(_run(), rule_id)["level"] == level


def test_results_carry_partial_fingerprints_and_properties() -> None:
    (source,) = [r for r in sample_results() if r.rule_id == "MTLS501"]
    result = _result(_run(), "MTLS501")
    assert result["partialFingerprints"] == {"mtlsAudit/v1": source.fingerprint}
    assert result["message"] == {"text": source.message}
    assert result["properties"]["target"] == {
        "host": "127.0.0.1",
        "port": 8443,
        "sni": "api.internal",
    }
    assert result["properties"]["evidence"]["tls_versions"] == ["TLSv1.2", "TLSv1.3"]


def test_suppressed_results_carry_suppressions() -> None:
    run = _run()
    assert _result(run, "MTLS206")["suppressions"] == [
        {"kind": "inSource", "justification": "revocation via short-lived certs"}
    ]
    assert _result(run, "MTLS302")["suppressions"] == [
        {"kind": "external", "justification": "accepted in review 2026-11"}
    ]
    assert "suppressions" not in _result(run, "MTLS101")


def test_config_result_points_at_file_and_line_under_srcroot() -> None:
    (location,) = _result(_run(), "MTLS101")["locations"]
    assert location == {
        "physicalLocation": {
            "artifactLocation": {"uri": "conf.d/api.conf", "uriBaseId": "%SRCROOT%"},
            "region": {"startLine": 14},
        }
    }


def test_live_only_result_has_a_logical_location_and_no_physical_one() -> None:
    (location,) = _result(_run(), "MTLS501")["locations"]
    assert location == {
        "logicalLocations": [
            {"name": str(API_TARGET), "fullyQualifiedName": str(API_TARGET), "kind": "resource"}
        ]
    }


def test_drift_result_has_both_the_listen_line_and_the_endpoint() -> None:
    (location,) = _result(_run(), "MTLS601")["locations"]
    assert location["physicalLocation"]["region"] == {"startLine": 7}
    assert location["logicalLocations"][0]["name"] == "127.0.0.1:8443/api.internal"


@pytest.mark.parametrize(
    ("file", "expected"),
    [
        ("conf.d/api.conf", {"uri": "conf.d/api.conf", "uriBaseId": "%SRCROOT%"}),
        ("conf.d\\win.conf", {"uri": "conf.d/win.conf", "uriBaseId": "%SRCROOT%"}),
        ("sites/my site.conf", {"uri": "sites/my%20site.conf", "uriBaseId": "%SRCROOT%"}),
        ("/etc/nginx/nginx.conf", {"uri": "file:///etc/nginx/nginx.conf"}),
        ("C:\\nginx\\conf\\nginx.conf", {"uri": "file:///C:/nginx/conf/nginx.conf"}),
    ],
)
def test_artifact_uris_use_forward_slashes_and_srcroot_only_when_relative(
    file: str, expected: dict[str, str]
) -> None:
    assert artifact_location(file) == expected


@pytest.mark.parametrize(
    ("title", "name"),
    [
        ("No revocation checking", "NoRevocationChecking"),
        ("ssl_verify_depth out of range", "SslVerifyDepthOutOfRange"),
        ("CVE-2025-23419 session resumption", "CVE202523419SessionResumption"),
        ("---", ""),
    ],
)
def test_camel_case_names(title: str, name: str) -> None:
    assert camel_case(title) == name


def test_fence_leaves_prose_and_existing_fences_alone() -> None:
    assert fence_nginx("Turn it on.\nThen reload.") == "Turn it on.\nThen reload."
    fenced = "Set:\n```nginx\nssl_verify_client on;\n```"
    assert fence_nginx(fenced) == fenced


def test_fence_wraps_an_unindented_snippet_that_follows_a_sentence() -> None:
    text = "Check revocation:\nssl_crl /etc/nginx/crl.pem;\n\nReload Nginx."
    assert fence_nginx(text) == (
        "Check revocation:\n```nginx\nssl_crl /etc/nginx/crl.pem;\n```\n\nReload Nginx."
    )
