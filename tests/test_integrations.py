"""CI integrations run the real tool: the GitHub action's script, the pre-commit hook's entry."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import yaml
from click.testing import CliRunner

from mtls_audit.cli import cli

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "fixtures" / "demo"


def _env_with_cli(tmp_path: Path) -> dict[str, str]:
    """PATH with an `mtls-audit` that runs this checkout, installed or not."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shim = bindir / "mtls-audit"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m mtls_audit "$@"\n', encoding="utf-8")
    shim.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_action_inputs_reach_the_scan_through_env_only() -> None:
    action = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
    assert action["runs"]["using"] == "composite"
    scan = next(s for s in action["runs"]["steps"] if s.get("id") == "scan")
    assert "${{ inputs" not in scan["run"]  # no expression spliced into shell text
    assert set(action["inputs"]) >= {"paths", "targets", "fail-on", "format"}
    for name in ("paths", "targets", "fail-on", "format", "output", "args"):
        assert f"${{{{ inputs.{name} }}}}" in scan["env"].values()


def test_action_script_writes_valid_sarif_and_fails_the_job(tmp_path: Path) -> None:
    out = tmp_path / "mtls.sarif"
    gh_out = tmp_path / "gh_output"
    env = _env_with_cli(tmp_path) | {
        "MTLS_AUDIT_PATHS": f"{DEMO}\n",
        "MTLS_AUDIT_FAIL_ON": "high",
        "MTLS_AUDIT_FORMAT": "sarif",
        "MTLS_AUDIT_OUTPUT": str(out),
        "MTLS_AUDIT_ARGS": "--nginx-version 1.24.0",
        "GITHUB_OUTPUT": str(gh_out),
    }
    proc = subprocess.run(["bash", str(ROOT / "ci" / "action-scan.sh")], env=env, capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    sarif = json.loads(out.read_text(encoding="utf-8"))
    assert sarif["version"] == "2.1.0" and sarif["runs"][0]["results"]
    assert "exit-code=1" in gh_out.read_text(encoding="utf-8")
    # the version flag from `args` reached the scan: MTLS107 is judged, not skipped
    assert "skipped" not in {
        r.get("kind") for r in sarif["runs"][0]["results"] if r["ruleId"] == "MTLS107"
    }


def test_action_script_passes_with_fail_on_never(tmp_path: Path) -> None:
    env = _env_with_cli(tmp_path) | {
        "MTLS_AUDIT_PATHS": str(DEMO),
        "MTLS_AUDIT_FAIL_ON": "never",
        "MTLS_AUDIT_FORMAT": "junit",
        "MTLS_AUDIT_OUTPUT": str(tmp_path / "junit.xml"),
    }
    proc = subprocess.run(["bash", str(ROOT / "ci" / "action-scan.sh")], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "junit.xml").read_text(encoding="utf-8").startswith("<?xml")


def test_pre_commit_hook_is_config_only_and_runs() -> None:
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert hook["pass_filenames"] is False
    argv = shlex.split(hook["entry"])
    assert argv[:2] == ["mtls-audit", "scan"] and "--no-probe" in argv
    # what pre-commit runs: entry + args (the user's config path)
    res = CliRunner().invoke(cli, [*argv[1:], str(DEMO / "nginx.conf")])
    assert res.exit_code == 1
    assert res.stdout.splitlines()[-1].startswith("mtls-audit: ")


def test_no_probe_opens_no_connection_even_with_targets() -> None:
    res = CliRunner().invoke(cli, ["scan", str(DEMO), "--no-probe", "--target", "127.0.0.1:1", "--format", "json"])
    doc = json.loads(res.stdout)
    assert doc["inputs"]["targets"] == []
    assert not [r for r in doc["results"] if r["rule_id"].startswith("MTLS5")]
