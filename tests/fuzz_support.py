"""Generators and invariants shared by the property tests and the long-running fuzz scripts.

The invariant the issue asks for: whatever bytes a config or a certificate file holds, a scan
ends in a `Report` or in an `MtlsAuditError` (exit 2, one line), never in another exception.
`run_checks` turns a crashing check into an `error` result saying "check crashed", which would
hide a crash from a naive test, so `check_report` treats that result as a failure too.

Nothing here depends on pytest: `fuzz/fuzz_config.py` and `fuzz/fuzz_certs.py` import it with
`tests/` on `sys.path` and drive the same strategies for minutes instead of seconds.

* `config_tree()` draws a small Nginx configuration from a grammar (http and stream blocks,
  servers, locations, `if`, `map`, `upstream`, includes between generated files, every ssl_*
  and proxy_ssl_* directive the rules read) with values that are mostly meaningful and sometimes
  junk (control characters, unicode, quotes, braces), rendered with random quoting and comments.
* `mutated(data)` applies byte-level mutations (delete, insert, flip, duplicate or swap lines,
  truncate, splice in `{ } ; " ' # NUL 0xff` or PEM armour) to real fixture bytes.
* `pki_pool()` mints, once per process, the certificate, CRL and key files a config may point
  at; generated configs copy (and sometimes mutate) them next to the config.
"""

from __future__ import annotations

import functools
import io
import json
import os
import random
import re
import string
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from mtls_audit.certs import FileFacts, Material
from mtls_audit.context import CheckContext, Options
from mtls_audit.engine import Catalog, run_checks
from mtls_audit.errors import MtlsAuditError
from mtls_audit.model import Report, Status
from mtls_audit.render import FORMATS, get_renderer

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"

# Characters that end a line for str.splitlines(); an error "line" holding one is two lines.
_LINE_BREAKS = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
# C0/C1 controls and DEL: a message holding ESC can recolour or rewrite the terminal.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]")


# --------------------------------------------------------------------------------------------
# Invariants


class InvariantError(AssertionError):
    """The scan broke the contract (crashed, hid a crash, or produced an unusable report)."""


def crashed_results(report: Report) -> list[str]:
    """Messages of results that are really exceptions caught by `run_checks`."""
    return [
        f"{r.rule_id}: {r.message}"
        for r in report.results
        if r.status is Status.ERROR and r.message.startswith("check crashed")
    ]


def check_error_line(err: MtlsAuditError) -> None:
    """An input error is one printable line (the CLI prints it after `mtls-audit: error: `)."""
    text = str(err)
    if not text.strip():
        raise InvariantError(f"{type(err).__name__} with an empty message")
    if _LINE_BREAKS.search(text) or _CONTROLS.search(text):
        raise InvariantError(f"{type(err).__name__} message is not one clean line: {text!r}")


def check_report(report: Report, files: Iterable[str] | None = None) -> None:
    """No hidden crash; every result points somewhere real; every format renders."""
    crashed = crashed_results(report)
    if crashed:
        raise InvariantError("check crashed: " + crashed[0])
    known = set(files) if files is not None else None
    for r in report.results:
        loc = r.location
        if loc is None:
            if r.target is None and r.status is not Status.SKIPPED:
                raise InvariantError(f"{r.rule_id} {r.status.value} result with neither location nor target: {r.message}")
            continue
        if loc.line < 1:
            raise InvariantError(f"{r.rule_id} points at line {loc.line} of {loc.file}")
        if known is not None and loc.file not in known:
            raise InvariantError(f"{r.rule_id} points at {loc.file!r}, not a loaded file {sorted(known)}")
    render_all(report)


def render_all(report: Report) -> dict[str, str]:
    """Every format, with every option on; the machine-readable ones must parse."""
    out: dict[str, str] = {}
    for fmt in FORMATS:
        text = get_renderer(fmt)(report, show_passed=True, color=True, verbose=True)
        if not isinstance(text, str):
            raise InvariantError(f"{fmt} renderer returned {type(text).__name__}")
        out[fmt] = text
    for fmt in ("json", "sarif", "gitlab"):
        json.loads(out[fmt])
    ET.fromstring(out["junit"])
    validate_json_report(out["json"])
    return out


@functools.cache
def _report_validator() -> Any:
    try:
        from jsonschema import Draft202012Validator
    except ImportError:  # jsonschema is a test dependency; the fuzz scripts run without it too
        return None
    from mtls_audit.schema import load_report_schema

    return Draft202012Validator(load_report_schema())


def validate_json_report(text: str) -> None:
    validator = _report_validator()
    if validator is None:
        return
    errors = sorted(validator.iter_errors(json.loads(text)), key=lambda e: list(e.path))
    if errors:
        raise InvariantError(f"JSON report breaks the schema at {list(errors[0].path)}: {errors[0].message}")


def scan_config(
    main: str,
    catalog: Catalog,
    options: Options | None = None,
    stdin_text: str | None = None,
    *,
    via_run_scan: bool = False,
) -> Report | MtlsAuditError:
    """Scan `main` (or `stdin_text` as an `nginx -T` dump when main is "-") and check the contract.

    Returns the report, or the input error that stopped the scan; raises InvariantError or the
    unexpected exception itself when the contract is broken. By default the scan runs the steps
    of `run_scan` for config rules (load, effective settings, every config check, a Report)
    without its per-config `gc.collect()`, which costs ~70 ms in a process as big as a test
    run; `via_run_scan` goes through `run_scan` itself.
    """
    from mtls_audit.scan import ScanRequest, load_effective, run_scan

    options = options or Options()
    if via_run_scan:
        req = ScanRequest(configs=(main,), options=options, probe=False, stdin_text=stdin_text)
        try:
            report = run_scan(req, catalog)
        except MtlsAuditError as e:
            check_error_line(e)
            return e
        cfg = load_effective(main, None, stdin_text)
        check_report(report, cfg.loaded.files)
        return report
    try:
        cfg = load_effective(main, None, stdin_text)
    except MtlsAuditError as e:
        check_error_line(e)
        return e
    results = run_checks(catalog, CheckContext(config=cfg, options=options), kinds=("config",))
    report = Report(
        tool_version="fuzz",
        started_at="2026-01-01T00:00:00Z",
        finished_at="2026-01-01T00:00:00Z",
        configs=(main,),
        targets=(),
        results=tuple(results),
        rules=tuple(r for r in catalog.rules if r.kind == "config"),
        source_root=os.getcwd(),
    )
    check_report(report, cfg.loaded.files)
    return report


