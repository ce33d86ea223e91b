"""Start-up: `mtls-audit --help` and `rules list`, best of N fresh processes each.

Also the bare interpreter (`python -c pass`), the floor no Python CLI can go under. One warm-up
run per command first (not counted), so bytecode is cached as in an installed package.

    python benchmarks/startup_bench.py --repeat 5
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import measure


def commands() -> list[tuple[str, list[str]]]:
    py = sys.executable
    cmds = [
        ("python -c pass (interpreter floor)", [py, "-c", "pass"]),
        ("python -m mtls_audit --help", [py, "-m", "mtls_audit", "--help"]),
        ("python -m mtls_audit rules list", [py, "-m", "mtls_audit", "rules", "list"]),
    ]
    # The console script installed beside this interpreter (not a pyenv shim in front of it).
    beside = Path(sys.executable).parent / "mtls-audit"
    script = str(beside) if beside.exists() else shutil.which("mtls-audit")
    if script:
        cmds += [("mtls-audit --help", [script, "--help"]), ("mtls-audit rules list", [script, "rules", "list"])]
    return cmds


def run_startup(repeat: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="mtls-bench-startup-") as tmp:  # no settings file here
        for label, cmd in commands():
            measure.run(cmd, timeout=60, cwd=tmp)  # warm-up
            runs = [measure.run(cmd, timeout=60, cwd=tmp) for _ in range(repeat)]
            bad = next((r for r in runs if not r.ok or r.rc != 0), None)
            if bad is not None:
                tail = (bad.stderr.strip().splitlines() or ["?"])[-1][:200]
                rows.append({"command": label, "unavailable": f"failed (exit {bad.rc}): {tail}"})
                continue
            b = measure.best(runs)
            rows.append(
                {
                    "command": label,
                    "wall": b.wall,
                    "rss_mb": b.rss_mb,
                    "runs": [round(r.wall, 3) for r in runs],
                    "floor": label.startswith("python -c pass"),
                }
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    for row in run_startup(args.repeat):
        value = f"{row['wall']:.3f} s" if "wall" in row else row["unavailable"]
        print(f"{row['command']:<40} {value}")


if __name__ == "__main__":
    main()
