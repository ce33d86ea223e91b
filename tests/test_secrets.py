"""Secrets: private keys and passphrases never appear in any output, and minted keys never touch disk.

The CLI runs the suite's scans (every format, ``--verbose``, ``--output``, a baseline, a config
naming an encrypted key and an ``ssl_password_file``, an encrypted key with
``--client-key-pass-env``, the ``certs`` inventory of key files) against an in-process,
Nginx-like endpoint on 127.0.0.1, and the error paths users hit (wrong passphrase, mismatched
pair, unreadable key, a key where a certificate, CA, trust bundle, targets file, config or
baseline belongs).

Three of the scans (``PROCESS_RUNS``: a CA key with ``--output`` and a baseline, an encrypted key
read through the environment, a config naming keys) run as real processes, in parallel, under a
small wrapper that records through an audit hook every file opened for writing (a key written
anywhere, even deleted afterwards, is caught; TMPDIR and HOME point at a folder that must stay
empty) and reports the keys the tool minted through a pipe. The rest run in-process with click's
runner (much faster), with the minting functions wrapped and every log record captured.

Everything a run wrote (stdout, stderr, log records, ``--output``/``--write-baseline`` files) is
searched for ``PRIVATE KEY``, every base64 line of every key's PEM forms and of the encrypted key
files, the DER, the private scalar in hex/decimal/base64/raw (the minted keys' too), and the
passphrase.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import os
import re
import secrets
import subprocess
import sys
import textwrap
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import hostile_peers as hp
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pki import Pki, make_pki

from mtls_audit import scan as scan_module
from mtls_audit.cli import cli
from mtls_audit.engine import Catalog, load_catalog
from mtls_audit.probe import identities

ROOT = Path(__file__).resolve().parents[1]
PASS_ENV = "MTLS_AUDIT_TEST_KEY_PASS"

RUN_NAMES = [
    "table", "table-verbose", "json-output-baseline", "sarif", "junit-output", "encrypted-table-verbose",
    "encrypted-json", "config-probe-json", "config-probe-verbose", "certs", "certs-json", "wrong-passphrase",
    "passphrase-env-unset", "encrypted-without-pass-env", "passphrase-as-argument", "key-does-not-match-cert",
    "key-unreadable", "key-as-client-cert", "key-as-ca-cert", "key-as-trust", "key-as-targets-file",
    "key-as-config", "encrypted-key-as-config", "key-as-baseline",
]  # fmt: skip
ERROR_RUNS = RUN_NAMES[RUN_NAMES.index("wrong-passphrase") :]
PROCESS_RUNS = ["json-output-baseline", "encrypted-table-verbose", "config-probe-verbose"]

WRAPPER = textwrap.dedent(
    '''
    """Run the CLI; report minted keys and files opened for writing through fd $MTLS_TEST_REPORT_FD."""
    import atexit, base64, json, os, sys

    fd = int(os.environ.pop("MTLS_TEST_REPORT_FD"))
    writes = []
    WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            if path is None or isinstance(path, int):
                return
            if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & WRITE_FLAGS
            ):
                writes.append(os.fsdecode(path))
        elif event in ("os.rename", "os.link", "os.symlink", "os.mkdir"):
            writes.append(os.fsdecode(args[1] if event != "os.mkdir" else args[0]))

    sys.addaudithook(hook)

    from cryptography.hazmat.primitives import serialization
    from mtls_audit.probe import identities

    minted = []

    def capture(make):
        def wrapper(*a, **k):
            ident = make(*a, **k)
            der = ident.private_key.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            minted.append(base64.b64encode(der).decode())
            return ident
        return wrapper

    identities.make_untrusted = capture(identities.make_untrusted)
    identities.make_expired = capture(identities.make_expired)

    @atexit.register
    def report():
        os.write(fd, json.dumps({"writes": writes, "minted": minted}).encode())
        os.close(fd)

    import runpy
    sys.argv = ["mtls-audit", *sys.argv[1:]]
    runpy.run_module("mtls_audit", run_name="__main__", alter_sys=True)
    '''
)


# --- what counts as key material -----------------------------------------------------------------


def _pem_body_lines(pem: bytes) -> list[bytes]:
    """Base64 lines of a PEM (not the BEGIN/END or header lines); short tails are too generic to search."""
    return [
        line.strip()
        for line in pem.splitlines()
        if len(line.strip()) >= 16 and not line.startswith(b"-----") and b":" not in line
    ]


def key_needles(label: str, key: ec.EllipticCurvePrivateKey) -> list[tuple[str, bytes]]:
    """Every form of ``key`` that would be a leak: PEM lines, DER, the private scalar."""
    raw = key.private_numbers().private_value.to_bytes(32, "big")
    needles = [
        (f"{label}: scalar hex", raw.hex().encode()),
        (f"{label}: scalar HEX", raw.hex().upper().encode()),
        (f"{label}: scalar colon hex", ":".join(f"{b:02x}" for b in raw[:12]).encode()),
        (f"{label}: scalar decimal", str(int.from_bytes(raw, "big")).encode()),
        (f"{label}: scalar bytes", raw),
        (f"{label}: scalar base64", base64.b64encode(raw).rstrip(b"=")),
        (f"{label}: scalar base64url", base64.urlsafe_b64encode(raw).rstrip(b"=")),
    ]
    for fmt in (serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL):
        der = key.private_bytes(serialization.Encoding.DER, fmt, serialization.NoEncryption())
        pem = key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
        needles.append((f"{label}: {fmt} DER hex", der.hex().encode()))
        needles += [(f"{label}: {fmt} PEM line {i}", line) for i, line in enumerate(_pem_body_lines(pem))]
    return needles


def file_needles(label: str, path: Path) -> list[tuple[str, bytes]]:
    return [(f"{label}: file line {i}", line) for i, line in enumerate(_pem_body_lines(path.read_bytes()))]


def leaks(blob: bytes, needles: Sequence[tuple[str, bytes]]) -> list[str]:
    return [label for label, needle in needles if needle in blob]


# --- the world: PKI, encrypted keys, a config, an endpoint ----------------------------------------


@dataclass
class Run:
    name: str
    args: list[str]
    expect: tuple[int, ...]
    env: dict[str, str] = field(default_factory=dict)
    in_process: bool = False
    returncode: int | None = None
    stdout: bytes = b""
    stderr: bytes = b""
    files: dict[str, bytes] = field(default_factory=dict)
    writes: list[str] = field(default_factory=list)
    minted: list[ec.EllipticCurvePrivateKey] = field(default_factory=list)
    out_dir: Path = Path()

    def outputs(self) -> dict[str, bytes]:
        return {"stdout": self.stdout, "stderr": self.stderr, **self.files}


@dataclass
class World:
    pki: Pki
    passphrase: str
    needles: list[tuple[str, bytes]]
    runs: dict[str, Run]
    scratch: Path
    """TMPDIR and HOME of every run."""


def _encrypt(key: ec.EllipticCurvePrivateKey, path: Path, fmt: serialization.PrivateFormat, passphrase: str) -> Path:
    path.touch(mode=0o600)
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, fmt, serialization.BestAvailableEncryption(passphrase.encode()))
    )
    return path


def _runs(pki: Pki, d: Path, port: int, passphrase: str) -> list[Run]:
    target = ["--target", f"127.0.0.1:{port}", "--timeout", "2", "--trust", str(pki.root.cert)]
    full = [
        "--client-cert", str(pki.client.cert), "--client-key", str(pki.client.key),
        "--ca-cert", str(pki.root.cert), "--ca-key", str(pki.root.key),
        "--revoked-cert", str(pki.revoked.cert), "--revoked-key", str(pki.revoked.key),
    ]  # fmt: skip
    enc_client = _encrypt(pki.client.private_key, d / "client-enc.key", serialization.PrivateFormat.PKCS8, passphrase)
    enc_ca = _encrypt(
        pki.root.private_key, d / "ca-enc.key", serialization.PrivateFormat.TraditionalOpenSSL, passphrase
    )
    enc = [
        "--client-cert", str(pki.client.cert), "--client-key", str(enc_client),
        "--ca-cert", str(pki.root.cert), "--ca-key", str(enc_ca), "--client-key-pass-env", PASS_ENV,
    ]  # fmt: skip
    good_pass = {PASS_ENV: passphrase}
    password_file = d / "ssl-passwords.txt"
    password_file.write_text(passphrase + "\n")
    password_file.chmod(0o600)
    conf = d / "nginx.conf"
    conf.write_text(
        "events {}\nhttp {\n  server {\n"
        f"    listen 127.0.0.1:{port} ssl;\n    server_name localhost;\n"
        f"    ssl_certificate {pki.server.cert};\n    ssl_certificate_key {enc_client};\n"
        f"    ssl_password_file {password_file};\n"
        f"    ssl_client_certificate {pki.root.cert};\n    ssl_verify_client on;\n"
        "    location / { return 200; }\n  }\n}\n"
    )
    key = str(pki.client.key)
    scan, ok, err = ["scan"], (0, 1), (2,)
    out = ["--output", "{out}/report"]
    # fmt: off
    runs = [
        Run("table", [*scan, *target, *full], ok),
        Run("table-verbose", [*scan, *target, *full, "--verbose", "--show-passed"], ok),
        Run("json-output-baseline", [*scan, *target, *full, "--format", "json", *out,
                                     "--write-baseline", "{out}/baseline.json"], ok),
        Run("sarif", [*scan, *target, *full, "--format", "sarif"], ok),
        Run("junit-output", [*scan, *target, *full, "--format", "junit", *out], ok),
        Run("encrypted-table-verbose", [*scan, *target, *enc, "--verbose", "--show-passed"], ok, good_pass),
        Run("encrypted-json", [*scan, *target, *enc, "--format", "json"], ok, good_pass),
        Run("config-probe-json", [*scan, str(conf), "--probe", *target[2:], *full, "--format", "json"], ok),
        Run("config-probe-verbose", [*scan, str(conf), "--probe", *target[2:], *enc, "-v", "--show-passed"], ok,
            good_pass),
        Run("certs", ["certs", str(conf), key, str(enc_client), str(enc_ca), str(pki.root.key)], ok),
        Run("certs-json", ["certs", "--format", "json", key, str(enc_client), str(enc_ca)], ok),
    ]
    # Error paths: the scan cannot run (exit 2) and says why without quoting the key.
    errors = [
        Run("wrong-passphrase", [*scan, *target, *enc], err, {PASS_ENV: passphrase[::-1]}),
        Run("passphrase-env-unset", [*scan, *target, *enc], err),
        Run("encrypted-without-pass-env", [*scan, *target, *enc[:-2]], err),
        Run("passphrase-as-argument", [*scan, *target, *enc[:-1], passphrase], err, good_pass),
        Run("key-does-not-match-cert", [*scan, *target, "--client-cert", str(pki.client.cert),
                                        "--client-key", str(pki.revoked.key)], err),
        Run("key-unreadable", [*scan, *target, "--client-cert", str(pki.client.cert), "--client-key", str(d)], err),
        Run("key-as-client-cert", [*scan, *target, "--client-cert", key, "--client-key", key], err),
        Run("key-as-ca-cert", [*scan, *target, "--ca-cert", key, "--ca-key", key], err),
        Run("key-as-trust", [*scan, *target[:4], "--trust", key], err),
        Run("key-as-targets-file", [*scan, "--targets-file", key], err),
        Run("key-as-config", [*scan, key], err),
        Run("encrypted-key-as-config", [*scan, str(enc_ca)], err),
        Run("key-as-baseline", [*scan, *target, "--baseline", key], err),
    ]
    # fmt: on
    # Real processes where it matters: the disk audit (a CA key, --output, a baseline), an encrypted
    # key read through the environment, a config naming keys; the rest in-process (much faster).
    for run in runs + errors:
        run.in_process = run.name not in PROCESS_RUNS
    return runs + errors


def _execute(run: Run, scratch: Path, base: Path) -> Run:
    """Run ``mtls-audit`` in a process under the wrapper; collect everything it wrote."""
    args = [a.replace("{out}", str(run.out_dir)) for a in run.args]
    env = {k: v for k, v in os.environ.items() if k != PASS_ENV}
    env.update(run.env)
    env.update(
        TMPDIR=str(scratch), HOME=str(scratch), PYTHONDONTWRITEBYTECODE="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )  # fmt: skip
    read_end, write_end = os.pipe()
    env["MTLS_TEST_REPORT_FD"] = str(write_end)
    try:
        proc = subprocess.Popen(
            [sys.executable, str(base / "wrapper.py"), *args],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(write_end,),
        )  # fmt: skip
        os.close(write_end)
        write_end = -1
        run.stdout, run.stderr = proc.communicate(timeout=90)
        run.returncode = proc.returncode
        with os.fdopen(read_end, "rb") as pipe:
            read_end = -1
            report = json.loads(pipe.read() or b'{"writes": [], "minted": []}')
    finally:
        for fd in (read_end, write_end):
            if fd >= 0:
                os.close(fd)
    run.writes = report["writes"]
    for der in report["minted"]:
        key = serialization.load_der_private_key(base64.b64decode(der), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        run.minted.append(key)
    run.files = {p.name: p.read_bytes() for p in sorted(run.out_dir.iterdir())}
    return run


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def _capture(
    make: Callable[..., identities.ClientIdentity], into: list[ec.EllipticCurvePrivateKey]
) -> Callable[..., identities.ClientIdentity]:
    def wrapper(*args: Any, **kwargs: Any) -> identities.ClientIdentity:
        ident = make(*args, **kwargs)
        assert isinstance(ident.private_key, ec.EllipticCurvePrivateKey)
        into.append(ident.private_key)
        return ident

    return wrapper


@functools.cache
def _cached_catalog(extra_dirs: Sequence[str] = ()) -> Catalog:
    return load_catalog(tuple(extra_dirs))


def _execute_in_process(run: Run) -> Run:
    """Run the CLI with click's runner; every log record (any logger, any level) is kept too."""
    records = _Records()
    root = logging.getLogger()
    level = root.level
    root.addHandler(records)
    root.setLevel(logging.DEBUG)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(scan_module, "load_catalog", _cached_catalog)  # the YAML catalog parsed once, not per run
            for name in ("make_untrusted", "make_expired"):
                mp.setattr(identities, name, _capture(getattr(identities, name), run.minted))
            env: dict[str, str | None] = {PASS_ENV: None, **run.env}
            res = CliRunner().invoke(cli, [a.replace("{out}", str(run.out_dir)) for a in run.args], env=env)
    finally:
        root.removeHandler(records)
        root.setLevel(level)
    run.returncode, run.stdout, run.stderr = res.exit_code, res.stdout_bytes, res.stderr_bytes or b""
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        run.stderr += "".join(traceback.format_exception(res.exception)).encode()  # a crash: show it
    run.files = {p.name: p.read_bytes() for p in sorted(run.out_dir.iterdir())}
    run.files["log records"] = "\n".join(records.lines).encode()
    return run


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    d = tmp_path_factory.mktemp("secrets")
    pki = make_pki(d / "pki", bundle_extra=0)
    passphrase = f"pp-{secrets.token_hex(12)}!"  # not a valid variable name, on purpose
    scratch, base = d / "scratch", d / "runs"
    scratch.mkdir()
    base.mkdir()
    (base / "wrapper.py").write_text(WRAPPER)
    peers = hp.Peers()
    try:
        peer = peers.start("nginx-like", hp.tls_then(hp.server_context(pki, ask_client_cert=True), hp.nginx_like))
        runs = _runs(pki, d, peer.port, passphrase)
        for run in runs:
            run.out_dir = base / run.name
            run.out_dir.mkdir()
        with ThreadPoolExecutor(max_workers=8) as pool:
            spawned = [pool.submit(_execute, r, scratch, base) for r in runs if not r.in_process]
            for run in runs:  # meanwhile, the in-process ones (click's runner swaps sys.stdout: one at a time)
                if run.in_process:
                    _execute_in_process(run)
            for future in spawned:
                future.result()
    finally:
        leftover = peers.close()
    assert not leftover, leftover
    needles: list[tuple[str, bytes]] = [("PEM label", b"PRIVATE KEY"), ("passphrase", passphrase.encode())]
    for label, issued in (("root CA", pki.root), ("client", pki.client), ("revoked", pki.revoked)):
        needles += key_needles(label, issued.private_key)
    needles += key_needles("server", pki.server.private_key)
    needles += file_needles("encrypted client key", d / "client-enc.key")
    needles += file_needles("encrypted CA key", d / "ca-enc.key")
    yield World(pki, passphrase, needles, {r.name: r for r in runs}, scratch)


