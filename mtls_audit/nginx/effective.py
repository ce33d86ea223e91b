"""Effective settings: what Nginx actually applies to each server and location.

Nginx merges every `ssl_*` client directive on its own from `http` (or `stream`) into each
`server` (`ngx_http_ssl_merge_srv_conf`), and `proxy_*`/`grpc_*`/`uwsgi_*` settings from
`http` -> `server` -> `location` -> nested `location`. Array directives such as
`proxy_set_header` are inherited only by a level that defines none of them: one
`proxy_set_header Upgrade ...` in a location drops every identity header set above it. An auditor
that reads only the server block misses all of this, which is why these views exist.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..model import SourceLocation
from .load import Directive, LoadedConfig

# Directives merged http -> server one by one (ngx_http_ssl_module, ngx_stream_ssl_module).
SSL_SCALARS = (
    "ssl",
    "ssl_verify_client",
    "ssl_verify_depth",
    "ssl_client_certificate",
    "ssl_trusted_certificate",
    "ssl_crl",
    "ssl_ocsp",
    "ssl_ocsp_responder",
    "ssl_ocsp_cache",
    "ssl_protocols",
    "ssl_ciphers",
    "ssl_session_cache",
    "ssl_session_tickets",
    "ssl_session_timeout",
    "ssl_reject_handshake",
    "ssl_stapling",
    "ssl_prefer_server_ciphers",
)
SSL_ARRAYS = ("ssl_certificate", "ssl_certificate_key", "ssl_session_ticket_key")
SSL_DEFAULTS: dict[str, tuple[str, ...]] = {
    "ssl": ("off",),
    "ssl_verify_client": ("off",),
    "ssl_verify_depth": ("1",),
    "ssl_ocsp": ("off",),
    "ssl_session_tickets": ("on",),
    "ssl_reject_handshake": ("off",),
    "ssl_session_cache": ("none",),
}

# Inherited http -> server -> location as arrays: a level defining any of them inherits none.
HEADER_ARRAYS = (
    "proxy_set_header",
    "grpc_set_header",
    "fastcgi_param",
    "uwsgi_param",
    "scgi_param",
)
# Prefixes of scalar directives inherited http -> server -> location one by one.
UPSTREAM_PREFIXES = ("proxy_", "grpc_", "uwsgi_", "fastcgi_", "scgi_")
# Content handlers: set only in the location (or `if` in it), never inherited.
PASS_DIRECTIVES = ("proxy_pass", "grpc_pass", "uwsgi_pass", "fastcgi_pass", "scgi_pass", "memcached_pass")
UPSTREAM_DEFAULTS: dict[str, tuple[str, ...]] = {
    "proxy_ssl_verify": ("off",),
    "grpc_ssl_verify": ("off",),
    "uwsgi_ssl_verify": ("off",),
    "proxy_ssl_server_name": ("off",),
    "grpc_ssl_server_name": ("off",),
    "uwsgi_ssl_server_name": ("off",),
    "proxy_ssl_session_reuse": ("on",),
    "grpc_ssl_session_reuse": ("on",),
    "uwsgi_ssl_session_reuse": ("on",),
    "proxy_ssl": ("off",),
}


@dataclass(frozen=True)
class Setting:
    """An effective value and the directive that set it (None when it is Nginx's default)."""

    args: tuple[str, ...]
    directive: Directive | None
    origin: str
    """`server`, `location`, `http`, `stream` or `default`: where the value came from."""

    @property
    def value(self) -> str:
        return self.args[0] if self.args else ""


_DEFAULT_SETTINGS: dict[tuple[str, int], Setting] = {}


def _default(name: str, table: dict[str, tuple[str, ...]]) -> Setting:
    """Nginx's default for `name`; one frozen Setting per name (asked for ~40 times a server)."""
    key = (name, id(table))
    found = _DEFAULT_SETTINGS.get(key)
    if found is None:
        found = _DEFAULT_SETTINGS[key] = Setting(table.get(name, ()), None, "default")
    return found


@dataclass(eq=False)
class Listen:
    """One `listen` directive, parsed the way `ngx_http_core_listen` reads it."""

    directive: Directive
    address: str
    port: int | None
    ssl: bool
    default_server: bool
    params: tuple[str, ...]

    @property
    def socket(self) -> str:
        return f"{self.address}:{self.port}" if self.port is not None else self.address

    @property
    def text(self) -> str:
        return " ".join(self.directive.args)


def parse_listen(d: Directive, kind: str) -> Listen:
    """Split `listen ADDR[:PORT] params...`; a bare number is a port on every address."""
    raw = d.args[0] if d.args else ("80" if kind == "http" else "")
    params = tuple(d.args[1:])
    address, port = "*", None
    if raw.startswith("unix:"):
        address = raw
    elif raw.startswith("["):
        host, _, rest = raw.partition("]")
        address = host + "]"
        port = _int(rest.lstrip(":")) if rest.startswith(":") else 80
    elif raw.isdigit():
        port = int(raw)
    elif ":" in raw:
        host, _, p = raw.rpartition(":")
        address, port = (host or "*"), _int(p)
    else:
        address, port = raw, 80
    if address in ("0.0.0.0",):
        address = "*"
    return Listen(
        directive=d,
        address=address,
        port=port,
        ssl="ssl" in params,
        default_server="default_server" in params or "default" in params,
        params=params,
    )


def _int(s: str) -> int | None:
    return int(s) if s.isdigit() else None


@dataclass(eq=False)
class Location:
    """A `location` block with the upstream settings and headers Nginx applies inside it."""

    directive: Directive
    modifier: str
    """`=`, `~`, `~*`, `^~`, `@` (named) or `` (prefix)."""
    pattern: str
    server: Server
    parent: Location | None
    settings: dict[str, Setting] = field(default_factory=dict)
    arrays: dict[str, list[Directive]] = field(default_factory=dict)
    """Effective header arrays (proxy_set_header ...) after the inherit-none-if-any rule."""
    children: list[Location] = field(default_factory=list)

    @property
    def name(self) -> str:
        if self.modifier == "@":
            return self.pattern
        return f"{self.modifier} {self.pattern}".strip()

    def setting(self, name: str) -> Setting:
        return self.settings.get(name) or _default(name, UPSTREAM_DEFAULTS)

    def own(self, name: str) -> list[Directive]:
        return self.directive.find(name)

    @property
    def passes(self) -> list[Directive]:
        """Content handlers in this location and in `if` blocks directly inside it."""
        out = [d for d in self.directive.block or () if d.name in PASS_DIRECTIVES]
        for i in self.directive.find("if"):
            out.extend(d for d in i.block or () if d.name in PASS_DIRECTIVES)
        return out


@dataclass(eq=False)
class Server:
    """A `server` block (http or stream) with its effective TLS client-verification settings."""

    kind: str
    """`http` or `stream`."""
    directive: Directive
    context: Directive
    names: tuple[str, ...]
    listens: list[Listen]
    ssl: dict[str, Setting]
    arrays: dict[str, list[Directive]]
    upstream: dict[str, Setting] = field(default_factory=dict)
    """Server-level effective proxy_* scalars (what a location without its own inherits)."""
    headers: dict[str, list[Directive]] = field(default_factory=dict)
    locations: list[Location] = field(default_factory=list)
    index: int = 0
    root: str = ""
    """The main config's folder, which display paths are relative to (see SourceLocation.root)."""
    context_index: dict[str, list[Directive]] = field(default_factory=dict)
    """Direct children of the enclosing http/stream block by name, shared by its servers so
    that no check re-walks the whole block once per server (20,000 servers, one walk)."""

    def context_directives(self, name: str) -> list[Directive]:
        return self.context_index.get(name, [])

    def setting(self, name: str) -> Setting:
        return self.ssl.get(name) or _default(name, SSL_DEFAULTS)

    @functools.cached_property
    def verify(self) -> str:
        """Effective `ssl_verify_client`: off, on, optional or optional_no_ca.

        Cached (settings are merged before a Server exists): nearly every check asks, per server.
        """
        return self.setting("ssl_verify_client").value or "off"

    @functools.cached_property
    def verifies(self) -> bool:
        return self.verify != "off"

    @property
    def has_ssl_context(self) -> bool:
        """Nginx builds an SSL context (and applies the verify settings) only with a cert."""
        return bool(self.arrays.get("ssl_certificate")) or self.setting(
            "ssl_reject_handshake"
        ).value == "on"

    @property
    def legacy_ssl_on(self) -> bool:
        return self.setting("ssl").value == "on"

    def listen_is_tls(self, listen: Listen) -> bool:
        return listen.ssl or self.legacy_ssl_on

    # label, subject and the location tuples are asked for once per finding (twenty-odd per
    # server); computed once, they stop being a visible cost on 20,000-server configs.
    @functools.cached_property
    def label(self) -> str:
        name = next((n for n in self.names if n), "")
        socks = ",".join(sorted({ls.socket for ls in self.listens}))
        return f"{self.kind} server {name or '_'} [{socks}]"

    @functools.cached_property
    def subject(self) -> str:
        """Stable identity for fingerprints: kind, names, sockets and file; never the line."""
        return f"{self.label} in {self.directive.file}"

    @functools.cached_property
    def _loc_parts(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return tuple(n for n in self.names if n), tuple(ls.text for ls in self.listens)

    @functools.cached_property
    def _locs(self) -> dict[int, tuple[Directive, SourceLocation]]:
        return {}

    def loc(self, d: Directive | None = None) -> SourceLocation:
        """A report location on `d` (default: the server line), with the server's names.

        One object per directive, shared by every result on it, so the JSON renderer encodes
        each location once. The cache holds the directive too, so its id cannot be reused.
        """
        d = d or self.directive
        hit = self._locs.get(id(d))
        if hit is not None:
            return hit[1]
        names, listens = self._loc_parts
        found = SourceLocation(d.file, d.line, names, listens, self.root)
        self._locs[id(d)] = (d, found)
        return found

    def name_line(self) -> Directive:
        return self.directive.first("server_name") or self.directive

    def all_locations(self) -> Iterator[Location]:
        stack = list(reversed(self.locations))
        while stack:
            loc = stack.pop()
            yield loc
            stack.extend(reversed(loc.children))


@dataclass
class EffectiveConfig:
    """Every server with its effective settings, plus the socket and upstream indexes."""

    loaded: LoadedConfig
    servers: list[Server]
    upstreams: dict[str, Directive]
    maps: list[Directive]
    sockets: dict[tuple[str, str], list[tuple[Server, Listen]]]
    """(kind, address:port) -> the servers listening there, in configuration order."""
    cache: dict[str, Any] = field(default_factory=dict)
    """Derived indexes that several checks share (computed once per run, on first use)."""

    def default_server(self, kind: str, socket: str) -> Server | None:
        """The `default_server` on a socket, or the first server listed there (Nginx's rule)."""
        found = self._socket_index.get((kind, socket))
        return found[0] if found is not None else None

    def servers_on_socket(self, kind: str, socket: str) -> int:
        """How many distinct servers listen on a socket (one server may list it twice)."""
        found = self._socket_index.get((kind, socket))
        return found[1] if found is not None else 0

    @functools.cached_property
    def _socket_index(self) -> dict[tuple[str, str], tuple[Server, int]]:
        """(kind, socket) -> (default server, distinct servers), built once for every check.

        Checks ask per server; answering from the socket's entry list each time was quadratic in
        the servers sharing a socket (hundreds of virtual hosts on :443 are the usual case).
        """
        index: dict[tuple[str, str], tuple[Server, int]] = {}
        for key, entries in self.sockets.items():
            default = next((srv for srv, ls in entries if ls.default_server), entries[0][0])
            index[key] = (default, len({id(srv) for srv, _ in entries}))
        return index

    def in_scope(self, server: Server, patterns: tuple[str, ...]) -> bool:
        """`--require-mtls`: a server_name glob, or `:port` matching a listen port."""
        for p in patterns:
            if p.startswith(":"):
                if any(str(ls.port) == p[1:] for ls in server.listens):
                    return True
            elif any(fnmatch.fnmatchcase(n, p) for n in server.names):
                return True
        return False


def _merge_level(
    block: Directive,
    inherited: dict[str, Setting],
    scalars: tuple[str, ...] | None,
    prefixes: tuple[str, ...],
    origin: str,
) -> dict[str, Setting]:
    out = dict(inherited)
    for d in block.block or ():
        n = d.name
        if (scalars is not None and n in scalars) or (
            prefixes and n.startswith(prefixes) and n not in HEADER_ARRAYS and n not in PASS_DIRECTIVES
        ):
            out[n] = Setting(tuple(d.args), d, origin)
    return out


def _merge_arrays(
    block: Directive, inherited: dict[str, list[Directive]], names: tuple[str, ...]
) -> dict[str, list[Directive]]:
    out = dict(inherited)
    own: dict[str, list[Directive]] = {}
    for d in block.block or ():
        if d.name in names:
            own.setdefault(d.name, []).append(d)
    out.update(own)
    return out


def build_effective(loaded: LoadedConfig) -> EffectiveConfig:
    """Compute every server's and location's effective settings in one pass over the tree."""
    servers: list[Server] = []
    upstreams: dict[str, Directive] = {}
    maps: list[Directive] = []
    sockets: dict[tuple[str, str], list[tuple[Server, Listen]]] = {}
    for ctx in loaded.root.block or ():
        if ctx.name not in ("http", "stream"):
            continue
        kind = ctx.name
        ssl_top = _merge_level(ctx, {}, SSL_SCALARS, (), kind)
        arr_top = _merge_arrays(ctx, {}, SSL_ARRAYS)
        up_top = _merge_level(ctx, {}, None, UPSTREAM_PREFIXES if kind == "http" else ("proxy_",), kind)
        hdr_top = _merge_arrays(ctx, {}, HEADER_ARRAYS)
        ctx_index: dict[str, list[Directive]] = {}
        for d in ctx.block or ():
            if d.name != "server":
                ctx_index.setdefault(d.name, []).append(d)
        for d in ctx.block or ():
            if d.name == "upstream" and d.args:
                upstreams.setdefault(f"{kind}:{d.args[0]}", d)
            elif d.name == "map":
                maps.append(d)
            elif d.name == "server":
                srv = _build_server(kind, ctx, d, ssl_top, arr_top, up_top, hdr_top)
                srv.index = len(servers)
                srv.context_index = ctx_index
                srv.root = loaded.root_dir
                servers.append(srv)
                for ls in srv.listens:
                    sockets.setdefault((kind, ls.socket), []).append((srv, ls))
    return EffectiveConfig(loaded, servers, upstreams, maps, sockets)


def _build_server(
    kind: str,
    ctx: Directive,
    d: Directive,
    ssl_top: dict[str, Setting],
    arr_top: dict[str, list[Directive]],
    up_top: dict[str, Setting],
    hdr_top: dict[str, list[Directive]],
) -> Server:
    names: list[str] = []
    listens: list[Listen] = []
    for c in d.block or ():
        if c.name == "server_name":
            names.extend(c.args)
        elif c.name == "listen":
            listens.append(parse_listen(c, kind))
    if not listens and kind == "http":
        # A server without `listen` listens on *:80 (ngx_http_core_merge_srv_conf).
        listens.append(Listen(d, "*", 80, False, False, ()))
    prefixes = UPSTREAM_PREFIXES if kind == "http" else ("proxy_",)
    srv = Server(
        kind=kind,
        directive=d,
        context=ctx,
        names=tuple(names),
        listens=listens,
        ssl=_merge_level(d, ssl_top, SSL_SCALARS, (), "server"),
        arrays=_merge_arrays(d, arr_top, SSL_ARRAYS),
        upstream=_merge_level(d, up_top, None, prefixes, "server"),
        headers=_merge_arrays(d, hdr_top, HEADER_ARRAYS),
    )
    if kind == "http":
        srv.locations = _build_locations(d, srv, None, srv.upstream, srv.headers)
    return srv


def _build_locations(
    block: Directive,
    srv: Server,
    parent: Location | None,
    settings: dict[str, Setting],
    headers: dict[str, list[Directive]],
) -> list[Location]:
    out: list[Location] = []
    for d in block.block or ():
        if d.name != "location":
            continue
        modifier, pattern = "", ""
        if len(d.args) >= 2:
            modifier, pattern = d.args[0], d.args[1]
        elif d.args:
            pattern = d.args[0]
            if pattern.startswith("@"):
                modifier = "@"
            elif pattern.startswith("="):
                modifier, pattern = "=", pattern[1:]
        loc = Location(
            directive=d,
            modifier=modifier,
            pattern=pattern,
            server=srv,
            parent=parent,
            settings=_merge_level(d, settings, None, UPSTREAM_PREFIXES, "location"),
            arrays=_merge_arrays(d, headers, HEADER_ARRAYS),
        )
        loc.children = _build_locations(d, srv, loc, loc.settings, loc.arrays)
        out.append(loc)
    return out
