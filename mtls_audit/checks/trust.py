"""Trust material rules MTLS201-MTLS210: the files behind the directives, not the directives.

A config can be flawless and still lock every client out, or let every client in, because of
what its files hold: an expired CRL rejects every certificate (`CRL has expired`), a public CA
bundle as `ssl_client_certificate` accepts any publicly issued clientAuth certificate, a
certificate file given as `ssl_crl` passes `nginx -t` and then rejects everyone (doc §2, §6, §9
items 2-4). These checks read the files the way Nginx loads them:

* Relative paths resolve against the conf prefix (`ngx_conf_full_name(..., 1)`), i.e.
  `EffectiveConfig.loaded.prefix`. Paths with variables (`ssl_certificate $ssl_server_name.crt`,
  legal since 1.15.9) and `engine:`/`store:`/`data:` names cannot be resolved statically.
* A file counts only where Nginx actually loads it (checked against `nginx -t` on 1.22.1):
  server files only in servers with an SSL context; `ssl_client_certificate` only when
  `ssl_verify_client` is not off; `ssl_trusted_certificate` and `ssl_crl` whatever the mode;
  `*_ssl_certificate(_key)` only on locations that pass to a TLS upstream, and
  `*_ssl_trusted_certificate`/`*_ssl_crl` only when `*_ssl_verify on`.
* Results are per directive line and file, not per server: an http-level CA inherited by fifty
  servers is one subject. Subjects name the directive, the file and the block it is written in
  (never the line number, so fingerprints survive edits above it).

Every file is parsed once per run through the `CertCache` kept in `EffectiveConfig.cache`.
Key files are described by path, mode and type only; their contents never reach a result.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from cryptography import x509

from ..certs import (
    SYSTEM_ROOT_BUNDLES,
    CertCache,
    CertFacts,
    CrlFacts,
    FileFacts,
    as_utc,
    crl_signed_by,
    days_left,
    expires_within,
    is_expired,
    is_not_yet_valid,
    key_matches_cert,
    load_system_roots,
    weak_reasons,
)
from ..context import CheckContext, CheckFn
from ..model import Finding, RuleMeta, Severity, SourceLocation, Status
from ..nginx.effective import EffectiveConfig, Location, Server
from ..nginx.load import Directive
from .upstream import iter_paths

CACHE_KEY = "certs"
"""`EffectiveConfig.cache` key of the run's `CertCache` (other families may share it)."""
INDEX_KEY = "trust_index"

UNRESOLVABLE_PREFIXES = ("engine:", "store:", "data:")
"""Key and certificate names Nginx hands to an engine, an OSSL store, or reads from a variable."""

MAX_LISTED = 20
"""Subjects listed in evidence before the rest are only counted (a public bundle has ~150)."""

STREAM_OCSP_BROKEN = (((1, 27, 2), (1, 28, 3)), ((1, 29, 0), (1, 29, 7)))
"""CVE-2026-28755: stream `ssl_ocsp` did not reject revoked certificates (doc §1.2)."""


# --------------------------------------------------------------------------------------------
# Which files Nginx loads, indexed once per run


@dataclass(eq=False)
class FileRef:
    """One directive naming one file, with the servers that load the file through it."""

    directive: Directive
    written: str
    """The argument as written in the config."""
    path: str | None
    """Resolved against the conf prefix; None when it cannot be resolved statically."""
    scope: str
    """The block the directive is written in: `http block in nginx.conf`, a server, a location."""
    location: SourceLocation
    servers: list[Server] = field(default_factory=list)
    """In config order; a set of ids keeps adding linear for an http-level file and 20k servers."""
    _server_ids: set[int] = field(default_factory=set, repr=False)

    def add_server(self, srv: Server) -> None:
        if id(srv) not in self._server_ids:
            self._server_ids.add(id(srv))
            self.servers.append(srv)

    @property
    def name(self) -> str:
        return self.directive.name

    @functools.cached_property
    def subject(self) -> str:
        """Asked for by each of the ten file rules; a reference never changes once indexed."""
        return f"{self.name} {self.written} in {self.scope}"

    def evidence(self) -> dict[str, object]:
        return {"directive": self.directive.name, "path": self.written, "resolved": self.path}


