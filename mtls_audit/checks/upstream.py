"""Upstream TLS and identity forwarding: MTLS301-MTLS306.

Nginx as a TLS client verifies nothing by default (`proxy_ssl_verify off`), sends no client
certificate, and reuses one TLS session per upstream peer whichever location opened it (doc §7).
Identity headers are only as good as the weakest path to the same backend: a location that
defines its own `proxy_set_header` inherits none of the server-level ones, so the client's own
`X-SSL-Client-Verify: SUCCESS` reaches the backend there (doc §4.3).
"""

from __future__ import annotations

import fnmatch
import functools
import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..context import CheckContext, CheckFn
from ..model import Finding, RuleMeta, Severity, SourceLocation, Status
from ..nginx.effective import EffectiveConfig, Location, Server, Setting
from ..nginx.load import Directive

TLS_SCHEMES = {"proxy_pass": ("https://",), "grpc_pass": ("grpcs://",), "uwsgi_pass": ("suwsgi://",)}
MODULE = {"proxy_pass": "proxy", "grpc_pass": "grpc", "uwsgi_pass": "uwsgi"}
HEADER_DIRECTIVE = {"proxy": "proxy_set_header", "grpc": "grpc_set_header"}
IDENTITY_VAR_RE = re.compile(r"\$\{?ssl_client_\w+")


@dataclass(frozen=True)
class Path:
    """One way requests reach a backend: a location (or stream server) and its pass directive."""

    server: Server
    location: Location | None
    directive: Directive
    module: str
    """`proxy`, `grpc` or `uwsgi` (stream: `proxy`)."""
    tls: bool
    host: str
    backend: str
    """Normalised target: `module:host[:port]` (an upstream group's name, or host:port)."""

    def setting(self, name: str) -> Setting:
        if self.location is not None:
            return self.location.setting(name)
        return self.server.upstream.get(name) or Setting((), None, "default")

    @functools.cached_property
    def name(self) -> str:
        """The path's subject; asked for by every upstream rule, so computed once."""
        where = f"location {self.location.name}" if self.location else "server"
        return f"{self.server.subject} {where} -> {self.directive.args[0] if self.directive.args else '?'}"

    def finding(self, rule: RuleMeta, status: Status, msg: str, at: Directive | None = None,
                severity: Severity | None = None, **ev: object) -> Finding:
        return Finding(rule.id, status, msg, self.name, self.server.loc(at or self.directive),
                       evidence={"backend": self.backend, **ev}, severity=severity)


def _split_target(url: str) -> tuple[str, str]:
    """`https://host:443/x` -> (`host`, `host:443`); variables are kept as written."""
    rest = url.split("://", 1)[1] if "://" in url else url
    hostport = rest.split("/", 1)[0]
    if hostport.startswith("["):
        host = hostport.split("]")[0] + "]"
    else:
        host = hostport.rsplit(":", 1)[0] if hostport.count(":") == 1 else hostport
    return host, hostport


def iter_paths(cfg: EffectiveConfig) -> Iterator[Path]:
    """Every pass to a backend, http locations and stream servers alike, in config order."""
    for srv in cfg.servers:
        if srv.kind == "stream":
            for d in srv.directive.find("proxy_pass"):
                if not d.args:
                    continue
                host, hp = _split_target(d.args[0])
                tls = (srv.upstream.get("proxy_ssl") or Setting(("off",), None, "default")).value == "on"
                yield Path(srv, None, d, "proxy", tls, host, f"stream:{hp}")
            continue
        for loc in srv.all_locations():
            for d in loc.passes:
                if d.name not in TLS_SCHEMES or not d.args:
                    continue
                url = d.args[0]
                host, hp = _split_target(url)
                tls = url.startswith(TLS_SCHEMES[d.name])
                yield Path(srv, loc, d, MODULE[d.name], tls, host, f"{MODULE[d.name]}:{hp}")


