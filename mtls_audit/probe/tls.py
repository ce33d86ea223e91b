"""One probe attempt: one fresh TCP connection, one TLS handshake, one request, one verdict.

Why it is built this way (docs/nginx-mtls.md sections 1 and 3):

* Nginx completes the TLS handshake without a client certificate and rejects afterwards, with
  HTTP 400 "No required SSL certificate was sent" / "The SSL certificate error" (http) or by
  closing the connection (stream). A handshake-only prober would call every ``on`` server open.
  So each attempt sends ``GET /`` (http) or listens (tcp) and judges what comes back.
* A resumed session keeps the identity of the session it came from, so every attempt uses a new
  ``Context`` (no session set, tickets off, session cache off) and a new socket.
* A server may answer slowly on purpose; one absolute deadline covers connect, handshake, write
  and read (non-blocking sockets and ``selectors``), and reads stop at ``READ_LIMIT`` bytes. A
  peer dripping one byte a second cannot stretch an attempt past its timeout.
* Expected outcomes (refused, timeout, alert, close) are returned as data; only bugs raise.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import functools
import ipaddress
import os
import re
import selectors
import socket
import ssl as _stdlib_ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509
from OpenSSL import SSL, crypto

from ..model import Target
from .identities import ClientIdentity
from .types import Attempt, AttemptKind, Outcome, Protocol, ServerCert

READ_LIMIT = 64 * 1024
"""Bytes read from a response at most: enough for status, headers and a title; an endless body stops here."""

TCP_QUIET_WINDOW = 1.0
"""Seconds to wait for data or a close on a stream endpoint: Nginx closes rejected streams at once."""

AUTO_QUIET_WINDOW = 2.0
"""Seconds ``auto`` waits for any answer to ``GET /`` before judging the silence as "not rejected"."""

REJECT_STATUSES = frozenset({400, 401, 403, 421, 495, 496})
"""Statuses that mean the request was refused before reaching the protected content.

400 is Nginx's answer to a missing (496) or failed (495) certificate; 403 is the usual
``if ($ssl_client_verify != SUCCESS)`` answer; 421 is Nginx refusing a Host different from the
SNI-selected verifying server; 401 is an application refusing. Anything else (2xx, 3xx, 404,
5xx) means the request got past client authentication to the application.
"""

NGINX_CERT_REASONS = ("No required SSL certificate was sent", "The SSL certificate error")

LEGACY_CIPHERS = b"DEFAULT:@SECLEVEL=0"
"""OpenSSL 3+ refuses TLS 1.0/1.1 at security level 1; level 0 lets us offer them to find out."""

_VERSION_CODES = {
    "SSLv3": SSL.SSL3_VERSION,
    "TLSv1": SSL.TLS1_VERSION,
    "TLSv1.1": SSL.TLS1_1_VERSION,
    "TLSv1.2": SSL.TLS1_2_VERSION,
    "TLSv1.3": SSL.TLS1_3_VERSION,
}

ALERTS = {
    0: "close_notify",
    10: "unexpected_message",
    20: "bad_record_mac",
    22: "record_overflow",
    40: "handshake_failure",
    42: "bad_certificate",
    43: "unsupported_certificate",
    44: "certificate_revoked",
    45: "certificate_expired",
    46: "certificate_unknown",
    47: "illegal_parameter",
    48: "unknown_ca",
    49: "access_denied",
    50: "decode_error",
    51: "decrypt_error",
    70: "protocol_version",
    71: "insufficient_security",
    80: "internal_error",
    86: "inappropriate_fallback",
    90: "user_canceled",
    109: "missing_extension",
    110: "unsupported_extension",
    112: "unrecognized_name",
    113: "bad_certificate_status_response",
    115: "unknown_psk_identity",
    116: "certificate_required",
    120: "no_application_protocol",
}

_SSL_CB_READ = 0x04
_SSL_CB_ALERT = 0x4000
_TITLE_RE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_STATUS_RE = re.compile(rb"^HTTP/\d(?:\.\d)? (\d{3})")


class _Timeout(Exception):
    """The attempt's deadline passed (internal control flow, never escapes this module)."""


