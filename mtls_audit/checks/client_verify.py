"""Client verification rules MTLS101-MTLS109: what the config makes Nginx do with client certs.

Every check reads effective settings (http -> server merged), never the raw server block, and
points at the directive that decides the outcome. The Nginx behaviour behind each rule is in
`shared/docs/nginx-mtls.md` (sections cited per check).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping

from ..context import CheckContext, CheckFn
from ..model import Finding, RuleMeta, Severity, Status
from ..nginx.conditions import (
    build_maps,
    eval_if,
    mentions_verify,
    redirects_to_https,
    rejects,
    verify_guard_verdict,
)
from ..nginx.effective import HEADER_ARRAYS, Location, Server
from ..nginx.load import Directive


def _servers(ctx: CheckContext) -> Iterator[Server]:
    if ctx.config is not None:
        yield from ctx.config.servers


def _verify_line(srv: Server) -> Directive:
    return srv.setting("ssl_verify_client").directive or srv.directive


def _is_mtls(ctx: CheckContext, srv: Server) -> bool:
    """The catalog's "mTLS server": verifies clients, or the user put it in scope."""
    return srv.verifies or (
        ctx.config is not None and ctx.config.in_scope(srv, ctx.options.require_mtls)
    )


def _finding(rule: RuleMeta, srv: Server, status: Status, msg: str, at: Directive | None = None,
             *, subject_extra: str = "", evidence: Mapping[str, object] | None = None,
             **more: object) -> Finding:
    return Finding(
        rule_id=rule.id,
        status=status,
        message=msg,
        subject=srv.subject + (f" {subject_extra}" if subject_extra else ""),
        location=srv.loc(at),
        evidence={**(evidence or {}), **more},
    )


# ---------------------------------------------------------------- MTLS101


def _guards(block: Directive, maps: dict[str, tuple[str, Directive]]) -> tuple[bool, list[str]]:
    """Whether `block` holds a correct `$ssl_client_verify` guard; the wrong ones seen."""
    wrong: list[str] = []
    for d in block.find("if"):
        if not mentions_verify(d.args, maps):
            continue
        ok, _ = verify_guard_verdict(d.args, maps)
        if ok and rejects(d):
            return True, wrong
        wrong.append(f"{d.file}:{d.line}: if ({' '.join(d.args)})")
    return False, wrong


def _only_returns(loc: Location) -> bool:
    """A location that answers every request itself (`return`, `deny all`) exposes nothing."""
    for d in loc.directive.block or ():
        if d.name == "return":
            return True
        if d.name == "deny" and d.args == ["all"]:
            return True
    return False


def _has_catch_all(srv: Server) -> bool:
    return any(
        loc.modifier in ("", "^~") and loc.pattern == "/" for loc in srv.locations
    )


