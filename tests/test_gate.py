"""The gate never fails open: every way a scan can fail to look gives a non-zero exit code.

One test (or parametrized family) per path, all through the CLI (report-contract.md, exit codes):

* a probe ``error`` alone gives 1, even with ``--fail-on never`` (probes fail closed);
* a prober that crashes on one endpoint gives that endpoint an ``error`` (1), not a traceback;
* a check that crashes, in any way, is an ``error`` result carrying its rule ID (1), not a
  traceback, and does not hide the results of other rules;
* a config that cannot be read, or does not parse, gives 2 and writes no report;
* neither a baseline nor an inline ``# mtls-audit: ignore`` can suppress an ``error``.

Each scan's control (the same scan without the broken part) exits 0, so the non-zero code is
caused by exactly the path under test. User rules are written with the documented YAML keys
(id, title, severity, kind, description, remediation, references, compliance, cwe, tags, params).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hostile_peers as hp
import pytest
from click.testing import CliRunner
from hostile_peers import hostile, hostile_pki  # noqa: F401  (fixtures)
from pki import Pki

from mtls_audit import engine
from mtls_audit.cli import cli
from mtls_audit.model import RuleMeta
from mtls_audit.probe import runner
from mtls_audit.probe.types import EndpointProbe, ProbeSpec

ROOT = Path(__file__).resolve().parents[1]
INVALID = ROOT / "fixtures" / "invalid"

CLEAN_CONFIG = "events {}\nhttp {\n    server { listen 80; server_name gate.test; }\n}\n"
"""No TLS server: no built-in rule has anything to judge, so the user rules alone decide."""


_PARSED: dict[tuple[str, int, int], RuleMeta] = {}


@pytest.fixture(autouse=True)
def _parse_each_rule_file_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The built-in catalog's YAML is parsed once per session, not once per in-process scan
    (about 0.3 s each); a rule file that changes (new path, size or mtime) is parsed again."""
    real = engine.parse_rule

    def parse_rule(path: Path) -> RuleMeta:
        st = path.stat()
        key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
        if key not in _PARSED:
            _PARSED[key] = real(path)
        return _PARSED[key]

    monkeypatch.setattr(engine, "parse_rule", parse_rule)


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.stdout)
        return data

    def results(self, rule_id: str) -> list[dict[str, Any]]:
        return [r for r in self.json()["results"] if r["rule_id"] == rule_id]


def scan(*args: str | Path) -> Outcome:
    """``mtls-audit scan ARGS`` in-process; a crash shows up as a traceback in ``stderr``."""
    res = CliRunner().invoke(cli, ["scan", *map(str, args)])
    stderr = res.stderr
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        stderr += "".join(traceback.format_exception(res.exception))
    return Outcome(res.exit_code, res.stdout, stderr)


def scan_process(*args: str | Path) -> Outcome:
    """``python -m mtls_audit scan ARGS`` as a real process: the real exit code and stderr."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(
        [sys.executable, "-m", "mtls_audit", "scan", *map(str, args)],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env=env,
    )  # fmt: skip
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


def closed_port() -> str:
    """``127.0.0.1:PORT`` where nothing listens (bound, read, closed)."""
    with socket.create_server(("127.0.0.1", 0)) as s:
        return f"127.0.0.1:{s.getsockname()[1]}"


def write_config(directory: Path, text: str = CLEAN_CONFIG) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "nginx.conf"
    conf.write_text(text)
    return conf


RULE_YAML = """\
id: {id}
title: Gate test rule {id}
severity: {severity}
kind: {kind}
description: A user rule for the gate tests.
remediation: Fix the check.
references: []
compliance: {{}}
cwe: []
tags: [gate-test]
params: {{}}
"""

CHECKS_PY = '''\
"""User checks for the gate tests: one that works, and each way a check can break."""
from mtls_audit.model import Finding, Status


def passes(ctx, rule):
    return [Finding(rule_id=rule.id, status=Status.PASS, message="fine", subject="gate")]


def fails(ctx, rule):
    return [Finding(rule_id=rule.id, status=Status.FAIL, message="a finding", subject="gate")]


def raises(ctx, rule):
    raise RuntimeError("check blew up")


def raises_midway(ctx, rule):
    yield Finding(rule_id=rule.id, status=Status.PASS, message="fine so far", subject="first")
    raise KeyError("midway")


def not_iterable(ctx, rule):
    return 42


def exits_zero(ctx, rule):
    raise SystemExit(0)


def not_a_finding(ctx, rule):
    return [{{"rule_id": rule.id, "status": "pass"}}]


CHECKS = {{"CUST001": {first}, "CUST002": {second}}}
'''


def write_rules(directory: Path, first: str, second: str = "passes", kind: str = "config") -> Path:
    """``--rules`` folder with CUST001 (``first``) and CUST002 (``second``), both of ``kind``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "CUST001.yaml").write_text(RULE_YAML.format(id="CUST001", severity="high", kind=kind))
    (directory / "CUST002.yaml").write_text(RULE_YAML.format(id="CUST002", severity="low", kind=kind))
    (directory / "gate_checks.py").write_text(CHECKS_PY.format(first=first, second=second))
    return directory