@dataclass
class _Observer:
    """Filled by the info callback while OpenSSL runs the handshake."""

    server_hello: bool = False
    cert_requested: bool = False
    alerts: list[str] = field(default_factory=list)

    def callback(self, conn: SSL.Connection, where: int, ret: int) -> None:
        if where & _SSL_CB_ALERT:
            if where & _SSL_CB_READ:
                self.alerts.append(ALERTS.get(ret & 0xFF, f"alert_{ret & 0xFF}"))
            return
        state = conn.get_state_string()
        if b"read server hello" in state:
            self.server_hello = True
        # Same state string in TLS 1.2 and 1.3 (verified against nginx 1.22.1 / OpenSSL 4).
        if b"read server certificate request" in state:
            self.cert_requested = True

    @property
    def fatal_alert(self) -> str | None:
        """The last alert received other than close_notify."""
        for alert in reversed(self.alerts):
            if alert != "close_notify":
                return alert
        return None


@dataclass(frozen=True)
class AttemptResult:
    """An ``Attempt`` plus what only the runner needs: the server chain and reachability."""

    attempt: Attempt
    peer_chain: tuple[x509.Certificate, ...] = ()
    endpoint_error: str | None = None
    """Set when the endpoint could not be probed at all (refused, timeout, not TLS)."""


class _Deadline:
    def __init__(self, timeout: float, hard: float | None = None) -> None:
        end = time.monotonic() + timeout
        self.end = min(end, hard) if hard is not None else end

    def remaining(self) -> float:
        return self.end - time.monotonic()


def _wait(sock: socket.socket, write: bool, deadline: _Deadline, limit: float | None = None) -> None:
    """Block until ``sock`` is ready or the deadline (or ``limit``, absolute) passes."""
    end = deadline.end if limit is None else min(deadline.end, limit)
    remaining = end - time.monotonic()
    if remaining <= 0:
        raise _Timeout
    with selectors.DefaultSelector() as sel:
        sel.register(sock, selectors.EVENT_WRITE if write else selectors.EVENT_READ)
        if not sel.select(remaining):
            raise _Timeout


def _connect(host: str, port: int, deadline: _Deadline) -> socket.socket:
    """Connect to the first address that answers, within the deadline; raises OSError/_Timeout."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    last: OSError | None = None
    for family, kind, proto, _, addr in infos:
        remaining = deadline.remaining()
        if remaining <= 0:
            raise _Timeout
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(remaining)
            sock.connect(addr)
            sock.setblocking(False)
            return sock
        except TimeoutError:
            sock.close()
            raise _Timeout from None
        except OSError as e:
            sock.close()
            last = e
    raise last or OSError(errno.EHOSTUNREACH, "no address")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def server_name(target: Target) -> str | None:
    """SNI to send: the explicit one, else the host when it is a name (never an IP, per RFC 6066)."""
    if target.sni:
        return target.sni
    return None if _is_ip(target.host) else target.host


def _context(
    identity: ClientIdentity | None,
    observer: _Observer,
    versions: tuple[int, int] | None,
    ciphers: bytes | None,
) -> SSL.Context:
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    # Fresh context per attempt, no tickets, no cache: nothing can be resumed (nginx-mtls.md 3.5).
    ctx.set_options(SSL.OP_NO_TICKET | SSL.OP_IGNORE_UNEXPECTED_EOF)
    ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    ctx.set_verify(SSL.VERIFY_NONE)  # the server chain is judged separately (analyze_server_chain)
    if versions is not None:
        ctx.set_min_proto_version(versions[0])
        ctx.set_max_proto_version(versions[1])
    if ciphers is not None:
        ctx.set_cipher_list(ciphers)
    if identity is not None:
        ctx.use_certificate(identity.certificate)
        # The cryptography key object goes straight in: pyOpenSSL 26 deprecates PKey wrappers
        # (PKey.from_cryptography_key), and either way the key never touches disk.
        ctx.use_privatekey(identity.private_key)
        for extra in identity.chain:
            ctx.add_extra_chain_cert(extra)
    ctx.set_info_callback(observer.callback)
    return ctx


def _ssl_reason(e: SSL.Error) -> str:
    """OpenSSL's reason strings from an error, e.g. ``wrong version number``."""
    if isinstance(e, SSL.SysCallError) and len(e.args) == 2:  # (errno, name), or (-1, "Unexpected EOF")
        return "connection reset by the server" if e.args[0] == errno.ECONNRESET else f"connection closed ({e.args[1]})"
    parts: list[str] = []
    for item in e.args[0] if e.args and isinstance(e.args[0], list) else []:
        if isinstance(item, tuple) and len(item) == 3 and item[2]:
            parts.append(str(item[2]))
    return "; ".join(parts) or type(e).__name__


