"""Fallback when GNU time is missing: run a command, write its wall time, CPU and peak RSS as JSON.

    python rusage_wrap.py STATS_FILE CMD [ARGS...]

A fresh Python per measurement, so RUSAGE_CHILDREN covers exactly that one command's tree.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time


def main() -> int:
    stats, cmd = sys.argv[1], sys.argv[2:]
    started = time.perf_counter()
    rc = subprocess.run(cmd, check=False).returncode
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(stats, "w", encoding="utf-8") as f:
        json.dump(
            {"rc": rc, "wall": wall, "maxrss_kb": usage.ru_maxrss, "utime": usage.ru_utime, "stime": usage.ru_stime}, f
        )
    return rc if rc >= 0 else 128 - rc


if __name__ == "__main__":
    sys.exit(main())