def test_run_list_is_complete(world: World) -> None:
    assert sorted(world.runs) == sorted(RUN_NAMES)


@pytest.mark.parametrize("name", RUN_NAMES)
def test_no_output_holds_key_material_or_the_passphrase(world: World, name: str) -> None:
    run = world.runs[name]
    needles = list(world.needles)
    for i, key in enumerate(run.minted):
        needles += key_needles(f"minted key {i}", key)
    for where, blob in run.outputs().items():
        assert leaks(blob, needles) == [], f"{name} {where}:\n{blob.decode(errors='replace')[:2000]}"


@pytest.mark.parametrize("name", RUN_NAMES)
def test_exit_code_and_no_traceback(world: World, name: str) -> None:
    run = world.runs[name]
    assert run.returncode in run.expect, run.stderr.decode(errors="replace")
    assert b"Traceback" not in run.stderr


@pytest.mark.parametrize("name", ERROR_RUNS)
def test_error_paths_say_what_is_wrong_in_one_line(world: World, name: str) -> None:
    run = world.runs[name]
    lines = run.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mtls-audit: error: "), lines
    assert run.stdout == b"" and run.files == {"log records": b""}


def test_error_messages_point_at_the_cause(world: World) -> None:
    said = {name: world.runs[name].stderr.decode() for name in ERROR_RUNS}
    assert "wrong passphrase" in said["wrong-passphrase"]
    assert f"{PASS_ENV} (the key passphrase) is not set" in said["passphrase-env-unset"]
    assert "--client-key-pass-env" in said["encrypted-without-pass-env"]
    assert "takes the NAME of an environment variable" in said["passphrase-as-argument"]
    assert "does not match the private key" in said["key-does-not-match-cert"]
    assert "cannot read private key" in said["key-unreadable"]
    assert "not a PEM or DER certificate" in said["key-as-client-cert"]
    assert "not a PEM or DER CA certificate" in said["key-as-ca-cert"]
    assert "PEM file (certificate or key), not a targets file" in said["key-as-targets-file"]


