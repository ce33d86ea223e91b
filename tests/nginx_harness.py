"""A real Nginx with one server per client-auth posture, for live-probe tests.

Why a real Nginx and not a Python TLS server: Nginx finishes the TLS handshake without a client
certificate and rejects afterwards (HTTP 400, or a closed stream); only the real thing proves the
prober reads that correctly (docs/nginx-mtls.md sections 1 and 3). Each posture gets its own
127.0.0.1 port, so each is the default server of its socket (``ssl_protocols`` of non-default
servers is ignored before Nginx 1.29.2).

Use the session fixture ``nginx_env`` (import it into a test module or conftest), or
``start_nginx()`` directly. Nginx runs in the foreground of its own process group
(``daemon off; master_process on``) with its prefix, pid file and logs in a temporary folder, and
is stopped by killing that process group. In CI (``CI=true``) a missing nginx binary fails the
tests; locally it skips them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pki import Pki, make_pki

NGINX_CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")
STREAM_MODULE_CANDIDATES = (
    "/usr/lib/nginx/modules/ngx_stream_module.so",
    "/usr/lib64/nginx/modules/ngx_stream_module.so",
)

APP_BODY = "<html><head><title>app ok</title></head><body>verify=$ssl_client_verify</body></html>\\n"


@dataclass(frozen=True)
class Posture:
    """One listener with a client-auth configuration and what the config says about it."""

    name: str
    kind: str
    """``http``, ``stream`` or ``plain`` (an HTTP server without TLS: "not TLS" for the prober)."""
    config_verify: str | None
    """Effective ``ssl_verify_client`` as a config loader would report it (for MTLS601)."""
    directives: str
    """Server-block body after ``listen``; ``{pki.*}`` placeholders are filled in."""
    protocol: str = "auto"
    """What the prober should assume: ``http``, ``tcp`` or ``auto``."""


_HTTP_LOC = f'location / {{ default_type text/html; return 200 "{APP_BODY}"; }}'
_ROOT_CA = "ssl_client_certificate {root};"

POSTURES: tuple[Posture, ...] = (
    Posture("on", "http", "on", f"ssl_verify_client on; {_ROOT_CA} {_HTTP_LOC}"),
    Posture("off", "http", "off", f"ssl_verify_client off; {_HTTP_LOC}"),
    Posture("optional_nocheck", "http", "optional", f"ssl_verify_client optional; {_ROOT_CA} {_HTTP_LOC}"),
    Posture(
        "optional_check",
        "http",
        "optional",
        f"ssl_verify_client optional; {_ROOT_CA} if ($ssl_client_verify != SUCCESS) {{ return 403; }} " + _HTTP_LOC,
    ),
    Posture(
        "optional_failed_check",
        "http",
        "optional",
        # The wrong check from nginx-mtls.md 4.2: the value is FAILED:<reason> or NONE, never FAILED.
        f"ssl_verify_client optional; {_ROOT_CA} "
        "location / { if ($ssl_client_verify = FAILED) { return 403; } "
        f'default_type text/html; return 200 "{APP_BODY}"; }}',
    ),
    # optional_no_ca without any CA file: allowed by nginx -t, sends an empty CA list (MTLS506).
    Posture("optional_no_ca", "http", "optional_no_ca", f"ssl_verify_client optional_no_ca; {_HTTP_LOC}"),
    Posture("on_crl", "http", "on", f"ssl_verify_client on; {_ROOT_CA} ssl_crl {{crl}}; {_HTTP_LOC}"),
    Posture(
        "on_other_ca",
        "http",
        "on",
        f"ssl_verify_client on; ssl_client_certificate {{other}}; {_HTTP_LOC}",
    ),
    Posture("on_bundle", "http", "on", f"ssl_verify_client on; ssl_client_certificate {{bundle}}; {_HTTP_LOC}"),
    Posture("tls13_only", "http", "on", f"ssl_protocols TLSv1.3; ssl_verify_client on; {_ROOT_CA} {_HTTP_LOC}"),
    Posture("tls12_only", "http", "on", f"ssl_protocols TLSv1.2; ssl_verify_client on; {_ROOT_CA} {_HTTP_LOC}"),
    Posture(
        "legacy_tls",
        "http",
        "on",
        # OpenSSL 3 refuses TLS 1.0/1.1 at the default security level; @SECLEVEL=0 re-enables them.
        "ssl_protocols TLSv1 TLSv1.1 TLSv1.2; ssl_ciphers DEFAULT:@SECLEVEL=0; "
        f"ssl_verify_client on; {_ROOT_CA} {_HTTP_LOC}",
    ),
    Posture(
        "error_page_app",
        "http",
        "on",
        # Fail-open: certificate errors go to a location that serves the app (nginx-mtls.md 3.1, 9.7).
        f"ssl_verify_client on; {_ROOT_CA} error_page 495 496 = @app; {_HTTP_LOC} "
        'location @app { default_type text/html; return 200 "<title>app via error_page</title>\\n"; }',
    ),
    Posture(
        "server_untrusted",
        "http",
        "on",
        f"ssl_certificate {{server_other_cert}}; ssl_certificate_key {{server_other_key}}; "
        f"ssl_verify_client on; {_ROOT_CA} {_HTTP_LOC}",
    ),
    Posture("stream_on", "stream", "on", f'ssl_verify_client on; {_ROOT_CA} return "stream ok\\n";', "tcp"),
    Posture("stream_off", "stream", "off", 'ssl_verify_client off; return "stream ok\\n";', "tcp"),
    Posture("plain_http", "plain", None, 'location / { return 200 "plain\\n"; }', "http"),
)


@dataclass
class NginxEnv:
    """A running Nginx and the endpoints the tests probe."""

    pki: Pki
    ports: dict[str, int]
    """Posture name -> port on 127.0.0.1; also ``silent`` and ``closed``."""
    postures: Mapping[str, Posture]
    prefix: Path
    process: subprocess.Popen[bytes] | None = None
    _silent: socket.socket | None = None
    _silent_conns: list[socket.socket] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def config(self) -> Path:
        """The nginx.conf Nginx runs with (for end-to-end scans of config plus live)."""
        return self.prefix / "nginx.conf"

    def error_log(self) -> str:
        """The error log, for failure messages."""
        path = self.prefix / "logs" / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Kill the Nginx process group and the silent listener; safe to call twice."""
        self._stop.set()
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        for conn in self._silent_conns:
            conn.close()
        if self._silent is not None:
            self._silent.close()