def _alert_from_error(e: SSL.Error) -> str | None:
    """``tlsv13 alert certificate required`` -> ``certificate_required``."""
    match = re.search(r"alert ([a-z ]+)", _ssl_reason(e))
    return match.group(1).strip().replace(" ", "_") if match else None


class _Closed(Exception):
    """The peer closed (EOF, close_notify or reset)."""


class _AlertReceived(Exception):
    def __init__(self, alert: str) -> None:
        super().__init__(alert)
        self.alert = alert


def _io_error(e: SSL.Error, observer: _Observer) -> Exception:
    """Turn a pyOpenSSL error after the handshake into _Closed or _AlertReceived."""
    if isinstance(e, SSL.ZeroReturnError):
        return _Closed()
    if isinstance(e, SSL.SysCallError):
        return _Closed()  # reset, broken pipe, unexpected EOF
    alert = observer.fatal_alert or _alert_from_error(e)
    if alert:
        return _AlertReceived(alert)
    return _Closed()


def _send_all(conn: SSL.Connection, sock: socket.socket, data: bytes, deadline: _Deadline, observer: _Observer) -> None:
    view = memoryview(data)
    while view:
        try:
            sent = conn.send(view)
            view = view[sent:]
        except SSL.WantReadError:
            _wait(sock, False, deadline)
        except SSL.WantWriteError:
            _wait(sock, True, deadline)
        except SSL.Error as e:
            raise _io_error(e, observer) from None


def _recv_some(
    conn: SSL.Connection,
    sock: socket.socket,
    deadline: _Deadline,
    observer: _Observer,
    limit: float | None = None,
) -> bytes:
    """Next bytes from the peer; raises _Closed, _AlertReceived or _Timeout."""
    while True:
        try:
            data = conn.recv(16 * 1024)
        except SSL.WantReadError:
            _wait(sock, False, deadline, limit)
            continue
        except SSL.WantWriteError:
            _wait(sock, True, deadline, limit)
            continue
        except SSL.Error as e:
            raise _io_error(e, observer) from None
        if not data:
            raise _Closed()
        return data


@dataclass
class _HttpResponse:
    status: int | None = None
    title: str | None = None


def _clean(text: bytes, limit: int = 200) -> str:
    decoded = text.decode("utf-8", errors="replace")
    return " ".join(decoded.split())[:limit]


def parse_http(data: bytes) -> _HttpResponse:
    """Status and title (or first body line) of a possibly partial HTTP/1.x response."""
    match = _STATUS_RE.match(data)
    if not match:
        return _HttpResponse()
    status = int(match.group(1))
    _, sep, body = data.partition(b"\r\n\r\n")
    title: str | None = None
    if sep:
        found = _TITLE_RE.search(body)
        if found:
            title = _clean(found.group(1)) or None
        else:
            for line in body.splitlines():
                if line.strip():
                    title = _clean(line)
                    break
    return _HttpResponse(status, title)