def check_101(ctx: CheckContext, rule: RuleMeta) -> Iterable[Finding]:
    """`optional*` lets certificate-less clients through unless every path checks (doc §4.1)."""
    if ctx.config is None:
        return
    maps = build_maps(ctx.config.maps)
    for srv in _servers(ctx):
        mode = srv.verify
        if mode == "off":
            continue
        vline = _verify_line(srv)
        if mode == "on":
            yield _finding(rule, srv, Status.PASS, "ssl_verify_client on: Nginx rejects requests without a valid certificate", vline, mode=mode)
            continue
        if srv.kind == "stream":
            yield _finding(
                rule, srv, Status.FAIL,
                f"stream server with ssl_verify_client {mode}: a stream server cannot check "
                "$ssl_client_verify, so clients without a certificate are proxied",
                vline, mode=mode,
            )
            continue
        guarded, wrong = _guards(srv.directive, maps)
        if guarded:
            yield _finding(rule, srv, Status.PASS, f"ssl_verify_client {mode} with a server-level $ssl_client_verify check", vline, mode=mode)
            continue
        unguarded: list[Location] = []
        guarded_locs = 0
        for loc in srv.all_locations():
            ok, w = _guards(loc.directive, maps)
            wrong.extend(w)
            if ok:
                guarded_locs += 1
            elif not _only_returns(loc):
                unguarded.append(loc)
        no_match_path = not _has_catch_all(srv)
        if not unguarded and not no_match_path:
            yield _finding(rule, srv, Status.PASS, f"ssl_verify_client {mode}: every location checks $ssl_client_verify", vline, mode=mode)
            continue
        ev = {"mode": mode, "wrong_checks": wrong, "unguarded_locations": [u.name for u in unguarded]}
        hint = f" (wrong check: {wrong[0].split(': ', 1)[1]})" if wrong else ""
        if guarded_locs == 0:
            where = "no location" if srv.locations else "the server"
            yield _finding(
                rule, srv, Status.FAIL,
                f"ssl_verify_client {mode} and {where} checks $ssl_client_verify: requests without "
                f"a valid client certificate are served{hint}",
                vline, evidence=ev,
            )
            continue
        for loc in unguarded:
            _, lw = _guards(loc.directive, maps)
            lhint = f" (wrong check: {lw[0].split(': ', 1)[1]})" if lw else ""
            yield _finding(
                rule, srv, Status.FAIL,
                f"location {loc.name} does not check $ssl_client_verify under ssl_verify_client "
                f"{mode}: requests without a valid client certificate are served there{lhint}",
                loc.directive, subject_extra=f"location {loc.name}", evidence=ev,
            )
        if no_match_path:
            yield _finding(
                rule, srv, Status.FAIL,
                f"ssl_verify_client {mode}: requests matching no location are served by the "
                "server itself, which does not check $ssl_client_verify",
                vline, subject_extra="unmatched requests", evidence=ev,
            )


# ---------------------------------------------------------------- MTLS102


def _passes_full_cert(srv: Server) -> bool:
    arrays = [srv.headers] + [loc.arrays for loc in srv.all_locations()]
    for arr in arrays:
        for name in HEADER_ARRAYS:
            for d in arr.get(name, ()):
                if any("$ssl_client_escaped_cert" in a for a in d.args[1:]):
                    return True
    return False


def check_102(ctx: CheckContext, rule: RuleMeta) -> Iterable[Finding]:
    """`optional_no_ca` accepts any self-signed cert with any DN (doc §1.1)."""
    for srv in _servers(ctx):
        if not srv.verifies:
            continue
        vline = _verify_line(srv)
        if srv.verify != "optional_no_ca":
            yield _finding(rule, srv, Status.PASS, f"ssl_verify_client {srv.verify} verifies the chain", vline)
            continue
        upstream = _passes_full_cert(srv)
        yield Finding(
            rule_id=rule.id,
            status=Status.FAIL,
            message="ssl_verify_client optional_no_ca: Nginx does not verify the chain; any "
            "self-signed certificate with any subject is accepted"
            + ("; the certificate is passed upstream, which must verify it" if upstream else ""),
            subject=srv.subject,
            location=srv.loc(vline),
            evidence={"mode": srv.verify, "cert_passed_upstream": upstream},
            severity=Severity.HIGH if upstream else None,
        )


# ---------------------------------------------------------------- MTLS103


def check_103(ctx: CheckContext, rule: RuleMeta) -> Iterable[Finding]:
    """Servers the user says must require client certs (`--require-mtls`)."""
    cfg = ctx.config
    if cfg is None or not ctx.options.require_mtls:
        return
    for srv in cfg.servers:
        if not cfg.in_scope(srv, ctx.options.require_mtls):
            continue
        if srv.verifies:
            yield _finding(rule, srv, Status.PASS, f"in --require-mtls scope and ssl_verify_client {srv.verify}", _verify_line(srv))
        else:
            yield _finding(
                rule, srv, Status.FAIL,
                "in --require-mtls scope but the effective ssl_verify_client is off: no client "
                "certificate is requested",
                srv.name_line(), scope=list(ctx.options.require_mtls),
            )


