"""Where a static scan spends its time: cProfile of `scan --no-probe` on a generated tree.

    python benchmarks/profile_scan.py --servers 2000 [--top 40]

Writes benchmarks/out/profile-static-N.prof (for snakeviz / pstats) and prints the functions with
the most cumulative and the most own time. Profiling slows Python code down unevenly, so read
it for proportions, not for absolute times.
"""

from __future__ import annotations

import argparse
import io
import pstats
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import measure
from gen_config import generate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", type=int, default=2000)
    ap.add_argument("--top", type=int, default=40)
    args = ap.parse_args()
    measure.OUT.mkdir(parents=True, exist_ok=True)
    prof = measure.OUT / f"profile-static-{args.servers}.prof"
    with tempfile.TemporaryDirectory(prefix="mtls-bench-profile-") as tmp:
        conf = generate(Path(tmp) / "tree", args.servers)
        cmd = [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "mtls_audit", "scan", str(conf)]
        cmd += ["--no-probe", "--format", "json", "--output", str(Path(tmp) / "report.json")]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=measure.child_env(), cwd=tmp, check=False)
        if proc.returncode not in (0, 1):
            raise SystemExit(f"scan failed ({proc.returncode}): {proc.stderr[-500:]}")
    for key in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(str(prof), stream=out).strip_dirs().sort_stats(key).print_stats(args.top)
        print(f"--- by {key} ---")
        print(out.getvalue().split("\n", 6)[-1])
    print(f"(profile written to {prof})")


if __name__ == "__main__":
    main()