def _is_group(cfg: EffectiveConfig, host: str, kind: str) -> bool:
    return f"{kind}:{host}" in cfg.upstreams


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _paths(ctx: CheckContext) -> list[Path]:
    """All paths, computed once per config however many checks ask."""
    if ctx.config is None:
        return []
    cache = ctx.config.cache
    if "upstream_paths" not in cache:
        cache["upstream_paths"] = list(iter_paths(ctx.config))
    paths: list[Path] = cache["upstream_paths"]
    return paths


def check_301(ctx: CheckContext, rule: RuleMeta) -> Iterable[Finding]:
    """`*_ssl_verify` is off by default: any certificate the upstream shows is accepted."""
    for p in _paths(ctx):
        if not p.tls:
            continue
        st = p.setting(f"{p.module}_ssl_verify")
        if st.value == "on":
            yield p.finding(rule, Status.PASS, f"{p.module}_ssl_verify on", st.directive)
        else:
            how = "is off" if st.directive else "is not set (off by default)"
            yield p.finding(
                rule, Status.FAIL,
                f"TLS to {p.directive.args[0]} without certificate verification: "
                f"{p.module}_ssl_verify {how}, so any server can impersonate the upstream",
                st.directive if st.directive and st.origin == "location" else p.directive,
            )


def check_302(ctx: CheckContext, rule: RuleMeta) -> Iterable[Finding]:
    """No client certificate to the upstream (CIS NGINX 4.1.9)."""
    scope = ctx.options.require_upstream_mtls
    for p in _paths(ctx):
        if not p.tls:
            continue
        st = p.setting(f"{p.module}_ssl_certificate")
        if st.directive is not None:
            yield p.finding(rule, Status.PASS, f"{p.module}_ssl_certificate is set", st.directive)
            continue
        in_scope = any(fnmatch.fnmatchcase(p.host, pat) for pat in scope)
        yield p.finding(
            rule, Status.FAIL,
            f"TLS to {p.directive.args[0]} presents no client certificate "
            f"({p.module}_ssl_certificate is not set): the upstream cannot authenticate Nginx",
            severity=Severity.MEDIUM if in_scope else None,
        )


def check_303(ctx: CheckContext, rule: RuleMeta) -> Iterable[Finding]:
    """The name checked defaults to the pass host: an IP or upstream group name cannot match."""
    cfg = ctx.config
    for p in _paths(ctx):
        if not p.tls or cfg is None:
            continue
        if p.setting(f"{p.module}_ssl_verify").value != "on":
            continue
        name = p.setting(f"{p.module}_ssl_name")
        if name.directive is not None:
            yield _explicit_name(p, rule, name)
            continue
        if "$" in p.host:
            yield p.finding(rule, Status.PASS, "the upstream name is computed at run time", name.directive)
            continue
        kind = "stream" if p.server.kind == "stream" else "http"
        if _is_ip(p.host):
            why = f"the name checked is the IP address {p.host}, which certificates rarely carry"
        elif _is_group(cfg, p.host, kind):
            why = f"the name checked is the upstream group name {p.host!r}, not a DNS name"
        else:
            yield p.finding(rule, Status.PASS, f"the certificate is checked against {p.host}")
            continue
        yield p.finding(
            rule, Status.FAIL,
            f"{p.module}_ssl_verify on without {p.module}_ssl_name: {why}, so verification fails "
            "(502) or someone works around it by turning verification off",
            host=p.host,
        )