# --- probe errors -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["table", "json", "sarif", "junit"])
def test_probe_error_alone_exits_1_even_with_fail_on_never(fmt: str) -> None:
    out = scan("--target", closed_port(), "--fail-on", "never", "--format", fmt, "--timeout", "1")
    assert out.code == 1, out.stderr
    assert "Traceback" not in out.stderr
    if fmt == "json":
        (mtls509,) = out.results("MTLS509")
        assert (mtls509["status"], mtls509["suppressed"]) == ("error", None)
        summary = out.json()["summary"]
        assert (summary["fail"], summary["error"], summary["gate"]) == (0, 1, "fail")


def test_probe_error_exits_1_as_a_real_process() -> None:
    out = scan_process("--target", closed_port(), "--fail-on", "never", "--format", "json", "--timeout", "1")
    assert out.code == 1 and out.stderr == ""
    assert [r["status"] for r in out.results("MTLS509")] == ["error"]


def test_probe_error_next_to_a_healthy_endpoint_still_exits_1(
    hostile: hp.Peers,  # noqa: F811
    hostile_pki: Pki,  # noqa: F811
) -> None:
    ctx = hp.server_context(hostile_pki, ask_client_cert=True)
    healthy = hostile.start("healthy", hp.tls_then(ctx, hp.nginx_like))
    args = ["--fail-on", "never", "--format", "json", "--timeout", "2", "--trust", str(hostile_pki.root.cert)]
    control = scan("--target", str(healthy.target), *args)
    assert control.code == 0, control.stdout
    out = scan("--target", str(healthy.target), "--target", closed_port(), *args)
    assert out.code == 1
    assert sorted(r["status"] for r in out.results("MTLS509")) == ["error", "pass"]


def test_a_crashing_prober_is_an_endpoint_error_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
    hostile: hp.Peers,  # noqa: F811
    hostile_pki: Pki,  # noqa: F811
) -> None:
    ctx = hp.server_context(hostile_pki, ask_client_cert=True)
    healthy, doomed = (hostile.start(name, hp.tls_then(ctx, hp.nginx_like)) for name in ("healthy", "doomed"))
    real: Callable[..., EndpointProbe] = runner.probe_endpoint

    def probe_endpoint(spec: ProbeSpec, *args: Any, **kwargs: Any) -> EndpointProbe:
        if spec.target.port == doomed.port:
            raise RuntimeError("prober bug")
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(runner, "probe_endpoint", probe_endpoint)
    out = scan(
        "--target", str(healthy.target), "--target", str(doomed.target), "--fail-on", "never",
        "--format", "json", "--timeout", "2", "--trust", str(hostile_pki.root.cert),
    )  # fmt: skip
    assert out.code == 1 and "Traceback" not in out.stderr, out.stderr
    by_port = {r["target"]["port"]: r for r in out.results("MTLS509")}
    assert by_port[doomed.port]["status"] == "error"
    assert by_port[doomed.port]["message"] == "endpoint could not be probed: probe failed: RuntimeError: prober bug"
    assert by_port[healthy.port]["status"] == "pass"  # the other endpoint kept its results


# --- crashed checks ---------------------------------------------------------------------------------


CRASHES = {
    "raises": "check crashed: RuntimeError: check blew up",
    "raises_midway": "check crashed: KeyError: 'midway'",
    "not_iterable": "check crashed: TypeError: ",
    "exits_zero": "check crashed: SystemExit: 0",
}


@pytest.mark.parametrize("crash", sorted(CRASHES))
def test_crashed_check_is_an_error_result_with_its_rule_id(tmp_path: Path, crash: str) -> None:
    conf = write_config(tmp_path / "conf")
    control = scan(conf, "--rules", write_rules(tmp_path / "ok", "passes"), "--fail-on", "never", "--format", "json")
    assert control.code == 0, control.stdout
    out = scan(conf, "--rules", write_rules(tmp_path / "bad", crash), "--fail-on", "never", "--format", "json")
    assert out.code == 1
    assert "Traceback" not in out.stderr and out.stderr == ""
    (result,) = out.results("CUST001")
    assert result["status"] == "error" and result["message"].startswith(CRASHES[crash])
    assert result["severity"] == "high" and result["suppressed"] is None
    assert [r["status"] for r in out.results("CUST002")] == ["pass"]  # the crash hides no other rule