@dataclass
class TrustIndex:
    """Every file reference of one config, grouped by what each rule looks at."""

    cache: CertCache
    files_visible: bool
    """False when the main config is not on this machine (an `nginx -T` dump from another
    host): the referenced files are not here either, so file rules skip instead of failing."""
    loaded: list[FileRef] = field(default_factory=list)
    """Every file Nginx loads (MTLS201), variables and engine keys included."""
    ca_files: list[FileRef] = field(default_factory=list)
    """Every CA file Nginx loads, client or upstream (MTLS202)."""
    client_ca: list[FileRef] = field(default_factory=list)
    """`ssl_client_certificate` + `ssl_trusted_certificate` of servers that verify clients."""
    crls: list[FileRef] = field(default_factory=list)
    """`ssl_crl` of servers that verify clients (MTLS207)."""
    server_certs: list[FileRef] = field(default_factory=list)
    keys: list[FileRef] = field(default_factory=list)
    """`ssl_certificate_key` and the upstream client keys (MTLS210)."""
    pairs: list[tuple[FileRef, FileRef | None]] = field(default_factory=list)
    """(ssl_certificate, ssl_certificate_key) paired by position, as Nginx pairs them."""
    trust_sets: dict[int, list[FileRef]] = field(default_factory=dict)
    """id(server) -> the files whose certificates form that server's client trust set."""
    _by_path: dict[str, FileFacts] = field(default_factory=dict, repr=False)

    def file(self, path: str) -> FileFacts:
        """Facts for a resolved path. The CertCache parses each real file once; this memo also
        spares its realpath() per lookup, which dominates with 80,000 file directives."""
        facts = self._by_path.get(path)
        if facts is None:
            facts = self._by_path[path] = self.cache.get(path)
        return facts

    def facts(self, ref: FileRef) -> FileFacts | None:
        """Parsed facts, or None when the path is unresolvable or the file unusable (MTLS201's)."""
        if ref.path is None or not self.files_visible:
            return None
        facts = self.file(ref.path)
        return None if facts.error is not None else facts


def resolve_path(prefix: str, written: str) -> str | None:
    """The file Nginx opens for `written`, or None when only the running Nginx can know."""
    if not written or "$" in written or written.startswith(UNRESOLVABLE_PREFIXES):
        return None
    return os.path.normpath(os.path.join(prefix, written))


def cert_cache(cfg: EffectiveConfig) -> CertCache:
    """The run's one CertCache, created on first use and shared by every trust check."""
    cache = cfg.cache.get(CACHE_KEY)
    if not isinstance(cache, CertCache):
        cache = CertCache()
        cfg.cache[CACHE_KEY] = cache
    return cache


class _Builder:
    """Collects FileRefs, one per (file, line, argument), whatever the number of servers."""

    def __init__(self, cfg: EffectiveConfig) -> None:
        self.prefix = cfg.loaded.prefix
        self.groups: dict[str, dict[tuple[str, int, str], FileRef]] = {}
        self.subjects: dict[int, str] = {}

    def add(self, groups: Sequence[str], d: Directive | None, srv: Server,
            loc: Location | None = None) -> FileRef | None:
        """Register `d` (when set) as loaded by `srv` (through `loc`), in `groups` and `loaded`."""
        if d is None or not d.args:
            return None
        key = (d.file, d.line, d.args[0])
        loaded = self.groups.setdefault("loaded", {})
        ref = loaded.get(key)
        if ref is None:
            ref = loaded[key] = self._new(d, srv, loc)
        for group in groups:
            self.groups.setdefault(group, {}).setdefault(key, ref)
        ref.add_server(srv)
        return ref

    def _new(self, d: Directive, srv: Server, loc: Location | None) -> FileRef:
        """Find the block `d` is written in: a location on `loc`'s path, the server, or the
        http/stream block. Done once per file directive, not once per directive of the config."""
        scope: str | None = None
        while loc is not None and scope is None:
            if _holds(loc.directive, d):
                scope = f"{self._subject(srv)} location {loc.name}"
            loc = loc.parent
        if scope is None and _holds(srv.directive, d):
            scope = self._subject(srv)
        if scope is None:
            ctx = srv.context
            scope = f"{ctx.name} block in {ctx.file}" if _holds(ctx, d) else d.file
            location = SourceLocation(file=d.file, line=d.line, root=srv.root)
        else:
            location = srv.loc(d)
        return FileRef(d, d.args[0], resolve_path(self.prefix, d.args[0]), scope, location)

    def _subject(self, srv: Server) -> str:
        subject = self.subjects.get(id(srv))
        if subject is None:
            subject = self.subjects[id(srv)] = srv.subject
        return subject

    def refs(self, group: str) -> list[FileRef]:
        return list(self.groups.get(group, {}).values())


def _holds(block: Directive, d: Directive) -> bool:
    """Whether `d` is written directly in `block` (identity: the same line may be included twice)."""
    return any(child is d for child in block.block or ())


