"""The wheel is self-contained: rules, schema and console script work in a fresh venv that has
only the declared dependencies (what `pip install mtls-audit` or `pipx run` gives a user)."""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DECLARED = {"click", "cryptography", "pyopenssl", "crossplane", "tabulate", "pyyaml"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    src = tmp_path_factory.mktemp("src") / "mtls-audit"
    # build from a clean copy so no local build/ or egg-info leaks into the wheel
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "__pycache__"))
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (whl,) = out.glob("mtls_audit-*.whl")
    return whl


def test_wheel_ships_rules_schema_and_types(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    rules = {p.name for p in (ROOT / "rules").glob("*.yaml")}
    assert {f"mtls_audit/rules/{r}" for r in rules} <= names
    assert "mtls_audit/schema/report.schema.json" in names
    assert "mtls_audit/py.typed" in names
    assert not [n for n in names if n.startswith(("tests/", "fixtures/", "benchmarks/"))]


def test_wheel_declares_exactly_the_runtime_dependencies(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        meta_name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(z.read(meta_name))
    runtime = {
        req.split(";")[0].split(">")[0].split("=")[0].split("<")[0].strip().lower()
        for req in meta.get_all("Requires-Dist") or []
        if "extra ==" not in req
    }
    assert runtime == DECLARED
    from mtls_audit import __version__

    assert meta["Version"] == __version__  # one place: mtls_audit.__version__


def test_wheel_runs_in_a_fresh_venv(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    proc = subprocess.run([str(py), "-m", "pip", "install", "-q", str(wheel)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"pip install of the wheel with its dependencies failed: {proc.stderr[-1500:]}")
    exe = env_dir / "bin" / "mtls-audit"
    demo = tmp_path / "demo"
    shutil.copytree(ROOT / "fixtures" / "demo", demo)
    listed = subprocess.run([str(exe), "rules", "list"], capture_output=True, text=True, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "MTLS101" in listed.stdout
    scanned = subprocess.run([str(exe), "scan", str(demo), "--format", "json"], capture_output=True, text=True, cwd=tmp_path)
    assert scanned.returncode == 1, scanned.stderr
    assert '"rule_id": "MTLS101"' in scanned.stdout
