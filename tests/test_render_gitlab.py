"""GitLab Code Quality: the fields GitLab reads, repository paths, only what fails the gate."""

from __future__ import annotations

import json
from dataclasses import replace

from report_factory import sample_report

from mtls_audit.model import SourceLocation
from mtls_audit.render.gitlab import render

REQUIRED = {"description", "check_name", "fingerprint", "severity", "location"}


def test_every_issue_has_the_fields_gitlab_reads() -> None:
    issues = json.loads(render(sample_report()))
    assert issues
    for i in issues:
        assert set(i) >= REQUIRED
        assert i["severity"] in {"info", "minor", "major", "critical", "blocker"}
        assert isinstance(i["location"]["path"], str)
        assert isinstance(i["location"]["lines"]["begin"], int)


def test_only_results_that_fail_the_gate_are_listed() -> None:
    report = sample_report()
    issues = json.loads(render(report))
    expected = {r.fingerprint for r in report.results if r.counts_against_gate}
    assert {i["fingerprint"] for i in issues} == expected
    assert len({i["fingerprint"] for i in issues}) == len(issues)


def test_paths_are_relative_to_the_scan_directory() -> None:
    report = sample_report()
    loc_result = next(r for r in report.results if r.location is not None and r.counts_against_gate)
    moved = replace(
        loc_result,
        location=SourceLocation(file="conf.d/api.conf", line=7, root="/repo/deploy/nginx"),
    )
    report = replace(report, results=(moved,), source_root="/repo")
    (issue,) = json.loads(render(report))
    assert issue["location"]["path"] == "deploy/nginx/conf.d/api.conf"
    assert issue["location"]["lines"]["begin"] == 7
