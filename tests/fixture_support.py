"""Run scans on fixture configs and read the `# ruleid: ID` markers (semgrep style).

A marker sits on the line right above the directive a rule must point at. A fixture's first
lines may hold `# args: ...` with extra scan options (scope, Nginx version).

A fixture folder may also hold `pki.yaml`, a manifest of the certificate, CRL and key files its
config names. Those files are never committed (they would expire, and keys look like leaks):
`scan_json` copies the folder to a temporary directory, mints the files there with `certgen`
(dates relative to now, so nothing rots), and scans the copy. Display paths stay relative to the
main config (`nginx.conf`, `conf.d/x.conf`), so the `# ruleid:` markers still match. Manifest
entries, one per file name (sub-folders allowed), each a mapping with a `kind`:

* `root`, `intermediate`, `client_leaf`, `server`: a certificate (`issuer: <entry>`; without one
  it is self-signed). Options: `cn`, `key` (ec, rsa, ed25519, ec224), `bits`, `days` (validity
  from now), `expired_days_ago`, `hash: sha1|md5` (re-signed legacy; RSA issuer), `ca`,
  `basic_constraints`, `key_usage`, `format: der`.
* `crl`: `issuer: <entry>`, `next_update_days` (negative: expired), `revoked: [<entry>...]`.
* `key`: the private key of `of: <entry>`; `format: traditional`, `password: <text>`.
* `system_root`: a real public root copied from the system bundle (the test skips without one).
* `text`: `content: <text>` written as is (an empty or junk "certificate").

A list instead of a mapping concatenates other entries (`bundle.pem: [ca.pem, other.pem]`), and
so does `{parts: [...], mode: ...}`. Any mapping may set `mode: "0644"`; keys default to 0600.
Keys never leave the temporary copy.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import shlex
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import certgen
import pytest
import yaml
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from mtls_audit.cli import cli

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures" / "nginx"
MARK_RE = re.compile(r"#\s*ruleid:\s*(?P<ids>[A-Z0-9, ]+)")
ARGS_RE = re.compile(r"^#\s*args:\s*(?P<args>.*)$")
PKI_MANIFEST = "pki.yaml"
SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def fixture_main(path: Path) -> Path:
    return path / "nginx.conf" if path.is_dir() else path


def fixture_files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*.conf")) if path.is_dir() else [path]


def fixture_args(path: Path) -> list[str]:
    args: list[str] = []
    for line in fixture_main(path).read_text(encoding="utf-8").splitlines()[:3]:
        m = ARGS_RE.match(line.strip())
        if m:
            args += shlex.split(m.group("args"))
    return args


def expected_marks(path: Path, rule_id: str) -> set[tuple[str, int]]:
    """(display file, line) of each line right after a `# ruleid:` marker naming the rule."""
    base = fixture_main(path).parent
    out: set[tuple[str, int]] = set()
    for f in fixture_files(path):
        lines = f.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            m = MARK_RE.search(line)
            if m and rule_id in [x.strip() for x in m.group("ids").split(",")]:
                out.add((str(f.relative_to(base)), i + 2))
    return out


def scan_json(path: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    """Scan a config through the real CLI and return (exit code, parsed JSON report).

    Fixture folders with a `pki.yaml` are scanned as a temporary copy with their files minted.
    """
    with materialized(path) as target:
        args = ["scan", str(fixture_main(target)), "--format", "json", *fixture_args(path), *extra]
        res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code in (0, 1), f"exit {res.exit_code}: {res.output}"
    return res.exit_code, json.loads(res.stdout)


def has_pki(path: Path) -> bool:
    return path.is_dir() and (path / PKI_MANIFEST).is_file()


@contextlib.contextmanager
def materialized(path: Path) -> Iterator[Path]:
    """The fixture ready to scan: itself, or a temporary copy with its `pki.yaml` files made."""
    if not has_pki(path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="mtls-audit-fixture-") as tmp:
        dest = Path(tmp) / path.name
        shutil.copytree(path, dest)
        generate_pki(dest / PKI_MANIFEST, dest)
        yield dest


# ---------------------------------------------------------------- pki.yaml


CERT_KINDS = ("root", "intermediate", "client_leaf", "server")


def load_manifest(manifest: Path) -> dict[str, Any]:
    data = yaml.safe_load(manifest.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{manifest}: a manifest maps file names to entries")
    return {str(k): v for k, v in data.items()}


def generate_pki(manifest: Path, dest: Path) -> dict[str, bytes]:
    """Write every file `manifest` lists under `dest`; returns name -> bytes written."""
    return _PkiBuilder(load_manifest(manifest), dest).build()


def _mode(value: Any) -> int | None:
    """`"0644"`, `0644` (YAML 1.1 reads it as octal already) or `420`."""
    if value is None:
        return None
    if isinstance(value, int):
        return value
    return int(str(value), 8)


class _PkiBuilder:
    """Resolves manifest entries on demand, so issuers may be listed after what they issue."""

    def __init__(self, entries: Mapping[str, Any], dest: Path) -> None:
        self.entries = entries
        self.dest = dest
        self.issued: dict[str, certgen.Issued] = {}
        self.data: dict[str, bytes] = {}
        self.busy: set[str] = set()

    def build(self) -> dict[str, bytes]:
        for name in self.entries:
            self.bytes_of(name)
        return self.data

    def spec(self, name: str) -> Any:
        if name not in self.entries:
            raise KeyError(f"pki.yaml: unknown entry {name!r}")
        return self.entries[name]

    def bytes_of(self, name: str) -> bytes:
        if name in self.data:
            return self.data[name]
        if name in self.busy:
            raise ValueError(f"pki.yaml: {name} refers to itself")
        self.busy.add(name)
        spec = self.spec(name)
        mode: int | None = None
        if isinstance(spec, list) or "parts" in spec:
            parts = spec if isinstance(spec, list) else spec["parts"]
            data = b"".join(self.bytes_of(str(part)) for part in parts)
            mode = None if isinstance(spec, list) else _mode(spec.get("mode"))
        else:
            data = self.make(name, spec)
            mode = _mode(spec.get("mode"))
            if mode is None and spec.get("kind") == "key":
                mode = 0o600
        path = self.dest / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if mode is not None:
            path.chmod(mode)
        self.data[name] = data
        self.busy.discard(name)
        return data

    def cert_of(self, name: str) -> certgen.Issued:
        if name not in self.issued:
            self.bytes_of(name)
        if name not in self.issued:
            raise ValueError(f"pki.yaml: {name} is not a certificate entry")
        return self.issued[name]

    def make(self, name: str, spec: dict[str, Any]) -> bytes:
        kind = spec.get("kind")
        if kind in CERT_KINDS:
            issued = self.make_cert(name, kind, spec)
            self.issued[name] = issued
            if spec.get("format") == "der":
                return certgen.der(issued.cert)
            return certgen.pem(issued.cert)
        if kind == "crl":
            issuer = self.cert_of(spec["issuer"])
            revoked = [self.cert_of(r).cert for r in spec.get("revoked", ())]
            days = float(spec.get("next_update_days", 7))
            # An expired CRL was issued a week before its nextUpdate, like a real one.
            last = certgen.utcnow() + dt.timedelta(days=days - 7) if days <= 0 else None
            return certgen.pem(certgen.make_crl(issuer, revoked, last_update=last, next_update_days=days))
        if kind == "key":
            owner = self.cert_of(spec["of"])
            password = spec.get("password")
            return certgen.key_pem(
                owner.key,
                fmt=spec.get("format", "pkcs8"),
                password=password.encode() if password else None,
            )
        if kind == "system_root":
            return _system_root_pem()
        if kind == "text":
            return str(spec.get("content", "")).encode()
        raise ValueError(f"pki.yaml: {name}: unknown kind {kind!r}")

    def make_cert(self, name: str, kind: str, spec: dict[str, Any]) -> certgen.Issued:
        issuer = self.cert_of(spec["issuer"]) if spec.get("issuer") else None
        kw: dict[str, Any] = {
            "kind": spec.get("key", "ec"),
            "bits": int(spec.get("bits", 2048)),
        }
        cn = str(spec.get("cn", f"{name} ({kind})"))
        if "days" in spec:
            kw["days"] = float(spec["days"])
        if "expired_days_ago" in spec:
            now = certgen.utcnow()
            ago = float(spec["expired_days_ago"])
            kw["not_before"] = now - dt.timedelta(days=ago + 365)
            kw["not_after"] = now - dt.timedelta(days=ago)
        for flag in ("basic_constraints", "key_usage"):
            if flag in spec:
                kw[flag] = bool(spec[flag])
        if kind == "root":
            kw.setdefault("days", 3650)
            issued = certgen.make_cert(cn, issuer=issuer, ca=bool(spec.get("ca", True)), **kw)
        elif kind == "intermediate":
            assert issuer is not None, f"pki.yaml: {name}: an intermediate needs an issuer"
            kw.setdefault("days", 1825)
            issued = certgen.make_cert(cn, issuer=issuer, ca=True, path_len=0, **kw)
        elif kind == "client_leaf":
            issued = certgen.make_cert(cn, issuer=issuer, eku=certgen.CLIENT_AUTH, **kw)
        else:
            issued = certgen.make_cert(cn, issuer=issuer, eku=certgen.SERVER_AUTH, san_dns=(cn,), **kw)
        legacy = spec.get("hash")
        if legacy:
            signer = issuer.key if issuer is not None else issued.key
            assert isinstance(signer, rsa.RSAPrivateKey), f"pki.yaml: {name}: hash {legacy} needs an RSA signer"
            issued = certgen.Issued(certgen.resign_legacy(issued.cert, signer, str(legacy)), issued.key)
        return issued


def _system_root_pem() -> bytes:
    """The first CA of the system bundle, PEM: a root the public trust store really holds."""
    if not SYSTEM_BUNDLE.is_file():
        pytest.skip(f"no system CA bundle at {SYSTEM_BUNDLE}")
    text = SYSTEM_BUNDLE.read_bytes()
    end = b"-----END CERTIFICATE-----"
    for block in text.split(end):
        start = block.find(b"-----BEGIN CERTIFICATE-----")
        if start < 0:
            continue
        pem = block[start:] + end + b"\n"
        cert = x509.load_pem_x509_certificate(pem)
        if cert.not_valid_after_utc > certgen.utcnow() + dt.timedelta(days=400):
            return pem
    pytest.skip(f"no long-lived root in {SYSTEM_BUNDLE}")


def failing(report: dict[str, Any], rule_id: str) -> set[tuple[str, int]]:
    return {
        (r["location"]["file"], r["location"]["line"])
        for r in report["results"]
        if r["rule_id"] == rule_id and r["status"] == "fail" and r["location"]
    }
