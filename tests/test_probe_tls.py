"""Fast unit tests of one attempt's classification, against in-process servers on 127.0.0.1.

These complement, and do not replace, the real-Nginx tests in test_live_nginx.py: here a Python
server plays behaviours Nginx never shows (TLS-level rejection with alerts, one byte a second,
an endless body, silence) so every branch of ``tls.py`` and the runner's time bounds are covered
in a couple of seconds.
"""

from __future__ import annotations

import datetime as dt
import io
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pki import Pki, issue, make_pki

from mtls_audit.errors import InputFileError, UsageError
from mtls_audit.model import Target
from mtls_audit.probe import tls
from mtls_audit.probe.identities import Identities, load_identity, make_untrusted
from mtls_audit.probe.runner import ProbeConfig, probe_all
from mtls_audit.probe.tls import analyze_server_chain, parse_http, probe_version, run_attempt
from mtls_audit.probe.types import ProbeSpec

LOOPBACK = "127.0.0.1"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), bundle_extra=0)


@dataclass
class Conn:
    """What the server saw on one connection."""

    sni: str | None = None
    reused: bool | None = None
    version: str | None = None
    peer: bool = False
    request: bytes = b""
    handshake_error: str | None = None


Behaviour = Callable[[socket.socket, Conn, threading.Event], None]


@dataclass
class Server:
    """A threaded server on 127.0.0.1: TLS (stdlib ssl) or plain, one behaviour per connection."""

    behaviour: Behaviour
    context: ssl.SSLContext | None
    listener: socket.socket = field(init=False)
    conns: list[Conn] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    host: str = LOOPBACK

    def __post_init__(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self.listener = socket.create_server((self.host, 0), family=family)
        self.listener.settimeout(0.1)
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def target(self) -> Target:
        return Target(self.host, self.listener.getsockname()[1])

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                raw, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        rec = Conn()
        self.conns.append(rec)
        raw.settimeout(5)
        sock: socket.socket = raw
        try:
            if self.context is not None:
                ctx = self.context

                def on_sni(obj: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
                    rec.sni = name

                ctx.sni_callback = on_sni  # type: ignore[assignment]
                tsock = ctx.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
                sock = tsock
                try:
                    tsock.do_handshake()
                except (ssl.SSLError, OSError) as e:
                    rec.handshake_error = str(e)
                    return
                rec.reused = tsock.session_reused
                rec.version = tsock.version()
                rec.peer = tsock.getpeercert(binary_form=True) is not None
            self.behaviour(sock, rec, self.stop)
        except OSError:
            pass
        finally:
            sock.close()

    def close(self) -> None:
        self.stop.set()
        self.listener.close()


def tls_context(
    pki: Pki,
    verify: ssl.VerifyMode = ssl.CERT_NONE,
    version: ssl.TLSVersion | None = None,
    cert: Any = None,
) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    issued = cert or pki.server
    ctx.load_cert_chain(issued.cert, issued.key)
    if verify != ssl.CERT_NONE:
        ctx.load_verify_locations(pki.root.cert)
        ctx.verify_mode = verify
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


@pytest.fixture
def serve(pki: Pki) -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(
        behaviour: Behaviour,
        *,
        tls_on: bool = True,
        verify: ssl.VerifyMode = ssl.CERT_NONE,
        version: ssl.TLSVersion | None = None,
        cert: Any = None,
        host: str = LOOPBACK,
    ) -> Server:
        ctx = tls_context(pki, verify, version, cert) if tls_on else None
        server = Server(behaviour, ctx, host=host)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def read_request(sock: socket.socket, rec: Conn) -> None:
    while b"\r\n\r\n" not in rec.request:
        chunk = sock.recv(4096)
        if not chunk:
            return
        rec.request += chunk


def http(status: int, body: str = "", *, reason: str = "X") -> Behaviour:
    def run(sock: socket.socket, rec: Conn, stop: threading.Event) -> None:
        read_request(sock, rec)
        data = body.encode()
        head = f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n"
        sock.sendall(head.encode() + data)

    return run


def hold(sock: socket.socket, rec: Conn, stop: threading.Event) -> None:
    stop.wait(10)


def close_at_once(sock: socket.socket, rec: Conn, stop: threading.Event) -> None:
    return None


def greet(sock: socket.socket, rec: Conn, stop: threading.Event) -> None:
    sock.sendall(b"220 stream service ready\r\n")
    stop.wait(10)


def drip(sock: socket.socket, rec: Conn, stop: threading.Event) -> None:
    read_request(sock, rec)
    for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" * 10:
        if stop.wait(0.3):
            return
        sock.sendall(bytes([byte]))


def endless(sock: socket.socket, rec: Conn, stop: threading.Event) -> None:
    read_request(sock, rec)
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<title>big</title>")
    chunk = b"x" * 16384
    for _ in range(2000):  # bounded: at most ~32 MiB even if the client kept reading
        if stop.is_set():
            return
        sock.sendall(chunk)


NGINX_400 = (
    "<html>\r\n<head><title>400 No required SSL certificate was sent</title></head>\r\n<body>\r\n"
    "<center><h1>400 Bad Request</h1></center>\r\n</body>\r\n</html>\r\n"
)


# --- HTTP classification ------------------------------------------------------------------


def test_served_request_is_accepted_with_status_and_title(serve: Callable[..., Server]) -> None:
    server = serve(http(200, "<html><title> app  home </title></html>"))
    result = run_attempt(server.target, "no_cert", None, protocol="http", timeout=3)
    a = result.attempt
    assert (a.outcome, a.how, a.http_status, a.title) == ("accepted", "http 200", 200, "app home")
    assert a.cert_requested is False and a.tls_version == "TLSv1.3" and a.cipher
    assert result.endpoint_error is None and result.peer_chain


def test_nginx_no_cert_page_is_a_rejection_even_though_the_handshake_succeeded(
    serve: Callable[..., Server],
) -> None:
    server = serve(http(400, NGINX_400, reason="Bad Request"))
    a = run_attempt(server.target, "no_cert", None, protocol="http", timeout=3).attempt
    assert a.outcome == "rejected"
    assert a.how == "http 400 No required SSL certificate was sent"
    assert a.tls_version is not None  # the handshake completed: only the HTTP answer tells


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (401, "rejected"),
        (403, "rejected"),
        (421, "rejected"),
        (200, "accepted"),
        (302, "accepted"),
        (404, "accepted"),
        (500, "accepted"),
        (502, "accepted"),
    ],
)
def test_status_codes_map_to_outcomes(serve: Callable[..., Server], status: int, outcome: str) -> None:
    server = serve(http(status, "<title>t</title>"))
    assert run_attempt(server.target, "no_cert", None, protocol="auto", timeout=3).attempt.outcome == outcome


