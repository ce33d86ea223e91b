"""What the prober observed, as plain frozen values.

These types are the boundary between the network code (``tls.py``, ``runner.py``) and the live
checks (``checks/live.py``): checks read them and never open sockets, so every live rule is
testable with hand-built observations. This module imports no TLS library, so the CLI and the
report renderers can import it without paying for OpenSSL.

Expected TLS outcomes (a rejection, a timeout, a closed stream) are data here, never exceptions
(sslyze's habit): an ``Attempt`` with ``outcome="error"`` or an ``EndpointProbe`` with ``error``
set is a normal result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..model import SourceLocation, Target

Protocol = Literal["http", "tcp", "auto"]
"""How to judge a connection after the handshake: send an HTTP request, only listen, or try HTTP first."""

AttemptKind = Literal["no_cert", "untrusted", "valid", "expired", "revoked"]
"""Which client identity an attempt presented."""

Outcome = Literal["accepted", "rejected", "error"]
"""``accepted``: the request was served; ``rejected``: refused by TLS or by Nginx; ``error``: no verdict."""

ATTEMPT_KINDS: tuple[AttemptKind, ...] = ("no_cert", "untrusted", "valid", "expired", "revoked")
LEGACY_VERSIONS: tuple[str, ...] = ("SSLv3", "TLSv1", "TLSv1.1")


@dataclass(frozen=True)
class ProbeSpec:
    """One endpoint to probe, and what the configuration says about it (when there is one)."""

    target: Target
    protocol: Protocol = "auto"
    """``http`` for http servers, ``tcp`` for stream servers, ``auto`` when unknown."""
    location: SourceLocation | None = None
    """The ``listen`` line this endpoint came from, so live results point into the config."""
    config_verify: str | None = None
    """Effective ``ssl_verify_client`` of the server behind this endpoint, for drift (MTLS601)."""
    subject: str = ""
    """Stable description for fingerprints; defaults to ``endpoint <target>``."""

    def __post_init__(self) -> None:
        if not self.subject:
            object.__setattr__(self, "subject", f"endpoint {self.target}")


@dataclass(frozen=True)
class Attempt:
    """One connection with one client identity, and how the server answered it."""

    kind: AttemptKind
    outcome: Outcome
    how: str
    """Short evidence: ``http 400 No required SSL certificate was sent``, ``tls alert certificate_required``,
    ``stream closed after handshake``, ``http 200``."""
    http_status: int | None = None
    title: str | None = None
    """The HTML ``<title>`` of the response, or its first body line."""
    alert: str | None = None
    """TLS alert received from the server (``certificate_required``, ``unknown_ca`` ...)."""
    tls_version: str | None = None
    cipher: str | None = None
    cert_requested: bool | None = None
    """Whether the server sent a CertificateRequest; ``None`` when the handshake never got there."""
    ca_names: tuple[str, ...] = ()
    """Distinguished names (RFC 4514) advertised in the CertificateRequest."""
    error: str | None = None
    """Why there is no verdict (only for ``outcome == "error"``)."""
    elapsed_ms: int = 0
    presented: str | None = None
    """Subject of the client certificate presented, for evidence (never the key)."""


@dataclass(frozen=True)
class ServerCert:
    """Facts about the certificate the endpoint presented (MTLS508)."""

    subject: str
    issuer: str
    not_after: str
    """ISO 8601, UTC."""
    days_left: int
    """Whole days until notAfter; negative once expired."""
    name_matches: bool | None
    """Whether the SAN (or CN when no SAN) matches the SNI name or host; ``None`` if not checked."""
    trusted: bool | None
    """Whether the chain verifies against ``--trust`` (or the system store); ``None`` if not checked."""
    verify_error: str | None = None
    checked_name: str | None = None
    chain_length: int = 1


@dataclass(frozen=True)
class EndpointProbe:
    """Everything learned about one endpoint; ``error`` is set when it could not be probed at all."""

    spec: ProbeSpec
    attempts: tuple[Attempt, ...] = ()
    cert_requested: bool | None = None
    ca_names: tuple[str, ...] = ()
    tls_version: str | None = None
    cipher: str | None = None
    legacy_versions: tuple[str, ...] = ()
    """Legacy versions the server accepted, among ``SSLv3``, ``TLSv1``, ``TLSv1.1``."""
    legacy_not_tested: tuple[str, ...] = ()
    """Legacy versions the local OpenSSL cannot offer (SSLv3 on OpenSSL 3+), so no verdict on them."""
    server_cert: ServerCert | None = None
    error: str | None = None
    """Refused, timed out, not TLS, or the scan deadline passed: no other rule can judge it."""
    elapsed_ms: int = 0

    def attempt(self, kind: AttemptKind) -> Attempt | None:
        """The attempt made with ``kind``, or ``None`` when that identity was not available."""
        for attempt in self.attempts:
            if attempt.kind == kind:
                return attempt
        return None
