"""Terminal behaviour: colour only where it helps, quiet and verbose modes, help with examples."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from fixture_support import ROOT

from mtls_audit.cli import cli, use_color

DEMO = str(ROOT / "fixtures" / "demo")


@pytest.mark.parametrize(
    ("fmt", "no_color", "output", "tty", "env", "expected"),
    [
        ("table", False, None, True, {}, True),
        ("table", False, None, False, {}, False),  # piped: no escape codes in logs
        ("table", True, None, True, {}, False),  # --no-color
        ("table", False, None, True, {"NO_COLOR": "1"}, False),
        ("table", False, "out.txt", True, {}, False),  # a file never gets colour
        ("json", False, None, True, {}, False),
    ],
)
def test_colour_only_for_a_table_on_a_terminal(
    fmt: str, no_color: bool, output: str | None, tty: bool, env: dict[str, str], expected: bool
) -> None:
    assert use_color(fmt, no_color, output, tty, env) is expected


def test_quiet_prints_only_the_summary_line() -> None:
    res = CliRunner().invoke(cli, ["scan", DEMO, "--quiet"])
    assert res.exit_code == 1
    lines = res.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mtls-audit: ") and "gate: FAIL" in lines[0]


def test_verbose_adds_evidence() -> None:
    plain = CliRunner().invoke(cli, ["scan", DEMO]).stdout
    verbose = CliRunner().invoke(cli, ["scan", DEMO, "--verbose"]).stdout
    assert len(verbose) > len(plain)
    assert "\x1b[" not in plain + verbose  # CliRunner is not a terminal


@pytest.mark.parametrize("command", [[], ["scan"], ["certs"], ["rules"]])
def test_help_has_examples(command: list[str]) -> None:
    res = CliRunner().invoke(cli, [*command, "--help"])
    assert res.exit_code == 0
    assert "Examples:" in res.stdout
