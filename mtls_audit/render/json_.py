"""The JSON report: the shape in docs/report-contract.md, which users' scripts parse.

Key order follows the contract (not sorted) so a human diffing two reports reads them the way the
documentation shows them. Output is ASCII-only (non-ASCII is escaped): the bytes are then the same
whatever encoding the file or pipe it is written to uses, and `json.loads` gives the text back.
Every report this writes validates against `mtls_audit/schema/report.schema.json`.
"""

from __future__ import annotations

import json
from typing import Any

from ..model import (
    Report,
    Result,
    SourceLocation,
    Suppression,
    Target,
    jsonable,
    sorted_results,
)


def render(
    report: Report,
    *,
    show_passed: bool = False,
    color: bool = False,
    verbose: bool = False,
) -> str:
    """Passes are always included, whatever `show_passed` says: compliance needs the evidence."""
    return json.dumps(report_dict(report), indent=2, sort_keys=False) + "\n"


def report_dict(report: Report) -> dict[str, Any]:
    """The report as plain JSON values; shared so other formats embed the same shapes."""
    return {
        "schema_version": report.schema_version,
        "tool": {"name": "mtls-audit", "version": report.tool_version},
        "started_at": report.started_at,
        "finished_at": report.finished_at,
        "inputs": {"configs": list(report.configs), "targets": list(report.targets)},
        "summary": jsonable(report.summary()),
        "results": [result_dict(r) for r in sorted_results(report.results)],
    }


def result_dict(result: Result) -> dict[str, Any]:
    """One entry of `results[]`, keys in contract order."""
    return {
        "rule_id": result.rule_id,
        "title": result.title,
        "severity": result.severity.value,
        "status": result.status.value,
        "message": result.message,
        "remediation": result.remediation,
        "location": location_dict(result.location),
        "target": target_dict(result.target),
        "evidence": jsonable(dict(result.evidence)),
        "references": list(result.references),
        "compliance": jsonable(dict(result.compliance)),
        "fingerprint": result.fingerprint,
        "suppressed": suppression_dict(result.suppressed),
    }


def location_dict(location: SourceLocation | None) -> dict[str, Any] | None:
    """`null` for live-only results, so scripts can tell them apart without a type field."""
    if location is None:
        return None
    return {
        "file": location.file,
        "line": location.line,
        "server_name": list(location.server_name),
        "listen": list(location.listen),
    }


def target_dict(target: Target | None) -> dict[str, Any] | None:
    """`null` for config-only results; `sni` stays `null` (not "") when none was sent."""
    if target is None:
        return None
    return {"host": target.host, "port": target.port, "sni": target.sni}


def suppression_dict(suppression: Suppression | None) -> dict[str, str] | None:
    """Suppressed results stay in the report; this says who forgave them and why."""
    if suppression is None:
        return None
    return {"kind": suppression.kind, "reason": suppression.reason}
