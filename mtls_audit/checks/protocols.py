"""Protocol versions on mTLS servers: MTLS401.

Before Nginx 1.23.4 the default `ssl_protocols` is `TLSv1 TLSv1.1 TLSv1.2`, and before 1.29.2
only the default server's `ssl_protocols` applies to a socket (the protocol is chosen before SNI
selects the virtual server), so a non-default server's own line is not what clients get.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..context import CheckContext, CheckFn
from ..model import Finding, RuleMeta, Status
from ..nginx.effective import Server, Setting

LEGACY = ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1")


def effective_protocols(ctx: CheckContext, srv: Server) -> tuple[Setting, Server]:
    """The `ssl_protocols` clients really get on this server's TLS sockets, and whose it is."""
    cfg = ctx.config
    v = ctx.options.nginx_version
    if cfg is not None and (v is None or v < (1, 29, 2)):
        for ls in srv.listens:
            if srv.listen_is_tls(ls):
                default = cfg.default_server(srv.kind, ls.socket)
                if default is not None and default is not srv:
                    return default.setting("ssl_protocols"), default
                break
    return srv.setting("ssl_protocols"), srv


def check_401(ctx: CheckContext, rule: RuleMeta) -> Iterable[Finding]:
    if ctx.config is None:
        return
    v = ctx.options.nginx_version
    for srv in ctx.config.servers:
        if not srv.verifies or not srv.has_ssl_context:
            continue
        st, owner = effective_protocols(ctx, srv)
        via = "" if owner is srv else f" (set by default server {owner.label}, which decides the protocol on this socket)"
        subject = srv.subject
        if st.directive is not None:
            bad = [p for p in st.args if p in LEGACY]
            if bad:
                yield Finding(rule.id, Status.FAIL,
                              f"ssl_protocols enables {' '.join(bad)} on an mTLS server{via}",
                              subject, srv.loc(st.directive) if owner is srv else owner.loc(st.directive),
                              evidence={"protocols": list(st.args)})
            else:
                yield Finding(rule.id, Status.PASS, f"ssl_protocols {' '.join(st.args)}{via}", subject,
                              srv.loc(st.directive) if owner is srv else owner.loc(st.directive))
            continue
        at = srv.setting("ssl_verify_client").directive or srv.directive
        if v is None:
            yield Finding(rule.id, Status.SKIPPED,
                          "ssl_protocols not set: the default depends on the Nginx version (TLSv1 and "
                          "TLSv1.1 before 1.23.4); give --nginx-version", subject, srv.loc(at))
        elif v < (1, 23, 4):
            yield Finding(rule.id, Status.FAIL,
                          f"ssl_protocols not set: Nginx {'.'.join(map(str, v))} enables TLSv1 and "
                          "TLSv1.1 by default", subject, srv.loc(at),
                          evidence={"nginx_version": ".".join(map(str, v))})
        else:
            yield Finding(rule.id, Status.PASS, "default ssl_protocols (TLSv1.2 TLSv1.3)", subject, srv.loc(at))


CHECKS: dict[str, CheckFn] = {"MTLS401": check_401}
