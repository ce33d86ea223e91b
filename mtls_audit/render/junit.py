"""JUnit XML, for CI systems that show test results (Jenkins, GitLab, Azure Pipelines).

Each rule's verdict on one subject is a test case, grouped in one suite per rule family, so a CI
page reads "MTLS1xx: 9 tests, 2 failures". Passes are always included, whatever `show_passed`
says: a compliance reviewer needs to see the controls that held. Suppressed failures are
reported as skipped with their reason: forgiven, but not hidden.

ElementTree escapes markup but writes control characters raw, and no XML parser reads those back,
so every text that may quote a server (messages, subjects, evidence) goes through `safe_text`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict

from ..model import Report, Result, Status, sorted_results
from . import rule_catalog, safe_text, where


def render(
    report: Report,
    *,
    show_passed: bool = False,
    color: bool = False,
    verbose: bool = False,
) -> str:
    """One `<testsuite>` per family in ID order; test cases worst first within each."""
    catalog = rule_catalog(report)
    families: dict[str, list[Result]] = defaultdict(list)
    for result in sorted_results(report.results):
        families[catalog[result.rule_id].family].append(result)

    root = ET.Element("testsuites", name="mtls-audit")
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    for family in sorted(families):
        suite = ET.SubElement(root, "testsuite", name=family)
        counts = dict.fromkeys(totals, 0)
        for result in families[family]:
            counts["tests"] += 1
            outcome = _testcase(suite, result)
            if outcome:
                counts[outcome] += 1
        for key, n in counts.items():
            suite.set(key, str(n))
            totals[key] += n
    for key, n in totals.items():
        root.set(key, str(n))

    ET.indent(root)
    # Non-ASCII as character references: the bytes then match the declaration whatever
    # encoding the file or pipe is written with (ASCII is a subset of UTF-8).
    body = ET.tostring(root, encoding="us-ascii", xml_declaration=False).decode("ascii")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{body}\n'


def _testcase(suite: ET.Element, result: Result) -> str | None:
    """Add one `<testcase>`; return which suite counter it adds to besides `tests`."""
    name = f"{result.rule_id} {result.subject}".strip()
    case = ET.SubElement(
        suite,
        "testcase",
        classname=safe_text(f"mtls-audit.{result.rule_id}"),
        name=safe_text(name),
    )
    if result.suppressed is not None:
        reason = f"suppressed ({result.suppressed.kind}): {result.suppressed.reason}"
        ET.SubElement(case, "skipped", message=safe_text(reason))
        return "skipped"
    if result.status is Status.SKIPPED:
        ET.SubElement(case, "skipped", message=safe_text(result.message))
        return "skipped"
    if result.status is Status.FAIL:
        failure = ET.SubElement(
            case, "failure", message=safe_text(result.message), type=result.severity.value
        )
        failure.text = safe_text(_details(result))
        return "failures"
    if result.status is Status.ERROR:
        error = ET.SubElement(case, "error", message=safe_text(result.message), type="error")
        error.text = safe_text(_details(result))
        return "errors"
    return None


def _details(result: Result) -> str:
    """The body a CI page shows when the case is expanded: what, where, and how to fix it."""
    lines = [
        f"{result.rule_id} ({result.severity.value}): {result.title}",
        result.message,
        f"where: {where(result)}",
    ]
    if result.remediation:
        lines.extend(["", "Remediation:", result.remediation])
    return "\n".join(lines)