# ---------------------------------------------------------------- MTLS104


def check_104(ctx: CheckContext, rule: RuleMeta) -> Iterable[Finding]:
    """`on`/`optional` without a CA file: `nginx -t` fails with [emerg] (doc §2)."""
    new_nginx = ctx.options.nginx_version is not None and ctx.options.nginx_version >= (1, 27, 2)
    for srv in _servers(ctx):
        if srv.verify not in ("on", "optional") or not srv.has_ssl_context:
            continue
        has_ca = srv.setting("ssl_client_certificate").directive is not None
        has_trusted = srv.setting("ssl_trusted_certificate").directive is not None
        vline = _verify_line(srv)
        if has_ca or (new_nginx and has_trusted):
            yield _finding(rule, srv, Status.PASS, "a client CA file is configured", vline)
            continue
        extra = " (ssl_trusted_certificate alone is accepted only from Nginx 1.27.2)" if has_trusted else ""
        yield _finding(
            rule, srv, Status.FAIL,
            f"ssl_verify_client {srv.verify} with no effective ssl_client_certificate: Nginx "
            f"refuses to start{extra}",
            vline,
        )


# ---------------------------------------------------------------- MTLS105


def check_105(ctx: CheckContext, rule: RuleMeta) -> Iterable[Finding]:
    """Depth N allows N intermediates; large values widen what a broad CA can vouch for (§1.4)."""
    limit = int(rule.params.get("max_depth", 5))
    for srv in _servers(ctx):
        if not srv.verifies or srv.verify == "optional_no_ca":
            continue
        st = srv.setting("ssl_verify_depth")
        try:
            depth = int(st.value)
        except ValueError:
            continue
        at = st.directive or _verify_line(srv)
        if depth >= limit:
            yield _finding(
                rule, srv, Status.FAIL,
                f"ssl_verify_depth {depth} allows {depth} intermediate CAs; {limit} or more is "
                "larger than any private PKI needs",
                at, depth=depth, limit=limit,
            )
        else:
            yield _finding(rule, srv, Status.PASS, f"ssl_verify_depth {depth}", at, depth=depth)


# ---------------------------------------------------------------- MTLS106


def _trust_key(srv: Server) -> tuple[tuple[str, ...], ...]:
    def v(name: str) -> tuple[str, ...]:
        return srv.setting(name).args

    return (
        v("ssl_client_certificate"), v("ssl_trusted_certificate"), v("ssl_crl"),
        v("ssl_ocsp"), v("ssl_verify_depth"), (srv.verify,),
    )


def check_106(ctx: CheckContext, rule: RuleMeta) -> Iterable[Finding]:
    """No SNI -> default server's CA store verifies, then Host picks a sibling (doc §5.3)."""
    cfg = ctx.config
    if cfg is None:
        return
    for (kind, socket), entries in cfg.sockets.items():
        if kind != "http" or cfg.servers_on_socket(kind, socket) < 2:
            continue
        default = cfg.default_server(kind, socket)
        if default is None:
            continue
        tls_entries = [(s, ls) for s, ls in entries if s.listen_is_tls(ls)]
        if not tls_entries:
            continue
        rejecting = default.setting("ssl_reject_handshake").value == "on"
        for srv, ls in tls_entries:
            if srv is default or not srv.verifies:
                continue
            subject = f"{srv.subject} on {socket}"
            if not default.verifies:
                continue
            if rejecting or _trust_key(srv) == _trust_key(default):
                why = "the default server rejects handshakes without a known SNI" if rejecting else "the default server verifies with the same trust set"
                yield Finding(rule.id, Status.PASS, why, subject, srv.loc(ls.directive),
                              evidence={"socket": socket, "default_server": default.label})
                continue
            yield Finding(
                rule.id, Status.FAIL,
                f"{socket} is shared with default server {default.label} ({default.directive.file}:"
                f"{default.directive.line}) which verifies clients with a different trust set: a "
                f"client sending no SNI is verified by the default server's CA, then reaches "
                f"{srv.label} by Host header",
                subject, srv.loc(ls.directive),
                evidence={
                    "socket": socket,
                    "default_server": default.label,
                    "default_trust": [list(x) for x in _trust_key(default)],
                    "server_trust": [list(x) for x in _trust_key(srv)],
                },
            )


