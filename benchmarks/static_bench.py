"""Static benchmark: `crossplane.parse` alone, a full `scan --no-probe`, and gixy-ng, on one tree.

For each size a tree is generated once (`gen_config.generate`) in a temp folder and all three
tools read that same tree. Each measurement is a fresh process (interpreter start and imports
included, as a CI user pays them), best of N, with peak RSS of the process:

* crossplane: our environment's `crossplane.parse(nginx.conf)` (includes followed), nothing else;
* mtls-audit: `python -m mtls_audit scan CONF --no-probe --format json --output X` (load, every
  static rule, and writing the report);
* gixy-ng: `gixy CONF -f json -o X` from its own venv (it bundles its own crossplane fork),
  bounded by a timeout;
* the scan's phases timed inside one process (`phases.py`), beside crossplane.parse in the same
  process: what the ratio between the first two is made of;
* the Python function calls of crossplane.parse and of the scan (`phases.py --calls`, cProfile):
  their growth from one size to the next is the growth of the work, without the heap's effect on
  wall time (`--no-calls` skips it: it runs the scan under a profiler, 15 s at 2,000 servers).

    python benchmarks/static_bench.py --servers 2000 20000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import measure
import phases
from gen_config import generate
from venvs import Venv

CROSSPLANE = (
    "import crossplane,sys; p=crossplane.parse(sys.argv[1]);"
    "assert p['status']=='ok', p['errors'][:1];"
    "print(len(p['config']), sum(len(c['parsed']) for c in p['config']))"
)
PHASES = "mtls-audit phases (in-process)"
CALLS = "function calls (cProfile)"
SCAN_TIMEOUT = 1800.0
CROSSPLANE_TIMEOUT = 900.0


@dataclass
class ToolResult:
    tool: str
    servers: int
    wall: float | None = None
    rss_mb: float | None = None
    cpu: float | None = None
    runs: list[float] = field(default_factory=list)
    rc: int | None = None
    unavailable: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _measure(tool: str, servers: int, cmd: list[str], repeat: int, timeout: float, cwd: Path) -> ToolResult:
    res = ToolResult(tool, servers)
    runs: list[measure.Run] = []
    for _ in range(repeat):
        r = measure.run(cmd, timeout=timeout, cwd=cwd)
        runs.append(r)
        if r.timed_out:
            res.unavailable = f"> timeout ({timeout:.0f} s)"
            break
        if r.rc not in (0, 1):
            res.unavailable = f"failed (exit {r.rc}): {(r.stderr.strip().splitlines() or ['?'])[-1][:200]}"
            break
    res.runs = [round(r.wall, 3) for r in runs]
    if res.unavailable:
        res.rc = runs[-1].rc
        return res
    b = measure.best(runs)
    res.wall, res.rss_mb, res.cpu, res.rc = b.wall, b.rss_mb, b.cpu, b.rc
    return res


def run_size(
    servers: int, repeat: int, gixy: Venv | None, work: Path, gixy_timeout: float, count_calls: bool = True
) -> list[ToolResult]:
    """All tools on one generated tree of ``servers`` server blocks."""
    conf = generate(work / f"tree-{servers}", servers)
    n_files = len(list((conf.parent / "conf.d").glob("*.conf"))) + 1
    py = sys.executable
    out: list[ToolResult] = []

    cp = _measure("crossplane.parse", servers, [py, "-c", CROSSPLANE, str(conf)], repeat, CROSSPLANE_TIMEOUT, work)
    if cp.unavailable is None:
        cp.detail["files_parsed"] = n_files
    out.append(cp)

    report = work / f"report-{servers}.json"
    scan_cmd = [py, "-m", "mtls_audit", "scan", str(conf), "--no-probe", "--format", "json", "--output", str(report)]
    sc = _measure("mtls-audit scan --no-probe", servers, scan_cmd, repeat, SCAN_TIMEOUT, work)
    if sc.unavailable is None and report.exists():
        sc.detail["report_mb"] = round(report.stat().st_size / 1e6, 1)
        summary = json.loads(report.read_text(encoding="utf-8")).get("summary", {})
        sc.detail["results"] = summary.get("results")
        sc.detail["fail"] = summary.get("fail")
    out.append(sc)
    out.append(_phase_breakdown(servers, conf, repeat))
    if count_calls:
        out.append(_call_count(servers, conf))

    if gixy is None:
        out.append(ToolResult("gixy-ng", servers, unavailable="skipped (--no-gixy)"))
    elif not gixy.available:
        out.append(ToolResult("gixy-ng", servers, unavailable=f"unavailable: {gixy.reason}"))
    else:
        gout = work / f"gixy-{servers}.json"
        gcmd = [str(gixy.bin("gixy")), str(conf), "-f", "json", "-o", str(gout)]
        gx = _measure("gixy-ng", servers, gcmd, repeat, gixy_timeout, work)
        gx.detail["version"] = gixy.version
        gx.detail["exit_code"] = gx.rc
        if gx.unavailable is None and gout.exists():
            try:
                issues = json.loads(gout.read_text(encoding="utf-8") or "[]")
                gx.detail["issues"] = len(issues)
                gx.detail["files_with_issues"] = len({i.get("file") for i in issues if isinstance(i, dict)})
            except json.JSONDecodeError:
                gx.detail["issues"] = "unparsable output"
        out.append(gx)
    return out


def _from_phases(tool: str, servers: int, get: Callable[[], dict[str, Any]]) -> ToolResult:
    """A row filled by `phases.py` in child processes; a failed child makes the row unavailable."""
    res = ToolResult(tool, servers)
    try:
        res.detail = get()
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, ValueError) as e:
        res.unavailable = f"failed: {str(e)[:200]}"
    return res


def _phase_breakdown(servers: int, conf: Path, repeat: int) -> ToolResult:
    """Where the scan's time goes (`phases.py`): the profile behind the ratio to crossplane."""
    res = _from_phases(PHASES, servers, lambda: phases.measure(str(conf), repeat))
    if res.unavailable is None:
        res.wall = sum(res.detail[k] for k in phases.PHASES)
    return res