def test_request_carries_sni_host_and_user_agent(serve: Callable[..., Server]) -> None:
    server = serve(http(200))
    target = Target(LOOPBACK, server.target.port, "api.test")
    run_attempt(target, "no_cert", None, protocol="http", timeout=3, user_agent="mtls-audit/9.9")
    rec = server.conns[0]
    assert rec.sni == "api.test"
    assert f"Host: api.test:{target.port}\r\n".encode() in rec.request
    assert b"User-Agent: mtls-audit/9.9\r\n" in rec.request
    assert b"Connection: close\r\n" in rec.request


def test_ipv6_loopback_target(serve: Callable[..., Server]) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        server = serve(http(200), host="::1")
    except OSError:
        pytest.skip("::1 is not configured")
    assert str(server.target).startswith("[::1]:")
    a = run_attempt(server.target, "no_cert", None, protocol="http", timeout=3).attempt
    assert a.outcome == "accepted"
    assert f"Host: [::1]:{server.target.port}\r\n".encode() in server.conns[0].request


def test_tls12_handshake_rejection_still_records_the_server_chain(serve: Callable[..., Server]) -> None:
    server = serve(http(200), verify=ssl.CERT_REQUIRED, version=ssl.TLSVersion.TLSv1_2)
    result = run_attempt(server.target, "no_cert", None, protocol="http", timeout=3)
    assert result.attempt.outcome == "rejected" and result.peer_chain


