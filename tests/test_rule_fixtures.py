"""Every config rule fires at the marked lines of its fixtures, and never on its near-misses.

Fixtures live in `fixtures/nginx/<RULE_ID>/`: `fire_*` configs (file or folder with nginx.conf)
carry `# ruleid: <ID>` above each line the rule must report, and nothing else may be reported
for that rule; `ok_*` configs are near-misses that must not fire at all.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fixture_support import FIXTURES, expected_marks, failing, scan_json

from mtls_audit.engine import load_catalog


def _cases(prefix: str) -> list[tuple[str, Path]]:
    out = []
    for rule_dir in sorted(p for p in FIXTURES.iterdir() if p.is_dir()):
        for f in sorted(rule_dir.iterdir()):
            if f.name.startswith(prefix):
                out.append((rule_dir.name, f))
    return out


@pytest.mark.parametrize(("rule_id", "path"), _cases("fire_"), ids=lambda x: getattr(x, "name", x))
def test_rule_fires_exactly_at_marked_lines(rule_id: str, path: Path) -> None:
    expected = expected_marks(path, rule_id)
    assert expected, f"{path} has no '# ruleid: {rule_id}' marker"
    code, report = scan_json(path, "--fail-on", "never")
    assert failing(report, rule_id) == expected
    assert code == 0  # --fail-on never: findings alone do not fail the gate


@pytest.mark.parametrize(("rule_id", "path"), _cases("ok_"), ids=lambda x: getattr(x, "name", x))
def test_rule_stays_quiet_on_near_miss(rule_id: str, path: Path) -> None:
    _, report = scan_json(path, "--fail-on", "never")
    assert failing(report, rule_id) == set()
    # the near-miss still evaluated the rule: a pass (or skip) proves it looked
    statuses = {r["status"] for r in report["results"] if r["rule_id"] == rule_id}
    assert statuses & {"pass", "skipped"}, f"{rule_id} produced no result on {path.name}"


def test_every_config_rule_has_a_firing_fixture_and_a_near_miss() -> None:
    catalog = load_catalog()
    missing = []
    for rule in catalog.rules:
        if rule.kind != "config":
            continue
        folder = FIXTURES / rule.id
        fires = list(folder.glob("fire_*")) if folder.is_dir() else []
        oks = list(folder.glob("ok_*")) if folder.is_dir() else []
        if not fires or not oks:
            missing.append(f"{rule.id}: {len(fires)} fire, {len(oks)} ok")
    assert not missing, "rules without fixtures: " + "; ".join(missing)
