"""docs/rules.md is generated from the catalog; a stale committed copy fails the build."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from mtls_audit.cli import cli
from mtls_audit.engine import load_catalog

DOCS = Path(__file__).resolve().parents[1] / "docs" / "rules.md"


def test_committed_rules_doc_is_current() -> None:
    res = CliRunner().invoke(cli, ["rules", "docs"])
    assert res.exit_code == 0
    assert DOCS.read_text(encoding="utf-8") == res.stdout, (
        "docs/rules.md is stale: run `mtls-audit rules docs > docs/rules.md`"
    )


def test_every_rule_has_its_section_with_fix_and_references() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for rule in load_catalog().rules:
        section = text.split(f"### {rule.id}\n", 1)[1].split("\n### ", 1)[0]
        assert "#### Fix" in section
        assert "#### Why it matters" in section
        assert ("#### References" in section) == bool(rule.references)