def test_no_sni_for_ip_targets(serve: Callable[..., Server]) -> None:
    server = serve(http(200))
    run_attempt(server.target, "no_cert", None, protocol="http", timeout=3)
    assert server.conns[0].sni is None


# --- TLS-level rejections (what Nginx does not do, other servers do) -------------------------


def test_tls13_certificate_required_alert_arrives_after_the_handshake(serve: Callable[..., Server]) -> None:
    server = serve(http(200), verify=ssl.CERT_REQUIRED, version=ssl.TLSVersion.TLSv1_3)
    a = run_attempt(server.target, "no_cert", None, protocol="http", timeout=3).attempt
    assert a.outcome == "rejected"
    assert a.alert == "certificate_required" and a.how == "tls alert certificate_required"
    assert a.cert_requested is True and a.tls_version == "TLSv1.3"


def test_tls12_rejection_inside_the_handshake_is_a_rejection_not_an_error(
    serve: Callable[..., Server],
) -> None:
    server = serve(http(200), verify=ssl.CERT_REQUIRED, version=ssl.TLSVersion.TLSv1_2)
    result = run_attempt(server.target, "no_cert", None, protocol="http", timeout=3)
    assert result.attempt.outcome == "rejected"
    assert result.attempt.how.startswith("tls alert ")
    assert result.attempt.cert_requested is True
    assert result.endpoint_error is None  # the endpoint speaks TLS; it refused us


def test_untrusted_certificate_gets_unknown_ca_from_a_verifying_server(serve: Callable[..., Server]) -> None:
    server = serve(http(200), verify=ssl.CERT_REQUIRED, version=ssl.TLSVersion.TLSv1_3)
    a = run_attempt(server.target, "untrusted", make_untrusted(), protocol="http", timeout=3).attempt
    assert a.outcome == "rejected" and a.alert == "unknown_ca"
    assert a.presented and "mtls-audit-untrusted-" in a.presented


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_certificate_request_is_detected_in_tls12_and_tls13(
    serve: Callable[..., Server], version: ssl.TLSVersion
) -> None:
    asking = serve(http(200), verify=ssl.CERT_OPTIONAL, version=version)
    silent = serve(http(200), version=version)
    assert run_attempt(asking.target, "no_cert", None, timeout=3).attempt.cert_requested is True
    assert run_attempt(silent.target, "no_cert", None, timeout=3).attempt.cert_requested is False


def test_valid_certificate_is_presented_and_sessions_are_never_resumed(serve: Callable[..., Server], pki: Pki) -> None:
    server = serve(http(200, "<title>ok</title>"), verify=ssl.CERT_REQUIRED)
    valid = load_identity("valid", pki.client.cert, pki.client.key)
    for _ in range(3):
        assert run_attempt(server.target, "valid", valid, protocol="http", timeout=3).attempt.outcome == "accepted"
    assert [c.peer for c in server.conns] == [True, True, True]
    assert [c.reused for c in server.conns] == [False, False, False]


# --- time and size bounds -------------------------------------------------------------------


def test_a_peer_dripping_one_byte_at_a_time_cannot_exceed_the_timeout(serve: Callable[..., Server]) -> None:
    server = serve(drip)
    started = time.monotonic()
    a = run_attempt(server.target, "no_cert", None, protocol="http", timeout=1.0).attempt
    assert time.monotonic() - started < 1.6
    assert a.outcome == "error" and a.error == "incomplete HTTP response"


def test_an_endless_body_stops_at_the_read_limit(serve: Callable[..., Server]) -> None:
    server = serve(endless)
    started = time.monotonic()
    a = run_attempt(server.target, "no_cert", None, protocol="http", timeout=5).attempt
    assert time.monotonic() - started < 2.0
    assert (a.outcome, a.http_status, a.title) == ("accepted", 200, "big")


def test_silent_listener_is_an_endpoint_error_within_the_timeout(serve: Callable[..., Server]) -> None:
    server = serve(hold, tls_on=False)
    started = time.monotonic()
    result = run_attempt(server.target, "no_cert", None, timeout=1.0)
    assert time.monotonic() - started < 1.5
    assert result.endpoint_error == "timed out waiting for a TLS handshake (no TLS answer)"
    assert result.attempt.outcome == "error"


