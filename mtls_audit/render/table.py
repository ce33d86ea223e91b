"""The terminal table: what a person running the scan reads first.

Failures and errors come first so the top of the screen is what needs fixing; passes are hidden
unless asked for because a clean config produces dozens of them. The last line always carries the
counts and the gate verdict, so `| tail -1` in a CI log says whether the job failed and why.

Messages and evidence can quote what a probed server sent (certificate DNs, CA names), so every
cell is stripped of control and bidi characters: a hostile endpoint must not be able to move the
cursor, recolour the table or reorder text in the auditor's terminal.
"""

from __future__ import annotations

import json
import re
from collections import Counter

from tabulate import tabulate

from ..model import Report, Result, Severity, Status, jsonable, sorted_results
from . import is_nginx_line, safe_text, where

HEADERS = ("severity", "rule", "status", "where", "message")
MESSAGE_WIDTH = 72
"""Wrap the message column so a row stays readable in an 80-120 column terminal."""

_RESET = "\x1b[0m"
_SEVERITY_COLOURS = {
    Severity.CRITICAL: "1;31",  # bold red
    Severity.HIGH: "31",  # red
    Severity.MEDIUM: "33",  # yellow
    Severity.LOW: "36",  # cyan
    Severity.INFO: "2",  # dim
}
_STATUS_COLOURS = {
    Status.FAIL: "31",
    Status.ERROR: "1;35",  # bold magenta: "could not look" must not read as a mere warning
    Status.SKIPPED: "2",
    Status.PASS: "32",
}
_SUPPRESSED_COLOUR = "2"
_SENTENCE = re.compile(r"(.+?[.!?])\s")


def render(
    report: Report,
    *,
    show_passed: bool = False,
    color: bool = False,
    verbose: bool = False,
) -> str:
    """Rows worst first, then the one-line summary; `color=False` emits no escape codes at all."""
    # Skipped results ("not judged: endpoint unreachable", "give --nginx-version") are counted in
    # the summary line but listed only on request, like passes: a refused port otherwise buries
    # its one error under a skipped row per rule.
    quiet = (Status.PASS,) if verbose else (Status.PASS, Status.SKIPPED)
    shown = [r for r in sorted_results(report.results) if show_passed or r.status not in quiet]
    if shown:
        rows = [_row(r, color=color, verbose=verbose) for r in shown]
        body = tabulate(
            rows,
            headers=HEADERS,
            tablefmt="simple",
            maxcolwidths=[None, None, None, None, MESSAGE_WIDTH],
            disable_numparse=True,
        )
    elif report.results:
        body = "No failing, erroring or skipped results."
    else:
        body = "No results: no rule applied to the given inputs."
    return f"{body}\n\n{summary_line(report, color=color)}\n"


def summary_line(report: Report, *, color: bool = False) -> str:
    """Counts that add up to the number of results: a suppressed result counts only as suppressed.

    `failed` and its severity breakdown are the unsuppressed failures, the same numbers the gate
    is judged on (`Report.summary()["fail_by_severity"]`).
    """
    summary = report.summary()
    by_severity: dict[str, int] = summary["fail_by_severity"]
    counts = Counter("suppressed" if r.suppressed is not None else r.status.value for r in report.results)
    failed = sum(by_severity.values())
    detail = ", ".join(
        _paint(f"{n} {sev}", _SEVERITY_COLOURS[Severity(sev)], color) for sev, n in by_severity.items() if n
    )
    errors = counts[Status.ERROR.value]
    gate_fails = summary["gate"] == "fail"
    gate = _paint("FAIL" if gate_fails else "PASS", "1;31" if gate_fails else "1;32", color)
    return (
        f"mtls-audit: {failed} failed{f' ({detail})' if detail else ''}, "
        f"{errors} error{'' if errors == 1 else 's'}, "
        f"{counts[Status.PASS.value]} passed, {counts[Status.SKIPPED.value]} skipped, "
        f"{counts['suppressed']} suppressed — gate: {gate} (fail-on {summary['fail_on']})"
    )


def _row(result: Result, *, color: bool, verbose: bool) -> list[str]:
    status_colour = _SUPPRESSED_COLOUR if result.suppressed is not None else _STATUS_COLOURS[result.status]
    lines = [_line(result.message)]
    if result.suppressed is not None:
        lines.append(f"suppressed ({_line(result.suppressed.reason)})")
    elif result.status in (Status.FAIL, Status.ERROR):
        hint = remediation_hint(result.remediation)
        if hint:
            lines.append(f"fix: {_line(hint)}")
    if verbose:
        lines.extend(_evidence_lines(result))
    return [
        _paint(result.severity.value, _SEVERITY_COLOURS[result.severity], color),
        _line(result.rule_id),
        _paint(result.status.value, status_colour, color),
        _line(where(result)),
        "\n".join(lines),
    ]


def _evidence_lines(result: Result) -> list[str]:
    if not result.evidence:
        return []
    lines = ["evidence:"]
    for key, value in jsonable(dict(result.evidence)).items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        lines.append(f"  {_line(key)}: {_line(text)}")
    return lines


def remediation_hint(remediation: str) -> str:
    """The first sentence of the remediation's opening prose, to fit one row.

    Catalog remediations are wrapped prose followed by a fenced Nginx snippet, so the first
    physical line can be half a sentence or the fence itself. Prose lines are joined up to the
    first blank line or snippet; a remediation that is only a snippet gives its first line.
    """
    prose: list[str] = []
    first_code = ""
    in_fence = False
    for raw in remediation.splitlines():
        line = raw.strip()
        is_code = in_fence or line.startswith("```") or is_nginx_line(line)
        if is_code or not line:
            if prose:
                break
            if line.startswith("```"):
                in_fence = not in_fence
            elif is_code:
                first_code = first_code or line
            continue
        prose.append(line)
    text = " ".join(prose)
    sentence = _SENTENCE.match(text)
    # A trailing colon introduced the snippet, which the row does not show.
    return (sentence.group(1) if sentence else text).rstrip(":") or first_code


def _line(text: str) -> str:
    return safe_text(text, keep_newlines=False)


def _paint(text: str, code: str, color: bool) -> str:
    return f"\x1b[{code}m{text}{_RESET}" if color else text
