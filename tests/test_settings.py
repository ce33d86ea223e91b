"""`.mtls-audit.toml` / `[tool.mtls-audit]` set scan defaults; flags win; typos are errors."""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from fixture_support import FIXTURES

from mtls_audit.cli import cli

SCOPED = FIXTURES / "MTLS103" / "fire_scope_by_name.conf"


def _scan(tmp_path: Path, *args: str) -> tuple[int, dict[str, object] | None, str]:
    runner = CliRunner()
    with _fresh_dir(tmp_path):
        for name, text in _files.items():
            Path(name).write_text(text, encoding="utf-8")
        res = runner.invoke(cli, [*args[:1], "scan", str(SCOPED), "--format", "json", *args[1:]])
    doc = json.loads(res.stdout) if res.exit_code in (0, 1) else None
    return res.exit_code, doc, res.stderr


_files: dict[str, str] = {}


def _fresh_dir(tmp_path: Path) -> contextlib.chdir[Path]:
    """A new empty working folder under tmp_path (the settings file is looked up from the cwd)."""
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    return contextlib.chdir(folder)


@pytest.fixture(autouse=True)
def _reset() -> None:
    _files.clear()


def _fails(doc: dict[str, object] | None) -> set[str]:
    assert doc is not None
    return {r["rule_id"] for r in doc["results"] if r["status"] == "fail"}  # type: ignore[index, union-attr]


def test_settings_file_sets_scope_and_gate(tmp_path: Path) -> None:
    _files[".mtls-audit.toml"] = 'fail-on = "critical"\nrequire-mtls = ["*.internal"]\n'
    _code, doc, _ = _scan(tmp_path, "--no-settings")
    assert "MTLS103" not in _fails(doc)  # --no-settings: no scope
    _code, doc, _ = _scan(tmp_path, "--settings=.mtls-audit.toml")
    assert "MTLS103" in _fails(doc)
    assert doc is not None and doc["summary"]["fail_on"] == "critical"  # type: ignore[index]


def test_pyproject_table_is_read(tmp_path: Path) -> None:
    _files["pyproject.toml"] = '[project]\nname = "x"\n[tool.mtls-audit]\nrequire-mtls = ["api.*"]\n'
    runner = CliRunner()
    with _fresh_dir(tmp_path):
        Path("pyproject.toml").write_text(_files["pyproject.toml"], encoding="utf-8")
        res = runner.invoke(cli, ["scan", str(SCOPED), "--format", "json"])
    assert "MTLS103" in _fails(json.loads(res.stdout))


def test_command_line_flag_wins_over_settings(tmp_path: Path) -> None:
    _files[".mtls-audit.toml"] = 'fail-on = "critical"\n'
    _, doc, _ = _scan(tmp_path, "--settings=.mtls-audit.toml", "--fail-on", "low")
    assert doc is not None and doc["summary"]["fail_on"] == "low"  # type: ignore[index]


@pytest.mark.parametrize(
    "text",
    ['fail_on = "critical"\n', 'warn-days = "ten"\n', "fail-on = [\n"],
    ids=["unknown-key", "wrong-type", "bad-toml"],
)
def test_bad_settings_exit_2_with_one_line(tmp_path: Path, text: str) -> None:
    _files[".mtls-audit.toml"] = text
    code, _, err = _scan(tmp_path, "--settings=.mtls-audit.toml")
    assert code == 2
    assert err.startswith("mtls-audit: error: .mtls-audit.toml: ")
    assert len(err.strip().splitlines()) == 1