def _explicit_name(p: Path, rule: RuleMeta, name: Setting) -> Finding:
    """An explicit `*_ssl_name` that differs from the address connected to needs SNI.

    The connect address (an IP, a group's servers) then does not say which site is wanted: without
    `*_ssl_server_name on` (off is Nginx's default) an upstream holding several certificates
    presents its default one, the name check fails with 502 for every site but that one, and the
    usual "fix" is turning verification off. A name equal to the pass host is not flagged: that
    is plain single-site proxying, where the default certificate is the right one.
    """
    value = name.value
    sni = p.setting(f"{p.module}_ssl_server_name")
    why = (
        "sent as SNI" if sni.value == "on"
        else "computed at run time" if "$" in value
        else "an IP address, never sent as SNI" if _is_ip(value)
        else "the host connected to" if value.lower() == p.host.lower()
        else ""
    )
    if why:
        return p.finding(rule, Status.PASS, f"the upstream name to verify is explicit ({value}: {why})", name.directive)
    at = sni.directive or name.directive
    return p.finding(
        rule, Status.FAIL,
        f"{p.module}_ssl_name {value} is verified but not sent as SNI ({p.module}_ssl_server_name off) while "
        f"connecting to {p.host}: an upstream with several certificates presents its default one, and "
        "verification fails (502) for every name but that one",
        at, host=p.host, ssl_name=value, ssl_server_name=sni.value or "off",
    )


def _identity_headers(arrays: dict[str, list[Directive]], module: str) -> dict[str, Directive]:
    name = HEADER_DIRECTIVE.get(module)
    out: dict[str, Directive] = {}
    for d in arrays.get(name or "", ()):
        if len(d.args) >= 2 and IDENTITY_VAR_RE.search(" ".join(d.args[1:])):
            out[d.args[0].lower()] = d
    return out


def _set_headers(arrays: dict[str, list[Directive]], module: str) -> set[str]:
    name = HEADER_DIRECTIVE.get(module)
    return {d.args[0].lower() for d in arrays.get(name or "", ()) if d.args}


def _passes_client_headers(p: Path) -> bool:
    st = p.setting(f"{p.module}_pass_request_headers")
    return st.value != "off"


def check_304(ctx: CheckContext, rule: RuleMeta) -> Iterable[Finding]:
    """Report each path to an identity-consuming backend that lets the client's header through."""
    paths = [p for p in _paths(ctx) if p.location is not None and p.module in HEADER_DIRECTIVE]
    identity: dict[str, dict[str, Directive]] = {}
    for p in paths:
        assert p.location is not None
        for h, d in _identity_headers(p.location.arrays, p.module).items():
            identity.setdefault(p.backend, {}).setdefault(h, d)
    for p in paths:
        wanted = identity.get(p.backend)
        if not wanted:
            continue
        assert p.location is not None
        have = _set_headers(p.location.arrays, p.module)
        missing = sorted(h for h in wanted if h not in have)
        if not missing or not _passes_client_headers(p):
            yield p.finding(rule, Status.PASS, "every identity header for this backend is overwritten here", p.location.directive)
            continue
        src = wanted[missing[0]]
        own = p.location.own(HEADER_DIRECTIVE[p.module])
        why = (
            f"this location defines its own {HEADER_DIRECTIVE[p.module]} and so inherits none from above"
            if own else "this path never sets them"
        )
        yield p.finding(
            rule, Status.FAIL,
            f"identity header(s) {', '.join(missing)} sent to {p.backend.split(':', 1)[1]} from "
            f"$ssl_client_* elsewhere ({src.file}:{src.line}) are not overwritten on this path: "
            f"{why}, so a client can send its own",
            p.location.directive, missing=missing, set_at=f"{src.file}:{src.line}",
        )


def _tls_identity(p: Path) -> tuple[tuple[str, ...], ...]:
    m = p.module
    return tuple(p.setting(f"{m}_ssl_{k}").args for k in ("certificate", "verify", "trusted_certificate", "name"))


