"""In-process hostile servers on 127.0.0.1, for the fail-safe tests of the prober.

Each peer is a listening socket on 127.0.0.1 (never any other address) with an accept thread and
one handler thread per connection, all in this process. A peer plays one misbehaviour a
scanner meets in the wild: silence, a drip, garbage instead of a ServerHello, a reset in the
middle of the handshake, plain HTTP, a huge certificate chain, a handshake followed by silence,
an endless body, a certificate a strict parser rejects. ``nginx_like`` is the healthy control: it
asks for a client certificate and answers 400 "No required SSL certificate was sent" without one,
as Nginx does (docs/nginx-mtls.md 3.2).

Stopping is part of the contract: ``Peer.close()`` sets the stop event, shuts down every open
connection (which unblocks any handler stuck in ``recv``/``send``/a handshake) and joins every
thread, returning the names of threads that did not end. The ``hostile`` fixture fails the test
when any did. Handlers never raise: network errors end the connection.

Certificates and keys are made at test time with ``cryptography`` (EC P-256, milliseconds each)
and written to a pytest temp folder with mode 0600: the stdlib ``ssl`` server only loads files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import random
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID
from pki import Pki, make_pki

from mtls_audit.model import Target

LOOPBACK = "127.0.0.1"
JOIN_TIMEOUT = 5.0
"""Seconds ``close`` waits for each thread; every handler wakes up on the stop event or a shutdown."""

NGINX_NO_CERT_PAGE = (
    "<html>\r\n<head><title>400 No required SSL certificate was sent</title></head>\r\n<body>\r\n"
    "<center><h1>400 Bad Request</h1></center>\r\n<center>No required SSL certificate was sent</center>\r\n"
    "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
NGINX_PLAIN_400 = (
    "<html>\r\n<head><title>400 Bad Request</title></head>\r\n<body>\r\n"
    "<center><h1>400 Bad Request</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
APP_PAGE = "<html><head><title>app ok</title></head><body>hello</body></html>\n"


class _Conn:
    """One accepted connection; ``sock`` is replaced by the TLS socket once wrapped."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.bytes_sent = 0
        self.ended_at: float | None = None


Handler = Callable[["Peer", _Conn], None]


@dataclass
class Peer:
    """A listener on 127.0.0.1 whose connections all get ``handler``."""

    name: str
    handler: Handler
    listener: socket.socket = field(init=False)
    stop: threading.Event = field(default_factory=threading.Event)
    conns: list[_Conn] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.listener = socket.create_server((LOOPBACK, 0), backlog=64)
        self.listener.settimeout(0.1)
        self._spawn(self._accept, f"{self.name}-accept")

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    @property
    def target(self) -> Target:
        return Target(LOOPBACK, self.port)

    @property
    def bytes_sent(self) -> int:
        with self.lock:
            return sum(c.bytes_sent for c in self.conns)

    def _spawn(self, fn: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=fn, args=args, name=name, daemon=True)
        with self.lock:
            self.threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        n = 0
        while not self.stop.is_set():
            try:
                raw, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            raw.settimeout(10)  # a safety net only: close() shuts sockets down long before
            conn = _Conn(raw)
            with self.lock:
                self.conns.append(conn)
            n += 1
            self._spawn(self._serve, f"{self.name}-conn{n}", conn)

    def _serve(self, conn: _Conn) -> None:
        try:
            self.handler(self, conn)
        except (OSError, ssl.SSLError, ValueError):
            pass  # the client went away, or close() shut the socket down: both end the connection
        finally:
            conn.ended_at = time.monotonic()
            with contextlib.suppress(OSError):
                conn.sock.close()

    def close(self) -> list[str]:
        """Stop accepting, unblock and end every handler; the names of threads still alive."""
        self.stop.set()
        accept = self.threads[0]
        accept.join(JOIN_TIMEOUT)  # no new connection after this
        with contextlib.suppress(OSError):
            self.listener.close()
        alive: list[threading.Thread] = []
        for _ in range(3):  # a shutdown can miss a socket being wrapped in TLS that instant: retry
            with self.lock:
                conns, threads = list(self.conns), list(self.threads)
            for conn in conns:
                with contextlib.suppress(OSError):
                    # The plain socket method: on a TLS socket it shuts the TCP connection down
                    # without touching the SSL object another thread may be using.
                    socket.socket.shutdown(conn.sock, socket.SHUT_RDWR)
            for thread in threads:
                thread.join(JOIN_TIMEOUT / 3)
            alive = [t for t in threads if t.is_alive()]
            if not alive:
                break
        return [t.name for t in alive]

    # --- helpers for handlers ------------------------------------------------------------------

    def send(self, conn: _Conn, data: bytes) -> None:
        conn.sock.sendall(data)
        conn.bytes_sent += len(data)

    def wait_closed(self, conn: _Conn) -> None:
        """Read and discard until the client closes or the peer stops (never answers)."""
        conn.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                if not conn.sock.recv(4096):
                    return
            except TimeoutError:
                continue