def check_material(material: Material) -> None:
    """What every caller of `parse_material` relies on."""
    if material.certs or material.crls or material.keys:
        if material.encoding not in ("PEM", "DER"):
            raise InvariantError(f"material found but encoding is {material.encoding!r}")
    for p in material.problems:
        if not isinstance(p, str) or not p:
            raise InvariantError(f"bad problem entry {p!r}")
    for c in material.certs:
        if c.not_before.tzinfo is None or c.not_after.tzinfo is None:
            raise InvariantError("naive certificate dates")


def check_file_facts(facts: FileFacts) -> None:
    if facts.error is not None:
        if facts.certs or facts.crls or facts.keys:
            raise InvariantError("a file with an error still has contents")
    if facts.kind not in ("certs", "crl", "key", "mixed", "empty", "unknown"):
        raise InvariantError(f"unknown kind {facts.kind!r}")


# --------------------------------------------------------------------------------------------
# Test PKI: certificate, CRL and key files a generated config may name


@dataclass(frozen=True)
class Pool:
    """File name -> bytes of every trust-material file a generated config can reference."""

    files: Mapping[str, bytes]

    @property
    def pem_like(self) -> list[str]:
        return sorted(n for n, data in self.files.items() if b"-----BEGIN" in data)


@functools.cache
def pki_pool() -> Pool:
    """Minted once per process with `certgen` (tests/ must be on sys.path, as under pytest)."""
    import datetime as dt

    import certgen as g
    from cryptography.hazmat.primitives import serialization

    root = g.make_root()
    inter = g.make_intermediate(root)
    alice = g.make_client(inter, "alice")
    server = g.make_server(inter)
    other = g.make_root("other root")
    expired = g.make_expired(root, "expired CA", ca=True)
    leaf_self = g.make_self_signed_leaf()
    now = g.utcnow()
    files: dict[str, bytes] = {
        "ca.pem": g.pem(root.cert),
        "chain.pem": g.pem(root.cert) + g.pem(inter.cert),
        "bundle.pem": g.pem(root.cert) + b"\n# comment\n" + g.pem(inter.cert) + g.pem(other.cert),
        "server.pem": g.pem(server.cert) + g.pem(inter.cert),
        "server.key": g.key_pem(server.key),
        "server-rsa.key": g.key_pem(server.key, fmt="traditional"),
        "alice.pem": g.pem(alice.cert),
        "alice.key": g.key_pem(alice.key),
        "enc.key": g.key_pem(alice.key, password=b"secret"),
        "crl.pem": g.pem(g.make_crl(root, [alice.cert])) + g.pem(g.make_crl(inter)),
        "expired-crl.pem": g.pem(g.make_expired_crl(root)),
        "future-crl.pem": g.pem(g.make_crl(root, last_update=now + dt.timedelta(days=2), next_update_days=9)),
        "expired-ca.pem": g.pem(expired.cert),
        "leaf-in-ca.pem": g.pem(leaf_self.cert) + g.pem(alice.cert),
        "ca.der": g.der(root.cert),
        "crl.der": g.der(g.make_crl(root)),
        "key.der": g.der(alice.key),
        "junk-between.pem": g.pem(root.cert) + b"this is not base64\n" + g.pem(inter.cert),
        "glued.pem": g.pem(root.cert).rstrip(b"\n") + g.pem(inter.cert),
        "truncated.pem": g.pem(root.cert)[:-40],
        "truncated.der": g.der(root.cert)[:100],
        "csr.pem": b"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n",
        "empty.pem": b"",
        "text.pem": b"hello\n",
        "binary.bin": bytes(range(256)) * 4,
    }
    # A key given where a certificate belongs, in PKCS#1 PEM and raw DER
    files["key-as-cert.pem"] = alice.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    return Pool(files)


# --------------------------------------------------------------------------------------------
# Byte mutations


SPLICES = (
    b"{", b"}", b";", b'"', b"'", b"#", b"\x00", b"\xff", b"\xfe\xff", b"\n", b"\r\n", b"\\", b"$",
    b"${", b" ", b"\t", b"include ", b"include *;", b"server {", b"location / {", b"if (", b")",
    b"\xc3\x28", b"\xe2\x80\xa8", b"\x1b[31m", b"-----BEGIN CERTIFICATE-----\n",
    b"-----END CERTIFICATE-----\n", b"-----BEGIN X509 CRL-----\n", b"-----BEGIN PRIVATE KEY-----\n",
    b"Proc-Type: 4,ENCRYPTED\n\n", b"\x30\x82\xff\xff", b"\x30\x80", b"\x02\x01\x00", b"====",
)