def check_305(ctx: CheckContext, rule: RuleMeta) -> Iterable[Finding]:
    """Sessions are cached per upstream peer, not per location (doc §7 finding)."""
    groups: dict[str, list[Path]] = {}
    for p in _paths(ctx):
        if p.tls:
            groups.setdefault(p.backend, []).append(p)
    for backend, paths in groups.items():
        ids = [_tls_identity(p) for p in paths]
        first: dict[tuple[tuple[str, ...], ...], Path] = {}
        for ident, p in zip(ids, paths, strict=True):
            first.setdefault(ident, p)
        for ident, p in zip(ids, paths, strict=True):
            reuse = p.setting(f"{p.module}_ssl_session_reuse")
            if len(first) < 2 or reuse.value == "off":
                yield p.finding(rule, Status.PASS, "no other TLS identity shares this upstream's sessions", reuse.directive)
                continue
            o = next(q for k, q in first.items() if k != ident)
            yield p.finding(
                rule, Status.FAIL,
                f"{backend.split(':', 1)[1]} is also reached from {o.name.split(' in ', 1)[-1]} "
                f"({o.directive.file}:{o.directive.line}) with different TLS client settings while "
                f"{p.module}_ssl_session_reuse is on: a session (and its client certificate or "
                "verify result) opened by one location is reused by the other",
                identities=len(first),
            )


_LEGACY_DN_RE = re.compile(r"^\^?/[A-Za-z]+=")


def _dn_pattern_problem(op: str, pattern: str) -> str | None:
    if _LEGACY_DN_RE.match(pattern):
        return (f"pattern {pattern!r} uses the legacy /CN= form; $ssl_client_s_dn is RFC 2253 "
                "(CN=..,O=..) since Nginx 1.11.6, so it never matches")
    if op.lstrip("!").startswith("~") and not pattern.startswith("^"):
        return (f"regex {pattern!r} on $ssl_client_s_dn is not anchored: a certificate with "
                "the text in another attribute (OU=CN=admin) matches")
    return None


def check_306(ctx: CheckContext, rule: RuleMeta) -> Iterable[Finding]:
    """Header-unsafe cert variables, unanchored or legacy DN patterns (doc §3.4, §8)."""
    cfg = ctx.config
    if cfg is None:
        return
    seen = False
    for srv in cfg.servers:
        for d in srv.directive.walk():
            problem = None
            if d.name in ("proxy_set_header", "grpc_set_header") and len(d.args) >= 2:
                if re.search(r"\$\{?ssl_client_(raw_)?cert\b", d.args[1]):
                    problem = (f"{d.args[0]} carries $ssl_client_cert/$ssl_client_raw_cert: multi-line "
                               "PEM (deprecated, header folding); use $ssl_client_escaped_cert")
            elif d.name == "if" and len(d.args) == 3 and d.args[0] in ("$ssl_client_s_dn", "$ssl_client_i_dn"):
                problem = _dn_pattern_problem(d.args[1], d.args[2])
            if problem:
                seen = True
                yield Finding(rule.id, Status.FAIL, problem, f"{srv.subject} {d.name} {' '.join(d.args)}",
                              srv.loc(d), evidence={"directive": " ".join([d.name, *d.args])})
    for m in cfg.maps:
        if len(m.args) != 2 or m.args[0] not in ("$ssl_client_s_dn", "$ssl_client_i_dn"):
            continue
        for e in m.block or ():
            if e.name.startswith("~") or _LEGACY_DN_RE.match(e.name):
                op = "~" if e.name.startswith("~") else "="
                pat = e.name.lstrip("~*") if op == "~" else e.name
                problem = _dn_pattern_problem(op, pat)
                if problem:
                    seen = True
                    yield Finding(rule.id, Status.FAIL, problem, f"map {m.args[1]} {e.name}",
                                  SourceLocation(e.file, e.line, root=cfg.loaded.root_dir),
                                  evidence={"map": m.args[1], "key": e.name})
    if not seen:
        for srv in cfg.servers:
            if srv.verifies:
                yield Finding(rule.id, Status.PASS, "no unsafe client-identity plumbing found",
                              srv.subject, srv.loc())


CHECKS: dict[str, CheckFn] = {
    "MTLS301": check_301,
    "MTLS302": check_302,
    "MTLS303": check_303,
    "MTLS304": check_304,
    "MTLS305": check_305,
    "MTLS306": check_306,
}
