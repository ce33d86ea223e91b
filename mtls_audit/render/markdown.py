"""Markdown for a pull-request comment (`--format markdown`).

A reviewer reads the verdict first, then what to fix with the snippet that fixes it; passes go
in a collapsed block because they are evidence, not news. Text from probed servers is escaped so
a hostile certificate subject cannot inject links or markup into the comment.
"""

from __future__ import annotations

import re

from ..model import Report, Result, Status, sorted_results
from . import safe_text, where

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")


def md(text: str) -> str:
    """Escape Markdown and HTML so quoted text renders literally."""
    return _MD_SPECIAL.sub(r"\\\1", safe_text(text, keep_newlines=False))


def render(report: Report, *, show_passed: bool = False, color: bool = False, verbose: bool = False) -> str:
    s = report.summary()
    gate = "❌ **gate: FAIL**" if s["gate"] == "fail" else "✅ **gate: pass**"
    by_sev = ", ".join(f"{n} {k}" for k, n in s["fail_by_severity"].items() if n)
    lines = [
        "## mtls-audit",
        "",
        f"{gate} (fail-on `{report.fail_on}`) — {s['fail']} failed"
        + (f" ({by_sev})" if by_sev else "")
        + f", {s['error']} errors, {s['pass']} passed, {s['skipped']} skipped, {s['suppressed']} suppressed",
        "",
    ]
    ordered = sorted_results(report.results)
    failing = [r for r in ordered if r.status in (Status.FAIL, Status.ERROR) and r.suppressed is None]
    if failing:
        lines += ["| severity | rule | status | where | message |", "|---|---|---|---|---|"]
        lines += [_row(r) for r in failing]
        lines.append("")
        lines.append("### How to fix")
        seen: set[str] = set()
        for r in failing:
            if r.rule_id in seen:
                continue
            seen.add(r.rule_id)
            lines += ["", f"<details><summary><b>{r.rule_id}</b> {md(r.title)}</summary>", "", r.remediation, "", "</details>"]
        lines.append("")
    suppressed = [r for r in ordered if r.suppressed is not None]
    if suppressed:
        lines += [f"<details><summary>{len(suppressed)} suppressed</summary>", ""]
        lines += [f"- `{r.rule_id}` {md(where(r))}: {md(r.message)} — {r.suppressed.kind if r.suppressed else ''}: "
                  f"{md(r.suppressed.reason if r.suppressed else '')}" for r in suppressed]
        lines += ["", "</details>", ""]
    passed = [r for r in ordered if r.status is Status.PASS]
    if passed:
        lines += [f"<details><summary>{len(passed)} passed</summary>", ""]
        lines += [f"- `{r.rule_id}` {md(where(r))}: {md(r.message)}" for r in passed]
        lines += ["", "</details>", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _row(r: Result) -> str:
    return f"| {r.severity.value} | `{r.rule_id}` | {r.status.value} | {md(where(r))} | {md(r.message)} |"
