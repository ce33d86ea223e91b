"""The loop both fuzz scripts share: batches of Hypothesis examples until the time is up.

Each batch is one Hypothesis run with its own seed (printed, and written next to any crash), so a
run of N minutes explores N minutes' worth of fresh inputs, unlike the derandomized property
tests in tests/test_properties.py which replay the same few hundred every time. A failing input
is shrunk by Hypothesis, then its files are saved under fuzz/crashes/<target>-<hash>/ with
FAILURE.txt (traceback, seed, how to replay). One input running longer than --timeout seconds
counts as a failure too (a hang is a bug: the tool must refuse, not block).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import random
import signal
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "tests"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import seed as hypothesis_seed  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

CRASHES = ROOT / "fuzz" / "crashes"


class InputTimeout(Exception):
    """One input ran longer than --timeout seconds."""


@dataclass
class Target:
    """What to fuzz: a strategy, a function that runs one input, and the files that replay it."""

    name: str
    strategy: st.SearchStrategy[Any]
    run: Callable[[Any], str]
    """Runs one input; returns an outcome label for the statistics; raises when the contract breaks."""
    files: Callable[[Any], Mapping[str, bytes]]
    """The files to save when the input fails (written under the crash folder)."""


@dataclass
class Stats:
    inputs: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    failures: dict[str, Path] = field(default_factory=dict)
    batches: int = 0


def _failure_key(tb: str, exc: BaseException) -> str:
    """Same exception type raised at the same place: the same bug."""
    frames = traceback.extract_tb(exc.__traceback__)
    inner = next((f for f in reversed(frames) if "hypothesis" not in f.filename), frames[-1] if frames else None)
    where = f"{os.path.basename(inner.filename)}:{inner.lineno}" if inner else "?"
    return f"{type(exc).__name__}@{where}"


def run_batch(target: Target, stats: Stats, seed: int, examples: int, stop: float, timeout: int,
              shrink: bool, crashes: Path) -> None:
    last: dict[str, Any] = {}

    def expire(signum: int, frame: Any) -> None:
        raise InputTimeout(f"input still running after {timeout} s")

    def one(value: Any) -> None:
        if time.monotonic() > stop:
            return  # time is up: let Hypothesis finish the batch without running anything
        stats.inputs += 1
        signal.alarm(timeout)
        try:
            label = target.run(value)
        except BaseException as e:
            last.update(value=value, exc=e, tb=traceback.format_exc())
            raise
        finally:
            signal.alarm(0)
        stats.outcomes[label] += 1

    phases = (Phase.generate, Phase.shrink) if shrink else (Phase.generate,)
    test = hypothesis_seed(seed)(
        settings(
            max_examples=examples,
            deadline=None,
            database=None,
            phases=phases,
            suppress_health_check=list(HealthCheck),
            report_multiple_bugs=False,
            print_blob=False,
        )(given(target.strategy)(one))
    )
    old = signal.signal(signal.SIGALRM, expire)
    try:
        test()
    except Exception as e:
        if not last:
            raise  # Hypothesis itself failed (a strategy bug): stop the run loudly
        key = _failure_key(last["tb"], last["exc"])
        if key in stats.failures:
            print(f"  [{target.name}] seed {seed}: again {key} (saved in {stats.failures[key]})", flush=True)
            return
        folder = save(crashes, target, last["value"], key, seed, last["tb"], e)
        stats.failures[key] = folder
        print(f"  [{target.name}] seed {seed}: NEW FAILURE {key}, saved in {folder}", flush=True)
    finally:
        signal.signal(signal.SIGALRM, old)
        stats.batches += 1


def save(crashes: Path, target: Target, value: Any, key: str, seed: int, tb: str, exc: BaseException) -> Path:
    files = dict(target.files(value))
    digest = hashlib.sha256(b"".join(k.encode() + v for k, v in sorted(files.items()))).hexdigest()[:12]
    folder = crashes / f"{target.name}-{digest}"
    folder.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    script = Path(sys.argv[0]).name
    note = (
        f"target: {target.name}\nkey: {key}\nseed: {seed}\n"
        f"replay: python fuzz/{script} --replay {folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder}\n"
        f"input: {value!r}"[:4000]
        + f"\n\n{tb}\nHypothesis said:\n{exc}\n"
    )
    (folder / "FAILURE.txt").write_text(note, encoding="utf-8")
    return folder


def parse_args(description: str, targets: Sequence[str], argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--minutes", type=float, default=5.0, help="how long to run (default 5)")
    ap.add_argument("--target", choices=[*targets, "all"], default="all", help="what to fuzz (default: all, in turn)")
    ap.add_argument("--batch", type=int, default=100, help="examples per Hypothesis run (default 100)")
    ap.add_argument("--seed", type=int, default=None, help="first batch seed (default: random)")
    ap.add_argument("--timeout", type=int, default=30, help="seconds one input may take (default 30)")
    ap.add_argument("--no-shrink", action="store_true", help="save failing inputs as found, unshrunk")
    ap.add_argument("--crashes", type=Path, default=CRASHES, help="where failing inputs go (default fuzz/crashes)")
    ap.add_argument("--replay", type=Path, metavar="DIR", help="run one saved input and print the outcome")
    return ap.parse_args(argv)


def fuzz(args: argparse.Namespace, targets: Mapping[str, Target]) -> int:
    chosen = list(targets.values()) if args.target == "all" else [targets[args.target]]
    first = args.seed if args.seed is not None else random.randrange(2**31)
    start = time.monotonic()
    stop = start + args.minutes * 60
    stats = Stats()
    print(f"fuzzing {', '.join(t.name for t in chosen)} for {args.minutes:g} min, seeds from {first}", flush=True)
    for i in itertools.count():
        if time.monotonic() >= stop:
            break
        target = chosen[i % len(chosen)]
        run_batch(target, stats, first + i, args.batch, stop, args.timeout, not args.no_shrink, args.crashes)
        if stats.batches % 10 == 0:
            elapsed = time.monotonic() - start
            print(f"  {stats.inputs} inputs in {elapsed:.0f} s ({stats.inputs / elapsed * 60:.0f}/min), "
                  f"{len(stats.failures)} failures", flush=True)
    elapsed = time.monotonic() - start
    print(f"\n{stats.inputs} inputs in {elapsed:.0f} s ({stats.inputs / max(elapsed, 1e-9) * 60:.0f} inputs/min), "
          f"{stats.batches} batches (seeds {first}..{first + stats.batches - 1})")
    for label, n in stats.outcomes.most_common():
        print(f"  {n:8d}  {label}")
    if stats.failures:
        print(f"{len(stats.failures)} distinct failure(s):")
        for key, folder in stats.failures.items():
            print(f"  {key}: {folder}")
        return 1
    print("no failures")
    return 0
