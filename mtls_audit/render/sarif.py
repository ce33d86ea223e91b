"""SARIF 2.1.0, for code-scanning dashboards (GitHub, GitLab, Azure DevOps).

Only failures and errors become SARIF results: dashboards treat every result as an alert, and a
pass there would be noise. Suppressed failures stay in, carrying `suppressions`, so the dashboard
shows them as dismissed with the reason rather than losing them. The rule table is built from the
catalog, so help text, `security-severity` and CWE tags come from the same YAML as the docs.
"""

from __future__ import annotations

import json
import re
import textwrap
from typing import Any
from urllib.parse import quote

from ..model import Report, Result, RuleMeta, Severity, Status, jsonable, sorted_results
from . import is_nginx_line, repo_path, rule_catalog
from .json_ import target_dict

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA_URI = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
INFORMATION_URI: str | None = None
"""The project's home page for `tool.driver.informationUri`; omitted until there is one."""
FINGERPRINT_KEY = "mtlsAudit/v1"
"""Bump the suffix if `model.fingerprint` ever changes, so dashboards do not match old to new."""

SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}
"""GitHub maps these CVSS-like scores to its critical/high/medium/low labels (>=9, >=7, >=4)."""

LEVELS = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}

_SUPPRESSION_KINDS = {"inline": "inSource", "baseline": "external"}


def render(
    report: Report,
    *,
    show_passed: bool = False,
    color: bool = False,
    verbose: bool = False,
) -> str:
    """`show_passed` is ignored: SARIF consumers would raise an alert for each pass."""
    return json.dumps(sarif_log(report), indent=2) + "\n"


def sarif_log(report: Report) -> dict[str, Any]:
    """The whole log as plain JSON values, for tests and for embedding."""
    catalog = rule_catalog(report)
    index = {rule_id: i for i, rule_id in enumerate(catalog)}
    driver: dict[str, Any] = {"name": "mtls-audit", "version": report.tool_version}
    if INFORMATION_URI:
        driver["informationUri"] = INFORMATION_URI
    driver["rules"] = [rule_descriptor(rule) for rule in catalog.values()]

    invocation: dict[str, Any] = {"executionSuccessful": True}
    if report.started_at:
        invocation["startTimeUtc"] = report.started_at
    if report.finished_at:
        invocation["endTimeUtc"] = report.finished_at

    return {
        "$schema": SARIF_SCHEMA_URI,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {"driver": driver},
                "invocations": [invocation],
                "results": [
                    sarif_result(r, index[r.rule_id], report)
                    for r in sorted_results(report.results)
                    if r.status in (Status.FAIL, Status.ERROR)
                ],
            }
        ],
    }


def rule_descriptor(rule: RuleMeta) -> dict[str, Any]:
    """One `reportingDescriptor`: what a dashboard shows when someone opens the alert."""
    tags = ["security", *(f"external/cwe/cwe-{n}" for n in rule.cwe), *rule.tags]
    descriptor: dict[str, Any] = {
        "id": rule.id,
        "name": camel_case(rule.title) or rule.id,
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.description},
        "help": {
            "text": f"{rule.description}\n\nRemediation:\n{rule.remediation}",
            "markdown": f"{rule.description}\n\n**Remediation**\n\n{fence_nginx(rule.remediation)}",
        },
    }
    if rule.references:
        descriptor["helpUri"] = rule.references[0]
    descriptor["defaultConfiguration"] = {"level": LEVELS[rule.severity]}
    descriptor["properties"] = {
        "security-severity": SECURITY_SEVERITY[rule.severity],
        "tags": list(dict.fromkeys(tags)),
        "precision": "high",
    }
    return descriptor


def sarif_result(result: Result, rule_index: int, report: Report | None = None) -> dict[str, Any]:
    """One alert. A status `error` is always level `error`: the control could not be checked."""
    level = "error" if result.status is Status.ERROR else LEVELS[result.severity]
    out: dict[str, Any] = {
        "ruleId": result.rule_id,
        "ruleIndex": rule_index,
        "level": level,
        "message": {"text": result.message},
    }
    location = _location(result, report)
    if location:
        out["locations"] = [location]
    out["partialFingerprints"] = {FINGERPRINT_KEY: result.fingerprint}
    if result.suppressed is not None:
        out["suppressions"] = [
            {
                "kind": _SUPPRESSION_KINDS.get(result.suppressed.kind, "external"),
                "justification": result.suppressed.reason,
            }
        ]
    out["properties"] = {
        "evidence": jsonable(dict(result.evidence)),
        "target": target_dict(result.target),
    }
    return out


def _location(result: Result, report: Report | None = None) -> dict[str, Any]:
    """Physical when the config names a line; logical (the endpoint) when something was probed.

    A live-only result has no file to point at, so the endpoint is its only location.
    """
    location: dict[str, Any] = {}
    if result.location is not None:
        location["physicalLocation"] = {
            "artifactLocation": artifact_location(
                repo_path(report, result.location) if report is not None else result.location.file
            ),
            "region": {"startLine": result.location.line},
        }
    if result.target is not None:
        name = str(result.target)
        location["logicalLocations"] = [{"name": name, "fullyQualifiedName": name, "kind": "resource"}]
    return location


_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:/")


def artifact_location(file: str) -> dict[str, str]:
    """A URI for a config path: relative ones against `%SRCROOT%`, absolute ones as `file:` URIs.

    SARIF wants URIs, so backslashes become slashes and unsafe characters are percent-encoded.
    """
    path = file.replace("\\", "/")
    if path.startswith("/"):
        return {"uri": "file://" + quote(path, safe="/")}
    if _WINDOWS_DRIVE.match(path):
        return {"uri": "file:///" + quote(path, safe="/:")}
    return {"uri": quote(path, safe="/"), "uriBaseId": "%SRCROOT%"}


def camel_case(title: str) -> str:
    """`reportingDescriptor.name` is meant to be an identifier-like word, not a sentence."""
    return "".join(word[0].upper() + word[1:] for word in re.findall(r"[A-Za-z0-9]+", title))


def fence_nginx(text: str) -> str:
    """Put runs of Nginx config lines in an ```nginx fence so dashboards render them as code.

    Blank lines inside a run stay in it. Text that already has a fence is left as written.
    """
    if "```" in text:
        return text
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        trailing = 0
        while run and not run[-1].strip():
            run.pop()
            trailing += 1
        if run:
            out.extend(["```nginx", *textwrap.dedent("\n".join(run)).splitlines(), "```"])
        out.extend([""] * trailing)
        run.clear()

    for line in text.splitlines():
        if is_nginx_line(line) or (run and not line.strip()):
            run.append(line)
        else:
            flush()
            out.append(line)
    flush()
    return "\n".join(out)