@st.composite
def mutated(draw: st.DrawFn, data: bytes, max_ops: int = 6) -> bytes:
    """`data` after 1..max_ops random edits; each edit is small, so most structure survives."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, max_ops))):
        op = draw(st.sampled_from(("delete", "insert", "splice", "flip", "dup_line", "swap_lines", "truncate", "dup_chunk")))
        pos = draw(st.integers(0, len(buf)))
        if op == "delete" and buf:
            del buf[pos : pos + draw(st.integers(1, 16))]
        elif op == "insert":
            buf[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "splice":
            buf[pos:pos] = draw(st.sampled_from(SPLICES))
        elif op == "flip" and buf:
            i = min(pos, len(buf) - 1)
            buf[i] ^= draw(st.integers(1, 255))
        elif op in ("dup_line", "swap_lines"):
            lines = bytes(buf).split(b"\n")
            i = draw(st.integers(0, len(lines) - 1))
            if op == "dup_line":
                lines.insert(i, lines[i])
            else:
                j = draw(st.integers(0, len(lines) - 1))
                lines[i], lines[j] = lines[j], lines[i]
            buf = bytearray(b"\n".join(lines))
        elif op == "truncate":
            del buf[pos:]
        elif op == "dup_chunk" and buf:
            end = min(len(buf), pos + draw(st.integers(1, 64)))
            buf[end:end] = buf[pos:end]
    return bytes(buf)


# --------------------------------------------------------------------------------------------
# Structure-aware DER mutation: parse into a TLV tree, edit it, re-encode with valid lengths, so
# the edits reach cryptography's certificate parser instead of dying at the outer length.


@dataclass
class Tlv:
    tag: int
    content: bytes = b""
    children: list[Tlv] | None = None
    """Set for constructed values, and for OCTET/BIT STRINGs that wrap DER (extnValue, keys)."""

    def encode(self, long_form: bool = False) -> bytes:
        if self.children is None:
            body = self.content
        else:
            inner = b"".join(c.encode(long_form) for c in self.children)
            body = (b"\x00" + inner) if self.tag == 0x03 else inner
        return bytes([self.tag]) + _der_len(len(body), long_form) + body

    def walk(self) -> list[tuple[Tlv | None, Tlv]]:
        """(parent, node) pairs, the root's parent being None."""
        out: list[tuple[Tlv | None, Tlv]] = [(None, self)]
        stack = [self]
        while stack:
            node = stack.pop()
            for c in node.children or ():
                out.append((node, c))
                stack.append(c)
        return out