def find_nginx() -> str | None:
    """The nginx binary, from ``$NGINX`` or the usual places."""
    env = os.environ.get("NGINX")
    if env:
        return env if os.access(env, os.X_OK) else None
    for cand in NGINX_CANDIDATES:
        if os.access(cand, os.X_OK):
            return cand
    return shutil.which("nginx")


def require_nginx() -> str:
    """The nginx binary; fail in CI, skip locally when it is missing."""
    binary = find_nginx()
    if binary is None:
        message = "nginx binary not found (set $NGINX or install nginx-light and libnginx-mod-stream)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return binary


def _stream_module() -> str | None:
    for cand in STREAM_MODULE_CANDIDATES:
        if os.path.exists(cand):
            return cand
    return None


def free_port() -> int:
    """A port on 127.0.0.1 nobody listens on right now (bind port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _render(
    pki: Pki,
    prefix: Path,
    postures: Mapping[str, Posture],
    ports: Mapping[str, int],
    stream_module: str | None,
) -> str:
    values = {
        "root": pki.root.cert,
        "other": pki.other.cert,
        "crl": pki.crl,
        "bundle": pki.bundle,
        "server_other_cert": pki.server_other.cert,
        "server_other_key": pki.server_other.key,
    }
    http_servers: list[str] = []
    stream_servers: list[str] = []
    for posture in postures.values():
        body = posture.directives
        for key, value in values.items():  # not str.format: nginx blocks are full of braces
            body = body.replace("{" + key + "}", str(value))
        port = ports[posture.name]
        # One directive a line where it matters: the listen line is what live results point at.
        comment = f"# posture: {posture.name}"
        if posture.kind == "plain":
            listen, names = f"listen 127.0.0.1:{port};", "server_name localhost;"
        elif posture.kind == "http":
            listen, names = f"listen 127.0.0.1:{port} ssl;", "server_name localhost;"
        else:
            listen, names = f"listen 127.0.0.1:{port} ssl;", ""
        block = f"server {{  {comment}\n    {listen}\n    {names}\n    {body}\n  }}"
        (stream_servers if posture.kind == "stream" else http_servers).append(block)
    temp = prefix / "temp"
    user = "user root;\n" if os.geteuid() == 0 else ""
    lines = [
        f"load_module {stream_module};" if stream_module else "",
        user,
        "daemon off;",
        "master_process on;",
        "worker_processes 1;",
        f"pid {prefix / 'nginx.pid'};",
        f"error_log {prefix / 'logs' / 'error.log'} info;",
        "events { worker_connections 512; }",
        "http {",
        "  access_log off;",
        f"  client_body_temp_path {temp / 'body'};",
        f"  proxy_temp_path {temp / 'proxy'};",
        f"  fastcgi_temp_path {temp / 'fastcgi'};",
        f"  uwsgi_temp_path {temp / 'uwsgi'};",
        f"  scgi_temp_path {temp / 'scgi'};",
        f"  ssl_certificate {pki.server.cert};",
        f"  ssl_certificate_key {pki.server.key};",
        "  ssl_protocols TLSv1.2 TLSv1.3;",
        # Session cache and tickets on: a prober that resumed sessions would carry identities over.
        "  ssl_session_cache shared:mtls_audit_test:1m;",
        *(f"  {s}" for s in http_servers),
        "}",
    ]
    if stream_module:
        lines += [
            "stream {",
            "  ssl_protocols TLSv1.2 TLSv1.3;",
            f"  ssl_certificate {pki.server.cert};",
            f"  ssl_certificate_key {pki.server.key};",
            *(f"  {s}" for s in stream_servers),
            "}",
        ]
    return "\n".join(lines) + "\n"


def _serve_silent(env: NginxEnv) -> None:
    """Accept connections and never answer: the handshake must time out, not hang the scan."""
    assert env._silent is not None
    env._silent.settimeout(0.2)
    while not env._stop.is_set():
        try:
            conn, _ = env._silent.accept()
        except (TimeoutError, OSError):
            continue
        env._silent_conns.append(conn)


def _wait_ready(env: NginxEnv, deadline: float) -> None:
    pending = {name: port for name, port in env.ports.items() if name != "closed"}
    while pending:
        assert env.process is not None
        if env.process.poll() is not None:
            raise RuntimeError(f"nginx exited with {env.process.returncode}:\n{env.error_log()}")
        for name, port in list(pending.items()):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    del pending[name]
            except OSError:
                pass
        if pending and time.monotonic() > deadline:
            raise RuntimeError(f"nginx ports never opened: {sorted(pending)}\n{env.error_log()}")
        if pending:
            time.sleep(0.05)


def start_nginx(prefix: Path, binary: str) -> NginxEnv:
    """Write the config, start Nginx and the silent listener, wait for every port."""
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / "logs").mkdir(exist_ok=True)
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / "temp" / sub).mkdir(parents=True, exist_ok=True)
    pki = make_pki(prefix / "pki")
    stream_module = _stream_module()
    if stream_module is None and os.environ.get("CI", "").lower() == "true":
        pytest.fail("ngx_stream_module.so not found (install libnginx-mod-stream)")
    postures = {p.name: p for p in POSTURES if p.kind != "stream" or stream_module}
    ports = {name: free_port() for name in postures}
    env = NginxEnv(pki=pki, ports=ports, postures=postures, prefix=prefix)
    silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    env._silent = silent
    env.ports["silent"] = int(silent.getsockname()[1])
    env.ports["closed"] = free_port()
    threading.Thread(target=_serve_silent, args=(env,), daemon=True, name="silent-listener").start()
    conf = prefix / "nginx.conf"
    conf.write_text(_render(pki, prefix, postures, env.ports, stream_module))
    env.process = subprocess.Popen(
        [binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "logs" / "error.log")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # own process group: teardown kills exactly what we started
    )
    try:
        _wait_ready(env, time.monotonic() + 15)
    except BaseException:
        env.stop()
        raise
    return env


@pytest.fixture(scope="session")
def nginx_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxEnv]:
    """One Nginx for the whole session, stopped at the end whatever happens."""
    binary = require_nginx()
    env = start_nginx(tmp_path_factory.mktemp("nginx"), binary)
    try:
        yield env
    finally:
        env.stop()