def test_scans_really_presented_the_keys_and_minted_some(world: World) -> None:
    """The searches above are only meaningful if the scans used the keys (and minted some)."""
    report = json.loads(world.runs["json-output-baseline"].files["report"])
    attempts = {r["rule_id"]: r["evidence"].get("outcome") for r in report["results"]}
    assert attempts["MTLS505"] == "accepted"  # the valid key was presented and accepted
    assert attempts["MTLS503"] == "rejected"  # an expired certificate was minted with the CA key
    for name in ("table", "json-output-baseline", "encrypted-json", "config-probe-json"):
        assert len(world.runs[name].minted) == 2, name  # untrusted + expired
    encrypted = json.loads(world.runs["encrypted-json"].stdout)
    assert {r["rule_id"]: r["status"] for r in encrypted["results"]}["MTLS505"] == "pass"


def test_the_search_would_catch_a_leak(world: World) -> None:
    pem = world.pki.client.key.read_bytes()
    assert leaks(b"x " + pem.splitlines()[1] + b" y", world.needles)
    assert leaks(f"hex {world.pki.root.private_key.private_numbers().private_value:064x}".encode(), world.needles)
    assert leaks(f"oops {world.passphrase}".encode(), world.needles)
    assert leaks((world.scratch / "nothing").as_posix().encode(), world.needles) == []