def _der_len(n: int, long_form: bool = False) -> bytes:
    if n < 0x80 and not long_form:
        return bytes([n])
    size = n.to_bytes(max(1, (n.bit_length() + 7) // 8), "big")
    return bytes([0x80 | len(size)]) + size


def _parse_tlvs(data: bytes, depth: int = 0) -> list[Tlv] | None:
    """Every TLV in `data`, or None unless they cover it exactly (then it is not DER)."""
    out: list[Tlv] = []
    i = 0
    while i < len(data):
        if len(data) - i < 2 or data[i] & 0x1F == 0x1F:
            return None
        tag, first = data[i], data[i + 1]
        i += 2
        if first < 0x80:
            length = first
        else:
            n = first & 0x7F
            if n == 0 or n > 4 or i + n > len(data):
                return None
            length = int.from_bytes(data[i : i + n], "big")
            i += n
        if i + length > len(data):
            return None
        content = data[i : i + length]
        i += length
        node = Tlv(tag, content)
        if depth < 24:
            if tag & 0x20:
                node.children = _parse_tlvs(content, depth + 1)
                if node.children is None:
                    return None
            elif tag == 0x04 and content[:1] in (b"\x30", b"\x04", b"\x03", b"\x02"):
                node.children = _parse_tlvs(content, depth + 1)
            elif tag == 0x03 and content[:1] == b"\x00" and content[1:2] == b"\x30":
                node.children = _parse_tlvs(content[1:], depth + 1)
        out.append(node)
    return out


def parse_der_tree(der: bytes) -> Tlv | None:
    nodes = _parse_tlvs(der)
    return nodes[0] if nodes and len(nodes) == 1 else None


OIDS = (
    "2.5.29.19", "2.5.29.15", "2.5.29.37", "2.5.29.17", "2.5.29.14", "2.5.29.35", "2.5.29.31",
    "2.5.29.32", "2.5.29.30", "1.3.6.1.5.5.7.1.1", "1.2.840.113549.1.1.11", "1.2.840.113549.1.1.5",
    "1.2.840.113549.1.1.4", "1.2.840.10045.4.3.2", "1.2.840.10045.2.1", "1.3.101.112", "1.2.840.10040.4.1",
    "2.5.4.3", "2.5.4.10", "1.3.6.1.5.5.7.3.2", "1.3.6.1.5.5.7.3.1", "1.2.3.4.5", "2.5.29.20", "2.5.29.21",
)


def _oid_bytes(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    out = bytearray([parts[0] * 40 + parts[1]])
    for n in parts[2:]:
        chunk = [n & 0x7F]
        n >>= 7
        while n:
            chunk.append(0x80 | (n & 0x7F))
            n >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


INTERESTING_CONTENTS = (
    b"", b"\x00", b"\x01", b"\x02", b"\x05", b"\xff", b"\x80", b"\x00\x00", b"\x7f\xff\xff\xff", b"\xff" * 33,
    b"\x00" * 300, b"991231235959Z", b"500101000000Z", b"20500101000000Z", b"19000101000000Z", b"not a time",
    b"\xc3\x28", b"*.example", b"\x01\xff",
)
TAGS = (0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0C, 0x13, 0x16, 0x17, 0x18, 0x1E, 0x30, 0x31, 0xA0, 0xA3, 0x80, 0x82, 0x86, 0x87)


@st.composite
def der_mutated(draw: st.DrawFn, der: bytes, max_ops: int = 4) -> bytes:
    """A few tree edits: retag, new content (times, integers, OIDs, strings), drop, duplicate
    (duplicate extensions), swap; re-encoded with valid lengths, sometimes in long form (BER)."""
    tree = parse_der_tree(der)
    if tree is None:
        return draw(mutated(der))
    for _ in range(draw(st.integers(1, max_ops))):
        nodes = tree.walk()
        parent, node = nodes[draw(st.integers(0, len(nodes) - 1))]
        op = draw(st.sampled_from(("retag", "content", "oid", "drop", "dup", "swap", "bytes", "unwrap")))
        if op == "retag":
            node.tag = draw(st.sampled_from(TAGS))
            if not node.tag & 0x20 and node.children is not None and node.tag not in (0x03, 0x04):
                node.content, node.children = node.encode()[2:], None
        elif op == "content":
            node.children, node.content = None, draw(st.sampled_from(INTERESTING_CONTENTS))
        elif op == "oid":
            node.tag, node.children, node.content = 0x06, None, _oid_bytes(draw(st.sampled_from(OIDS)))
        elif op == "bytes":
            node.children, node.content = None, draw(st.binary(max_size=40))
        elif op == "unwrap" and node.children:
            node.children = node.children[:1]
        elif parent is not None and parent.children:
            i = next(k for k, c in enumerate(parent.children) if c is node)
            if op == "drop":
                del parent.children[i]
            elif op == "dup":
                parent.children.insert(i, Tlv(node.tag, node.content, None if node.children is None else list(node.children)))
            elif op == "swap":
                k = draw(st.integers(0, len(parent.children) - 1))
                parent.children[i], parent.children[k] = parent.children[k], parent.children[i]
    return tree.encode(long_form=draw(st.integers(0, 9)) == 0)


def pem_wrap(der: bytes, label: str) -> bytes:
    import base64

    body = base64.encodebytes(der)
    return f"-----BEGIN {label}-----\n".encode() + body + f"-----END {label}-----\n".encode()


PEM_LABELS = (
    "CERTIFICATE", "CERTIFICATE", "X509 CRL", "TRUSTED CERTIFICATE", "PRIVATE KEY", "EC PRIVATE KEY",
    "RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "X509 CERTIFICATE", "PUBLIC KEY", "CERTIFICATE REQUEST",
)


@functools.cache
def der_pool() -> tuple[tuple[str, bytes], ...]:
    """(natural PEM label, DER) of certificates, CRLs and keys of several key types."""
    import certgen as g
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID

    root = g.make_root()
    inter = g.make_intermediate(root, path_len=0)
    alice = g.make_client(inter, "alice", san_dns=["alice.test", "*.alice.test"])
    rsa_root = g.make_root("rsa root", kind="rsa", bits=1024)
    ed = g.make_root("ed root", kind="ed25519")
    small = g.make_client(root, "small", kind="ec224", eku=[ExtendedKeyUsageOID.CLIENT_AUTH, x509.ObjectIdentifier("1.2.3.4")])
    assert isinstance(rsa_root.key, rsa.RSAPrivateKey)
    legacy = g.resign_legacy(g.make_client(rsa_root, "legacy", kind="rsa", bits=1024).cert, rsa_root.key)
    return (
        ("CERTIFICATE", g.der(root.cert)),
        ("CERTIFICATE", g.der(inter.cert)),
        ("CERTIFICATE", g.der(alice.cert)),
        ("CERTIFICATE", g.der(rsa_root.cert)),
        ("CERTIFICATE", g.der(ed.cert)),
        ("CERTIFICATE", g.der(small.cert)),
        ("CERTIFICATE", g.der(legacy)),
        ("X509 CRL", g.der(g.make_crl(root, [alice.cert, 7]))),
        ("X509 CRL", g.der(g.make_crl(rsa_root))),
        ("PRIVATE KEY", g.der(alice.key)),
        ("PRIVATE KEY", g.der(rsa_root.key)),
        ("PRIVATE KEY", g.der(ed.key)),
    )


@st.composite
def trust_material(draw: st.DrawFn) -> bytes:
    """Bytes a CA, CRL, certificate or key file might hold: valid, mutated, mislabelled, mixed."""
    pool = der_pool()
    blocks: list[bytes] = []
    for _ in range(draw(st.integers(1, 3))):
        label, der = pool[draw(st.integers(0, len(pool) - 1))]
        kind = draw(st.integers(0, 9))
        if kind < 6:
            der = draw(der_mutated(der))
        if draw(st.integers(0, 4)) == 0:
            label = draw(st.sampled_from(PEM_LABELS))
        if draw(st.integers(0, 5)) == 0 and len(blocks) == 0:
            blocks.append(der)  # raw DER (alone, as a DER file would be)
            break
        blocks.append(pem_wrap(der, label))
        if draw(st.integers(0, 6)) == 0:
            blocks.append(draw(st.sampled_from([b"junk between\n", b"# comment\n", b"\n\n", b"\x00\xff", b"-----BEGIN X-----\n"])))
    data = b"".join(blocks)
    if draw(st.integers(0, 4)) == 0:
        data = draw(mutated(data))
    return data


# --------------------------------------------------------------------------------------------
# Config grammar


@dataclass
class Node:
    """One directive; `block` None means it ends with `;`."""

    name: str
    args: list[str] = field(default_factory=list)
    block: list[Node] | None = None


_BARE = re.compile(r"^[A-Za-z0-9_./:$@*=~^!\[\]()-]+$")

# Junk characters: quotes, braces, controls, a BOM, right-to-left override, an emoji, NUL.
junk_text = st.text(
    alphabet=st.one_of(
        st.sampled_from([*string.printable, "\x00", "\x1b", "\x7f", "\ufeff", "\u202e", "\u2028", "é", "😀", "\\", "%"]),
        st.characters(codec="utf-8"),
    ),
    max_size=12,
)

VERIFY_VALUES = ("on", "off", "optional", "optional_no_ca", "OPTIONAL", "yes")
ON_OFF = ("on", "off")
HOSTS = (
    "backend.internal", "10.0.0.5", "[::1]", "api_pool", "$upstream_host", "backend.internal:8443",
    "[fe80::1]:443", "unix:/run/app.sock", "a:b:c", "[", "",
)
URL_SCHEMES = ("https://", "https://", "http://", "grpcs://", "grpc://", "suwsgi://", "")
FILE_NAMES = (
    "ca.pem", "chain.pem", "bundle.pem", "crl.pem", "expired-crl.pem", "future-crl.pem", "expired-ca.pem",
    "leaf-in-ca.pem", "ca.der", "crl.der", "key.der", "junk-between.pem", "glued.pem", "truncated.pem",
    "truncated.der", "csr.pem", "empty.pem", "text.pem", "binary.bin", "key-as-cert.pem", "server.pem",
    "server.key", "server-rsa.key", "alice.pem", "alice.key", "enc.key", "missing.pem", "sub/../ca.pem",
    "/dev/null", "/dev/zero", ".", "$ssl_server_name.crt", "engine:pkcs11:key", "data:-----BEGIN", "",
    "/etc/ssl/certs/ca-certificates.crt", "mut0.pem", "mut1.pem", "fifo", "loop", "a\x00b", "nginx.conf",
)
VERIFY_VARS = (
    "$ssl_client_verify", "$ssl_client_s_dn", "$ssl_client_i_dn", "$scheme", "$https", "$mtls_ok", "$dn_ok",
    "$undefined", "${ssl_client_verify}", "$",
)
IF_OPS = ("=", "!=", "~", "~*", "!~", "!~*", "-f", "==")
IF_VALUES = (
    "SUCCESS", "FAILED", "NONE", "^FAILED", "FAILED:.*", "http", "on", "", "0", "1", "CN=admin",
    "^CN=admin,", "/CN=admin", "^/CN=x", "(", "[a-", "*", "(?P<x>", "\\", "(a+)+$", "(?i)success", "^$",
)
HEADER_NAMES = ("X-SSL-Client-Verify", "X-SSL-Client-DN", "X-Client-Cert", "Host", "Upgrade", "x-ssl-client-verify")
HEADER_VALUES = (
    "$ssl_client_verify", "$ssl_client_s_dn", "${ssl_client_s_dn}", "$ssl_client_escaped_cert", "$ssl_client_cert",
    "$ssl_client_raw_cert", "$host", "", "SUCCESS", "$ssl_client_fingerprint",
)
INCLUDE_TARGETS = (
    "inc0.conf", "inc1.conf", "inc*.conf", "conf.d/*.conf", "missing.conf", "nginx.conf", "conf.d", "nothing/*.conf",
    "/dev/null", "[", "inc?.conf", "",
)

# A junk level `j` threads through the grammar: 0 draws only meaningful values (the configs
# mostly load and reach every rule), j > 0 swaps in junk text about once in j values.
JUNK_LEVELS = (0, 0, 25)


@functools.cache
def value(choices: tuple[str, ...], j: int) -> st.SearchStrategy[str]:
    """A meaningful value, or (at junk level j > 0) junk text about once in j draws."""
    known = st.sampled_from(choices)
    if j <= 0:
        return known
    return st.one_of(*([known] * (j - 1)), junk_text)


def _args(*parts: st.SearchStrategy[str]) -> st.SearchStrategy[list[str]]:
    return st.tuples(*parts).map(list)


@functools.cache
def _files(j: int) -> st.SearchStrategy[str]:
    return value(FILE_NAMES, j * 4)


@functools.cache
def _junk_node(j: int) -> st.SearchStrategy[Node]:
    """An unknown directive, or a known one with the wrong number of arguments."""
    names = st.sampled_from(["more_set_headers", "http2", "x_custom", "ssl_verify_client", "listen", "if", "ssl"])
    if j <= 0:
        return st.builds(Node, st.sampled_from(["more_set_headers", "http2", "x_custom"]), st.lists(value(IF_VALUES, 0), max_size=2))
    return st.builds(Node, st.one_of(names, junk_text.filter(bool)), st.lists(junk_text, max_size=3))


@functools.cache
def _ssl_nodes(j: int) -> st.SearchStrategy[Node]:
    def one(name: str, vals: st.SearchStrategy[str]) -> st.SearchStrategy[Node]:
        return st.builds(Node, st.just(name), _args(vals))

    return st.one_of(
        one("ssl_verify_client", value(VERIFY_VALUES, j)),
        one("ssl_verify_depth", value(("0", "1", "2", "5", "10", "-1", "x", "99999999999999999999"), j)),
        one("ssl_client_certificate", _files(j)),
        one("ssl_trusted_certificate", _files(j)),
        one("ssl_crl", _files(j)),
        one("ssl_certificate", _files(j)),
        one("ssl_certificate_key", _files(j)),
        one("ssl_ocsp", value(("on", "off", "leaf"), j)),
        one("ssl_session_tickets", value(ON_OFF, j)),
        one("ssl_reject_handshake", value(ON_OFF, j)),
        one("ssl", value(ON_OFF, j)),
        st.builds(Node, st.just("ssl_protocols"), st.lists(value(("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3", "SSLv3"), j), min_size=1, max_size=4)),
        st.builds(Node, st.just("ssl_session_cache"), st.lists(value(("shared:SSL:10m", "builtin", "none", "off"), j), min_size=1, max_size=2)),
    )


@functools.cache
def _upstream_tls_nodes(module: str, j: int) -> st.SearchStrategy[Node]:
    def one(suffix: str, vals: st.SearchStrategy[str]) -> st.SearchStrategy[Node]:
        return st.builds(Node, st.just(f"{module}_{suffix}"), _args(vals))

    return st.one_of(
        one("ssl_verify", value(ON_OFF, j)),
        one("ssl_name", value(("backend.internal", "$host", "10.0.0.5"), j)),
        one("ssl_server_name", value(ON_OFF, j)),
        one("ssl_certificate", _files(j)),
        one("ssl_certificate_key", _files(j)),
        one("ssl_trusted_certificate", _files(j)),
        one("ssl_crl", _files(j)),
        one("ssl_session_reuse", value(ON_OFF, j)),
        one("pass_request_headers", value(ON_OFF, j)),
    )


@functools.cache
def _pass_node(j: int) -> st.SearchStrategy[Node]:
    return st.builds(
        Node,
        st.sampled_from(["proxy_pass", "proxy_pass", "grpc_pass", "uwsgi_pass", "fastcgi_pass"]),
        st.builds(lambda s, h, p: [s + h + p], st.sampled_from(URL_SCHEMES), value(HOSTS, j), st.sampled_from(["", "/", "/api?x=1"])),
    )


@functools.cache
def _header_node(j: int) -> st.SearchStrategy[Node]:
    return st.builds(
        Node,
        st.sampled_from(["proxy_set_header", "grpc_set_header", "fastcgi_param"]),
        _args(value(HEADER_NAMES, j), value(HEADER_VALUES, j)),
    )


@functools.cache
def _return_node(j: int) -> st.SearchStrategy[Node]:
    return st.builds(
        Node,
        st.just("return"),
        st.one_of(
            _args(value(("403", "400", "444", "495", "496", "200", "404", "499", "500", "x"), j)),
            _args(value(("301", "302", "308"), j), value(("https://$host$request_uri", "http://x", "/login"), j)),
        ),
    )


@functools.cache
def _error_page_node(j: int) -> st.SearchStrategy[Node]:
    return st.builds(
        lambda codes, target: Node("error_page", [*codes, target]),
        st.lists(value(("495", "496", "497", "403", "=200"), j), min_size=1, max_size=3),
        value(("@fallback", "@missing", "/error.html", "/api/", "https://login.example", "/"), j),
    )


@functools.cache
def _if_node(body: st.SearchStrategy[Node], j: int) -> st.SearchStrategy[Node]:
    cond = st.one_of(
        _args(value(VERIFY_VARS, j)),
        _args(value(VERIFY_VARS, j), value(IF_OPS, j), value(IF_VALUES, j)),
        _args(value(VERIFY_VARS, j), value(IF_OPS, j), value(IF_VALUES, j)),
        st.lists(value(IF_VALUES + VERIFY_VARS, j), max_size=4),
    )
    return st.builds(lambda c, b: Node("if", c, b), cond, st.lists(body, max_size=3))


@functools.cache
def _location_args(j: int) -> st.SearchStrategy[list[str]]:
    patterns = value(("/", "/api", "/api/", "/admin", "@fallback", "=/exact", "\\.php$", "(", "/error.html", "/"), j)
    return st.one_of(_args(patterns), _args(value(("=", "~", "~*", "^~", "@"), j), patterns))


@functools.cache
def _leaf_in_location(j: int) -> st.SearchStrategy[Node]:
    return st.one_of(
        _pass_node(j),
        _pass_node(j),
        _header_node(j),
        _return_node(j),
        _upstream_tls_nodes("proxy", j),
        _upstream_tls_nodes("grpc", j),
        _error_page_node(j),
        st.just(Node("deny", ["all"])),
        st.just(Node("root", ["/srv/www"])),
        st.builds(Node, st.just("rewrite"), _args(value(("^", "^/(.*)$"), j), value(("https://$host$1", "/x"), j), value(("permanent", "last"), j))),
    )


@functools.cache
def _location(depth: int, j: int) -> st.SearchStrategy[Node]:
    inner: st.SearchStrategy[Node] = st.one_of(
        _leaf_in_location(j), _if_node(st.one_of(_return_node(j), _pass_node(j), _header_node(j)), j), _include_node(j)
    )
    if depth > 0:
        inner = st.one_of(inner, _location(depth - 1, j))
    return st.builds(lambda a, b: Node("location", a, b), _location_args(j), st.lists(inner, max_size=5))


@functools.cache
def _listen_node(j: int) -> st.SearchStrategy[Node]:
    addrs = ("443", "80", "8443", "127.0.0.1:443", "*:443", "0.0.0.0:8443", "[::]:443", "[::1]", "unix:/run/a.sock", "localhost", "host:x", "")
    params = ["ssl", "default_server", "default", "http2", "reuseport", "proxy_protocol"]
    return st.builds(
        lambda a, p: Node("listen", [a, *p]),
        value(addrs, j),
        st.lists(st.sampled_from(params), max_size=3, unique=True),
    )


@functools.cache
def _include_node(j: int) -> st.SearchStrategy[Node]:
    one = _args(value(INCLUDE_TARGETS, j))
    if j <= 0:
        return st.builds(Node, st.just("include"), one)
    return st.builds(Node, st.just("include"), st.one_of(one, st.lists(st.just("inc0.conf"), max_size=2).filter(lambda a: len(a) != 1)))


@functools.cache
def _server(kind: str, j: int) -> st.SearchStrategy[Node]:
    common: list[st.SearchStrategy[Node]] = [
        _listen_node(j),
        _ssl_nodes(j),
        _ssl_nodes(j),
        _if_node(st.one_of(_return_node(j), _pass_node(j)), j),
        _junk_node(j),
        _include_node(j),
    ]
    if kind == "http":
        common += [
            st.builds(Node, st.just("server_name"), st.lists(value(("a.test", "*.internal", "_", "api.internal", "", "~^(?<x>.+)$"), j), min_size=1, max_size=3)),
            _location(2, j),
            _location(0, j),
            _location(0, j),
            _error_page_node(j),
            _header_node(j),
            _upstream_tls_nodes("proxy", j),
            _return_node(j),
        ]
    else:
        common += [
            st.builds(Node, st.just("proxy_pass"), _args(value(HOSTS, j))),
            st.builds(Node, st.just("proxy_ssl"), _args(value(ON_OFF, j))),
            _upstream_tls_nodes("proxy", j),
        ]
    skeleton: st.SearchStrategy[list[Node]] = st.one_of(
        st.just([]),
        st.builds(
            lambda port, verify, ca: [
                Node("listen", [port, "ssl"]),
                Node("ssl_certificate", ["server.pem"]),
                Node("ssl_certificate_key", ["server.key"]),
                Node("ssl_verify_client", [verify]),
                Node("ssl_client_certificate", [ca]),
            ],
            value(("443", "8443", "127.0.0.1:443", "[::]:443"), j),
            value(VERIFY_VALUES, j),
            _files(j),
        ),
    )
    return st.builds(
        lambda head, extra: Node("server", [], [*head, *extra]),
        skeleton,
        st.lists(st.one_of(*common), max_size=10),
    )


@functools.cache
def _map_node(j: int) -> st.SearchStrategy[Node]:
    keys = ("default", "SUCCESS", "success", "NONE", "~^FAILED", "~*fail", "~(", "/CN=admin", "~CN=admin", "~^CN=admin,", "hostnames", "volatile", "\\SUCCESS")
    entry = st.builds(lambda k, v: Node(k, [v]), value(keys, j), value(("0", "1", "$ssl_client_verify", "yes", "", "$mtls_ok"), j))
    return st.builds(
        lambda src, dst, b: Node("map", [src, dst], b),
        value(("$ssl_client_verify", "$ssl_client_s_dn", "$mtls_ok", "$host", "$dn_ok"), j),
        value(("$mtls_ok", "$dn_ok", "$ssl_client_verify"), j),
        st.lists(entry, max_size=5),
    )


@functools.cache
def _upstream_node(j: int) -> st.SearchStrategy[Node]:
    return st.builds(
        lambda n, b: Node("upstream", [n], b),
        value(("api_pool", "backend.internal", "10.0.0.5"), j),
        st.lists(st.builds(Node, st.just("server"), _args(value(HOSTS, j))), max_size=2),
    )


@functools.cache
def _context_block(kind: str, j: int) -> st.SearchStrategy[Node]:
    items: list[st.SearchStrategy[Node]] = [
        _ssl_nodes(j),
        _upstream_node(j),
        _upstream_tls_nodes("proxy", j),
        _include_node(j),
    ]
    if kind == "http":
        items += [_map_node(j), _map_node(j), _error_page_node(j), _header_node(j)]
    return st.builds(
        lambda servers, other: Node(kind, [], [*other, *servers]),
        st.lists(_server(kind, j), min_size=1, max_size=4),
        st.lists(st.one_of(*items), max_size=6),
    )


@functools.cache
def _top_level(j: int) -> st.SearchStrategy[list[Node]]:
    """Usually `events {}` and one http block; sometimes a stream block, more http, junk."""
    extra = st.lists(
        st.one_of(
            _context_block("http", j),
            _context_block("stream", j),
            st.just(Node("worker_processes", ["auto"])),
            _include_node(j),
            _junk_node(j),
        ),
        max_size=2,
    )
    return st.builds(
        lambda events, http, more: [*events, *http, *more],
        st.sampled_from([[Node("events", [], [])], []]),
        st.one_of(st.lists(_context_block("http", j), min_size=1, max_size=1), st.just([])),
        extra,
    )


@functools.cache
def _included_contents(j: int) -> st.SearchStrategy[list[Node]]:
    """What an included file holds: server-level, http-level or location-level items."""
    return st.one_of(
        st.lists(_server("http", j), max_size=2),
        st.lists(st.one_of(_ssl_nodes(j), _map_node(j), _include_node(j), _upstream_node(j)), max_size=4),
        st.lists(st.one_of(_leaf_in_location(j), _location(1, j)), max_size=4),
        st.just([]),
    )


# -- rendering


COMMENTS = (
    "# a comment", "#", "# mtls-audit: ignore MTLS101", '# mtls-audit: ignore MTLS101, MTLS206 reason="known"',
    "# café ☃", "# {", "#\x00",
)


def render_token(rnd: random.Random, token: str, raw: bool) -> str:
    """Bare when that is safe, else quoted; sometimes quoted anyway; with `raw`, sometimes left
    unquoted even when that breaks the statement (junk for the parser to cope with)."""
    style = rnd.randrange(20)
    if raw and style == 0:
        return token
    if token and _BARE.match(token) and style < 14:
        return token
    if style % 2:
        return '"' + token.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return "'" + token.replace("\\", "\\\\").replace("'", "\\'") + "'"


def render_nodes(rnd: random.Random, nodes: Sequence[Node], raw: bool = False, indent: int = 0) -> str:
    """Config text for `nodes`; `rnd` picks quoting, separators and stray comments."""
    out = io.StringIO()
    pad = "    " * indent
    for n in nodes:
        if rnd.randrange(16) == 0:
            out.write(pad + rnd.choice(COMMENTS) + "\n")
        name = n.name if rnd.randrange(10) else render_token(rnd, n.name, raw)
        parts = [name] + [render_token(rnd, a, raw) for a in n.args]
        sep = rnd.choice((" ", " ", "\t", "  ", "\n" + pad + "  "))
        head = pad + sep.join(parts)
        if n.block is None:
            out.write(head + ";\n")
        elif not n.block:
            out.write(head + " {}\n")
        else:
            out.write(head + " {\n" + render_nodes(rnd, n.block, raw, indent + 1) + pad + "}\n")
    return out.getvalue()


@st.composite
def rendered(draw: st.DrawFn, nodes: st.SearchStrategy[list[Node]], raw: bool) -> bytes:
    """Draw a directive list and render it with a drawn seed (cheap, and still reproducible)."""
    tree = draw(nodes)
    rnd = random.Random(draw(st.integers(0, 2**32 - 1)))
    return render_nodes(rnd, tree, raw).encode("utf-8", errors="surrogatepass")


@dataclass
class ConfigCase:
    """A generated configuration: file name -> bytes; `nginx.conf` is the main file."""

    files: dict[str, bytes]

    def write(self, folder: Path, specials: bool = True) -> Path:
        """Write the files into `folder`; with `specials`, also a FIFO and a symlink loop that
        generated directives may name (`fifo`, `loop`)."""
        for name, data in self.files.items():
            p = folder / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        if specials:
            if not (folder / "fifo").exists() and hasattr(os, "mkfifo"):
                os.mkfifo(folder / "fifo")
            if not os.path.lexists(folder / "loop"):
                os.symlink("loop", folder / "loop")
        return folder / "nginx.conf"

    def dump(self, folder: str = "/etc/nginx") -> str:
        """The same files as an `nginx -T` dump (config files only)."""
        parts = []
        for name, data in self.files.items():
            if name.endswith(".conf"):
                text = data.decode("utf-8", errors="replace")
                parts.append(f"# configuration file {folder}/{name}:\n{text}")
        return "".join(parts)

    def describe(self) -> str:
        return "\n".join(f"--- {n}\n{d.decode('utf-8', errors='backslashreplace')}" for n, d in self.files.items())


@st.composite
def config_case(draw: st.DrawFn, with_pki: bool = True) -> ConfigCase:
    """A main config, up to three included files, and the PKI files they may name."""
    j = draw(st.sampled_from(JUNK_LEVELS))
    raw = j > 0
    files: dict[str, bytes] = {"nginx.conf": draw(rendered(_top_level(j), raw))}
    for i in range(draw(st.integers(0, 2))):
        files[f"inc{i}.conf"] = draw(rendered(_included_contents(j), raw))
    if draw(st.booleans()):
        files["conf.d/a.conf"] = draw(rendered(_included_contents(j), raw))
    if with_pki:
        pool = pki_pool()
        files.update(pool.files)
        if draw(st.booleans()):
            files["mut0.pem"] = draw(mutated(pool.files[draw(st.sampled_from(pool.pem_like))]))
        if draw(st.booleans()):
            files["mut1.pem"] = draw(trust_material())
    return ConfigCase(files)


@functools.cache
def options_strategy() -> st.SearchStrategy[Options]:
    return st.builds(
        Options,
        require_mtls=st.lists(st.sampled_from(["*", ":443", "a.test", "*.internal", ":x", "["]), max_size=2).map(tuple),
        require_upstream_mtls=st.lists(st.sampled_from(["*", "backend.*", "10.*"]), max_size=1).map(tuple),
        nginx_version=st.sampled_from([None, (1, 18, 0), (1, 22, 1), (1, 25, 3), (1, 27, 3), (1, 28, 3), (1, 29, 2)]),
        warn_days=st.sampled_from([0, 30, 100000]),
    )


# --------------------------------------------------------------------------------------------
# Every trust-material slot of one server filled with generated bytes


TRUST_SLOTS = """events {{}}
http {{
    ssl_crl crl.pem;
    server {{
        listen 443 ssl;
        server_name a.test;
        ssl_certificate cert.pem;
        ssl_certificate_key key.pem;
        ssl_verify_client {verify};
        ssl_client_certificate ca.pem;
        ssl_trusted_certificate trusted.pem;
        location / {{
            proxy_pass https://backend.internal;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate ca.pem;
            proxy_ssl_crl crl.pem;
            proxy_ssl_certificate cert.pem;
            proxy_ssl_certificate_key key.pem;
        }}
    }}
}}
"""
TRUST_SLOT_NAMES = ("ca", "crl", "cert", "key", "trusted")


def trust_slots_case() -> st.SearchStrategy[ConfigCase]:
    """A config whose CA, CRL, certificate, key and trusted files all hold `trust_material()`."""
    return st.builds(
        lambda files, verify: ConfigCase(
            {"nginx.conf": TRUST_SLOTS.format(verify=verify).encode(), **{f"{k}.pem": v for k, v in files.items()}}
        ),
        st.fixed_dictionaries({slot: trust_material() for slot in TRUST_SLOT_NAMES}),
        st.sampled_from(["on", "optional", "optional_no_ca"]),
    )


# --------------------------------------------------------------------------------------------
# Fixture corpus for mutation


@functools.cache
def fixture_corpus() -> tuple[tuple[str, bytes], ...]:
    """(relative path, bytes) of every committed Nginx config the rules are tested on."""
    out = []
    for p in sorted(FIXTURES.rglob("*.conf")):
        out.append((str(p.relative_to(FIXTURES)), p.read_bytes()))
    dump = FIXTURES / "dump" / "nginx-T.txt"
    if dump.exists():
        out.append((str(dump.relative_to(FIXTURES)), dump.read_bytes()))
    return tuple(out)


def fixture_config_case(rel: str, data: bytes) -> ConfigCase:
    """A fixture config as the main file, with the files of its folder when it is a folder fixture."""
    path = FIXTURES / rel
    files: dict[str, bytes] = {}
    folder = path.parent
    if path.name == "nginx.conf" or folder.name in ("conf.d",):
        base = folder if path.name == "nginx.conf" else folder.parent
        for q in sorted(base.rglob("*")):
            if q.is_file() and q.suffix == ".conf":
                files[str(q.relative_to(base))] = q.read_bytes()
        files[str(path.relative_to(base))] = data
        if "nginx.conf" not in files:
            files["nginx.conf"] = data
    else:
        files["nginx.conf"] = data
    return ConfigCase(files)


def save_crash(folder: Path, name: str, files: Mapping[str, bytes], note: str) -> Path:
    """Write a failing input (all its files) and what went wrong, for a developer to replay."""
    target = folder / name
    target.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        p = target / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    (target / "FAILURE.txt").write_text(note, encoding="utf-8")
    return target


def all_files(paths: Iterable[str]) -> list[str]:
    return [p for p in paths if os.path.isfile(p)]
