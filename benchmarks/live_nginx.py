"""One real Nginx on 127.0.0.1 with N listening servers of mixed client-auth postures.

Each endpoint has its own port, so each server is the default server of its socket and its
`ssl_protocols` applies (before Nginx 1.29.2 only the default server's does). The PKI is the
test suite's (`tests/pki.py`, imported by path), made fresh in the run's temp folder.

Nginx runs in the foreground in its own process group (`daemon off; master_process on`);
`LiveNginx.stop()` kills exactly that group. Only 127.0.0.1 is ever bound or probed.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NGINX_CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")
STREAM_MODULE_CANDIDATES = (
    "/usr/lib/nginx/modules/ngx_stream_module.so",
    "/usr/lib64/nginx/modules/ngx_stream_module.so",
)
TESTS_DIR = Path(__file__).resolve().parent.parent / "tests"

_BODY = "<html><head><title>app ok</title></head><body>verify=$ssl_client_verify</body></html>\\n"
_LOC = f'location / {{ default_type text/html; return 200 "{_BODY}"; }}'
_CA = "ssl_client_certificate {root};"


@dataclass(frozen=True)
class Posture:
    name: str
    kind: str
    """``http`` or ``stream``."""
    directives: str
    """Server body after ``listen``; ``{root}`` and ``{crl}`` are filled in."""
    config_verify: str


HTTP_POSTURES: tuple[Posture, ...] = (
    Posture("on", "http", f"ssl_verify_client on; {_CA} {_LOC}", "on"),
    Posture("on_crl", "http", f"ssl_verify_client on; {_CA} ssl_crl {{crl}}; {_LOC}", "on"),
    Posture("optional_nocheck", "http", f"ssl_verify_client optional; {_CA} {_LOC}", "optional"),
    Posture(
        "optional_check",
        "http",
        f"ssl_verify_client optional; {_CA} if ($ssl_client_verify != SUCCESS) {{ return 403; }} {_LOC}",
        "optional",
    ),
    Posture("optional_no_ca", "http", f"ssl_verify_client optional_no_ca; {_LOC}", "optional_no_ca"),
    Posture("off", "http", f"ssl_verify_client off; {_LOC}", "off"),
    Posture("tls12_only", "http", f"ssl_protocols TLSv1.2; ssl_verify_client on; {_CA} {_LOC}", "on"),
    Posture("tls13_only", "http", f"ssl_protocols TLSv1.3; ssl_verify_client on; {_CA} {_LOC}", "on"),
    Posture(
        "error_page_app",
        "http",
        f"ssl_verify_client on; {_CA} error_page 495 496 = @app; {_LOC} "
        'location @app { default_type text/html; return 200 "<title>app via error_page</title>\\n"; }',
        "on",
    ),
    Posture("tls12_optional", "http", f"ssl_protocols TLSv1.2; ssl_verify_client optional; {_CA} {_LOC}", "optional"),
)
STREAM_POSTURES: tuple[Posture, ...] = (
    Posture("stream_on", "stream", f'ssl_verify_client on; {_CA} return "stream ok\\n";', "on"),
    Posture("stream_off", "stream", 'ssl_verify_client off; return "stream ok\\n";', "off"),
)
STREAM_SHARE = 20
"""One endpoint in this many is a stream server (when the stream module is there)."""


def find_nginx() -> str | None:
    env = os.environ.get("NGINX")
    if env:
        return env if os.access(env, os.X_OK) else None
    for cand in NGINX_CANDIDATES:
        if os.access(cand, os.X_OK):
            return cand
    return None


def stream_module() -> str | None:
    return next((c for c in STREAM_MODULE_CANDIDATES if os.path.exists(c)), None)


def plan_postures(count: int, with_stream: bool) -> list[Posture]:
    """Deterministic mix: mostly the HTTP postures in turn, one in STREAM_SHARE a stream server."""
    out: list[Posture] = []
    h = s = 0
    for i in range(count):
        if with_stream and i % STREAM_SHARE == STREAM_SHARE - 1:
            out.append(STREAM_POSTURES[s % len(STREAM_POSTURES)])
            s += 1
        else:
            out.append(HTTP_POSTURES[h % len(HTTP_POSTURES)])
            h += 1
    return out


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports on 127.0.0.1 (all held open at once, then released)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def load_pki_module() -> Any:
    """``tests/pki.py`` as a module (it needs only `cryptography`)."""
    if str(TESTS_DIR) not in sys.path:
        sys.path.insert(0, str(TESTS_DIR))
    import pki  # type: ignore[import-not-found]

    return pki


@dataclass
class LiveNginx:
    prefix: Path
    pki: Any
    endpoints: list[tuple[Posture, int]]
    status_port: int
    """Plain HTTP ``stub_status`` on 127.0.0.1, to count the connections each client made."""
    process: subprocess.Popen[bytes] | None = None

    def ports_of(self, name: str) -> list[int]:
        return [port for posture, port in self.endpoints if posture.name == name]

    def accepted(self) -> int:
        """Connections Nginx has accepted so far, on every listener (stream included).

        The request that reads the counter is itself counted: callers subtract one per read.
        """
        # A raw socket, not urllib: no proxy variable can ever send this anywhere but loopback.
        with socket.create_connection(("127.0.0.1", self.status_port), timeout=5) as s:
            s.sendall(b"GET /status HTTP/1.0\r\nHost: localhost\r\n\r\n")
            chunks: list[bytes] = []
            while chunk := s.recv(4096):
                chunks.append(chunk)
        text = b"".join(chunks).decode("ascii", errors="replace")
        m = re.search(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s*$", text, re.MULTILINE)
        if m is None:
            raise RuntimeError(f"unexpected stub_status output: {text[:200]!r}")
        return int(m.group(1))

    def error_log(self) -> str:
        path = self.prefix / "logs" / "error.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        """Kill Nginx's process group (master and workers), then reap the master."""
        proc = self.process
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        if proc.stderr is not None:
            proc.stderr.close()
        self.process = None