def answer_plain_http(sock: socket.socket, rec: Conn, stop: threading.Event) -> None:
    rec.request = sock.recv(4096)  # a ClientHello, which a plain HTTP server cannot parse
    sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


def test_plain_http_port_is_not_tls(serve: Callable[..., Server]) -> None:
    server = serve(answer_plain_http, tls_on=False)
    result = run_attempt(server.target, "no_cert", None, timeout=2)
    assert result.endpoint_error is not None
    assert result.endpoint_error.startswith(("not TLS", "connection closed before a TLS handshake"))


def test_closed_port_is_refused() -> None:
    with socket.create_server((LOOPBACK, 0)) as s:
        port = s.getsockname()[1]
    result = run_attempt(Target(LOOPBACK, port), "no_cert", None, timeout=2)
    assert result.endpoint_error == "connection refused"


# --- stream (tcp) and auto --------------------------------------------------------------------


def test_stream_closed_after_handshake_is_rejected(serve: Callable[..., Server]) -> None:
    server = serve(close_at_once)
    a = run_attempt(server.target, "no_cert", None, protocol="tcp", timeout=3).attempt
    assert (a.outcome, a.how) == ("rejected", "stream closed after handshake")


def test_stream_data_is_accepted_and_nothing_is_sent(serve: Callable[..., Server]) -> None:
    server = serve(greet)
    a = run_attempt(server.target, "no_cert", None, protocol="tcp", timeout=3).attempt
    assert a.outcome == "accepted" and a.title == "220 stream service ready"
    assert server.conns[0].request == b""


def test_stream_left_open_and_silent_is_accepted_after_the_quiet_window(serve: Callable[..., Server]) -> None:
    server = serve(hold)
    started = time.monotonic()
    a = run_attempt(server.target, "no_cert", None, protocol="tcp", timeout=5).attempt
    elapsed = time.monotonic() - started
    assert a.outcome == "accepted" and "open" in a.how
    assert tls.TCP_QUIET_WINDOW - 0.1 < elapsed < tls.TCP_QUIET_WINDOW + 1


def test_auto_falls_back_to_stream_reading(serve: Callable[..., Server]) -> None:
    closing, greeting = serve(close_at_once), serve(greet)
    assert run_attempt(closing.target, "no_cert", None, protocol="auto", timeout=3).attempt.outcome == "rejected"
    a = run_attempt(greeting.target, "no_cert", None, protocol="auto", timeout=3).attempt
    assert a.outcome == "accepted" and a.how.startswith("non-HTTP data")


def test_silence_to_a_request_is_an_error_for_http_but_accepted_for_auto(serve: Callable[..., Server]) -> None:
    server = serve(hold)
    a = run_attempt(server.target, "no_cert", None, protocol="http", timeout=1.0).attempt
    assert a.outcome == "error" and a.error == "no HTTP response before the timeout"
    a = run_attempt(server.target, "no_cert", None, protocol="auto", timeout=1.0).attempt
    assert a.outcome == "accepted"


# --- pieces -----------------------------------------------------------------------------------


def test_parse_http_title_and_first_line() -> None:
    assert parse_http(b"HTTP/1.1 403 Forbidden\r\nA: b\r\n\r\n<html><TITLE>403 Forbidden</TITLE>").title == (
        "403 Forbidden"
    )
    assert parse_http(b"HTTP/1.0 200 OK\r\n\r\n\r\nhello world\nmore").title == "hello world"
    assert parse_http(b"HTTP/2 200\r\n\r\n").status == 200
    assert parse_http(b"SSH-2.0-OpenSSH\r\n").status is None


def test_legacy_version_refused_by_a_modern_server(serve: Callable[..., Server]) -> None:
    server = serve(http(200), version=ssl.TLSVersion.TLSv1_2)
    assert probe_version(server.target, "TLSv1", timeout=2) in ("rejected", "not tested")
    assert probe_version(server.target, "SSLv3", timeout=2) in ("rejected", "not tested")