def read_client_hello(conn: _Conn) -> bytes:
    """One whole TLS record from the client (its ClientHello), or what arrived before EOF."""
    data = b""
    while len(data) < 5 or len(data) < 5 + struct.unpack("!H", data[3:5])[0]:
        chunk = conn.sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def read_request(conn: _Conn) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = conn.sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def reset(conn: _Conn) -> None:
    """Close with SO_LINGER 0: the kernel sends RST instead of FIN."""
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.sock.close()


def tls_accept(peer: Peer, conn: _Conn, ctx: ssl.SSLContext) -> ssl.SSLSocket | None:
    """Server-side handshake on ``conn``; ``None`` when it failed (the client refused or left)."""
    tls = ctx.wrap_socket(conn.sock, server_side=True, do_handshake_on_connect=False)
    conn.sock = tls
    try:
        tls.do_handshake()
    except (ssl.SSLError, OSError):
        return None
    return tls


# --- behaviours before (or instead of) TLS ------------------------------------------------------


def silent(peer: Peer, conn: _Conn) -> None:
    """Accept TCP and never say a word."""
    peer.stop.wait()


DRIP = b"\x16\x03\x03\x40\x00\x02\x00\x3f\xfc\x03\x03"
"""A plausible record header and ServerHello start: OpenSSL keeps waiting for the rest."""


def drip_per_second(peer: Peer, conn: _Conn) -> None:
    """Read the ClientHello, then send one byte a second, forever."""
    read_client_hello(conn)
    for byte in itertools.chain(DRIP, itertools.repeat(0)):
        peer.send(conn, bytes([byte]))
        if peer.stop.wait(1.0):
            return


def garbage_random(peer: Peer, conn: _Conn) -> None:
    """Answer the ClientHello with 4 KiB of noise (fixed seed; first byte is no TLS record type)."""
    read_client_hello(conn)
    noise = bytearray(random.Random(20261203).randbytes(4096))
    noise[0] = 0xA7
    peer.send(conn, bytes(noise))
    peer.wait_closed(conn)


