"""Run one command in a fresh process and measure its wall time, CPU time and peak RSS.

Peak RSS comes from GNU time (`/usr/bin/time -v`, Debian package `time`) when it is there, else
from a tiny Python wrapper (`rusage_wrap.py`) that runs the command and reads
`getrusage(RUSAGE_CHILDREN)`; either way each measurement is its own process tree, so one run's
peak never leaks into the next. Every command runs in its own session and is killed as a group
when it passes its timeout.

Child environment: `PYTHONDONTWRITEBYTECODE` is dropped and `PYTHONPYCACHEPREFIX` points into
`benchmarks/out/pycache`, so every Python tool (ours, crossplane, gixy-ng, sslyze) runs from cached
bytecode as an installed package would, without writing `__pycache__` folders into the checkout.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
GNU_TIME = "/usr/bin/time"
WRAPPER = HERE / "rusage_wrap.py"


@dataclass
class Run:
    """One measured process."""

    cmd: list[str]
    wall: float
    rc: int | None
    rss_mb: float | None = None
    cpu: float | None = None
    """User + system seconds of the process tree."""
    timed_out: bool = False
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return not self.timed_out and self.rc is not None


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(OUT / "pycache")
    env.pop("PYTHONPATH", None)
    env["NO_COLOR"] = "1"
    if extra:
        env.update(extra)
    return env


_gnu_time_checked: bool | None = None


def gnu_time_available(install: bool = True) -> bool:
    """``/usr/bin/time -v`` works; when missing and we are root, ``apt-get install -y time`` once."""
    global _gnu_time_checked
    if _gnu_time_checked is not None:
        return _gnu_time_checked
    ok = _gnu_time_works()
    if not ok and install and os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing GNU time (apt-get install -y time) for peak-RSS measurement ...", file=sys.stderr)
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(["apt-get", "install", "-y", "-q", "time"], capture_output=True, timeout=300, check=False)
        ok = _gnu_time_works()
    _gnu_time_checked = ok
    return ok


def _gnu_time_works() -> bool:
    if not os.access(GNU_TIME, os.X_OK):
        return False
    try:
        proc = subprocess.run([GNU_TIME, "-v", "true"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return "Maximum resident set size" in proc.stderr


_RSS_RE = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")
_USER_RE = re.compile(r"User time \(seconds\): ([\d.]+)")
_SYS_RE = re.compile(r"System time \(seconds\): ([\d.]+)")


def run(
    cmd: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    keep_output: int = 4000,
) -> Run:
    """Run ``cmd`` once; never raises for the command's own failure (see ``Run.rc``)."""
    cmd = [str(c) for c in cmd]
    with tempfile.TemporaryDirectory(prefix="mtls-bench-") as tmp:
        stats = Path(tmp) / "stats"
        if gnu_time_available():
            full = [GNU_TIME, "-v", "-o", str(stats), *cmd]
        else:
            full = [sys.executable, str(WRAPPER), str(stats), *cmd]
        out_path, err_path = Path(tmp) / "stdout", Path(tmp) / "stderr"
        with open(out_path, "wb") as out_f, open(err_path, "wb") as err_f:
            started = time.perf_counter()
            proc = subprocess.Popen(
                full,
                stdin=subprocess.DEVNULL,
                stdout=out_f,
                stderr=err_f,
                env=dict(env) if env is not None else child_env(),
                cwd=cwd,
                start_new_session=True,  # own process group: a timeout kills the whole tree
            )
            # A blocking wait, with a timer for the timeout: `wait(timeout=)` polls with sleeps of
            # up to 50 ms, which rounded every figure up to the next 50 ms step (start-up rows
            # read 0.114 / 0.164 s whatever the real time).
            expired = threading.Event()

            def expire() -> None:
                expired.set()
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)

            timer = threading.Timer(timeout, expire)
            timer.start()
            try:
                rc: int | None = proc.wait()
            except BaseException:  # Ctrl-C or any error here: leave no measured process behind
                _kill_group(proc)
                raise
            finally:
                timer.cancel()
            wall = time.perf_counter() - started
            timed_out = expired.is_set()
            if timed_out:
                rc = None
        stdout = out_path.read_text(errors="replace")
        stderr = err_path.read_text(errors="replace")
        result = Run(cmd=cmd, wall=wall, rc=rc, timed_out=timed_out)
        result.stdout = stdout[-keep_output:]
        result.stderr = stderr[-keep_output:]
        if not timed_out and stats.exists():
            _read_stats(result, stats.read_text(errors="replace"))
    return result


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the process group this module started for ``proc`` (its own session), then reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _read_stats(result: Run, text: str) -> None:
    if text.lstrip().startswith("{"):  # rusage_wrap.py
        data = json.loads(text)
        result.rss_mb = data["maxrss_kb"] / 1024
        result.cpu = data["utime"] + data["stime"]
        result.wall = data["wall"]  # measured inside the wrapper: without the wrapper's own start
        result.rc = data["rc"]
        return
    if m := _RSS_RE.search(text):
        result.rss_mb = int(m.group(1)) / 1024
    user, sys_ = _USER_RE.search(text), _SYS_RE.search(text)
    if user and sys_:
        result.cpu = float(user.group(1)) + float(sys_.group(1))
    # GNU time exits with the command's status, or prints "Command exited with non-zero status N".


def best(runs: Sequence[Run]) -> Run:
    """The fastest successful run; its RSS replaced by the largest seen over all runs."""
    good = [r for r in runs if r.ok]
    if not good:
        return runs[-1]
    fastest = min(good, key=lambda r: r.wall)
    rss = [r.rss_mb for r in good if r.rss_mb is not None]
    return Run(
        cmd=fastest.cmd,
        wall=fastest.wall,
        rc=fastest.rc,
        rss_mb=max(rss) if rss else None,
        cpu=fastest.cpu,
        stdout=fastest.stdout,
        stderr=fastest.stderr,
    )
