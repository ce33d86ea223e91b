"""Markdown for pull-request comments: verdict first, fixes, collapsed passes, inert quotes."""

from __future__ import annotations

import re

from report_factory import HOSTILE_DN, sample_report

from mtls_audit.model import Status
from mtls_audit.render.markdown import md, render


def test_summary_then_failures_then_collapsed_passes() -> None:
    report = sample_report()
    text = render(report)
    assert text.startswith("## mtls-audit\n")
    assert "gate: FAIL" in text.splitlines()[2]
    assert text.index("| severity |") < text.index("### How to fix") < text.index("passed</summary>")
    n_pass = sum(1 for r in report.results if r.status is Status.PASS)
    assert f"<details><summary>{n_pass} passed</summary>" in text


def test_each_failing_rule_has_its_remediation_once() -> None:
    report = sample_report()
    text = render(report)
    failing = {r.rule_id for r in report.results if r.counts_against_gate}
    for rid in failing:
        assert text.count(f"<summary><b>{rid}</b>") == 1


def test_quoted_text_cannot_inject_markup() -> None:
    out = md("[click](http://evil) <img src=x> `code` | pipe")
    assert "](" not in out.replace("\\](", "")
    assert re.search(r"(?<!\\)<img", out) is None  # only the escaped \<img remains
    assert "\\|" in out
    assert "\x1b" not in md(HOSTILE_DN)
