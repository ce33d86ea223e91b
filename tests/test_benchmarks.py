"""The benchmark scripts still measure what their table says (small sizes, no baselines).

A benchmark that silently breaks leaves a README table nobody can reproduce; these run the
static pieces on a tiny generated tree and render a table from their figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import gen_config  # noqa: E402
import phases  # noqa: E402
import run as bench_run  # noqa: E402
import static_bench  # noqa: E402


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return gen_config.generate(tmp_path_factory.mktemp("bench") / "tree", 20)


def test_generated_tree_scans_with_failures_and_passes(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    proc = subprocess.run(
        [sys.executable, "-m", "mtls_audit", "scan", str(tree), "--no-probe", "--format", "json", "--output", str(out)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 1, proc.stderr
    summary = json.loads(out.read_text(encoding="utf-8"))["summary"]
    assert summary["pass"] > 0 and summary["fail"] > 0 and summary["error"] == 0


def test_call_counts_grow_with_the_tree(tmp_path: Path) -> None:
    small = phases.count_calls(str(gen_config.generate(tmp_path / "small", 100)))
    big = phases.count_calls(str(gen_config.generate(tmp_path / "big", 200)))
    for key in ("scan_calls", "crossplane_calls", "results"):
        assert big[key] > small[key] > 0
    # Twice the servers: about twice the work (the scan's fixed cost, the rule catalog, is
    # about a tenth of it at 100 servers).
    assert 1.8 < big["crossplane_calls"] / small["crossplane_calls"] < 2.2
    assert 1.7 < big["scan_calls"] / small["scan_calls"] < 2.2


def _static(servers: int, calls: int, cp_calls: int) -> list[dict[str, Any]]:
    def row(tool: str, wall: float | None, detail: dict[str, Any]) -> dict[str, Any]:
        return static_bench.ToolResult(tool, servers, wall, 10.0, wall, [wall or 0.0], 0, None, detail).as_dict()

    ph = {k: 0.1 for k in phases.PHASES} | {"crossplane_parse": 0.1, "results": 100, "runs": 1}
    return [
        row("crossplane.parse", 1.0 * servers / 100, {}),
        row("mtls-audit scan --no-probe", 2.0 * servers / 100, {"results": 100, "report_mb": 1.0}),
        row(static_bench.PHASES, 0.6, ph),
        row(static_bench.CALLS, None, {"scan_calls": calls, "crossplane_calls": cp_calls, "results": 100}),
    ]


def test_table_and_summary_rows() -> None:
    results = {
        "command": "python benchmarks/run.py",
        "environment": {"cpus": 2, "date": "2026-12-04 00:00 UTC"},
        "static": _static(100, 1000, 500) + _static(1000, 12000, 5000),
    }
    rows = bench_run.table_rows(results)
    by = {r[0]: r for r in rows}
    assert by["static 100: scan / crossplane.parse"][1].startswith("2.00x")
    calls = by["static growth 100 -> 1k: Python function calls (cProfile)"]
    assert "mtls-audit x12.00" in calls[1] and "crossplane.parse x10.00" in calls[1]
    assert calls[3] == "**no**"  # x12 for x10 servers is not linear
    summary = bench_run.render_summary(results)
    assert "scan / crossplane.parse" in summary and "(best of" not in summary
