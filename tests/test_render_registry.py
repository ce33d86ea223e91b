"""Every format is registered, tested, cheap to import, and a pure function of the report."""

from __future__ import annotations

import copy
import itertools
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
from report_factory import empty_report, sample_report, validate_report_json, validate_sarif

from mtls_audit.model import Report
from mtls_audit.render import FORMATS, RENDERERS, get_renderer


def _check_table(text: str) -> None:
    assert text.splitlines()[-1].startswith("mtls-audit: ")


def _check_json(text: str) -> None:
    validate_report_json(json.loads(text))


def _check_sarif(text: str) -> None:
    validate_sarif(json.loads(text))


def _check_junit(text: str) -> None:
    assert ET.fromstring(text.encode()).tag == "testsuites"


def _check_gitlab(text: str) -> None:
    assert isinstance(json.loads(text), list)


def _check_markdown(text: str) -> None:
    assert text.startswith("## mtls-audit\n")


FORMAT_CHECKS: dict[str, Callable[[str], None]] = {
    "table": _check_table,
    "json": _check_json,
    "sarif": _check_sarif,
    "junit": _check_junit,
    "gitlab": _check_gitlab,
    "markdown": _check_markdown,
}
"""One well-formedness check per format; the test files test_render_<format>.py go further."""

REPORTS: dict[str, Callable[[], Report]] = {
    "sample": sample_report,
    "empty": empty_report,
    "clean": lambda: sample_report(fail_on="never"),
}


def test_every_registered_format_has_a_check_and_a_test_file() -> None:
    assert set(RENDERERS) == set(FORMAT_CHECKS)
    here = Path(__file__).parent
    for name in RENDERERS:
        assert (here / f"test_render_{name}.py").is_file(), f"no tests for format {name!r}"


def test_formats_are_the_contracts_four_then_ci_formats_with_table_first() -> None:
    assert FORMATS == ("table", "json", "sarif", "junit", "gitlab", "markdown")
    assert list(RENDERERS) == list(FORMATS)


@pytest.mark.parametrize("report_name", REPORTS)
@pytest.mark.parametrize("fmt", FORMAT_CHECKS)
def test_every_format_renders_well_formed_output(fmt: str, report_name: str) -> None:
    text = RENDERERS[fmt](REPORTS[report_name]())
    assert isinstance(text, str)
    assert text.endswith("\n")
    FORMAT_CHECKS[fmt](text)


@pytest.mark.parametrize("fmt", FORMATS)
def test_lazy_entry_and_real_renderer_agree(fmt: str) -> None:
    report = sample_report()
    assert RENDERERS[fmt](report, verbose=True) == get_renderer(fmt)(report, verbose=True)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_renderer_accepts_every_option(fmt: str) -> None:
    report = sample_report()
    for show_passed, color, verbose in itertools.product((False, True), repeat=3):
        text = get_renderer(fmt)(report, show_passed=show_passed, color=color, verbose=verbose)
        assert text


@pytest.mark.parametrize("fmt", FORMATS)
def test_rendering_leaves_the_report_unchanged_and_is_deterministic(fmt: str) -> None:
    report = sample_report()
    before = copy.deepcopy(report)
    first = get_renderer(fmt)(report, show_passed=True, color=True, verbose=True)
    second = get_renderer(fmt)(report, show_passed=True, color=True, verbose=True)
    assert report == before
    assert first == second


def test_unknown_format_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="table, json, sarif, junit"):
        get_renderer("html")


def test_importing_the_package_loads_no_format() -> None:
    code = (
        "import sys, mtls_audit.render\n"
        "heavy = [m for m in ('tabulate', 'xml.etree.ElementTree', 'mtls_audit.render.table',"
        " 'mtls_audit.render.json_', 'mtls_audit.render.sarif', 'mtls_audit.render.junit')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