def build_index(cfg: EffectiveConfig) -> TrustIndex:
    """Which directive loads which file for whom, following Nginx's merge code (module doc)."""
    b = _Builder(cfg)
    pairs: dict[tuple[int, int], tuple[FileRef, FileRef | None]] = {}
    trust_sets: dict[int, list[FileRef]] = {}
    for srv in cfg.servers:
        if not srv.has_ssl_context:
            continue  # ngx_http_ssl_merge_srv_conf returns before loading anything
        certs = srv.arrays.get("ssl_certificate", [])
        keys = srv.arrays.get("ssl_certificate_key", [])
        for i, cd in enumerate(certs):
            cref = b.add(("cert",), cd, srv)
            kref = b.add(("key",), keys[i], srv) if i < len(keys) else None
            if cref is not None:
                pairs.setdefault((id(cref), id(kref)), (cref, kref))
        # Keys beyond the last certificate are never loaded: ngx_ssl_certificates() walks the
        # certificate list and takes the key at the same position.
        trust: list[FileRef] = []
        if srv.verifies:
            # ngx_ssl_client_certificate() runs only under `if (conf->verify)`.
            ref = b.add(("ca", "client_ca"), srv.setting("ssl_client_certificate").directive, srv)
            if ref is not None:
                trust.append(ref)
        # ngx_ssl_trusted_certificate() and ngx_ssl_crl() run whatever the verify mode.
        tgroups = ("ca", "client_ca") if srv.verifies else ("ca",)
        ref = b.add(tgroups, srv.setting("ssl_trusted_certificate").directive, srv)
        if ref is not None and srv.verifies:
            trust.append(ref)
        b.add(("crl",) if srv.verifies else (), srv.setting("ssl_crl").directive, srv)
        if srv.verifies:
            trust_sets[id(srv)] = trust
    for p in iter_paths(cfg):
        if not p.tls:
            continue
        m = p.module
        at = p.location
        b.add(("upstream_cert",), p.setting(f"{m}_ssl_certificate").directive, p.server, at)
        b.add(("key",), p.setting(f"{m}_ssl_certificate_key").directive, p.server, at)
        if p.setting(f"{m}_ssl_verify").value == "on":
            b.add(("ca",), p.setting(f"{m}_ssl_trusted_certificate").directive, p.server, at)
            b.add(("upstream_crl",), p.setting(f"{m}_ssl_crl").directive, p.server, at)
    return TrustIndex(
        cache=cert_cache(cfg),
        files_visible=os.path.exists(cfg.loaded.main_file),
        loaded=b.refs("loaded"),
        ca_files=b.refs("ca"),
        client_ca=b.refs("client_ca"),
        crls=b.refs("crl"),
        server_certs=b.refs("cert"),
        keys=b.refs("key"),
        pairs=list(pairs.values()),
        trust_sets=trust_sets,
    )


def trust_index(ctx: CheckContext) -> TrustIndex | None:
    """The run's index, built on first use; None without a config."""
    cfg = ctx.config
    if cfg is None:
        return None
    idx = cfg.cache.get(INDEX_KEY)
    if not isinstance(idx, TrustIndex):
        idx = build_index(cfg)
        cfg.cache[INDEX_KEY] = idx
    return idx


# --------------------------------------------------------------------------------------------
# Helpers


@functools.lru_cache(maxsize=4096)
def iso(when: dt.datetime) -> str:
    """ISO 8601 in UTC with `Z`, the form every date in evidence uses.

    Cached: the same few certificates' dates go into the evidence of thousands of results.
    """
    return as_utc(when).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _listed(items: Sequence[str]) -> list[str]:
    if len(items) <= MAX_LISTED:
        return list(items)
    return [*items[:MAX_LISTED], f"... and {len(items) - MAX_LISTED} more"]


def _finding(rule: RuleMeta, ref: FileRef, status: Status, message: str,
             evidence: Mapping[str, object] | None = None, *,
             severity: Severity | None = None, subject: str | None = None) -> Finding:
    """A result on a file reference; evidence always names the directive and both paths."""
    return Finding(
        rule_id=rule.id,
        status=status,
        message=message,
        subject=subject or ref.subject,
        location=ref.location,
        evidence={**ref.evidence(), **(evidence or {})},
        severity=severity,
    )


def _skipped_elsewhere(rule: RuleMeta) -> Iterator[Finding]:
    """One `skipped` result instead of a failure for every file of a config from elsewhere."""
    yield Finding(
        rule_id=rule.id,
        status=Status.SKIPPED,
        message="the main config is not on this machine (an nginx -T dump from another host?): "
        "the files it references cannot be read here",
        subject="referenced files",
    )


def _with_facts(idx: TrustIndex, refs: Iterable[FileRef]) -> Iterator[tuple[FileRef, FileFacts]]:
    for ref in refs:
        facts = idx.facts(ref)
        if facts is not None:
            yield ref, facts


def _cert_line(c: CertFacts) -> dict[str, object]:
    return {"index": c.index, "subject": c.subject, "not_after": iso(c.not_after)}



IndexedCheck = Callable[[CheckContext, RuleMeta, "TrustIndex"], Iterable[Finding]]


def _on_visible_files(fn: IndexedCheck) -> CheckFn:
    """Run a file check with the run's TrustIndex, or report it skipped when the files named by
    the config are not on this machine (an `nginx -T` dump from another host)."""

    @functools.wraps(fn)
    def check(ctx: CheckContext, rule: RuleMeta) -> Iterable[Finding]:
        idx = trust_index(ctx)
        if idx is None:
            return
        if not idx.files_visible:
            yield from _skipped_elsewhere(rule)
            return
        yield from fn(ctx, rule, idx)

    return check

# --------------------------------------------------------------------------------------------
# MTLS201


def _load_failure(name: str) -> str:
    """The `[emerg]` Nginx logs for an unreadable file of this directive (seen on 1.22.1)."""
    if name.endswith("_crl"):
        return "X509_LOOKUP_load_file() failed"
    if name.endswith("_trusted_certificate") or name == "ssl_client_certificate":
        return "SSL_CTX_load_verify_locations() failed"
    if name.endswith("_key"):
        return "cannot load certificate key"
    return "cannot load certificate"