# ---------------------------------------------------------------- MTLS107


def _affected_version(v: tuple[int, int, int]) -> bool:
    return v < (1, 26, 3) or (1, 27, 0) <= v < (1, 27, 4)


def _tls13_on(srv: Server, v: tuple[int, int, int] | None) -> bool:
    protos = srv.setting("ssl_protocols").args
    if protos:
        return "TLSv1.3" in protos
    return v is not None and v >= (1, 23, 4)


def check_107(ctx: CheckContext, rule: RuleMeta) -> Iterable[Finding]:
    """CVE-2025-23419: TLS 1.3 cross-SNI session resumption skips client verification."""
    cfg = ctx.config
    if cfg is None:
        return
    v = ctx.options.nginx_version
    for srv in cfg.servers:
        if not srv.verifies:
            continue
        shared = [ls for ls in srv.listens if cfg.servers_on_socket(srv.kind, ls.socket) > 1]
        if not shared:
            continue
        at = shared[0].directive
        if v is None:
            yield _finding(rule, srv, Status.SKIPPED, "Nginx version unknown: give --nginx-version to check CVE-2025-23419", at)
            continue
        tickets = srv.setting("ssl_session_tickets").value != "off"
        cache = srv.setting("ssl_session_cache").value
        shared_cache = any(a.startswith("shared:") for a in srv.setting("ssl_session_cache").args)
        ev = {"nginx_version": ".".join(map(str, v)), "session_tickets": tickets, "session_cache": cache}
        if _affected_version(v) and _tls13_on(srv, v) and (tickets or shared_cache):
            yield _finding(
                rule, srv, Status.FAIL,
                f"Nginx {'.'.join(map(str, v))} with TLS 1.3 and session resumption on a shared "
                "socket: a session from another server can be resumed here without a client "
                "certificate (CVE-2025-23419)",
                at, evidence=ev,
            )
        else:
            yield _finding(rule, srv, Status.PASS, "not exposed to CVE-2025-23419 under the given version and settings", at, evidence=ev)


# ---------------------------------------------------------------- MTLS108


def _error_pages(srv: Server) -> list[Directive]:
    """Server-level error_page, else http-level (an array: a level with any inherits none)."""
    own = srv.directive.find("error_page")
    return own if own else srv.context_directives("error_page")


def match_location(srv: Server, uri: str) -> Location | None:
    """Nginx's location choice for a URI: exact, longest prefix, regexes unless `^~`."""
    best: Location | None = None
    for loc in srv.locations:
        if loc.modifier == "=" and loc.pattern == uri:
            return loc
        if loc.modifier in ("", "^~") and uri.startswith(loc.pattern):
            if best is None or len(loc.pattern) > len(best.pattern):
                best = loc
    if best is not None and best.modifier == "^~":
        return best
    for loc in srv.locations:
        if loc.modifier in ("~", "~*"):
            try:
                if re.search(loc.pattern, uri, re.IGNORECASE if loc.modifier == "~*" else 0):
                    return loc
            except re.error:
                continue
    return best


def _serves_content(loc: Location | None) -> bool:
    if loc is None:
        return True  # served by the server itself: static files from root
    if loc.passes:
        return True
    return not _only_returns(loc) and loc.modifier == "@"