def test_crashed_live_check_is_an_error_result(
    tmp_path: Path,
    hostile: hp.Peers,  # noqa: F811
    hostile_pki: Pki,  # noqa: F811
) -> None:
    ctx = hp.server_context(hostile_pki, ask_client_cert=True)
    healthy = hostile.start("healthy", hp.tls_then(ctx, hp.nginx_like))
    args = ["--target", str(healthy.target), "--trust", str(hostile_pki.root.cert), "--timeout", "2"]
    args += ["--fail-on", "never", "--format", "json"]
    control = scan(*args, "--rules", write_rules(tmp_path / "ok", "passes", kind="live"))
    assert control.code == 0, control.stdout
    out = scan(*args, "--rules", write_rules(tmp_path / "bad", "raises", kind="live"))
    assert out.code == 1 and "Traceback" not in out.stderr
    assert [(r["status"], r["message"][:39]) for r in out.results("CUST001")] == [
        ("error", "check crashed: RuntimeError: check blew"),
    ]
    assert [r["status"] for r in out.results("MTLS509")] == ["pass"]


def test_crashed_check_exits_1_as_a_real_process(tmp_path: Path) -> None:
    conf = write_config(tmp_path / "conf")
    rules = write_rules(tmp_path / "bad", "raises")
    out = scan_process(conf, "--rules", rules, "--fail-on", "never", "--output", tmp_path / "report.txt")
    assert out.code == 1 and out.stderr == ""
    table = (tmp_path / "report.txt").read_text()
    assert "CUST001" in table and "check crashed: RuntimeError: check blew up" in table


def test_check_returning_something_else_than_findings_is_an_error_result(tmp_path: Path) -> None:
    conf = write_config(tmp_path / "conf")
    out = scan(
        conf, "--rules", write_rules(tmp_path / "bad", "not_a_finding"), "--fail-on", "never", "--format", "json"
    )
    assert out.code == 1 and "Traceback" not in out.stderr
    assert [r["status"] for r in out.results("CUST001")] == ["error"]


# --- configs that cannot be read ------------------------------------------------------------------


def _folder_with_a_directory_named_nginx_conf(tmp: Path) -> list[str]:
    (tmp / "etc" / "nginx.conf").mkdir(parents=True)
    return [str(tmp / "etc")]


def _directory_given_as_the_config(tmp: Path) -> list[str]:
    (tmp / "etc" / "nginx.conf").mkdir(parents=True)
    return [str(tmp / "etc" / "nginx.conf")]


def _missing_include(tmp: Path) -> list[str]:
    return [str(write_config(tmp / "etc", "events {}\nhttp {\n    include conf.d/api.conf;\n}\n"))]


def _include_of_a_directory(tmp: Path) -> list[str]:
    (tmp / "etc" / "api.conf").mkdir(parents=True)
    return [str(write_config(tmp / "etc", "events {}\nhttp {\n    include api.conf;\n}\n"))]


def _include_of_a_dangling_symlink(tmp: Path) -> list[str]:
    conf = write_config(tmp / "etc", "events {}\nhttp {\n    include api.conf;\n}\n")
    (tmp / "etc" / "api.conf").symlink_to(tmp / "gone.conf")
    return [str(conf)]


def _missing_config(tmp: Path) -> list[str]:
    return [str(tmp / "nope.conf")]


def _not_a_regular_file(tmp: Path) -> list[str]:
    return [os.devnull]


def _one_good_one_unreadable(tmp: Path) -> list[str]:
    good = write_config(tmp / "good")
    return [str(good), *_missing_include(tmp)]


UNREADABLE: dict[str, Callable[[Path], list[str]]] = {
    "folder-with-a-directory-named-nginx.conf": _folder_with_a_directory_named_nginx_conf,
    "directory-given-as-the-config": _directory_given_as_the_config,
    "missing-include": _missing_include,
    "include-of-a-directory": _include_of_a_directory,
    "include-of-a-dangling-symlink": _include_of_a_dangling_symlink,
    "missing-config": _missing_config,
    "not-a-regular-file": _not_a_regular_file,
    "one-good-one-unreadable": _one_good_one_unreadable,
}


def _assert_could_not_run(out: Outcome, report: Path) -> None:
    assert out.code == 2, (out.code, out.stdout, out.stderr)
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mtls-audit: error: "), out.stderr
    assert not report.exists()