@_on_visible_files
def check_201(ctx: CheckContext, rule: RuleMeta, idx: TrustIndex) -> Iterable[Finding]:
    """Nginx loads these files at start and reload; one missing file is an `[emerg]`."""
    for ref in idx.loaded:
        if ref.path is None:
            yield _finding(rule, ref, Status.SKIPPED,
                           f"{ref.name} {ref.written}: the name uses variables or an engine/store, "
                           "so the file is only known to the running Nginx")
            continue
        facts = idx.file(ref.path)
        if facts.error is None:
            yield _finding(rule, ref, Status.PASS, f"{ref.name} {ref.written} is readable", {"mode": _mode(facts)})
            continue
        yield _finding(
            rule, ref, Status.FAIL,
            f"{ref.name} {ref.written}: {facts.error} ({ref.path}); `nginx -t` fails "
            f"(`{_load_failure(ref.name)}`) and Nginx will not start or reload",
            {"error": facts.error, "mode": _mode(facts)},
        )


def _mode(facts: FileFacts) -> str | None:
    return f"{facts.mode:04o}" if facts.mode is not None else None


# --------------------------------------------------------------------------------------------
# MTLS202


@_on_visible_files
def check_202(ctx: CheckContext, rule: RuleMeta, idx: TrustIndex) -> Iterable[Finding]:
    """A CA file without a PEM certificate: `no certificate or crl found` (or no trust anchor)."""
    for ref, facts in _with_facts(idx, idx.ca_files):
        problems = list(facts.problems[:5])
        if facts.certs and facts.encoding == "DER":
            # Nginx reads CA files with PEM_X509_INFO_read_bio: DER is not a certificate to it.
            yield _finding(rule, ref, Status.FAIL,
                           f"{ref.name} {ref.written} is DER-encoded; Nginx reads PEM only, so "
                           "`nginx -t` fails (`no certificate or crl found`)",
                           {"encoding": "DER"})
            continue
        if facts.certs:
            yield _finding(rule, ref, Status.PASS,
                           f"{ref.name} {ref.written} holds {len(facts.certs)} certificate(s)",
                           {"certificates": len(facts.certs), "problems": problems})
            continue
        held = _describe_contents(facts)
        # Checked on 1.22.1: SSL_CTX_load_verify_locations() accepts a file of CRLs, but
        # ssl_client_certificate also builds the CA name list and then fails on it too.
        if facts.crls and ref.name != "ssl_client_certificate":
            peer = "client" if ref.name.startswith("ssl_") else "upstream"
            effect = f"it loads, but anchors nothing: no {peer} certificate verifies against it"
        else:
            effect = "`nginx -t` fails, so Nginx will not start or reload"
        yield _finding(rule, ref, Status.FAIL,
                       f"{ref.name} {ref.written} holds no parseable certificate ({held}); {effect}",
                       {"contents": held, "problems": problems})


def _describe_contents(facts: FileFacts) -> str:
    """What the file holds instead, without a byte of any key."""
    parts = []
    if facts.crls:
        parts.append(f"{len(facts.crls)} CRL(s)")
    if facts.keys:
        parts.append(f"{len(facts.keys)} private key(s)")
    if facts.other_blocks:
        parts.append("PEM blocks " + ", ".join(sorted(set(facts.other_blocks))))
    if not parts:
        parts.append(facts.problems[0] if facts.problems else "nothing")
    return "; ".join(parts)


# --------------------------------------------------------------------------------------------
# MTLS203


def _not_a_ca(c: CertFacts) -> tuple[str, str] | None:
    """(why, what it does in the trust set) when `c` is no proper CA certificate; else None.

    OpenSSL's check_ca() also tolerates, at the trust-anchor position only, a self-signed cert
    without basicConstraints whose keyUsage allows certSign: still reported (RFC 5280 requires
    CA:TRUE in CA certificates) but described as such. X.509 v1 roots, which cannot carry
    extensions at all and which OpenSSL accepts as CAs, are not reported.
    """
    if c.is_ca:
        if c.has_key_usage and not c.key_cert_sign:
            return ("CA:TRUE but keyUsage lacks keyCertSign",
                    "OpenSSL rejects what it signs (`key usage does not include certificate signing`)")
        return None
    if not c.has_basic_constraints and c.self_signed and c.raw.version is x509.Version.v1:
        return None
    reason = "basicConstraints CA:FALSE" if c.has_basic_constraints else "no basicConstraints"
    if not c.has_basic_constraints and c.self_signed and c.has_key_usage and c.key_cert_sign:
        return (reason, "OpenSSL tolerates it only as a self-signed trust anchor, against RFC 5280")
    if c.self_signed:
        return (reason, "self-signed: presenting exactly this certificate authenticates (a pinned identity)")
    return (reason, "a leaf: it issues nothing and, not being self-signed, anchors nothing on its own "
                    "(Nginx allows no partial chains)")


