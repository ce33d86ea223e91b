"""Separate virtual environments for the tools we compare against.

gixy-ng bundles its own crossplane fork and sslyze pins its own cryptography/nassl, so neither is
ever installed into the environment that runs mtls-audit: each gets `benchmarks/out/venvs/NAME`
(created with this interpreter's `venv`, filled with `pip install PACKAGE`), made on the first run
and reused afterwards. A failed install is returned as a reason, not raised.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from measure import OUT, child_env

VENVS = OUT / "venvs"
INSTALL_TIMEOUT = 900.0


@dataclass(frozen=True)
class Venv:
    name: str
    path: Path
    version: str | None = None
    """Installed version of the package, or ``None`` when unavailable."""
    reason: str | None = None
    """Why the venv is unavailable."""

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def bin(self, name: str) -> Path:
        return self.path / "bin" / name

    @property
    def available(self) -> bool:
        return self.reason is None


def _installed_version(path: Path, package: str) -> str | None:
    python = path / "bin" / "python"
    if not python.exists():
        return None
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    try:
        proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None


def _tail(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:200] if lines else "no output"


def ensure(name: str, package: str) -> Venv:
    """The venv ``name`` with ``package`` installed; created on first use."""
    path = VENVS / name
    version = _installed_version(path, package)
    if version:
        return Venv(name, path, version)
    print(f"creating venv {path} and installing {package} (first run only) ...", file=sys.stderr)
    if path.exists():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    env = child_env()
    try:
        made = subprocess.run(
            [sys.executable, "-m", "venv", str(path)], capture_output=True, text=True, timeout=300, env=env, check=False
        )
        if made.returncode != 0:
            return Venv(name, path, reason=f"venv creation failed: {_tail(made.stderr)}")
        pip = subprocess.run(
            [str(path / "bin" / "python"), "-m", "pip", "install", "-q", package],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Venv(name, path, reason=f"pip install {package} timed out after {INSTALL_TIMEOUT:.0f} s")
    except OSError as e:
        return Venv(name, path, reason=f"cannot run venv/pip: {e}")
    if pip.returncode != 0:
        return Venv(name, path, reason=f"pip install {package} failed: {_tail(pip.stderr or pip.stdout)}")
    version = _installed_version(path, package)
    if not version:
        return Venv(name, path, reason=f"{package} not importable after install")
    return Venv(name, path, version)
