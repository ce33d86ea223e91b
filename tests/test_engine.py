"""The rule catalog: strict pairing of rule YAML and checks, user `--rules` folders, crashes.

Every error here must stop the run (exit 2) rather than drop a rule: a catalog that silently
loses a rule is a gate that silently passes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mtls_audit.cli import cli
from mtls_audit.context import CheckContext
from mtls_audit.engine import load_catalog, parse_rule, run_checks
from mtls_audit.errors import RuleFileError
from mtls_audit.model import Status
from mtls_audit.nginx.effective import build_effective
from mtls_audit.nginx.load import load_config

RULE = """id: {id}
title: Servers named legacy are flagged
severity: {severity}
kind: config
description: |
  A user rule from a --rules folder.
remediation: |
  Rename the server.
references: []
tags: [custom]
"""

CHECKS_PY = '''
from mtls_audit.model import Finding, Status


def check(ctx, rule):
    for srv in ctx.config.servers:
        if "legacy.test" in srv.names:
            yield Finding(rule.id, Status.FAIL, "legacy server found", srv.subject, srv.loc())
        else:
            yield Finding(rule.id, Status.PASS, "not legacy", srv.subject, srv.loc())


CHECKS = {{"{id}": check}}
'''

CRASHING_PY = '''
def check(ctx, rule):
    raise KeyError("boom")


CHECKS = {{"{id}": check}}
'''

CONFIG = """events {}
http {
    server {
        listen 443 ssl;
        server_name legacy.test;
        ssl_certificate s.pem;
        ssl_certificate_key s.key;
        ssl_verify_client on;
        ssl_client_certificate ca.pem;
    }
}
"""


def rules_dir(tmp_path: Path, files: dict[str, str]) -> Path:
    d = tmp_path / "rules"
    d.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(text, encoding="utf-8")
    return d


def config(tmp_path: Path) -> Path:
    p = tmp_path / "nginx.conf"
    p.write_text(CONFIG, encoding="utf-8")
    return p


# ---------------------------------------------------------------- strict catalog loading


def test_builtin_catalog_loads_with_every_rule_paired() -> None:
    cat = load_catalog()
    assert cat.rules
    assert {r.id for r in cat.rules} == set(cat.checks)


def test_yaml_without_a_check_is_an_error(tmp_path: Path) -> None:
    d = rules_dir(tmp_path, {"CUST001.yaml": RULE.format(id="CUST001", severity="high")})
    with pytest.raises(RuleFileError, match=r"CUST001\.yaml: rule CUST001 has no registered check"):
        load_catalog([str(d)])


def test_check_without_a_yaml_is_an_error(tmp_path: Path) -> None:
    d = rules_dir(tmp_path, {"checks.py": CHECKS_PY.format(id="CUST001")})
    with pytest.raises(RuleFileError) as exc:
        load_catalog([str(d)])
    assert str(exc.value) == f"{d / 'checks.py'}: check CUST001 has no rule file CUST001.yaml"


def test_rule_id_duplicating_a_builtin_is_an_error(tmp_path: Path) -> None:
    d = rules_dir(tmp_path, {"MTLS101.yaml": RULE.format(id="MTLS101", severity="high")})
    with pytest.raises(RuleFileError, match=r"MTLS101\.yaml: duplicate rule id MTLS101"):
        load_catalog([str(d)])


def test_check_duplicating_a_builtin_is_an_error(tmp_path: Path) -> None:
    d = rules_dir(
        tmp_path,
        {
            "MTLS101.yaml": RULE.format(id="MTLS101", severity="high"),
            "checks.py": CHECKS_PY.format(id="MTLS101"),
        },
    )
    with pytest.raises(RuleFileError, match="MTLS101 duplicates a built-in check"):
        load_catalog([str(d)])


def test_unknown_key_is_an_error_naming_file_and_key(tmp_path: Path) -> None:
    d = rules_dir(
        tmp_path,
        {"CUST001.yaml": RULE.format(id="CUST001", severity="high") + "severty: low\n"},
    )
    with pytest.raises(RuleFileError) as exc:
        load_catalog([str(d)])
    assert str(d / "CUST001.yaml") in str(exc.value)
    assert "unknown key(s): severty" in str(exc.value)


def test_bad_severity_is_an_error(tmp_path: Path) -> None:
    path = rules_dir(tmp_path, {"CUST001.yaml": RULE.format(id="CUST001", severity="urgent")})
    with pytest.raises(RuleFileError, match=r"CUST001\.yaml: bad severity 'urgent'"):
        parse_rule(path / "CUST001.yaml")


def test_invalid_yaml_is_an_error_with_file_and_line(tmp_path: Path) -> None:
    text = "id: CUST001\ntitle: x\ntags: [a, b\nseverity: high\n"
    d = rules_dir(tmp_path, {"CUST001.yaml": text})
    with pytest.raises(RuleFileError) as exc:
        load_catalog([str(d)])
    msg = str(exc.value)
    assert msg.startswith(f"{d / 'CUST001.yaml'}:")
    line = msg.split(":")[1]
    assert line.isdigit() and 3 <= int(line) <= 5, msg
    assert "invalid YAML" in msg


def test_file_name_must_match_rule_id(tmp_path: Path) -> None:
    path = rules_dir(tmp_path, {"other.yaml": RULE.format(id="CUST001", severity="high")})
    with pytest.raises(RuleFileError, match=r"file name must be CUST001\.yaml"):
        parse_rule(path / "other.yaml")


def test_rules_path_that_is_not_a_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuleFileError, match="--rules must be a folder"):
        load_catalog([str(tmp_path / "missing")])


def test_checks_module_that_fails_to_import_is_an_error(tmp_path: Path) -> None:
    d = rules_dir(tmp_path, {"checks.py": "import not_a_module_anywhere\n"})
    with pytest.raises(RuleFileError, match=r"checks\.py: failed to import: ModuleNotFoundError"):
        load_catalog([str(d)])


# ---------------------------------------------------------------- user rules end to end


def test_user_rule_folder_runs_end_to_end_through_the_cli(tmp_path: Path) -> None:
    d = rules_dir(
        tmp_path,
        {
            "CUST001.yaml": RULE.format(id="CUST001", severity="medium"),
            "checks.py": CHECKS_PY.format(id="CUST001"),
        },
    )
    res = CliRunner().invoke(
        cli, ["scan", str(config(tmp_path)), "--rules", str(d), "--format", "json", "--fail-on", "medium"]
    )
    assert res.exit_code == 1, res.output
    report = json.loads(res.stdout)
    (ours,) = [r for r in report["results"] if r["rule_id"] == "CUST001"]
    assert ours["status"] == "fail"
    assert ours["severity"] == "medium"
    assert ours["title"] == "Servers named legacy are flagged"
    assert ours["location"]["file"] == "nginx.conf"
    assert ours["location"]["line"] == 3
    assert ours["location"]["server_name"] == ["legacy.test"]


def test_user_rules_appear_in_rules_list(tmp_path: Path) -> None:
    d = rules_dir(
        tmp_path,
        {
            "CUST001.yaml": RULE.format(id="CUST001", severity="low"),
            "checks.py": CHECKS_PY.format(id="CUST001"),
        },
    )
    res = CliRunner().invoke(cli, ["rules", "list", "--rules", str(d)])
    assert res.exit_code == 0, res.output
    assert "CUST001" in res.stdout and "MTLS101" in res.stdout


DATACLASS_PY = """from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Seen:
    name: str