def _http_complete(data: bytes) -> bool:
    """Whether a response is complete without waiting for the close (Content-Length or chunked end)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    headers = head.lower()
    length = re.search(rb"\r\ncontent-length:\s*(\d+)", headers)
    if length:
        return len(body) >= int(length.group(1))
    if re.search(rb"\r\ntransfer-encoding:\s*chunked", headers):
        return body.endswith(b"0\r\n\r\n")
    return False


def _classify_http(resp: _HttpResponse) -> tuple[Outcome, str]:
    assert resp.status is not None
    status = resp.status
    reason = resp.title or ""
    if reason.startswith(f"{status} "):
        reason = reason[len(f"{status} ") :]
    if status in REJECT_STATUSES:
        return "rejected", f"http {status} {reason}".strip()
    return "accepted", f"http {status}"


def _host_header(target: Target) -> str:
    host = target.sni or target.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return host if target.port == 443 else f"{host}:{target.port}"


def _names(conn: SSL.Connection) -> tuple[str, ...]:
    try:
        return tuple(n.rfc4514_string() for n in conn.get_client_ca_list(as_cryptography=True))
    except Exception:  # pragma: no cover - defensive: names we cannot render are still "some"
        return ()


def _peer_chain(conn: SSL.Connection) -> tuple[x509.Certificate, ...]:
    chain = conn.get_peer_cert_chain(as_cryptography=True)
    return tuple(chain or ())


def run_attempt(
    target: Target,
    kind: AttemptKind,
    identity: ClientIdentity | None,
    *,
    protocol: Protocol = "auto",
    timeout: float = 5.0,
    hard_deadline: float | None = None,
    user_agent: str = "mtls-audit",
    path: str = "/",
) -> AttemptResult:
    """Connect, handshake presenting ``identity`` (or nothing), ask, and judge the answer.

    ``hard_deadline`` (``time.monotonic()`` based) caps the attempt at the scan's end.
    """
    deadline = _Deadline(timeout, hard_deadline)
    return _AttemptRun(target, kind, identity, protocol, deadline, user_agent, path).run()


class _AttemptRun:
    """State of one attempt; ``run`` always closes the socket before returning."""

    def __init__(
        self,
        target: Target,
        kind: AttemptKind,
        identity: ClientIdentity | None,
        protocol: Protocol,
        deadline: _Deadline,
        user_agent: str,
        path: str,
    ) -> None:
        self.target = target
        self.kind = kind
        self.identity = identity
        self.protocol = protocol
        self.deadline = deadline
        self.user_agent = user_agent
        self.path = path
        self.started = time.monotonic()
        self.observer = _Observer()
        self.conn: SSL.Connection | None = None
        self.sock: socket.socket | None = None
        self.chain: tuple[x509.Certificate, ...] = ()
        self.rtt = 0.0
        self.early = b""

    def done(
        self,
        outcome: Outcome,
        how: str,
        *,
        error: str | None = None,
        endpoint_error: str | None = None,
        status: int | None = None,
        title: str | None = None,
        alert: str | None = None,
    ) -> AttemptResult:
        version = cipher = None
        names: tuple[str, ...] = ()
        conn = self.conn
        if conn is not None:
            names = _names(conn) if self.observer.cert_requested else ()
            if conn.get_cipher_name() is not None:
                version = conn.get_protocol_version_name()
                cipher = conn.get_cipher_name()
        attempt = Attempt(
            kind=self.kind,
            outcome=outcome,
            how=how,
            http_status=status,
            title=title,
            alert=alert,
            tls_version=version,
            cipher=cipher,
            cert_requested=self.observer.cert_requested if self.observer.server_hello else None,
            ca_names=names,
            error=error if error is not None else (how if outcome == "error" else None),
            elapsed_ms=int((time.monotonic() - self.started) * 1000),
            presented=self.identity.subject if self.identity else None,
        )
        return AttemptResult(attempt, self.chain, endpoint_error)

    def unreachable(self, msg: str) -> AttemptResult:
        return self.done("error", msg, endpoint_error=msg)

    def run(self) -> AttemptResult:
        try:
            before = time.monotonic()
            self.sock = _connect(self.target.host, self.target.port, self.deadline)
            self.rtt = time.monotonic() - before
        except _Timeout:
            return self.unreachable("timed out connecting")
        except socket.gaierror as e:
            return self.unreachable(f"cannot resolve {self.target.host}: {e.strerror or e}")
        except ConnectionRefusedError:
            return self.unreachable("connection refused")
        except OSError as e:
            return self.unreachable(f"cannot connect: {e.strerror or e}")
        try:
            return self._run_tls(self.sock)
        finally:
            if self.conn is not None:
                with contextlib.suppress(SSL.Error):
                    self.conn.shutdown()  # non-blocking: sends close_notify if it can, never waits
            self.sock.close()

    def _run_tls(self, sock: socket.socket) -> AttemptResult:
        observer = self.observer
        try:
            ctx = _context(self.identity, observer, None, None)
        except SSL.Error as e:  # a key/cert pair OpenSSL refuses: our problem, not the server's
            return self.done("error", f"local TLS setup failed: {_ssl_reason(e)}")
        conn = self.conn = SSL.Connection(ctx, sock)
        conn.set_connect_state()
        sni = server_name(self.target)
        if sni:
            conn.set_tlsext_host_name(sni.encode("idna"))
        try:
            _handshake(conn, sock, self.deadline)
        except _Timeout:
            if observer.server_hello:
                return self.done("error", "timed out during the TLS handshake")
            return self.unreachable("timed out waiting for a TLS handshake (no TLS answer)")
        except SSL.Error as e:
            alert = observer.fatal_alert or _alert_from_error(e)
            if observer.cert_requested:
                with contextlib.suppress(SSL.Error):  # the server's Certificate came before
                    self.chain = _peer_chain(conn)
                # Refused inside the handshake after asking for a certificate (servers that
                # enforce at the TLS level, TLS 1.2); the alert names the reason.
                how = f"tls alert {alert}" if alert else "connection closed during the handshake"
                return self.done("rejected", how, alert=alert)
            if alert:
                msg = f"TLS handshake failed: alert {alert}"
            elif observer.server_hello:
                msg = f"TLS handshake failed: {_ssl_reason(e)}"
            elif isinstance(e, SSL.SysCallError):
                msg = "connection closed before a TLS handshake (not TLS?)"
            else:
                msg = f"not TLS: {_ssl_reason(e)}"
            return self.done("error", msg, endpoint_error=msg, alert=alert)
        self.chain = _peer_chain(conn)
        if self.protocol == "tcp":
            return self._judge_tcp(conn, sock)
        if observer.cert_requested and conn.get_protocol_version_name() == "TLSv1.3":
            rejected = self._listen_first(conn, sock)
            if rejected is not None:
                return rejected
        return self._judge_http(conn, sock)

    def _listen_first(self, conn: SSL.Connection, sock: socket.socket) -> AttemptResult | None:
        """TLS 1.3: give a rejecting server a moment to deliver its alert before we write.

        In TLS 1.3 the client finishes the handshake before the server has judged its
        certificate; a server that refuses sends ``certificate_required``/``unknown_ca`` and
        closes. If our request crosses that close, the kernel answers it with a reset that can
        discard the alert, and only "closed" would be left as evidence. About two round trips
        (measured on connect, 20 ms at least, 500 ms at most) is enough for the alert to land.
        """
        window = time.monotonic() + min(max(2 * self.rtt, 0.02), 0.5, max(self.deadline.remaining(), 0))
        try:
            self.early = _recv_some(conn, sock, self.deadline, self.observer, window)
        except _Timeout:
            return None
        except _AlertReceived as a:
            return self.done("rejected", f"tls alert {a.alert}", alert=a.alert)
        except _Closed:
            return self.done("rejected", "connection closed after handshake without a response")
        return None

    def _judge_tcp(self, conn: SSL.Connection, sock: socket.socket) -> AttemptResult:
        """Stream: say nothing and listen. A close means rejected; data or silence means served."""
        window = time.monotonic() + min(self.deadline.remaining(), TCP_QUIET_WINDOW)
        try:
            data = _recv_some(conn, sock, self.deadline, self.observer, window)
        except _Closed:
            return self.done("rejected", "stream closed after handshake")
        except _AlertReceived as a:
            return self.done("rejected", f"tls alert {a.alert}", alert=a.alert)
        except _Timeout:
            return self.done("accepted", "stream open after handshake (no data, not closed)")
        first = _clean(data.split(b"\n")[0]) or None
        return self.done("accepted", f"stream data after handshake ({len(data)} bytes)", title=first)

    def _judge_http(self, conn: SSL.Connection, sock: socket.socket) -> AttemptResult:
        """HTTP: send ``GET /`` and read the answer (TLS 1.3 alerts also arrive here)."""
        request = (
            f"GET {self.path} HTTP/1.1\r\nHost: {_host_header(self.target)}\r\nConnection: close\r\n"
            f"User-Agent: {self.user_agent}\r\nAccept: */*\r\n\r\n"
        ).encode("ascii", errors="replace")
        buf = bytearray(self.early)
        try:
            if not buf:  # a server that spoke first (a stream greeting) is judged on that
                _send_all(conn, sock, request, self.deadline, self.observer)
        except _Timeout:
            return self.done("error", "timed out sending the request")
        except (_Closed, _AlertReceived):
            pass  # the server hung up or alerted first; reading below tells which
        quiet: float | None = None
        if self.protocol != "http":
            quiet = time.monotonic() + min(self.deadline.remaining(), AUTO_QUIET_WINDOW)
        ending = "limit"
        alert: str | None = None
        try:
            while len(buf) < READ_LIMIT:
                if buf and not b"HTTP/".startswith(bytes(buf[:5])):
                    ending = "not http"  # a stream service answering: no need to wait for more
                    break
                if _http_complete(bytes(buf)):
                    ending = "complete"
                    break
                buf += _recv_some(conn, sock, self.deadline, self.observer, None if buf else quiet)
        except _Closed:
            ending = "closed"
        except _AlertReceived as a:
            ending, alert = "alert", a.alert
        except _Timeout:
            ending = "timeout"
        data = bytes(buf[:READ_LIMIT])
        if not data:
            if alert:
                return self.done("rejected", f"tls alert {alert}", alert=alert)
            if ending == "closed":
                return self.done("rejected", "connection closed after handshake without a response")
            if self.protocol == "http":
                return self.done("error", "no HTTP response before the timeout")
            return self.done("accepted", "connection open after handshake (no answer, not closed)")
        resp = parse_http(data)
        if resp.status is None:
            if data.startswith(b"HTTP/") or b"HTTP/".startswith(data[:5]):
                return self.done("error", "incomplete HTTP response")
            first = _clean(data.split(b"\n")[0]) or None
            return self.done("accepted", f"non-HTTP data after handshake ({len(data)} bytes)", title=first)
        outcome, how = _classify_http(resp)
        return self.done(outcome, how, status=resp.status, title=resp.title, alert=alert)


def _handshake(conn: SSL.Connection, sock: socket.socket, deadline: _Deadline) -> None:
    while True:
        try:
            conn.do_handshake()
            return
        except SSL.WantReadError:
            _wait(sock, False, deadline)
        except SSL.WantWriteError:
            _wait(sock, True, deadline)


# --- legacy protocol versions ------------------------------------------------------------


@functools.cache
def local_can_offer(version: str) -> bool:
    """Whether this OpenSSL can send a ClientHello pinned to ``version`` (SSLv3 is gone in 3.x).

    Runs a handshake on a memory BIO: no network, just "did OpenSSL produce a ClientHello".
    """
    code = _VERSION_CODES[version]
    try:
        ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
        ctx.set_min_proto_version(code)
        ctx.set_max_proto_version(code)
        ctx.set_cipher_list(LEGACY_CIPHERS)
        conn = SSL.Connection(ctx, None)
        conn.set_connect_state()
        with contextlib.suppress(SSL.WantReadError):
            conn.do_handshake()
        return len(conn.bio_read(65536)) > 0
    except (SSL.Error, ValueError):
        return False


def probe_version(target: Target, version: str, *, timeout: float, hard_deadline: float | None = None) -> str:
    """``accepted``, ``rejected``, ``not tested`` (we cannot offer it) or ``error`` for one version."""
    if not local_can_offer(version):
        return "not tested"
    code = _VERSION_CODES[version]
    deadline = _Deadline(timeout, hard_deadline)
    observer = _Observer()
    try:
        sock = _connect(target.host, target.port, deadline)
    except (OSError, _Timeout):
        return "error"
    try:
        conn = SSL.Connection(_context(None, observer, (code, code), LEGACY_CIPHERS), sock)
        conn.set_connect_state()
        sni = server_name(target)
        if sni:
            conn.set_tlsext_host_name(sni.encode("idna"))
        _handshake(conn, sock, deadline)
        return "accepted" if conn.get_protocol_version_name() == version else "rejected"
    except SSL.Error:
        return "rejected"
    except _Timeout:
        return "error"
    finally:
        sock.close()


# --- the server's own certificate -------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _trust_store(trust: str | None) -> crypto.X509Store:
    """Loaded once per run and shared: X509_STORE is thread-safe for lookups, and the system
    bundle has well over a hundred certificates to parse."""
    store = crypto.X509Store()
    if trust:
        if os.path.isdir(trust):
            store.load_locations(None, trust)
        else:
            store.load_locations(trust)
        return store
    paths = _stdlib_ssl.get_default_verify_paths()
    file_ = paths.cafile or paths.openssl_cafile
    dir_ = paths.capath or paths.openssl_capath
    cafile = file_ if file_ and os.path.isfile(file_) else None
    capath = dir_ if dir_ and os.path.isdir(dir_) else None
    if cafile or capath:
        store.load_locations(cafile, capath)
    return store


def check_trust_source(trust: str) -> None:
    """Raise OSError/crypto.Error when a ``--trust`` file or folder cannot be loaded."""
    _trust_store(trust)


def _matches_dns(pattern: str, name: str) -> bool:
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = name.partition(".")
        return bool(head) and rest == pattern[2:] and "." in rest
    return pattern == name


def name_matches(cert: x509.Certificate, name: str) -> bool:
    """RFC 6125 style: SAN DNS names (left-most wildcard) or IP addresses; CN only without a SAN."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        cns = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
        return any(_matches_dns(str(cn.value), name) for cn in cns)
    if _is_ip(name):
        ip = ipaddress.ip_address(name)
        return ip in san.get_values_for_type(x509.IPAddress)
    return any(_matches_dns(dns, name) for dns in san.get_values_for_type(x509.DNSName))


