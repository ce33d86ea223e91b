"""One scan, from inputs to a Report: load configs, probe endpoints, run the catalog.

Kept apart from the CLI so that click only maps options onto a ScanRequest, and tests (and
other tools) can run a scan without a terminal.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from . import __version__
from .context import CheckContext, Options
from .engine import Catalog, load_catalog, run_checks
from .errors import InputFileError, UsageError
from .model import Report, Result, Status

if TYPE_CHECKING:
    from .nginx.effective import EffectiveConfig
    from .probe.types import EndpointProbe, ProbeSpec


@dataclass(frozen=True)
class ScanRequest:
    """Everything `mtls-audit scan` was asked to do."""

    configs: tuple[str, ...] = ()
    prefix: str | None = None
    targets: tuple[str, ...] = ()
    targets_file: str | None = None
    probe: bool | None = None
    probe_host: str | None = None
    protocol: str = "auto"
    client_cert: str | None = None
    client_key: str | None = None
    client_key_pass_env: str | None = None
    ca_cert: str | None = None
    ca_key: str | None = None
    revoked_cert: str | None = None
    revoked_key: str | None = None
    trust: str | None = None
    timeout: float = 5.0
    concurrency: int | None = None
    options: Options = field(default_factory=Options)
    rules_dirs: tuple[str, ...] = ()
    fail_on: str = "high"
    baseline: str | None = None
    stdin_text: str | None = None


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_version(text: str) -> tuple[int, int, int]:
    """`1.22.1` -> (1, 22, 1); `nginx/1.25.3` is accepted too."""
    raw = text.strip().removeprefix("nginx/")
    parts = raw.split(".")
    if not 2 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise UsageError(f"--nginx-version: expected X.Y.Z, got {text!r}")
    nums = [int(p) for p in parts] + [0] * (3 - len(parts))
    return (nums[0], nums[1], nums[2])


def load_baseline(path: str) -> dict[str, str]:
    """Fingerprint -> reason. A baseline that cannot be read is an input error, not "empty"."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as e:
        raise InputFileError(f"{path}: cannot read baseline: {e.strerror or e}") from e
    except json.JSONDecodeError as e:
        raise InputFileError(f"{path}:{e.lineno}: baseline is not valid JSON: {e.msg}") from e
    except UnicodeDecodeError as e:
        raise InputFileError(f"{path}: baseline is not UTF-8 text") from e
    fps = data.get("fingerprints") if isinstance(data, dict) else None
    if not isinstance(fps, dict):
        raise InputFileError(f"{path}: baseline must be an object with a 'fingerprints' mapping")
    return {str(k): str(v.get("reason", "") if isinstance(v, dict) else v) for k, v in fps.items()}


def baseline_text(results: Sequence[Result]) -> str:
    """A baseline of every current failure, keyed by fingerprint (stable across line moves)."""
    fps: dict[str, Any] = {}
    for r in results:
        if r.status is Status.FAIL:
            fps[r.fingerprint] = {"rule_id": r.rule_id, "subject": r.subject, "reason": "baseline"}
    return json.dumps({"schema_version": "1.0", "fingerprints": fps}, indent=2, sort_keys=True) + "\n"


def write_atomic(path: str, text: str) -> None:
    """Write via a temp file in the same folder and rename: readers never see half a report."""
    write_all_atomic([(path, text)])


Content = str | Callable[[TextIO], None]
"""Text to write, or a function that streams it to a file (for reports too big to hold twice)."""


def write_all_atomic(outputs: Sequence[tuple[str, Content]]) -> None:
    """Write every file or none: all temp files are written first, then renamed into place.

    A report and a baseline written together must not leave one behind when the other's folder
    turns out to be unwritable.
    """
    temps: list[tuple[str, str]] = []
    try:
        for path, text in outputs:
            folder = os.path.dirname(os.path.abspath(path)) or "."
            try:
                fd, tmp = tempfile.mkstemp(prefix=".mtls-audit-", dir=folder)
            except OSError as e:
                raise InputFileError(f"{path}: cannot write: {e.strerror or e}") from e
            temps.append((tmp, path))
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    if isinstance(text, str):
                        f.write(text)
                    else:
                        text(f)
            except OSError as e:
                raise InputFileError(f"{path}: cannot write: {e.strerror or e}") from e
        for tmp, path in temps:
            try:
                os.replace(tmp, path)
            except OSError as e:
                raise InputFileError(f"{path}: cannot write: {e.strerror or e}") from e
    finally:
        for tmp, _ in temps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def load_effective(source: str, prefix: str | None, stdin_text: str | None) -> EffectiveConfig:
    from .nginx.effective import build_effective
    from .nginx.load import load_config, load_dump

    if source == "-":
        text = stdin_text if stdin_text is not None else _read_stdin()
        return build_effective(load_dump(text, prefix))
    return build_effective(load_config(source, prefix))