def test_server_chain_trust_name_and_expiry(pki: Pki, tmp_path: Path) -> None:
    chain = [pki.server.certificate]
    good = analyze_server_chain(chain, Target(LOOPBACK, 1), str(pki.root.cert))
    assert good is not None and good.trusted and good.name_matches and good.days_left > 300
    by_name = analyze_server_chain(chain, Target(LOOPBACK, 1, "localhost"), str(pki.root.cert))
    assert by_name is not None and by_name.name_matches and by_name.checked_name == "localhost"
    wrong = analyze_server_chain(chain, Target(LOOPBACK, 1, "wrong.test"), str(pki.other.cert))
    assert wrong is not None and wrong.trusted is False and wrong.name_matches is False
    assert wrong.verify_error and "issuer" in wrong.verify_error
    now = dt.datetime.now(dt.UTC)
    old = issue(
        tmp_path,
        "old",
        pki.root,
        "localhost",
        server=True,
        not_before=now - dt.timedelta(days=90),
        not_after=now - dt.timedelta(days=2),
    )
    expired = analyze_server_chain([old.certificate], Target(LOOPBACK, 1), str(pki.root.cert))
    assert expired is not None and expired.days_left < 0 and expired.trusted is False
    assert expired.not_after.endswith("Z")


# --- runner -----------------------------------------------------------------------------------


def test_probe_all_keeps_order_and_stops_after_an_unreachable_first_attempt(
    serve: Callable[..., Server], pki: Pki
) -> None:
    ok = serve(http(200, "<title>app</title>"))
    with socket.create_server((LOOPBACK, 0)) as s:
        closed = Target(LOOPBACK, s.getsockname()[1])
    config = ProbeConfig(timeout=2, identities=Identities.minted(), trust=str(pki.root.cert))
    results = probe_all([ProbeSpec(closed), ProbeSpec(ok.target, protocol="http")], config, progress=False)
    assert [r.spec.target for r in results] == [closed, ok.target]
    assert results[0].error == "connection refused" and len(results[0].attempts) == 1
    good = results[1]
    assert good.error is None
    assert [a.kind for a in good.attempts] == ["no_cert", "untrusted"]
    assert good.server_cert is not None and good.server_cert.trusted is True
    assert good.tls_version == "TLSv1.3" and good.cert_requested is False


def test_scan_deadline_bounds_the_whole_scan(serve: Callable[..., Server]) -> None:
    silent = [serve(hold, tls_on=False) for _ in range(4)]
    config = ProbeConfig(timeout=5, concurrency=2, scan_timeout=1.0)
    started = time.monotonic()
    results = probe_all([ProbeSpec(s.target) for s in silent], config, progress=False)
    assert time.monotonic() - started < 2.5
    assert [r.error for r in results] == ["scan deadline exceeded"] * 4


def test_progress_counter_on_stderr(serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch) -> None:
    server = serve(http(200))
    fake = io.StringIO()
    monkeypatch.setattr("sys.stderr", fake)
    probe_all([ProbeSpec(server.target)] * 2, ProbeConfig(timeout=2, legacy=False), progress=True)
    assert "\rprobing endpoints: 2/2" in fake.getvalue()
    fake.truncate(0)
    probe_all([ProbeSpec(server.target)], ProbeConfig(timeout=2, legacy=False))  # not a TTY: quiet
    assert fake.getvalue() == ""


def test_probe_config_validates_options(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--timeout"):
        ProbeConfig(timeout=0)
    with pytest.raises(UsageError, match="--concurrency"):
        ProbeConfig(concurrency=0)
    with pytest.raises(InputFileError, match="does not exist"):
        ProbeConfig.from_paths(trust=tmp_path / "none.pem")
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    with pytest.raises(InputFileError, match="--trust"):
        ProbeConfig.from_paths(trust=junk)
    config = ProbeConfig.from_paths(client_cert=pki.client.cert, client_key=pki.client.key, timeout=3)
    assert config.attempt_kinds == ("no_cert", "untrusted", "valid")
    assert config.effective_scan_timeout() == 3 * 5 * 2 + 10