# --- disk --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PROCESS_RUNS)
def test_nothing_is_written_but_the_requested_output(world: World, name: str) -> None:
    run = world.runs[name]
    unexpected = [p for p in run.writes if not Path(p).resolve().is_relative_to(run.out_dir.resolve())]
    assert unexpected == [], f"{name} opened files for writing: {unexpected}"


def test_tmpdir_and_home_stay_empty(world: World) -> None:
    assert sorted(p.name for p in world.scratch.rglob("*")) == []


# --- the command line itself ---------------------------------------------------------------------


def _params(group: click.Group, prefix: str = "") -> Iterator[tuple[str, click.Parameter]]:
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        for param in command.params:
            yield path, param
        if isinstance(command, click.Group):
            yield from _params(command, path + " ")


SECRET_WORDS = {"pass", "passphrase", "password", "passwd", "pwd", "secret", "pin", "token", "credential"}


def test_no_option_takes_a_passphrase_as_its_value() -> None:
    suspicious: dict[str, list[str]] = {}
    for command, param in _params(cli):
        names = [*param.opts, *param.secondary_opts, param.name or ""]
        words = {w for n in names for w in re.split(r"[-_]+", n.lower())}
        if words & SECRET_WORDS:
            suspicious.setdefault(command, []).extend(param.opts)
    # --show-passed is no secret; the one option about the passphrase names a variable, not the value.
    assert suspicious == {"scan": ["--client-key-pass-env"]}


def test_the_passphrase_option_takes_a_variable_name() -> None:
    scan = cli.commands["scan"]
    (option,) = [p for p in scan.params if "--client-key-pass-env" in p.opts]
    assert isinstance(option, click.Option)
    assert option.metavar == "VAR" and not option.is_flag and not option.multiple
    assert option.help is not None and "Environment variable" in option.help
    assert not option.prompt and option.envvar is None  # read only through the named variable


def test_identities_never_print_their_keys(world: World) -> None:
    from mtls_audit.probe.identities import Identities

    ids = Identities.from_paths(
        client_cert=world.pki.client.cert, client_key=world.pki.client.key,
        ca_cert=world.pki.root.cert, ca_key=world.pki.root.key,
    )  # fmt: skip
    minted = [i.private_key for i in (ids.untrusted, ids.expired) if i is not None]
    assert all(isinstance(k, ec.EllipticCurvePrivateKey) for k in minted)
    needles = world.needles + [n for i, k in enumerate(minted) for n in key_needles(f"minted {i}", k)]  # type: ignore[arg-type]
    for obj in (ids, ids.valid, ids.expired, ids.untrusted):
        for text in (repr(obj), str(obj)):
            assert leaks(text.encode(), needles) == [], text