@pytest.mark.parametrize("case", sorted(UNREADABLE))
@pytest.mark.parametrize("fail_on", ["high", "never"])
def test_unreadable_config_exits_2_and_writes_no_report(tmp_path: Path, case: str, fail_on: str) -> None:
    configs = UNREADABLE[case](tmp_path)
    report = tmp_path / "report.json"
    out = scan(*configs, "--format", "json", "--output", report, "--fail-on", fail_on)
    _assert_could_not_run(out, report)


@pytest.mark.parametrize("fixture", sorted(p.name for p in INVALID.glob("*.conf")))
def test_config_with_a_syntax_error_exits_2_naming_file_and_line(tmp_path: Path, fixture: str) -> None:
    report = tmp_path / "report.sarif"
    out = scan(INVALID / fixture, "--format", "sarif", "--output", report, "--fail-on", "never")
    _assert_could_not_run(out, report)
    assert f"{fixture}:" in out.stderr  # file:line


def test_syntax_error_exits_2_as_a_real_process(tmp_path: Path) -> None:
    out = scan_process(INVALID / "unbalanced_braces.conf", "--fail-on", "never", "--output", tmp_path / "r.txt")
    _assert_could_not_run(out, tmp_path / "r.txt")


# --- suppressions cannot hide an error ------------------------------------------------------------


def _error_source(kind: str, tmp: Path, broken: bool) -> list[str]:
    """A scan with one low-severity failure (CUST002) and, when ``broken``, one error of ``kind``."""
    conf = write_config(tmp / "conf")
    if kind == "check":
        rules = write_rules(tmp / ("bad" if broken else "ok"), "raises" if broken else "passes", "fails")
        return [str(conf), "--rules", str(rules)]
    rules = write_rules(tmp / "ok", "passes", "fails")
    target = ["--target", closed_port(), "--timeout", "1"] if broken else []
    return [str(conf), "--rules", str(rules), *target]


@pytest.mark.parametrize("kind", ["check", "probe"])
def test_baseline_cannot_suppress_an_error(tmp_path: Path, kind: str) -> None:
    written = tmp_path / "baseline.json"
    first = scan(
        *_error_source(kind, tmp_path, True), "--fail-on", "low", "--format", "json", "--write-baseline", written
    )
    assert first.code == 1
    errors = [r for r in first.json()["results"] if r["status"] == "error"]
    assert len(errors) == 1
    fingerprints = json.loads(written.read_text())["fingerprints"]
    assert errors[0]["fingerprint"] not in fingerprints  # --write-baseline takes failures only
    assert [r["fingerprint"] in fingerprints for r in first.results("CUST002")] == [True]

    # Control: the written baseline does suppress the failure; without the error the gate opens.
    control = scan(*_error_source(kind, tmp_path, False), "--fail-on", "low", "--baseline", written)
    assert control.code == 0, control.stdout

    crafted = tmp_path / "crafted.json"
    everything = {r["fingerprint"]: {"rule_id": r["rule_id"], "reason": "accepted risk"} for r in errors}
    crafted.write_text(json.dumps({"schema_version": "1.0", "fingerprints": {**fingerprints, **everything}}))
    for baseline in (written, crafted):
        again = scan(
            *_error_source(kind, tmp_path, True), "--fail-on", "low", "--format", "json", "--baseline", baseline
        )
        assert again.code == 1
        (error,) = [r for r in again.json()["results"] if r["status"] == "error"]
        assert (error["rule_id"], error["suppressed"]) == (errors[0]["rule_id"], None)
        assert [r["suppressed"] is not None for r in again.results("CUST002")] == [True]
        assert again.json()["summary"]["gate"] == "fail"


def test_inline_ignore_cannot_suppress_a_probe_error(tmp_path: Path) -> None:
    host_port = closed_port()
    conf = write_config(
        tmp_path,
        textwrap.dedent(
            f"""\
            events {{}}
            http {{
                server {{
                    # mtls-audit: ignore MTLS509 reason="decommissioned, probe errors expected"
                    listen {host_port} ssl;
                    server_name gate.test;
                    ssl_certificate server.pem;
                    ssl_certificate_key server.key;
                    ssl_verify_client on;
                    ssl_client_certificate ca.pem;
                }}
            }}
            """
        ),
    )
    out = scan(conf, "--probe", "--fail-on", "never", "--format", "json", "--timeout", "1")
    assert out.code == 1
    (mtls509,) = out.results("MTLS509")
    assert (mtls509["status"], mtls509["suppressed"]) == ("error", None)
    assert mtls509["location"]["line"] == 5  # the listen line the comment sits on
