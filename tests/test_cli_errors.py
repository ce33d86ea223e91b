"""Exit code 2: the scan could not run (report-contract.md).

Each bad input gives exactly one line on stderr, `mtls-audit: error: ...` naming the file (and
line where there is one), never a traceback, and no report or baseline file is written or
overwritten.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from mtls_audit.cli import cli

ROOT = Path(__file__).resolve().parents[1]
FIXTURES_DEMO = ROOT / "fixtures" / "demo"
INVALID = ROOT / "fixtures" / "invalid"

GOOD = "events {}\nhttp {\n    server { listen 80; server_name ok.test; }\n}\n"


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    return root / "nginx.conf"


def missing_config(tmp: Path) -> tuple[list[str], str]:
    return [str(tmp / "nope.conf")], re.escape(f"{tmp / 'nope.conf'}: No such file or directory")


def folder_without_nginx_conf(tmp: Path) -> tuple[list[str], str]:
    (tmp / "etc").mkdir()
    return [str(tmp / "etc")], re.escape(f"{tmp / 'etc'}: folder holds no nginx.conf")


def syntax_error(tmp: Path) -> tuple[list[str], str]:
    return [str(INVALID / "unbalanced_braces.conf")], r"unbalanced_braces\.conf:6: unexpected end of file"


def include_cycle(tmp: Path) -> tuple[list[str], str]:
    main = _write(
        tmp,
        {"nginx.conf": "http {\n    include a.conf;\n}\n", "a.conf": "include b.conf;\n", "b.conf": "include a.conf;\n"},
    )
    return [str(main)], r"b\.conf:1: include cycle: a\.conf -> b\.conf -> a\.conf"


def missing_include(tmp: Path) -> tuple[list[str], str]:
    main = _write(tmp, {"nginx.conf": "events {}\nhttp {\n    include conf.d/api.conf;\n}\n"})
    return [str(main)], r'nginx\.conf:3: include "conf\.d/api\.conf": No such file or directory'


def bad_rules_dir(tmp: Path) -> tuple[list[str], str]:
    main = _write(tmp, {"nginx.conf": GOOD})
    rules = tmp / "rules"
    rules.mkdir()
    (rules / "CUST001.yaml").write_text("id: CUST001\ntitle: [unclosed\n", encoding="utf-8")
    return [str(main), "--rules", str(rules)], re.escape(str(rules / "CUST001.yaml")) + r":\d+: invalid YAML"


def missing_rules_dir(tmp: Path) -> tuple[list[str], str]:
    main = _write(tmp, {"nginx.conf": GOOD})
    return [str(main), "--rules", str(tmp / "no-rules")], r"no-rules: --rules must be a folder"


def bad_nginx_version(tmp: Path) -> tuple[list[str], str]:
    main = _write(tmp, {"nginx.conf": GOOD})
    return [str(main), "--nginx-version", "1.x"], r"--nginx-version: expected X\.Y\.Z, got '1\.x'"


def baseline_not_json(tmp: Path) -> tuple[list[str], str]:
    main = _write(tmp, {"nginx.conf": GOOD})
    bl = tmp / "baseline.json"
    bl.write_text("{not json", encoding="utf-8")
    return [str(main), "--baseline", str(bl)], re.escape(f"{bl}:1: baseline is not valid JSON")


CASES: dict[str, Callable[[Path], tuple[list[str], str]]] = {
    "missing_config": missing_config,
    "folder_without_nginx_conf": folder_without_nginx_conf,
    "syntax_error": syntax_error,
    "include_cycle": include_cycle,
    "missing_include": missing_include,
    "bad_rules_dir": bad_rules_dir,
    "missing_rules_dir": missing_rules_dir,
    "bad_nginx_version": bad_nginx_version,
    "baseline_not_json": baseline_not_json,
}


def run(args: list[str]) -> Result:
    return CliRunner().invoke(cli, ["scan", *args])


def assert_one_line_error(res: Result, pattern: str) -> None:
    assert res.exit_code == 2, (res.exit_code, res.output)
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("mtls-audit: error: "), lines[0]
    assert re.search(pattern, lines[0]), (pattern, lines[0])
    assert "Traceback" not in res.output
    assert res.stdout == ""


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exits_2_with_one_error_line(tmp_path: Path, case: str) -> None:
    args, pattern = CASES[case](tmp_path)
    assert_one_line_error(run(args), pattern)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_creates_no_output_file(tmp_path: Path, case: str) -> None:
    args, pattern = CASES[case](tmp_path)
    out, bl = tmp_path / "out" / "report.json", tmp_path / "out" / "baseline.json"
    out.parent.mkdir()
    res = run([*args, "--format", "json", "--output", str(out), "--write-baseline", str(bl)])
    assert_one_line_error(res, pattern)
    assert os.listdir(out.parent) == []  # no report, no baseline, no leftover temp file


@pytest.mark.parametrize("case", ["syntax_error", "include_cycle", "baseline_not_json"])
def test_bad_input_leaves_an_existing_output_file_untouched(tmp_path: Path, case: str) -> None:
    args, pattern = CASES[case](tmp_path)
    out = tmp_path / "report.json"
    out.write_text('{"previous": true}\n', encoding="utf-8")
    before = out.stat().st_mtime_ns
    assert_one_line_error(run([*args, "--format", "json", "--output", str(out)]), pattern)
    assert out.read_text(encoding="utf-8") == '{"previous": true}\n'
    assert out.stat().st_mtime_ns == before


def test_good_input_writes_the_output_file(tmp_path: Path) -> None:
    # the counterpart of the cases above: the same options do write when the scan runs
    main = _write(tmp_path, {"nginx.conf": GOOD})
    out = tmp_path / "report.json"
    res = run([str(main), "--format", "json", "--output", str(out), "--fail-on", "never"])
    assert res.exit_code == 0, res.output
    assert out.read_text(encoding="utf-8").startswith("{")
    assert res.stdout == ""


def test_module_entry_point_prints_no_traceback(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-m", "mtls_audit", "scan", str(INVALID / "missing_semicolon.conf"), "--output", str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        'mtls-audit: error: missing_semicolon.conf:5: invalid number of arguments in "ssl_verify_client" directive'
    ]
    assert not out.exists()


def test_baseline_is_not_written_when_the_report_cannot_be(tmp_path: Path) -> None:
    """--write-baseline and --output succeed or fail together: nothing half-written."""
    baseline = tmp_path / "b.json"
    res = CliRunner().invoke(
        cli,
        ["scan", str(FIXTURES_DEMO), "--write-baseline", str(baseline), "--output", str(tmp_path / "no" / "r.json")],
    )
    assert res.exit_code == 2
    assert not baseline.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".mtls-audit-")]


def test_console_entry_turns_click_usage_errors_into_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mtls_audit", "scan", "--no-such-flag"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("mtls-audit: error: ")


def _module(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, "-m", "mtls_audit", *args], capture_output=True, text=True, env=env, timeout=60, **kw
    )


def test_process_exit_flushes_all_stdout_and_keeps_the_exit_code() -> None:
    """The console entry ends with os._exit (no heap teardown): what was printed must all arrive."""
    proc = _module("scan", str(FIXTURES_DEMO), "--format", "json")
    assert proc.returncode == 1  # the demo fails the gate
    report = json.loads(proc.stdout)
    assert report["summary"]["gate"] == "fail"
    assert _module("scan", str(FIXTURES_DEMO), "--fail-on", "never").returncode == 0
    assert _module("--version").stdout.startswith("mtls-audit, version ")
    assert _module("--help").returncode == 0


def test_reader_closing_the_pipe_gives_exit_1_and_no_traceback(tmp_path: Path) -> None:
    servers = "".join(
        f"    server {{ listen {8000 + i} ssl; server_name s{i}.test; ssl_verify_client optional; }}\n" for i in range(100)
    )
    main = _write(tmp_path, {"nginx.conf": "events {}\nhttp {\n" + servers + "}\n"})
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    # A report far larger than a pipe's buffer, read for 10 bytes (as `| head -c 10` does).
    proc = subprocess.Popen(
        [sys.executable, "-m", "mtls_audit", "scan", str(main), "--format", "json", "--show-passed", "--fail-on", "never"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(10)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1  # the report did not reach its reader
    assert "Traceback" not in err
    assert "Exception ignored" not in err
