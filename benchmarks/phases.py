"""Where a static scan's wall time goes, phase by phase, without a profiler in the way.

    python benchmarks/phases.py CONF [--repeat 3]        # prints one JSON object

cProfile (`profile_scan.py`) slows Python code unevenly, which makes a parse-bound program look
check-bound; this times the phases of the CLI's own path with `perf_counter` in one process,
best of `--repeat` fresh processes: imports, rule catalog, load (crossplane's lexer and argument checks,
includes), effective settings, checks, and the JSON report written to a file. Each process
first runs `crossplane.parse` on the same tree, so "load" reads against the parse alone on
the same machine at the same minute, and the other phases are what an audit adds to it.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PHASES = ("imports", "catalog", "load", "effective", "checks", "json_report")
"""The phases, in the order a scan runs them; their sum is the scan without interpreter start."""


def _phases(conf: str, out_dir: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    from mtls_audit.context import CheckContext, Options
    from mtls_audit.engine import load_catalog, run_checks
    from mtls_audit.nginx.effective import build_effective
    from mtls_audit.nginx.load import load_config
    from mtls_audit.render.json_ import write

    t1 = time.perf_counter()
    catalog = load_catalog(())
    t2 = time.perf_counter()
    loaded = load_config(conf)
    t3 = time.perf_counter()
    eff = build_effective(loaded)
    t4 = time.perf_counter()
    results = run_checks(catalog, CheckContext(config=eff, options=Options()), kinds=("config",), baseline=None)
    t5 = time.perf_counter()
    from mtls_audit import __version__
    from mtls_audit.model import Report

    report = Report(
        tool_version=__version__,
        started_at="2026-01-01T00:00:00Z",
        finished_at="2026-01-01T00:00:00Z",
        configs=(conf,),
        targets=(),
        results=tuple(results),
        rules=tuple(r for r in catalog.rules if r.kind == "config"),
        fail_on="high",
        source_root=os.getcwd(),
    )
    path = os.path.join(out_dir, "report.json")
    with open(path, "w", encoding="utf-8") as f:
        write(report, f)
    t6 = time.perf_counter()
    return {
        "imports": t1 - t0,
        "catalog": t2 - t1,
        "load": t3 - t2,
        "effective": t4 - t3,
        "checks": t5 - t4,
        "json_report": t6 - t5,
        "results": len(results),
        "report_mb": round(os.path.getsize(path) / 1e6, 1),
        "directives": loaded.directive_count,
    }


def _once(conf: str) -> dict[str, Any]:
    """One fresh process's figures: crossplane.parse first, then the audit's phases."""
    gc.disable()  # as the CLI runs a scan (mtls_audit.scan.gc_paused)
    import crossplane

    t = time.perf_counter()
    parsed = crossplane.parse(conf)
    cp = time.perf_counter() - t
    del parsed
    gc.collect()
    with tempfile.TemporaryDirectory(prefix="mtls-bench-phases-") as tmp:
        got = _phases(conf, tmp)
    got["crossplane_parse"] = cp
    return got


def _calls(conf: str) -> dict[str, Any]:
    """Python function calls (cProfile's count) of crossplane.parse and of the scan's phases.

    Wall time at 10x the servers also pays for a 10x heap (cache and TLB misses, page faults),
    which moves from run to run on a shared machine; the number of calls does not. If the scan
    makes 10x the calls for 10x the servers, as crossplane.parse does, its work is linear and any
    excess in the time is the memory hierarchy, not the algorithm.
    """
    import cProfile
    import pstats

    gc.disable()
    import crossplane

    prof = cProfile.Profile()
    prof.runcall(crossplane.parse, conf)
    cp_calls = pstats.Stats(prof).total_calls  # type: ignore[attr-defined]
    prof = cProfile.Profile()
    with tempfile.TemporaryDirectory(prefix="mtls-bench-calls-") as tmp:
        got = prof.runcall(_phases, conf, tmp)
    return {
        "crossplane_calls": cp_calls,
        "scan_calls": pstats.Stats(prof).total_calls,  # type: ignore[attr-defined]
        "results": got["results"],
    }


def _child(conf: str, flag: str, timeout: float) -> dict[str, Any]:
    """This script with `flag` in a fresh process: imports and module caches start cold, as in a CLI run."""
    import subprocess

    proc = subprocess.run(
        [sys.executable, __file__, conf, flag], capture_output=True, text=True, check=True, timeout=timeout
    )
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def count_calls(conf: str) -> dict[str, Any]:
    """`_calls` in a fresh process (a profiled scan: 3 min at 20,000 servers)."""
    return _child(conf, "--calls", 3600)


def measure(conf: str, repeat: int) -> dict[str, Any]:
    """Best of `repeat` fresh processes, phase by phase (module caches die with each process)."""
    runs = [_child(conf, "--once", 1800) for _ in range(repeat)]
    best = {k: (round(min(r[k] for r in runs), 4) if isinstance(v, float) else v) for k, v in runs[0].items()}
    best["runs"] = len(runs)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("conf")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--once", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--calls", action="store_true", help="count function calls (cProfile) instead of timing")
    args = ap.parse_args()
    if args.calls:
        out = _calls(args.conf)
    else:
        out = _once(args.conf) if args.once else measure(args.conf, args.repeat)
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