def _call_count(servers: int, conf: Path) -> ToolResult:
    """Function calls of crossplane.parse and of the scan (`phases.py --calls`): the growth of
    work, free of the run-to-run noise of wall time."""
    return _from_phases(CALLS, servers, lambda: phases.count_calls(str(conf)))


def run_static(
    sizes: list[int],
    repeat_for: dict[int, int],
    gixy: Venv | None,
    gixy_timeout: float = 600.0,
    count_calls: bool = True,
) -> list[ToolResult]:
    results: list[ToolResult] = []
    with tempfile.TemporaryDirectory(prefix="mtls-bench-static-") as tmp:
        for n in sizes:
            print(f"static: {n} servers ...", file=sys.stderr, flush=True)
            results += run_size(n, repeat_for.get(n, 3), gixy, Path(tmp), gixy_timeout, count_calls)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", type=int, nargs="+", default=[2000, 20000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-gixy", action="store_true", help="skip gixy-ng")
    ap.add_argument("--gixy-timeout", type=float, default=600.0)
    ap.add_argument("--no-calls", action="store_true", help="skip counting function calls (cProfile, slow)")
    args = ap.parse_args()
    gixy = None
    if not args.no_gixy:
        import venvs

        gixy = venvs.ensure("gixy-ng", "gixy-ng")
    rows = run_static(
        args.servers, {n: args.repeat for n in args.servers}, gixy, args.gixy_timeout, not args.no_calls
    )
    print(f"{'tool':<30} {'servers':>8} {'best s':>8} {'peak MB':>8}  note")
    for r in rows:
        wall = f"{r.wall:.2f}" if r.wall is not None else "-"
        rss = f"{r.rss_mb:.0f}" if r.rss_mb is not None else "-"
        print(f"{r.tool:<30} {r.servers:>8} {wall:>8} {rss:>8}  {r.unavailable or ''}")


if __name__ == "__main__":
    main()
