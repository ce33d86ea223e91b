"""Run scans on fixture configs and read the `# ruleid: ID` markers (semgrep style).

A marker sits on the line right above the directive a rule must point at. A fixture's first
lines may hold `# args: ...` with extra scan options (scope, Nginx version).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from mtls_audit.cli import cli

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures" / "nginx"
MARK_RE = re.compile(r"#\s*ruleid:\s*(?P<ids>[A-Z0-9, ]+)")
ARGS_RE = re.compile(r"^#\s*args:\s*(?P<args>.*)$")


def fixture_main(path: Path) -> Path:
    return path / "nginx.conf" if path.is_dir() else path


def fixture_files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*.conf")) if path.is_dir() else [path]


def fixture_args(path: Path) -> list[str]:
    args: list[str] = []
    for line in fixture_main(path).read_text(encoding="utf-8").splitlines()[:3]:
        m = ARGS_RE.match(line.strip())
        if m:
            args += shlex.split(m.group("args"))
    return args


def expected_marks(path: Path, rule_id: str) -> set[tuple[str, int]]:
    """(display file, line) of each line right after a `# ruleid:` marker naming the rule."""
    base = fixture_main(path).parent
    out: set[tuple[str, int]] = set()
    for f in fixture_files(path):
        lines = f.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            m = MARK_RE.search(line)
            if m and rule_id in [x.strip() for x in m.group("ids").split(",")]:
                out.add((str(f.relative_to(base)), i + 2))
    return out


def scan_json(path: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    """Scan a config through the real CLI and return (exit code, parsed JSON report)."""
    args = ["scan", str(fixture_main(path)), "--format", "json", *fixture_args(path), *extra]
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code in (0, 1), f"exit {res.exit_code}: {res.output}"
    return res.exit_code, json.loads(res.stdout)


def failing(report: dict[str, Any], rule_id: str) -> set[tuple[str, int]]:
    return {
        (r["location"]["file"], r["location"]["line"])
        for r in report["results"]
        if r["rule_id"] == rule_id and r["status"] == "fail" and r["location"]
    }
