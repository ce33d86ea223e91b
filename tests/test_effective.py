"""Effective settings: Nginx's http -> server -> location merging, listen parsing, scope.

Each test writes a small nginx.conf into tmp_path and reads the effective view of it (doc
nginx-mtls.md §1.3 for ssl_* merging, §4.3 for proxy_set_header inheritance).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mtls_audit.nginx.effective import EffectiveConfig, Location, Server, build_effective, parse_listen
from mtls_audit.nginx.load import Directive, load_config

CERT = "ssl_certificate s.pem;\n        ssl_certificate_key s.key;\n"


def effective(tmp_path: Path, text: str) -> EffectiveConfig:
    conf = tmp_path / "nginx.conf"
    conf.write_text(text, encoding="utf-8")
    return build_effective(load_config(str(conf)))


def by_name(cfg: EffectiveConfig, name: str) -> Server:
    return next(s for s in cfg.servers if name in s.names)


def loc(srv: Server, name: str) -> Location:
    return next(x for x in srv.all_locations() if x.name == name)


def header_names(loc: Location) -> list[str]:
    return [d.args[0] for d in loc.arrays.get("proxy_set_header", [])]


# ---------------------------------------------------------------- ssl_* merging http -> server


def test_verify_at_http_level_and_ca_in_server_combine(tmp_path: Path) -> None:
    cfg = effective(
        tmp_path,
        "http {\n"
        "    ssl_verify_client on;\n"
        "    server {\n        server_name a.test;\n        ssl_client_certificate ca.pem;\n    }\n"
        "}\n",
    )
    srv = by_name(cfg, "a.test")
    assert srv.verify == "on"
    d = srv.setting("ssl_verify_client").directive
    assert d is not None and d.line == 2
    assert srv.setting("ssl_client_certificate").value == "ca.pem"


def test_server_verify_overrides_http(tmp_path: Path) -> None:
    cfg = effective(
        tmp_path,
        "http {\n"
        "    ssl_verify_client on;\n"
        "    server { server_name off.test; ssl_verify_client off; }\n"
        "    server { server_name inherit.test; }\n"
        "}\n",
    )
    assert by_name(cfg, "off.test").verify == "off"
    assert not by_name(cfg, "off.test").verifies
    assert by_name(cfg, "inherit.test").verify == "on"


def test_depth_is_inherited_on_its_own(tmp_path: Path) -> None:
    cfg = effective(
        tmp_path,
        "http {\n"
        "    ssl_verify_depth 3;\n"
        "    server { server_name a.test; ssl_verify_client optional; ssl_client_certificate ca.pem; }\n"
        "    server { server_name b.test; ssl_verify_depth 2; }\n"
        "}\n",
    )
    a = by_name(cfg, "a.test")
    assert (a.setting("ssl_verify_depth").value, a.setting("ssl_verify_depth").origin) == ("3", "http")
    assert a.verify == "optional"
    assert by_name(cfg, "b.test").setting("ssl_verify_depth").value == "2"


def test_stream_servers_merge_from_stream_block(tmp_path: Path) -> None:
    cfg = effective(
        tmp_path,
        "http {\n    ssl_verify_client on;\n    server { server_name web.test; }\n}\n"
        "stream {\n"
        "    ssl_verify_client optional;\n"
        "    ssl_verify_depth 4;\n"
        "    server { listen 9443 ssl; ssl_client_certificate ca.pem; }\n"
        "}\n",
    )
    (srv,) = [s for s in cfg.servers if s.kind == "stream"]
    assert srv.verify == "optional"  # from stream{}, never from http{}
    assert srv.setting("ssl_verify_client").origin == "stream"
    assert srv.setting("ssl_verify_depth").value == "4"
    assert srv.setting("ssl_client_certificate").origin == "server"
    assert srv.locations == []


def test_setting_origin_names_where_the_value_came_from(tmp_path: Path) -> None:
    cfg = effective(
        tmp_path,
        "http {\n"
        "    ssl_verify_client optional;\n"
        "    server {\n        server_name a.test;\n        ssl_client_certificate ca.pem;\n    }\n"
        "}\n",
    )
    srv = by_name(cfg, "a.test")
    verify = srv.setting("ssl_verify_client")
    ca = srv.setting("ssl_client_certificate")
    crl = srv.setting("ssl_crl")
    assert (verify.origin, verify.directive and verify.directive.line) == ("http", 2)
    assert (ca.origin, ca.directive and ca.directive.line) == ("server", 5)
    assert (crl.origin, crl.directive, crl.args) == ("default", None, ())


def test_defaults_when_nothing_is_set(tmp_path: Path) -> None:
    cfg = effective(tmp_path, "http {\n    server { server_name a.test; }\n}\n")
    srv = by_name(cfg, "a.test")
    assert srv.verify == "off"
    assert srv.setting("ssl_verify_depth").value == "1"
    assert srv.setting("ssl_session_tickets").value == "on"
    assert all(
        srv.setting(n).origin == "default"
        for n in ("ssl_verify_client", "ssl_verify_depth", "ssl_session_tickets")
    )
    assert not srv.has_ssl_context


def test_ssl_context_from_certificate_or_reject_handshake(tmp_path: Path) -> None:
    cfg = effective(
        tmp_path,
        "http {\n"
        f"    server {{\n        server_name cert.test;\n        {CERT}    }}\n"
        "    server { server_name reject.test; ssl_reject_handshake on; }\n"
        "}\n",
    )
    assert by_name(cfg, "cert.test").has_ssl_context
    assert by_name(cfg, "reject.test").has_ssl_context


# ---------------------------------------------------------------- proxy_* inheritance


HEADERS = """http {
    proxy_set_header X-From-Http 1;
    server {
        server_name a.test;
        proxy_set_header X-SSL-Client-Verify $ssl_client_verify;
        proxy_set_header X-SSL-Client-DN $ssl_client_s_dn;
        location /plain/ {
            proxy_pass http://app;
            location /plain/nested/ { proxy_pass http://app; }
        }
        location /ws/ {
            proxy_set_header Upgrade $http_upgrade;
            proxy_pass http://app;
            location /ws/nested/ { proxy_pass http://app; }
        }
    }
}
"""


def test_server_headers_are_inherited_by_a_location_without_its_own(tmp_path: Path) -> None:
    srv = by_name(effective(tmp_path, HEADERS), "a.test")
    assert header_names(loc(srv, "/plain/")) == ["X-SSL-Client-Verify", "X-SSL-Client-DN"]
    # the server's own set replaced http's: X-From-Http is gone at server level too
    assert [d.args[0] for d in srv.headers["proxy_set_header"]] == [
        "X-SSL-Client-Verify",
        "X-SSL-Client-DN",
    ]


def test_a_location_with_any_proxy_set_header_inherits_none(tmp_path: Path) -> None:
    srv = by_name(effective(tmp_path, HEADERS), "a.test")
    assert header_names(loc(srv, "/ws/")) == ["Upgrade"]


def test_nested_location_inherits_from_its_parent_location(tmp_path: Path) -> None:
    srv = by_name(effective(tmp_path, HEADERS), "a.test")
    assert header_names(loc(srv, "/ws/nested/")) == ["Upgrade"]
    assert header_names(loc(srv, "/plain/nested/")) == ["X-SSL-Client-Verify", "X-SSL-Client-DN"]
    assert loc(srv, "/ws/nested/").parent is loc(srv, "/ws/")


def test_proxy_ssl_scalars_are_inherited_one_by_one(tmp_path: Path) -> None:
    cfg = effective(
        tmp_path,
        "http {\n"
        "    proxy_ssl_verify on;\n"
        "    proxy_ssl_trusted_certificate /etc/up-ca.pem;\n"
        "    server {\n"
        "        server_name a.test;\n"
        "        proxy_ssl_name up.internal;\n"
        "        location / {\n"
        "            proxy_ssl_verify off;\n"
        "            proxy_pass https://app;\n"
        "        }\n"
        "        location /other/ { proxy_pass https://app; }\n"
        "    }\n"
        "}\n",
    )
    srv = by_name(cfg, "a.test")
    root, other = loc(srv, "/"), loc(srv, "/other/")

    def view(x: Location, name: str) -> tuple[str, str]:
        st = x.setting(name)
        return st.value, st.origin

    assert view(root, "proxy_ssl_verify") == ("off", "location")
    assert view(root, "proxy_ssl_trusted_certificate") == ("/etc/up-ca.pem", "http")
    assert view(root, "proxy_ssl_name") == ("up.internal", "server")
    assert view(other, "proxy_ssl_verify") == ("on", "http")
    assert view(other, "proxy_ssl_server_name") == ("off", "default")
    assert "proxy_pass" not in root.settings  # content handlers are never inherited
    assert [d.args for d in root.passes] == [["https://app"]]


def test_fastcgi_and_scgi_scalars_are_inherited_like_proxy_ones(tmp_path: Path) -> None:
    cfg = effective(
        tmp_path,
        "http {\n"
        "    scgi_read_timeout 5s;\n"
        "    server {\n"
        "        server_name a.test;\n"
        "        fastcgi_pass_request_headers off;\n"
        "        location ~ \\.php$ { fastcgi_pass unix:/run/php.sock; }\n"
        "    }\n"
        "}\n",
    )
    php = by_name(cfg, "a.test").locations[0]
    assert php.setting("fastcgi_pass_request_headers").origin == "server"
    assert php.setting("scgi_read_timeout").origin == "http"


# ---------------------------------------------------------------- listen


@pytest.mark.parametrize(
    ("args", "socket", "port", "ssl", "default"),
    [
        (["443", "ssl"], "*:443", 443, True, False),
        (["127.0.0.1:8443", "ssl", "default_server"], "127.0.0.1:8443", 8443, True, True),
        (["[::]:443", "ssl"], "[::]:443", 443, True, False),
        (["[::1]:8443"], "[::1]:8443", 8443, False, False),
        (["80"], "*:80", 80, False, False),
        (["localhost:8080"], "localhost:8080", 8080, False, False),
        (["unix:/run/x.sock"], "unix:/run/x.sock", None, False, False),
        (["*:443", "ssl", "http2"], "*:443", 443, True, False),
        (["127.0.0.1"], "127.0.0.1:80", 80, False, False),
        (["0.0.0.0:443", "ssl"], "*:443", 443, True, False),
        (["8080", "default"], "*:8080", 8080, False, True),
    ],
)
def test_listen_parsing(
    args: list[str], socket: str, port: int | None, ssl: bool, default: bool
) -> None:
    ls = parse_listen(Directive("listen", args, "nginx.conf", 1), "http")
    assert (ls.socket, ls.port, ls.ssl, ls.default_server) == (socket, port, ssl, default)
    assert ls.text == " ".join(args)


def test_server_without_listen_listens_on_star_80(tmp_path: Path) -> None:
    cfg = effective(tmp_path, "http {\n    server { server_name a.test; }\n}\n")
    srv = by_name(cfg, "a.test")
    assert [(ls.socket, ls.ssl) for ls in srv.listens] == [("*:80", False)]
    assert cfg.sockets[("http", "*:80")][0][0] is srv


def test_default_server_is_the_flagged_one(tmp_path: Path) -> None:
    cfg = effective(
        tmp_path,
        "http {\n"
        "    server { listen 443 ssl; server_name first.test; }\n"
        "    server { listen 443 ssl default_server; server_name flagged.test; }\n"
        "}\n",
    )
    assert cfg.default_server("http", "*:443") is by_name(cfg, "flagged.test")


def test_default_server_is_the_first_on_the_socket_when_none_is_flagged(tmp_path: Path) -> None:
    cfg = effective(
        tmp_path,
        "http {\n"
        "    server { listen 8443 ssl; server_name other-port.test; }\n"
        "    server { listen 443 ssl; server_name first.test; }\n"
        "    server { listen 443 ssl; server_name second.test; }\n"
        "}\n",
    )
    assert cfg.default_server("http", "*:443") is by_name(cfg, "first.test")
    assert cfg.default_server("http", "*:9999") is None


def test_servers_on_socket_counts_each_server_once(tmp_path: Path) -> None:
    cfg = effective(
        tmp_path,
        "http {\n"
        "    server { listen 443 ssl; listen 0.0.0.0:443 ssl; server_name twice.test; }\n"
        "    server { listen 443 ssl; server_name other.test; }\n"
        "    server { listen 8443 ssl; server_name alone.test; }\n"
        "}\n"
        "stream {\n    server { listen 443 ssl; proxy_pass 127.0.0.1:1; }\n}\n",
    )
    assert len(cfg.sockets[("http", "*:443")]) == 3  # `443` and `0.0.0.0:443` are one socket
    assert cfg.servers_on_socket("http", "*:443") == 2
    assert cfg.servers_on_socket("http", "*:8443") == 1
    assert cfg.servers_on_socket("stream", "*:443") == 1  # another protocol's socket table
    assert cfg.servers_on_socket("http", "*:9999") == 0


# ---------------------------------------------------------------- --require-mtls scope


SCOPE = """http {
    server { listen 443 ssl; server_name api.internal www.example.com; }
    server { listen 8443 ssl; server_name admin.example.com; }
}
"""


def test_in_scope_matches_server_name_globs(tmp_path: Path) -> None:
    cfg = effective(tmp_path, SCOPE)
    api, admin = by_name(cfg, "api.internal"), by_name(cfg, "admin.example.com")
    assert cfg.in_scope(api, ("*.internal",))
    assert not cfg.in_scope(admin, ("*.internal",))
    assert cfg.in_scope(api, ("www.*",))  # any of the server's names
    assert not cfg.in_scope(api, ())


def test_in_scope_matches_listen_port(tmp_path: Path) -> None:
    cfg = effective(tmp_path, SCOPE)
    api, admin = by_name(cfg, "api.internal"), by_name(cfg, "admin.example.com")
    assert cfg.in_scope(admin, (":8443",))
    assert not cfg.in_scope(api, (":8443",))
    assert cfg.in_scope(api, (":8443", "api.*"))