def check_108(ctx: CheckContext, rule: RuleMeta) -> Iterable[Finding]:
    """`error_page 495 496` to content turns certificate errors into app access (doc §3.1, §9.7)."""
    for srv in _servers(ctx):
        if srv.kind != "http" or not srv.verifies:
            continue
        hit = False
        for ep in _error_pages(srv):
            codes = [a for a in ep.args[:-1] if a.isdigit()]
            if not {"495", "496"} & set(codes) or not ep.args:
                continue
            target = ep.args[-1]
            if target.startswith("@"):
                loc = next((x for x in srv.all_locations() if x.modifier == "@" and x.pattern == target), None)
                bad = loc is None or _serves_content(loc)
            elif target.startswith("/"):
                loc = match_location(srv, target.split("?")[0])
                bad = loc is not None and bool(loc.passes)
            else:
                bad = False  # a redirect URL: the client is sent elsewhere
            hit = hit or bad
            status = Status.FAIL if bad else Status.PASS
            msg = (
                f"error_page {' '.join(ep.args)}: certificate errors are handed to {target}, "
                "which serves or proxies content, so clients without a valid certificate reach it"
                if bad else
                f"error_page {' '.join(ep.args)} sends certificate errors to a static page or redirect"
            )
            yield Finding(rule.id, status, msg, f"{srv.subject} error_page {target}", srv.loc(ep),
                          evidence={"target": target, "codes": codes})
        if not hit and not any({"495", "496"} & set(ep.args) for ep in _error_pages(srv)):
            yield _finding(rule, srv, Status.PASS, "certificate errors get Nginx's own 400 page", _verify_line(srv))


# ---------------------------------------------------------------- MTLS109


def _redirects_plain(srv: Server, maps: dict[str, tuple[str, Directive]]) -> bool:
    """A server-level `if ($scheme = http) { return 301 https://...; }` or equivalent."""
    plain = {"$scheme": "http", "$https": "", "$ssl_protocol": ""}
    tls = {"$scheme": "https", "$https": "on", "$ssl_protocol": "TLSv1.3"}
    for d in srv.directive.find("if"):
        if eval_if(d.args, plain, maps) is True and eval_if(d.args, tls, maps) is False:
            if redirects_to_https(d) or rejects(d):
                return True
    return False


def check_109(ctx: CheckContext, rule: RuleMeta) -> Iterable[Finding]:
    """Nginx verifies clients only on SSL connections: a plain listener skips mTLS (doc §8)."""
    maps_by_context: dict[int, dict[str, tuple[str, Directive]]] = {}
    for srv in _servers(ctx):
        if srv.kind != "http" or not _is_mtls(ctx, srv):
            continue
        plain = [ls for ls in srv.listens if not srv.listen_is_tls(ls)]
        if not plain:
            yield _finding(rule, srv, Status.PASS, "every listener of this mTLS server uses TLS", _verify_line(srv))
            continue
        # the http block's maps, indexed once per block rather than once per server
        maps = maps_by_context.get(id(srv.context))
        if maps is None:
            maps = maps_by_context[id(srv.context)] = build_maps(srv.context_directives("map"))
        if _redirects_plain(srv, maps):
            yield _finding(rule, srv, Status.PASS, "plain HTTP is redirected to https at server level", plain[0].directive)
            continue
        for ls in plain:
            yield _finding(
                rule, srv, Status.FAIL,
                f"listen {ls.text} accepts plain HTTP in a server with ssl_verify_client "
                f"{srv.verify}: client certificate checks do not apply there",
                ls.directive, subject_extra=f"listen {ls.socket}", listen=ls.text,
            )


CHECKS: dict[str, CheckFn] = {
    "MTLS101": check_101,
    "MTLS102": check_102,
    "MTLS103": check_103,
    "MTLS104": check_104,
    "MTLS105": check_105,
    "MTLS106": check_106,
    "MTLS107": check_107,
    "MTLS108": check_108,
    "MTLS109": check_109,
}
