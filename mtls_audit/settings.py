"""Repository settings: `.mtls-audit.toml`, or `[tool.mtls-audit]` in `pyproject.toml`.

A repository states its scope and gate once instead of repeating flags in every CI job and
pre-commit hook. Settings become click defaults for `scan`, so a flag on the command line
always wins. Unknown keys are an error (exit 2): a typo in `fail-on` must not silently leave the
gate at its default.
"""

from __future__ import annotations

import os
import tomllib
from typing import Any

from .errors import UsageError

SETTINGS_FILE = ".mtls-audit.toml"
# key in the file -> (scan option's parameter name, expected type)
KEYS: dict[str, tuple[str, type | tuple[type, ...]]] = {
    "require-mtls": ("require_mtls", list),
    "require-upstream-mtls": ("require_upstream_mtls", list),
    "fail-on": ("fail_on", str),
    "warn-days": ("warn_days", int),
    "baseline": ("baseline", str),
    "nginx-version": ("nginx_version", str),
    "rules": ("rules_dirs", list),
    "prefix": ("prefix", str),
    "format": ("fmt", str),
    "timeout": ("timeout", (int, float)),
    "concurrency": ("concurrency", int),
    "probe-host": ("probe_host", str),
    "trust": ("trust", str),
}


def find_settings(start: str | None = None) -> str | None:
    """`.mtls-audit.toml` in the working directory, else a pyproject.toml with our table."""
    folder = start or os.getcwd()
    cand = os.path.join(folder, SETTINGS_FILE)
    if os.path.isfile(cand):
        return cand
    py = os.path.join(folder, "pyproject.toml")
    if os.path.isfile(py):
        try:
            with open(py, "rb") as f:
                if "mtls-audit" in tomllib.load(f).get("tool", {}):
                    return py
        except (OSError, tomllib.TOMLDecodeError):
            return None  # someone else's broken pyproject is not our input
    return None


def load_settings(path: str) -> dict[str, Any]:
    """The `scan` defaults a settings file sets, keyed by click parameter name."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise UsageError(f"{path}: cannot read settings: {e.strerror or e}") from e
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{path}: invalid TOML: {e}") from e
    if os.path.basename(path) == "pyproject.toml":
        data = data.get("tool", {}).get("mtls-audit", {})
    table = data.get("scan", data) if isinstance(data.get("scan"), dict) else data
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in KEYS:
            raise UsageError(f"{path}: unknown setting {key!r} (known: {', '.join(sorted(KEYS))})")
        param, typ = KEYS[key]
        if not isinstance(value, typ) or isinstance(value, bool):
            raise UsageError(f"{path}: setting {key!r} has the wrong type")
        out[param] = value
    return out