"""


def user_rule(rule_id: str, module: str = CHECKS_PY) -> dict[str, str]:
    return {f"{rule_id}.yaml": RULE.format(id=rule_id, severity="low"), "checks.py": module.format(id=rule_id)}


def test_user_checks_module_may_define_dataclasses(tmp_path: Path) -> None:
    # dataclasses look their module up in sys.modules while the class is created
    d = rules_dir(tmp_path, user_rule("CUST001", DATACLASS_PY + CHECKS_PY))
    assert "CUST001" in load_catalog([str(d)]).checks


def test_two_rule_folders_with_same_module_name_both_load(tmp_path: Path) -> None:
    one = rules_dir(tmp_path / "one", user_rule("CUST001"))
    two = rules_dir(tmp_path / "two", user_rule("CUST002"))
    cat = load_catalog([str(one), str(two)])
    assert {"CUST001", "CUST002"} <= set(cat.checks)
    assert cat.checks["CUST001"] is not cat.checks["CUST002"]


# ---------------------------------------------------------------- crashing checks


def test_a_crashing_check_becomes_an_error_result(tmp_path: Path) -> None:
    d = rules_dir(
        tmp_path,
        {
            "CUST002.yaml": RULE.format(id="CUST002", severity="info"),
            "crash.py": CRASHING_PY.format(id="CUST002"),
        },
    )
    catalog = load_catalog([str(d)])
    ctx = CheckContext(config=build_effective(load_config(str(config(tmp_path)))))
    results = run_checks(catalog, ctx, kinds=("config",))
    (err,) = [r for r in results if r.rule_id == "CUST002"]
    assert err.status is Status.ERROR
    assert "check crashed: KeyError" in err.message and "crash.py" in err.message
    # the other rules still ran
    assert any(r.rule_id == "MTLS101" and r.status is Status.PASS for r in results)


@pytest.mark.parametrize("fail_on", ["high", "never"])
def test_a_crashing_check_fails_the_gate_through_the_cli(tmp_path: Path, fail_on: str) -> None:
    d = rules_dir(
        tmp_path,
        {
            "CUST002.yaml": RULE.format(id="CUST002", severity="info"),
            "crash.py": CRASHING_PY.format(id="CUST002"),
        },
    )
    res = CliRunner().invoke(
        cli,
        ["scan", str(config(tmp_path)), "--rules", str(d), "--format", "json", "--fail-on", fail_on],
    )
    assert res.exit_code == 1, res.output
    report = json.loads(res.stdout)
    errors = [r for r in report["results"] if r["rule_id"] == "CUST002"]
    assert [r["status"] for r in errors] == ["error"]
    assert "KeyError" in errors[0]["message"]
    assert report["summary"]["gate"] == "fail"


def test_result_evidence_is_json_ready_and_never_shared_with_the_check() -> None:
    """The engine converts evidence once (tuples, sets, enums, non-str keys) and copies it: a
    check that mutates its evidence dict or list afterwards cannot change a frozen result."""
    import enum as _enum

    from mtls_audit.engine import to_result
    from mtls_audit.model import Finding, Severity, jsonable

    rule = load_catalog().rules[0]
    ctx = CheckContext(config=None)
    flat = {"a": "x", "n": 1}
    names = ["s1", "s2"]
    nested = {"names": names, "pair": ("a", Severity.HIGH), "set": {"b", "a"}, 3: None,
              Severity.LOW: [("x", 1)], "inner": {"k": ("t",)}}
    r_flat = to_result(rule, Finding(rule.id, Status.PASS, "m", "s", evidence=flat), ctx)
    r_nested = to_result(rule, Finding(rule.id, Status.PASS, "m", "s", evidence=nested), ctx)
    assert r_flat.evidence == flat and r_flat.evidence is not flat
    assert r_nested.evidence == {"names": ["s1", "s2"], "pair": ["a", "high"], "set": ["a", "b"],
                                 "3": None, "low": [["x", 1]], "inner": {"k": ["t"]}}
    assert json.loads(json.dumps(r_nested.evidence)) == r_nested.evidence
    flat["a"] = "changed"
    names.append("s3")
    assert r_flat.evidence["a"] == "x"
    assert r_nested.evidence["names"] == ["s1", "s2"]

    class Color(_enum.Enum):
        RED = "red"

    assert jsonable([Color.RED, ("a", [1, {2}])]) == ["red", ["a", [1, [2]]]]
    assert jsonable(("a", "b")) == ["a", "b"] and type(jsonable(("a",))) is list
