"""The JSON report keeps the contract's shape and validates against the shipped schema."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest
from jsonschema import Draft202012Validator
from report_factory import (
    API_TARGET,
    HOSTILE_DN,
    empty_report,
    make_report,
    sample_report,
    validate_report_json,
)
from report_factory import result as make_result

from mtls_audit.model import FAIL_ON_CHOICES, Severity, Status, sorted_results
from mtls_audit.render.json_ import render, report_dict
from mtls_audit.schema import load_report_schema

CONTRACT_TOP_KEYS = [
    "schema_version",
    "tool",
    "started_at",
    "finished_at",
    "inputs",
    "summary",
    "results",
]
CONTRACT_RESULT_KEYS = [
    "rule_id",
    "title",
    "severity",
    "status",
    "message",
    "remediation",
    "location",
    "target",
    "evidence",
    "references",
    "compliance",
    "fingerprint",
    "suppressed",
]


def _doc(**kwargs: Any) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(render(sample_report(**kwargs)))
    return loaded


def _by_rule(doc: dict[str, Any], rule_id: str) -> dict[str, Any]:
    matches: list[dict[str, Any]] = [r for r in doc["results"] if r["rule_id"] == rule_id]
    (found,) = matches
    return found


@pytest.mark.parametrize("fail_on", FAIL_ON_CHOICES)
def test_report_validates_against_the_shipped_schema(fail_on: str) -> None:
    validate_report_json(_doc(fail_on=fail_on))


def test_empty_report_validates_against_the_shipped_schema() -> None:
    validate_report_json(json.loads(render(empty_report())))


def test_output_round_trips() -> None:
    text = render(sample_report())
    assert json.loads(text) == report_dict(sample_report())


def test_each_result_is_one_line_for_line_diffs() -> None:
    text = render(sample_report())
    doc = json.loads(text)
    result_lines = [ln for ln in text.splitlines() if ln.startswith('    {"rule_id"')]
    assert len(result_lines) == len(doc["results"])
    assert [json.loads(ln.rstrip(",")) for ln in result_lines] == doc["results"]


def test_output_is_indented_ascii_with_one_trailing_newline() -> None:
    text = render(sample_report())
    assert text.startswith('{\n  "schema_version": "1.0",')
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert text.isascii()


def test_keys_follow_the_contract_order() -> None:
    doc = _doc()
    assert list(doc) == CONTRACT_TOP_KEYS
    assert doc["tool"] == {"name": "mtls-audit", "version": "0.1.0"}
    assert doc["inputs"] == {
        "configs": ["/etc/nginx/nginx.conf"],
        "targets": ["127.0.0.1:8443/api.internal", "[::1]:9443"],
    }
    for result in doc["results"]:
        assert list(result) == CONTRACT_RESULT_KEYS


def test_summary_is_the_models_summary() -> None:
    report = sample_report()
    assert _doc()["summary"] == report.summary()


def test_results_follow_sorted_results_and_include_passes() -> None:
    report = sample_report()
    doc = json.loads(render(report, show_passed=False))
    assert [r["fingerprint"] for r in doc["results"]] == [
        r.fingerprint for r in sorted_results(report.results)
    ]
    assert {r["status"] for r in doc["results"]} == {s.value for s in Status}


def test_live_only_result_has_null_location_and_a_target() -> None:
    result = _by_rule(_doc(), "MTLS501")
    assert result["location"] is None
    assert result["target"] == {"host": "127.0.0.1", "port": 8443, "sni": "api.internal"}


def test_target_without_sni_has_null_sni() -> None:
    assert _by_rule(_doc(), "MTLS509")["target"] == {"host": "::1", "port": 9443, "sni": None}


def test_config_only_result_has_a_location_and_null_target() -> None:
    result = _by_rule(_doc(), "MTLS101")
    assert result["target"] is None
    assert result["location"] == {
        "file": "conf.d/api.conf",
        "line": 14,
        "server_name": ["api.internal"],
        "listen": ["443 ssl"],
    }


def test_suppressed_results_carry_kind_and_reason() -> None:
    doc = _doc()
    assert _by_rule(doc, "MTLS206")["suppressed"] == {
        "kind": "inline",
        "reason": "revocation via short-lived certs",
    }
    assert _by_rule(doc, "MTLS302")["suppressed"] == {
        "kind": "baseline",
        "reason": "accepted in review 2026-11",
    }
    assert _by_rule(doc, "MTLS101")["suppressed"] is None


def test_evidence_sets_tuples_and_enums_become_json_values() -> None:
    evidence = _by_rule(_doc(), "MTLS501")["evidence"]
    assert evidence == {
        "request": {"path": "/", "client_cert": None},
        "response": {"status": 200, "headers": {"server": "nginx/1.22.1"}},
        "tls_versions": ["TLSv1.2", "TLSv1.3"],
        "severity_seen": "critical",
    }


def test_compliance_and_references_are_lists() -> None:
    result = _by_rule(_doc(), "MTLS101")
    assert result["compliance"] == {"NIST-800-52r2": ["3.5"], "OWASP-ASVS-5.0": ["12.1.3"]}
    assert result["references"] == [
        "https://nginx.org/en/docs/http/ngx_http_ssl_module.html#ssl_verify_client"
    ]


def test_unicode_and_control_characters_survive_the_round_trip() -> None:
    doc = _doc()
    assert _by_rule(doc, "MTLS101")["message"].endswith("(<optional> & unchecked) — café ✓")
    assert _by_rule(doc, "MTLS506")["evidence"]["ca_names"] == [HOSTILE_DN]
    assert _by_rule(doc, "MTLS506")["target"]["sni"] == API_TARGET.sni


# --- the schema itself ---------------------------------------------------------------------


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = load_report_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_schema_enums_match_the_model() -> None:
    defs = load_report_schema()["$defs"]
    assert defs["severity"]["enum"] == [s.value for s in Severity]
    assert defs["status"]["enum"] == [s.value for s in Status]
    assert defs["summary"]["properties"]["fail_on"]["enum"] == list(FAIL_ON_CHOICES)


def test_load_report_schema_returns_a_fresh_copy() -> None:
    first = load_report_schema()
    first["properties"].clear()
    assert load_report_schema()["properties"]


def _broken(edit: str) -> dict[str, Any]:
    doc = copy.deepcopy(_doc())
    result = next(r for r in doc["results"] if r["location"] is not None)
    if edit == "extra top-level key":
        doc["extra"] = 1
    elif edit == "extra result key":
        result["line"] = 3
    elif edit == "unknown status":
        result["status"] = "warn"
    elif edit == "unknown severity":
        result["severity"] = "severe"
    elif edit == "missing result key":
        del result["fingerprint"]
    elif edit == "missing summary key":
        del doc["summary"]["gate"]
    elif edit == "line zero":
        result["location"]["line"] = 0
    elif edit == "extra location key":
        result["location"]["column"] = 1
    elif edit == "unknown suppression kind":
        result["suppressed"] = {"kind": "waiver", "reason": "x"}
    elif edit == "port out of range":
        result["target"] = {"host": "h", "port": 70000, "sni": None}
    elif edit == "non-hex fingerprint":
        result["fingerprint"] = "not-a-fingerprint"
    else:  # pragma: no cover - a typo in the parameter list
        raise AssertionError(edit)
    return doc


@pytest.mark.parametrize(
    "edit",
    [
        "extra top-level key",
        "extra result key",
        "unknown status",
        "unknown severity",
        "missing result key",
        "missing summary key",
        "line zero",
        "extra location key",
        "unknown suppression kind",
        "port out of range",
        "non-hex fingerprint",
    ],
)
def test_schema_rejects_reports_off_the_contract(edit: str) -> None:
    with pytest.raises(jsonschema.ValidationError):
        validate_report_json(_broken(edit))


def test_fast_result_lines_equal_plain_json_dumps() -> None:
    """The per-rule encoding cache must produce exactly json.dumps(result_dict(r))."""
    from mtls_audit.model import json_default
    from mtls_audit.render.json_ import _result_line, result_dict

    cache: dict = {}  # type: ignore[type-arg]
    locations: dict[int, str] = {}
    for r in sample_report().results:
        expected = json.dumps(result_dict(r, raw_evidence=True), default=json_default)
        assert _result_line(r, cache, locations) == expected
        assert _result_line(r, cache, locations) == expected  # from the caches


@pytest.mark.parametrize("count", [999, 1000, 1001, 2000, 2500])
def test_streamed_report_is_valid_at_every_batch_boundary(count: int) -> None:
    """The writer flushes results a thousand at a time; no count may leave a stray comma."""
    from mtls_audit.model import SourceLocation

    loc = SourceLocation("conf.d/a.conf", 3, ("a.internal",), ("443 ssl",))
    results = [
        make_result("MTLS101", Status.PASS, f"server s{i}", f"ok {i}", location=loc if i % 2 else None, evidence={"i": i})
        for i in range(count)
    ]
    doc = json.loads(render(make_report(results)))
    assert len(doc["results"]) == count
    assert sorted(r["evidence"]["i"] for r in doc["results"]) == list(range(count))
    validate_report_json(doc)