@_on_visible_files
def check_203(ctx: CheckContext, rule: RuleMeta, idx: TrustIndex) -> Iterable[Finding]:
    """A leaf in the CA file pins one identity (self-signed) or anchors nothing (doc §2)."""
    for ref, facts in _with_facts(idx, idx.client_ca):
        if not facts.certs:
            continue  # MTLS202
        bad = []
        for c in facts.certs:
            verdict = _not_a_ca(c)
            if verdict is not None:
                why, effect = verdict
                bad.append({"index": c.index, "subject": c.subject, "reason": why, "effect": effect})
        if not bad:
            yield _finding(rule, ref, Status.PASS,
                           f"{ref.name} {ref.written}: all {len(facts.certs)} certificate(s) are CAs")
            continue
        first = bad[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        yield _finding(rule, ref, Status.FAIL,
                       f"{ref.name} {ref.written} holds a non-CA certificate: {first['subject']} "
                       f"({first['reason']}; {first['effect']}){more}",
                       {"non_ca": bad[:MAX_LISTED], "count": len(bad)})


# --------------------------------------------------------------------------------------------
# MTLS204


@_on_visible_files
def check_204(ctx: CheckContext, rule: RuleMeta, idx: TrustIndex) -> Iterable[Finding]:
    """OpenSSL checks the anchor's dates too: an expired CA locks out everyone it issued."""
    now = ctx.options.now
    warn = ctx.options.warn_days
    for ref, facts in _with_facts(idx, idx.client_ca):
        if not facts.certs:
            continue
        expired = [c for c in facts.certs if is_expired(c, now)]
        expiring = [c for c in facts.certs if not is_expired(c, now) and expires_within(c, now, warn)]
        ev = {
            "expired": [_cert_line(c) for c in expired[:MAX_LISTED]],
            "expiring": [{**_cert_line(c), "days_left": days_left(c, now)} for c in expiring[:MAX_LISTED]],
            "warn_days": warn,
            "now": iso(now),
        }
        if expired:
            c = expired[0]
            more = f" (and {len(expired) - 1} more)" if len(expired) > 1 else ""
            yield _finding(rule, ref, Status.FAIL,
                           f"{ref.name} {ref.written}: CA {c.subject} expired on {iso(c.not_after)}{more}; "
                           "client certificates it issued are rejected (`certificate has expired`)",
                           ev)
        elif expiring:
            c = min(expiring, key=lambda x: x.not_after)
            yield _finding(rule, ref, Status.FAIL,
                           f"{ref.name} {ref.written}: CA {c.subject} expires on {iso(c.not_after)} "
                           f"({days_left(c, now)} days, within --warn-days {warn})",
                           ev, severity=Severity.MEDIUM)
        else:
            soonest = min(facts.certs, key=lambda x: x.not_after)
            yield _finding(rule, ref, Status.PASS,
                           f"{ref.name} {ref.written}: no CA expires within {warn} days "
                           f"(first: {iso(soonest.not_after)})",
                           ev)


# --------------------------------------------------------------------------------------------
# MTLS205


def _public_bundle_paths() -> frozenset[str]:
    paths = list(SYSTEM_ROOT_BUNDLES)
    try:
        import certifi
    except ImportError:
        pass
    else:
        paths.append(certifi.where())
    return frozenset(os.path.realpath(p) for p in paths)


@_on_visible_files
def check_205(ctx: CheckContext, rule: RuleMeta, idx: TrustIndex) -> Iterable[Finding]:
    """Any public CA in the client trust set lets any holder of one of its certificates in."""
    roots = load_system_roots()
    spkis = {spki for _subject, spki in roots}
    root_subjects = {subject for subject, _spki in roots}
    bundles = _public_bundle_paths()
    for ref, facts in _with_facts(idx, idx.client_ca):
        is_bundle = facts.realpath in bundles
        public = [c.subject for c in facts.certs if c.spki_sha256 and c.spki_sha256 in spkis]
        # A CA issued by a public root (a public intermediate) vouches for the same public world.
        chained = [c.subject for c in facts.certs
                   if c.is_ca and not c.self_signed and c.issuer in root_subjects
                   and c.spki_sha256 not in spkis]
        ev = {
            "public_roots": _listed(public),
            "public_root_count": len(public),
            "public_intermediates": _listed(chained),
            "certificates": len(facts.certs),
            "system_bundle": is_bundle,
            "roots_compared": len(roots),
        }
        if public or chained or is_bundle:
            if is_bundle:
                what = f"is the system's public CA bundle ({len(facts.certs)} certificates)"
            elif public:
                what = f"holds {len(public)} publicly trusted root(s), e.g. {public[0]}"
            else:
                what = f"holds {len(chained)} CA(s) issued by a public root, e.g. {chained[0]}"
            yield _finding(rule, ref, Status.FAIL,
                           f"{ref.name} {ref.written} {what}; any certificate a public CA issues with "
                           "the clientAuth EKU authenticates",
                           ev)
        elif not roots:
            yield _finding(rule, ref, Status.SKIPPED,
                           "no public root store found on this machine (system bundle or certifi) "
                           "to compare with", ev)
        else:
            yield _finding(rule, ref, Status.PASS,
                           f"{ref.name} {ref.written}: none of {len(facts.certs)} certificate(s) is "
                           f"a public root ({len(roots)} compared)", ev)


# --------------------------------------------------------------------------------------------
# MTLS206


def _stream_ocsp_broken(version: tuple[int, int, int] | None) -> bool:
    return version is not None and any(lo <= version < hi for lo, hi in STREAM_OCSP_BROKEN)


def check_206(ctx: CheckContext, rule: RuleMeta) -> Iterable[Finding]:
    """Without ssl_crl or ssl_ocsp a revoked certificate verifies as SUCCESS (doc §3.3, §6)."""
    if ctx.config is None:
        return
    version = ctx.options.nginx_version
    for srv in ctx.config.servers:
        if not srv.verifies or not srv.has_ssl_context:
            continue
        vline = srv.setting("ssl_verify_client").directive or srv.directive
        crl = srv.setting("ssl_crl")
        ocsp = srv.setting("ssl_ocsp")
        ev: dict[str, object] = {"mode": srv.verify, "ssl_crl": crl.value or None, "ssl_ocsp": ocsp.value or "off"}
        ocsp_on = ocsp.value in ("on", "leaf")
        if crl.directive is not None:
            yield Finding(rule.id, Status.PASS, f"revocation checked with ssl_crl {crl.value}",
                          srv.subject, srv.loc(vline), evidence=ev)
        elif ocsp_on and srv.kind == "stream" and _stream_ocsp_broken(version):
            assert version is not None
            yield Finding(rule.id, Status.FAIL,
                          f"stream ssl_ocsp {ocsp.value} on Nginx {'.'.join(map(str, version))} does not "
                          "reject revoked certificates (CVE-2026-28755; fixed in 1.28.3 and 1.29.7), "
                          "and there is no ssl_crl",
                          srv.subject, srv.loc(ocsp.directive or vline), evidence={**ev, "cve": "CVE-2026-28755"})
        elif ocsp_on:
            yield Finding(rule.id, Status.PASS, f"revocation checked with ssl_ocsp {ocsp.value}",
                          srv.subject, srv.loc(vline), evidence=ev)
        else:
            yield Finding(rule.id, Status.FAIL,
                          f"ssl_verify_client {srv.verify} without ssl_crl or ssl_ocsp: Nginx does no "
                          "revocation checking, so a revoked client certificate is accepted",
                          srv.subject, srv.loc(vline), evidence=ev)


# --------------------------------------------------------------------------------------------
# MTLS207


def _trust_certs(idx: TrustIndex, srv: Server) -> list[CertFacts] | None:
    """Certificates of the server's trust set; None when a trust file cannot be read."""
    out: list[CertFacts] = []
    for ref in idx.trust_sets.get(id(srv), []):
        facts = idx.facts(ref)
        if facts is None:
            return None
        out.extend(facts.certs)
    return out


def _crl_line(crl: CrlFacts) -> dict[str, object]:
    return {
        "index": crl.index,
        "issuer": crl.issuer,
        "last_update": iso(crl.last_update),
        "next_update": iso(crl.next_update) if crl.next_update is not None else None,
        "revoked": crl.revoked_count,
    }


def _signed(crl: CrlFacts, ca: CertFacts, memo: dict[tuple[str, str], bool]) -> bool:
    key = (crl.sha256, ca.sha256)
    if key not in memo:
        memo[key] = crl_signed_by(crl, ca)
    return memo[key]


def _crl_vs_trust(crls: Sequence[CrlFacts], trust: Sequence[CertFacts],
                  memo: dict[tuple[str, str], bool]) -> tuple[list[str], list[str]]:
    """(reasons, CAs without a CRL) for one CRL file against one trust set."""
    reasons: list[str] = []
    for crl in crls:
        if not any(_signed(crl, ca, memo) for ca in trust):
            same_name = any(ca.subject == crl.issuer for ca in trust)
            detail = ("its issuer is in the trust set but the signature does not verify with its key: "
                      "OpenSSL fails every client certificate (`CRL signature failure`)" if same_name else
                      "Nginx never uses it")
            reasons.append(f"CRL #{crl.index} (issuer {crl.issuer}) is not signed by a CA of the trust set; {detail}")
    # X509_V_FLAG_CRL_CHECK_ALL: every CA on a client's chain needs a CRL of its own.
    missing = [ca.subject for ca in trust if ca.is_ca and not any(_signed(crl, ca, memo) for crl in crls)]
    return reasons, missing


@_on_visible_files
def check_207(ctx: CheckContext, rule: RuleMeta, idx: TrustIndex) -> Iterable[Finding]:
    """An unusable CRL fails closed for every certificate holder (doc §6)."""
    now = ctx.options.now
    memo: dict[tuple[str, str], bool] = {}
    for ref, facts in _with_facts(idx, idx.crls):
        reasons: list[str] = []
        missing: list[str] = []
        if facts.crls and facts.encoding == "DER":
            # Nginx reads ssl_crl as PEM only (X509_LOOKUP_load_file, verified on 1.22.1).
            reasons.append("holds a DER-encoded CRL: Nginx reads PEM only, so `nginx -t` fails "
                           "(`X509_LOOKUP_load_file() failed ... no certificate or crl found`)")
        elif not facts.crls and facts.certs:
            reasons.append(f"holds no CRL ({len(facts.certs)} certificate(s)): `nginx -t` accepts it, "
                           "then every client certificate is rejected (`unable to get certificate CRL`)")
        elif not facts.crls:
            reasons.append(f"holds no CRL ({_describe_contents(facts)}): `nginx -t` fails "
                           "(`X509_LOOKUP_load_file() failed ... no certificate or crl found`)")
        for crl in facts.crls:
            if crl.is_expired(now):
                assert crl.next_update is not None
                reasons.append(f"CRL #{crl.index} (issuer {crl.issuer}) expired: nextUpdate "
                               f"{iso(crl.next_update)} has passed, so every client certificate is "
                               "rejected (`CRL has expired`)")
            elif as_utc(now) < crl.last_update:
                reasons.append(f"CRL #{crl.index} (issuer {crl.issuer}) is not valid before "
                               f"{iso(crl.last_update)} (`CRL is not yet valid`)")
        unchecked = False
        if facts.crls:
            seen: set[tuple[int, ...]] = set()
            for srv in ref.servers:
                if not srv.verifies:
                    continue
                key = tuple(id(r) for r in idx.trust_sets.get(id(srv), []))
                if key in seen:
                    continue
                seen.add(key)
                trust = _trust_certs(idx, srv)
                if trust is None:
                    unchecked = True
                    continue
                r, m = _crl_vs_trust(facts.crls, trust, memo)
                reasons.extend(r)
                missing.extend(m)
        missing = list(dict.fromkeys(missing))
        if missing:
            reasons.append(f"{len(missing)} CA(s) of the trust set have no CRL in the file, e.g. "
                           f"{missing[0]}; Nginx checks every CA on the chain (CRL_CHECK_ALL), so "
                           "their clients are rejected (`unable to get certificate CRL`)")
        reasons = list(dict.fromkeys(reasons))
        ev = {
            "crls": [_crl_line(c) for c in facts.crls[:MAX_LISTED]],
            "cas_without_crl": _listed(missing),
            "reasons": reasons,
            "trust_set_checked": not unchecked,
            "now": iso(now),
        }
        if reasons:
            yield _finding(rule, ref, Status.FAIL, f"ssl_crl {ref.written}: " + "; ".join(reasons), ev)
        elif unchecked:
            yield _finding(rule, ref, Status.SKIPPED,
                           f"ssl_crl {ref.written}: current, but the trust set could not be read "
                           "to check who signed it (see MTLS201)", ev)
        else:
            nxt = [c.next_update for c in facts.crls if c.next_update is not None]
            when = f", next update {iso(min(nxt))}" if nxt else ""
            yield _finding(rule, ref, Status.PASS,
                           f"ssl_crl {ref.written}: {len(facts.crls)} current CRL(s){when}, one for "
                           "every CA of the trust set", ev)


# --------------------------------------------------------------------------------------------
# MTLS208


@_on_visible_files
def check_208(ctx: CheckContext, rule: RuleMeta, idx: TrustIndex) -> Iterable[Finding]:
    """Short keys and SHA-1/MD5 signatures in what anchors or proves identity."""
    for ref, facts in _with_facts(idx, [*idx.client_ca, *idx.server_certs, *idx.crls]):
        weak: list[dict[str, object]] = []
        for c in facts.certs:
            rs = weak_reasons(c)
            if rs:
                weak.append({"index": c.index, "subject": c.subject, "reasons": rs})
        for crl in facts.crls:
            rs = weak_reasons(crl)
            if rs:
                weak.append({"index": crl.index, "crl_issuer": crl.issuer, "reasons": rs})
        items = len(facts.certs) + len(facts.crls)
        if not items:
            continue
        if weak:
            first = weak[0]
            what = first.get("subject") or f"CRL from {first.get('crl_issuer')}"
            more = f" (and {len(weak) - 1} more)" if len(weak) > 1 else ""
            reasons = first["reasons"]
            assert isinstance(reasons, list)
            yield _finding(rule, ref, Status.FAIL,
                           f"{ref.name} {ref.written}: {what}: {', '.join(reasons)}{more}",
                           {"weak": weak[:MAX_LISTED], "count": len(weak)})
        else:
            yield _finding(rule, ref, Status.PASS,
                           f"{ref.name} {ref.written}: no weak key or signature in {items} item(s)")


# --------------------------------------------------------------------------------------------
# MTLS209


@_on_visible_files
def check_209(ctx: CheckContext, rule: RuleMeta, idx: TrustIndex) -> Iterable[Finding]:
    """The server's own certificate: clients reject it expired; Nginx refuses a wrong key."""
    now = ctx.options.now
    warn = ctx.options.warn_days
    for ref, facts in _with_facts(idx, idx.server_certs):
        yield _expiry_209(rule, ref, facts, now, warn)
    for cref, kref in idx.pairs:
        f = _pair_209(rule, idx, cref, kref)
        if f is not None:
            yield f


def _expiry_209(rule: RuleMeta, ref: FileRef, facts: FileFacts, now: dt.datetime, warn: int) -> Finding:
    if not facts.certs or facts.encoding != "PEM":
        return _finding(rule, ref, Status.FAIL,
                        f"ssl_certificate {ref.written} holds no PEM certificate "
                        f"({_describe_contents(facts) if not facts.certs else 'DER-encoded'}): Nginx "
                        "cannot load it and will not start", subject=f"expiry: {ref.subject}")
    chain = facts.certs
    ev = {"certificates": [_cert_line(c) for c in chain[:MAX_LISTED]], "warn_days": warn, "now": iso(now)}
    subject = f"expiry: {ref.subject}"
    expired = [c for c in chain if is_expired(c, now)]
    early = [c for c in chain if is_not_yet_valid(c, now)]
    if expired or early:
        c = (expired or early)[0]
        role = "server certificate" if c.index == chain[0].index else "chain certificate"
        what = f"expired on {iso(c.not_after)}" if expired else f"is not valid before {iso(c.not_before)}"
        return _finding(rule, ref, Status.FAIL,
                        f"ssl_certificate {ref.written}: {role} {c.subject} {what}; clients that "
                        "verify the server refuse the handshake", ev, subject=subject)
    soonest = min(chain, key=lambda x: x.not_after)
    if expires_within(soonest, now, warn):
        return _finding(rule, ref, Status.FAIL,
                        f"ssl_certificate {ref.written}: {soonest.subject} expires on "
                        f"{iso(soonest.not_after)} ({days_left(soonest, now)} days, within "
                        f"--warn-days {warn})", ev, severity=Severity.MEDIUM, subject=subject)
    return _finding(rule, ref, Status.PASS,
                    f"ssl_certificate {ref.written}: valid until {iso(soonest.not_after)}",
                    ev, subject=subject)


def _pair_209(rule: RuleMeta, idx: TrustIndex, cref: FileRef, kref: FileRef | None) -> Finding | None:
    subject = f"key pair: {cref.subject}"
    if kref is None:
        return _finding(rule, cref, Status.FAIL,
                        f"ssl_certificate {cref.written} has no ssl_certificate_key at its position: "
                        "Nginx refuses to start (`no \"ssl_certificate_key\" is defined`)", subject=subject)
    cfacts, kfacts = idx.facts(cref), idx.facts(kref)
    if cfacts is None or kfacts is None or not cfacts.certs:
        return None  # unresolvable or unreadable (MTLS201), or no certificate (expiry result)
    leaf = cfacts.certs[0]
    ev: dict[str, object] = {"certificate": cref.written, "key": kref.written, "subject": leaf.subject}
    if not kfacts.keys:
        return _finding(rule, kref, Status.FAIL,
                        f"ssl_certificate_key {kref.written} holds no private key "
                        f"({_describe_contents(kfacts)}): Nginx will not start",
                        ev, subject=subject)
    key = kfacts.keys[0]
    ev |= {"key_type": key.key_type, "key_format": key.format, "encrypted": key.encrypted}
    if kfacts.encoding == "DER":
        # ssl_certificate_key is read with PEM_read_bio_PrivateKey (verified on 1.22.1).
        return _finding(rule, kref, Status.FAIL,
                        f"ssl_certificate_key {kref.written} is a DER-encoded key: Nginx reads PEM only "
                        "and refuses to start (`PEM_read_bio_PrivateKey() failed`)", ev, subject=subject)
    if key.encrypted or not leaf.spki_sha256:
        why = "the key is encrypted" if key.encrypted else "the certificate's key type is not supported"
        return _finding(rule, kref, Status.SKIPPED,
                        f"ssl_certificate_key {kref.written}: not compared with {cref.written} ({why})",
                        ev, subject=subject)
    if key_matches_cert(key, leaf):
        return _finding(rule, kref, Status.PASS,
                        f"ssl_certificate_key {kref.written} matches {cref.written}", ev, subject=subject)
    return _finding(rule, kref, Status.FAIL,
                    f"ssl_certificate_key {kref.written} does not match the certificate in "
                    f"{cref.written} ({leaf.subject}): Nginx refuses to start (`key values mismatch`)",
                    ev, subject=subject)


# --------------------------------------------------------------------------------------------
# MTLS210


@_on_visible_files
def check_210(ctx: CheckContext, rule: RuleMeta, idx: TrustIndex) -> Iterable[Finding]:
    """Only the master process (root) reads keys; group or other access only widens exposure."""
    for ref, facts in _with_facts(idx, idx.keys):
        if not facts.keys and (facts.certs or facts.crls):
            continue  # no secret in the file (MTLS209 reports the missing key)
        mode = _mode(facts)
        key = facts.keys[0] if facts.keys else None
        ev: dict[str, object] = {
            "mode": mode,
            "key_type": key.key_type if key else None,
            "encrypted": key.encrypted if key else None,
        }
        if facts.group_or_other_access:
            readable = [who for who, flag in (("group", facts.group_readable), ("others", facts.world_readable)) if flag]
            access = f"readable by {' and '.join(readable)}" if readable else "accessible by group or others"
            yield _finding(rule, ref, Status.FAIL,
                           f"{ref.name} {ref.written}: private key file has mode {mode} ({access}); "
                           "use 0600 or 0400, owned by root", ev)
        else:
            yield _finding(rule, ref, Status.PASS, f"{ref.name} {ref.written}: mode {mode}", ev)


CHECKS: dict[str, CheckFn] = {
    "MTLS201": check_201,
    "MTLS202": check_202,
    "MTLS203": check_203,
    "MTLS204": check_204,
    "MTLS205": check_205,
    "MTLS206": check_206,
    "MTLS207": check_207,
    "MTLS208": check_208,
    "MTLS209": check_209,
    "MTLS210": check_210,
}