def analyze_server_chain(
    chain: Sequence[x509.Certificate],
    target: Target,
    trust: str | None,
    now: dt.datetime | None = None,
) -> ServerCert | None:
    """Expiry, name match and trust of the server's certificate (MTLS508)."""
    if not chain:
        return None
    leaf = chain[0]
    now = now or dt.datetime.now(dt.UTC)
    not_after = leaf.not_valid_after_utc
    checked = target.sni or target.host
    trusted: bool | None
    verify_error: str | None = None
    try:
        store = _trust_store(trust)
        ctx = crypto.X509StoreContext(
            store,
            crypto.X509.from_cryptography(leaf),
            [crypto.X509.from_cryptography(c) for c in chain[1:]],
        )
        ctx.verify_certificate()
        trusted = True
    except crypto.X509StoreContextError as e:
        trusted, verify_error = False, str(e)
    except (crypto.Error, OSError) as e:
        trusted, verify_error = None, f"trust store unusable: {e}"
    matches: bool | None
    try:
        matches = name_matches(leaf, checked)
    except ValueError:  # an extension a strict parser rejects (OpenSSL serves it): never a pass
        matches, trusted = None, False
        verify_error = "the certificate's extensions cannot be parsed"
    return ServerCert(
        subject=leaf.subject.rfc4514_string(),
        issuer=leaf.issuer.rfc4514_string(),
        not_after=not_after.isoformat().replace("+00:00", "Z"),
        days_left=int((not_after - now).total_seconds() // 86400),
        name_matches=matches,
        trusted=trusted,
        verify_error=verify_error,
        checked_name=checked,
        chain_length=len(chain),
    )
