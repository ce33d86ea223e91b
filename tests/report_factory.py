"""Realistic reports for renderer tests, built from the model alone (no engine, no network).

`sample_report()` holds one of everything a renderer must cope with: a pass, a failure at every
severity, an error, a skip, inline and baseline suppressions, a live-only result (target, no
location), a drift result (both), nested evidence with tuples, sets and enums, and messages with
unicode, XML-special and terminal-control characters quoted from a hostile server.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from jsonschema.validators import validator_for

from mtls_audit.model import (
    Report,
    Result,
    RuleMeta,
    Severity,
    SourceLocation,
    Status,
    Suppression,
    Target,
    fingerprint,
)
from mtls_audit.schema import load_report_schema

NGINX_DOCS = "https://nginx.org/en/docs/http/ngx_http_ssl_module.html"

API_SERVER = SourceLocation(
    file="conf.d/api.conf",
    line=7,
    server_name=("api.internal",),
    listen=("443 ssl",),
)
API_TARGET = Target(host="127.0.0.1", port=8443, sni="api.internal")

HOSTILE_DN = 'CN=evil\x1b[2J\x1b[31m\u202eNOTE,O=<Lab> & "Co"\x00'
"""A subject DN a malicious server could present: screen clear, colour, bidi override, NUL."""


def rule(
    rule_id: str,
    title: str,
    severity: Severity,
    *,
    kind: str = "config",
    cwe: tuple[int, ...] = (),
    tags: tuple[str, ...] = (),
    remediation: str | None = None,
    references: tuple[str, ...] = (f"{NGINX_DOCS}#ssl_verify_client",),
) -> RuleMeta:
    """A catalog entry with the documentation fields filled the way rules/*.yaml fill them."""
    return RuleMeta(
        id=rule_id,
        title=title,
        severity=severity,
        description=f"{title}. Nginx behaviour that makes this matter is described here.",
        remediation=remediation or f"Fix {rule_id} in the server block:\n\n    ssl_verify_client on;\n",
        references=references,
        compliance={"NIST-800-52r2": ("3.5",), "OWASP-ASVS-5.0": ("12.1.3",)},
        tags=tags,
        cwe=cwe,
        kind=kind,
        source=f"rules/{rule_id}.yaml",
    )


RULES: dict[str, RuleMeta] = {
    r.id: r
    for r in (
        rule(
            "MTLS101",
            "Optional client verification without a $ssl_client_verify check",
            Severity.CRITICAL,
            cwe=(295, 306),
            tags=("mtls", "nginx"),
            remediation=(
                "Reject requests whose client certificate did not verify.\n"
                "\n"
                "    if ($ssl_client_verify != SUCCESS) {\n"
                "        return 403;\n"
                "    }\n"
                "\n"
                "Or make verification mandatory with `ssl_verify_client on`."
            ),
        ),
        rule("MTLS104", "Client verification without a CA", Severity.HIGH),
        rule("MTLS105", "ssl_verify_depth out of range", Severity.LOW),
        rule("MTLS107", "CVE-2025-23419 session resumption bypass", Severity.HIGH, cwe=(287,)),
        rule("MTLS201", "Referenced trust file missing", Severity.HIGH, references=()),
        rule("MTLS206", "No revocation checking", Severity.MEDIUM, cwe=(299,)),
        rule("MTLS301", "Upstream TLS not verified", Severity.HIGH, cwe=(295,)),
        rule("MTLS302", "Upstream without client certificate", Severity.LOW),
        rule("MTLS501", "Request without client certificate served", Severity.CRITICAL, kind="live"),
        rule("MTLS506", "CertificateRequest CA names", Severity.LOW, kind="live"),
        rule("MTLS509", "Endpoint could not be probed", Severity.HIGH, kind="live"),
        rule("MTLS601", "Config verifies clients, endpoint does not", Severity.HIGH, kind="drift"),
    )
}


def result(
    rule_id: str,
    status: Status,
    subject: str,
    message: str,
    *,
    location: SourceLocation | None = None,
    target: Target | None = None,
    evidence: Mapping[str, Any] | None = None,
    severity: Severity | None = None,
    suppressed: Suppression | None = None,
) -> Result:
    """A Result as the engine would build it: metadata from the rule, fingerprint from subject."""
    meta = RULES[rule_id]
    return Result(
        rule_id=rule_id,
        title=meta.title,
        severity=severity or meta.severity,
        status=status,
        message=message,
        remediation=meta.remediation,
        location=location,
        target=target,
        evidence=evidence or {},
        references=meta.references,
        compliance=meta.compliance,
        fingerprint=fingerprint(rule_id, subject),
        subject=subject,
        suppressed=suppressed,
    )


def sample_results() -> list[Result]:
    """Deliberately out of order, so renderers must sort."""
    at = SourceLocation
    return [
        result(
            "MTLS104",
            Status.PASS,
            "server api.internal :443",
            "ssl_client_certificate is set",
            location=at("conf.d/api.conf", 9, ("api.internal",), ("443 ssl",)),
        ),
        result(
            "MTLS206",
            Status.FAIL,
            "server api.internal :443",
            "neither ssl_crl nor ssl_ocsp is set",
            location=at("conf.d/api.conf", 8, ("api.internal",), ("443 ssl",)),
            suppressed=Suppression("inline", "revocation via short-lived certs"),
        ),
        result(
            "MTLS105",
            Status.FAIL,
            "server api.internal :443",
            "ssl_verify_depth 9 is deeper than any chain in the CA set (2)",
            location=at("conf.d/api.conf", 10, ("api.internal",), ("443 ssl",)),
            evidence={"depth": 9, "longest_chain": 2},
        ),
        result(
            "MTLS101",
            Status.FAIL,
            "server api.internal :443 location /admin",
            'location "/admin" serves requests with $ssl_client_verify != SUCCESS '
            "(<optional> & unchecked) — café ✓",
            location=at("conf.d/api.conf", 14, ("api.internal",), ("443 ssl",)),
            evidence={
                "ssl_verify_client": "optional",
                "guards": [],
                "locations": ({"path": "/admin", "line": 14, "guarded": False},),
            },
        ),
        result(
            "MTLS301",
            Status.FAIL,
            "proxy_pass https://backend in server api.internal :443",
            "proxy_pass https://backend without proxy_ssl_verify on",
            location=at("conf.d/api.conf", 21, ("api.internal",), ("443 ssl",)),
        ),
        result(
            "MTLS302",
            Status.FAIL,
            "proxy_pass https://backend in server api.internal :443",
            "upstream TLS sends no client certificate",
            location=at("conf.d/api.conf", 21, ("api.internal",), ("443 ssl",)),
            suppressed=Suppression("baseline", "accepted in review 2026-11"),
        ),
        result(
            "MTLS506",
            Status.FAIL,
            f"endpoint {API_TARGET}",
            f"CertificateRequest lists a CA named {HOSTILE_DN}",
            target=API_TARGET,
            severity=Severity.INFO,
            evidence={"ca_names": (HOSTILE_DN,), "count": 1},
        ),
        result(
            "MTLS107",
            Status.SKIPPED,
            "server api.internal :443",
            "nginx version unknown; pass --nginx-version to evaluate",
            location=API_SERVER,
        ),
        result(
            "MTLS509",
            Status.ERROR,
            "endpoint [::1]:9443",
            "connection refused",
            target=Target(host="::1", port=9443),
            evidence={"error": "ConnectionRefusedError", "attempts": 3, "timeout_s": 5.0},
        ),
        result(
            "MTLS501",
            Status.FAIL,
            f"endpoint {API_TARGET}",
            "a request without a client certificate got HTTP 200",
            target=API_TARGET,
            evidence={
                "request": {"path": "/", "client_cert": None},
                "response": {"status": 200, "headers": {"server": "nginx/1.22.1"}},
                "tls_versions": frozenset({"TLSv1.3", "TLSv1.2"}),
                "severity_seen": Severity.CRITICAL,
            },
        ),
        result(
            "MTLS601",
            Status.FAIL,
            "server api.internal :443 live",
            "the config verifies clients but the endpoint served a request without a certificate",
            location=API_SERVER,
            target=API_TARGET,
        ),
        result(
            "MTLS201",
            Status.PASS,
            "file /etc/nginx/ca.pem",
            "/etc/nginx/ca.pem is readable",
            location=at("/etc/nginx/nginx.conf", 30),
        ),
    ]


def make_report(
    results: Sequence[Result] | None = None,
    *,
    rules: Sequence[RuleMeta] | None = None,
    fail_on: str = "high",
) -> Report:
    """A report around `results` (the sample set by default) with the whole catalog."""
    return Report(
        tool_version="0.1.0",
        started_at="2026-12-03T16:00:00Z",
        finished_at="2026-12-03T16:00:02Z",
        configs=("/etc/nginx/nginx.conf",),
        targets=(str(API_TARGET), "[::1]:9443"),
        results=tuple(sample_results() if results is None else results),
        rules=tuple(RULES.values() if rules is None else rules),
        fail_on=fail_on,
    )


def sample_report(fail_on: str = "high") -> Report:
    """The report most tests render: see the module docstring for what it holds."""
    return make_report(fail_on=fail_on)


def empty_report() -> Report:
    """A run where no rule applied: every format must still be valid."""
    return make_report([], rules=[])


SARIF_SCHEMA_PATH = Path(__file__).resolve().parents[1].parent / "shared/schemas/sarif-schema-2.1.0.json"
"""The official OASIS schema, read-only beside the checkout; never copied into the repo."""


def validate_sarif(log: Any) -> None:
    """Raise unless `log` is valid SARIF 2.1.0; skip where the schema is not at hand, except in CI."""
    if not SARIF_SCHEMA_PATH.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"official SARIF schema not found at {SARIF_SCHEMA_PATH} (CI must have ../shared)")
        pytest.skip(f"official SARIF schema not found at {SARIF_SCHEMA_PATH}")
    schema = json.loads(SARIF_SCHEMA_PATH.read_text(encoding="utf-8"))
    validator_cls = validator_for(schema)  # draft-04, as its "$schema" says
    validator_cls.check_schema(schema)
    validator_cls(schema, format_checker=validator_cls.FORMAT_CHECKER).validate(log)


def validate_report_json(document: Any) -> None:
    """Raise unless `document` is valid against the report schema shipped in the package."""
    Draft202012Validator(load_report_schema(), format_checker=Draft202012Validator.FORMAT_CHECKER).validate(
        document
    )