def _render(pki: Any, prefix: Path, endpoints: list[tuple[Posture, int]], status_port: int, module: str | None) -> str:
    values = {"root": str(pki.root.cert), "crl": str(pki.crl)}
    http_blocks: list[str] = []
    stream_blocks: list[str] = []
    for posture, port in endpoints:
        body = posture.directives
        for key, value in values.items():  # not str.format: nginx blocks are full of braces
            body = body.replace("{" + key + "}", value)
        names = "server_name localhost; " if posture.kind == "http" else ""
        block = f"  server {{ # {posture.name}\n    listen 127.0.0.1:{port} ssl; {names}\n    {body}\n  }}"
        (stream_blocks if posture.kind == "stream" else http_blocks).append(block)
    temp = prefix / "temp"
    lines = [
        f"load_module {module};" if module and stream_blocks else "",
        "user root;" if os.geteuid() == 0 else "",
        "daemon off;",
        "master_process on;",
        # One worker: the same server capacity for every client measured against it.
        "worker_processes 1;",
        "worker_rlimit_nofile 8192;",
        f"pid {prefix / 'nginx.pid'};",
        f"error_log {prefix / 'logs' / 'error.log'} warn;",
        "events { worker_connections 4096; }",
        "http {",
        "  access_log off;",
        *(f"  {k}_temp_path {temp / k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")),
        f"  ssl_certificate {pki.server.cert};",
        f"  ssl_certificate_key {pki.server.key};",
        "  ssl_protocols TLSv1.2 TLSv1.3;",
        "  ssl_session_cache shared:bench:4m;",
        f"  server {{ listen 127.0.0.1:{status_port}; location = /status {{ stub_status; }} }}",
        *http_blocks,
        "}",
    ]
    if stream_blocks:
        lines += [
            "stream {",
            "  ssl_protocols TLSv1.2 TLSv1.3;",
            f"  ssl_certificate {pki.server.cert};",
            f"  ssl_certificate_key {pki.server.key};",
            *stream_blocks,
            "}",
        ]
    return "\n".join(lines) + "\n"


def _wait_ready(env: LiveNginx, deadline: float) -> None:
    pending = [port for _, port in env.endpoints] + [env.status_port]
    while pending:
        assert env.process is not None
        if env.process.poll() is not None:
            raise RuntimeError(f"nginx exited with {env.process.returncode}:\n{env.error_log()}")
        still: list[int] = []
        for port in pending:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    pass
            except OSError:
                still.append(port)
        pending = still
        if pending and time.monotonic() > deadline:
            raise RuntimeError(f"{len(pending)} nginx ports never opened\n{env.error_log()}")
        if pending:
            time.sleep(0.1)


def start(prefix: Path, count: int) -> LiveNginx:
    """Write PKI and config under ``prefix``, start Nginx, wait until every port accepts."""
    binary = find_nginx()
    if binary is None:
        raise RuntimeError("nginx binary not found (apt-get install nginx-light libnginx-mod-stream)")
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / "logs").mkdir(exist_ok=True)
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / "temp" / sub).mkdir(parents=True, exist_ok=True)
    pki = load_pki_module().make_pki(prefix / "pki", bundle_extra=0)
    module = stream_module()
    postures = plan_postures(count, with_stream=module is not None)
    *ports, status_port = free_ports(count + 1)
    endpoints = list(zip(postures, ports, strict=True))
    conf = prefix / "nginx.conf"
    conf.write_text(_render(pki, prefix, endpoints, status_port, module), encoding="utf-8")
    env = LiveNginx(prefix=prefix, pki=pki, endpoints=endpoints, status_port=status_port)
    env.process = subprocess.Popen(
        [binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "logs" / "error.log")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # own process group: stop() kills exactly what we started
    )
    try:
        _wait_ready(env, time.monotonic() + 30)
    except BaseException:
        env.stop()
        raise
    return env