def garbage_http(peer: Peer, conn: _Conn) -> None:
    """Speak first, with an HTTP response, before the client has said anything."""
    peer.send(conn, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok")
    peer.wait_closed(conn)


def reset_after_client_hello(peer: Peer, conn: _Conn) -> None:
    """Read the ClientHello, then reset the connection."""
    read_client_hello(conn)
    reset(conn)


def plain_http(peer: Peer, conn: _Conn) -> None:
    """A plain HTTP server (what Nginx answers on a non-ssl listen): 400 to the ClientHello, close."""
    conn.sock.recv(65536)
    body = NGINX_PLAIN_400.encode()
    head = (
        "HTTP/1.1 400 Bad Request\r\nServer: nginx\r\nContent-Type: text/html\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    peer.send(conn, head.encode() + body)


def reset_after_server_hello(ctx: ssl.SSLContext) -> Handler:
    """Run the real server handshake in memory, send only the ServerHello record, then reset."""

    def run(peer: Peer, conn: _Conn) -> None:
        hello = read_client_hello(conn)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(incoming, outgoing, server_side=True)
        incoming.write(hello)
        with contextlib.suppress(ssl.SSLWantReadError):
            obj.do_handshake()
        flight = outgoing.read()
        first = flight[: 5 + struct.unpack("!H", flight[3:5])[0]]
        assert first[0] == 0x16 and first[5] == 0x02, "expected a ServerHello record"
        peer.send(conn, first)
        peer.stop.wait(0.2)  # let the client read the ServerHello before the reset arrives
        reset(conn)

    return run


# --- behaviours after a TLS handshake ---------------------------------------------------------


def tls_then(ctx: ssl.SSLContext, after: Callable[[Peer, _Conn, ssl.SSLSocket], None]) -> Handler:
    def run(peer: Peer, conn: _Conn) -> None:
        tls = tls_accept(peer, conn, ctx)
        if tls is not None:
            after(peer, conn, tls)

    return run


def mute(peer: Peer, conn: _Conn, tls: ssl.SSLSocket) -> None:
    """Complete the handshake, read the request, never answer."""
    peer.wait_closed(conn)


def endless_body(peer: Peer, conn: _Conn, tls: ssl.SSLSocket) -> None:
    """``HTTP/1.1 200 OK`` and then a body that never ends (until the client hangs up)."""
    read_request(conn)
    peer.send(conn, b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html><head><title>endless</title></head>")
    chunk = b"x" * 16384
    while not peer.stop.is_set():
        peer.send(conn, chunk)


def drip_response(peer: Peer, conn: _Conn, tls: ssl.SSLSocket) -> None:
    """A complete handshake, then the HTTP response one byte every 0.3 s."""
    read_request(conn)
    for byte in itertools.cycle(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"):
        peer.send(conn, bytes([byte]))
        if peer.stop.wait(0.3):
            return


def nginx_like(peer: Peer, conn: _Conn, tls: ssl.SSLSocket) -> None:
    """The healthy control: 400 without a client certificate (TLS verified it otherwise)."""
    read_request(conn)
    if tls.getpeercert(binary_form=True) is None:
        status, body = "400 Bad Request", NGINX_NO_CERT_PAGE
    else:
        status, body = "200 OK", APP_PAGE
    data = body.encode()
    head = f"HTTP/1.1 {status}\r\nServer: nginx\r\nContent-Type: text/html\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    peer.send(conn, head.encode() + data)


# --- certificates -------------------------------------------------------------------------------


def _self_signed(
    cn: str, extra: list[x509.ExtensionType] | None = None
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
    )
    for ext in extra or []:
        builder = builder.add_extension(ext, critical=False)
    return builder.sign(key, hashes.SHA256()), key


def _write_pair(
    directory: Path, stem: str, certs: list[x509.Certificate], key: ec.EllipticCurvePrivateKey
) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def huge_chain_context(directory: Path, count: int = 200, padding: int = 5000) -> tuple[ssl.SSLContext, int]:
    """A server context whose chain is ``count`` certificates of ~``padding`` bytes each (~1 MB).

    The padding is an unknown non-critical extension; the chain does not need to verify (the
    prober judges the server certificate separately), it only needs to be sent.
    """
    pad = x509.UnrecognizedExtension(
        x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x04\x82" + struct.pack("!H", padding) + b"p" * padding
    )
    certs: list[x509.Certificate] = []
    leaf_key: ec.EllipticCurvePrivateKey | None = None
    for i in range(count):
        cert, key = _self_signed(f"huge-chain-{i:03d}", [pad])
        certs.append(cert)
        if leaf_key is None:
            leaf_key = key
    assert leaf_key is not None
    cert_path, key_path = _write_pair(directory, "huge-chain", certs, leaf_key)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_path, key_path)
    return ctx, sum(len(c.public_bytes(serialization.Encoding.DER)) for c in certs)


def malformed_cert_context(directory: Path) -> ssl.SSLContext:
    """A server certificate OpenSSL serves but a strict parser rejects (garbage certificatePolicies)."""
    junk = x509.UnrecognizedExtension(ExtensionOID.CERTIFICATE_POLICIES, b"\x01\x02junk")
    cert, key = _self_signed("malformed-extension", [junk])
    cert_path, key_path = _write_pair(directory, "malformed", [cert], key)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_path, key_path)
    return ctx


def server_context(pki: Pki, *, ask_client_cert: bool = False) -> ssl.SSLContext:
    """The test PKI's ``localhost``/127.0.0.1 server certificate; optionally ask for a client cert."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.server.cert, pki.server.key)
    if ask_client_cert:
        ctx.load_verify_locations(pki.root.cert)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


# --- fixtures -----------------------------------------------------------------------------------


@dataclass
class Peers:
    """Starts peers and stops them all; ``close`` reports threads that did not end."""

    started: list[Peer] = field(default_factory=list)

    def start(self, name: str, handler: Handler) -> Peer:
        peer = Peer(name, handler)
        self.started.append(peer)
        return peer

    def close(self) -> list[str]:
        for peer in self.started:  # all at once, so the accept loops wind down in parallel
            peer.stop.set()
        leftover: list[str] = []
        for peer in self.started:
            leftover += peer.close()
        return leftover


@pytest.fixture(scope="module")
def hostile_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("hostile-pki"), bundle_extra=0)


@contextlib.contextmanager
def running_peers() -> Iterator[Peers]:
    """Peers started inside the block are all stopped at its end; a thread left running fails."""
    peers = Peers()
    try:
        yield peers
    finally:
        leftover = peers.close()
    assert not leftover, f"hostile peer threads did not stop: {leftover}"


@pytest.fixture
def hostile() -> Iterator[Peers]:
    """Start peers with ``hostile.start(name, handler)``; all are stopped (and checked) after the test."""
    with running_peers() as peers:
        yield peers
