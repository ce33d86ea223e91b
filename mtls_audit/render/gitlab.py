"""GitLab Code Quality report (`--format gitlab`): a JSON array of issues for merge requests.

GitLab shows these in the merge request widget and the diff. Only failing results that count
(errors and unsuppressed failures) are listed: Code Quality has no notion of a pass, and a
suppressed finding listed there would nag reviewers about an accepted risk.
"""

from __future__ import annotations

import json
from typing import Any

from ..model import Report, Result, Severity, Status, sorted_results
from . import repo_path, where

# Code Quality severities: info, minor, major, critical, blocker.
SEVERITY = {
    Severity.CRITICAL: "blocker",
    Severity.HIGH: "critical",
    Severity.MEDIUM: "major",
    Severity.LOW: "minor",
    Severity.INFO: "info",
}


def render(report: Report, *, show_passed: bool = False, color: bool = False, verbose: bool = False) -> str:
    issues = [issue(r, report) for r in sorted_results(report.results) if r.counts_against_gate]
    return json.dumps(issues, indent=2) + "\n"


def issue(r: Result, report: Report) -> dict[str, Any]:
    """One Code Quality issue; live-only results point at the first config or at `-`."""
    loc = r.location
    desc = f"{r.rule_id}: {r.message}" + (f" [{r.target}]" if r.target and loc else "")
    return {
        "type": "issue",
        "check_name": r.rule_id,
        "description": desc if r.status is not Status.ERROR else f"{desc} (could not be checked)",
        "content": {"body": r.remediation},
        "categories": ["Security"],
        "severity": "blocker" if r.status is Status.ERROR else SEVERITY[r.severity],
        "fingerprint": r.fingerprint,
        "location": {
            "path": repo_path(report, loc) if loc else where(r),
            "lines": {"begin": loc.line if loc else 1},
        },
    }