def _read_stdin() -> str:
    data = sys.stdin.buffer.read(64 * 1024 * 1024 + 1)
    if len(data) > 64 * 1024 * 1024:
        raise UsageError("<stdin>: nginx -T dump over 64 MiB; refusing")
    return data.decode("utf-8", errors="replace")


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for one scan (and its rendering).

    A scan builds a large tree that lives until the end of the run and tens of thousands of
    results; each automatic collection rescans all of it, which cost a third of the time of a
    20,000-server audit. Nothing in a scan needs cycles freed early, so collect once at the end.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def run_scan(req: ScanRequest, catalog: Catalog | None = None) -> Report:
    """Load, probe, check; raises MtlsAuditError (exit 2) before anything is written."""
    started = now_iso()
    catalog = catalog or load_catalog(req.rules_dirs)
    baseline = load_baseline(req.baseline) if req.baseline else None
    configs = []
    for c in req.configs:
        # Loading leaves no cyclic garbage (the file parser is a class, not self-referencing
        # closures), so no collection here: one over the whole tree cost 0.2 s at 2,000 servers.
        configs.append(load_effective(c, req.prefix, req.stdin_text))
    specs = build_specs(req, configs)
    probes: list[EndpointProbe] = []
    if specs:
        probes = run_probes(req, specs)
        gc.collect()  # handshake objects can form cycles; free them once, even with GC paused
    results: list[Result] = []
    for cfg in configs:
        ctx = CheckContext(config=cfg, options=req.options)
        results.extend(run_checks(catalog, ctx, kinds=("config",), baseline=baseline))
    if specs:
        live_cfg = configs[0] if len(configs) == 1 else None
        ctx = CheckContext(config=live_cfg, probes=probes, options=req.options)
        results.extend(run_checks(catalog, ctx, kinds=("live", "drift"), baseline=baseline))
    ran_kinds = {"config"} if configs else set()
    if specs:
        ran_kinds |= {"live", "drift"}
    return Report(
        tool_version=__version__,
        started_at=started,
        finished_at=now_iso(),
        configs=tuple(_config_name(c) for c in req.configs),
        targets=tuple(str(s.target) for s in specs),
        results=tuple(results),
        rules=tuple(r for r in catalog.rules if r.kind in ran_kinds),
        fail_on=req.fail_on,
        source_root=os.getcwd(),
    )


def _config_name(c: str) -> str:
    return "<stdin>" if c == "-" else os.path.abspath(c)


def build_specs(req: ScanRequest, configs: Sequence[EffectiveConfig]) -> list[ProbeSpec]:
    """Targets from --target, --targets-file and (with --probe) the configs' listen lines.

    `--no-probe` means no connection at all, targets included: pre-commit hooks and offline CI
    jobs rely on it whatever a settings file or a wrapper script adds.
    """
    if req.probe is False:
        return []
    if not req.targets and not req.targets_file and not (req.probe and configs):
        return []
    from .probe.specs import specs_from_config, specs_from_targets

    specs = specs_from_targets(req.targets, req.targets_file, req.protocol)
    if req.probe:
        for cfg in configs:
            specs.extend(specs_from_config(cfg, req.probe_host, req.protocol))
    return specs


def run_probes(req: ScanRequest, specs: Sequence[ProbeSpec]) -> list[EndpointProbe]:
    from .probe.runner import probe_all
    from .probe.specs import probe_config_from_request

    pcfg = probe_config_from_request(req)
    return probe_all(specs, pcfg)
