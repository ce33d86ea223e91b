"""Probe many endpoints at once, each with a fixed set of attempts, within hard time bounds.

Why the bounds: a scan in CI must end. Each connection has its own deadline (``timeout``), every
attempt is also capped by the scan's end (``scan_timeout``), and an endpoint still unfinished at
that point is reported as ``scan deadline exceeded`` (an error, so the gate fails closed) while
the others keep their results. Workers are a bounded thread pool (``concurrency``): probing is
I/O bound, and a pool keeps the number of open sockets predictable.

Per endpoint, the first attempt presents no certificate; it also tells whether the endpoint is
reachable and speaks TLS. If not, the endpoint gets ``error`` and nothing else is tried.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

from .. import __version__
from ..errors import InputFileError, UsageError
from .identities import Identities
from .tls import analyze_server_chain, check_trust_source, probe_version, run_attempt
from .types import LEGACY_VERSIONS, Attempt, AttemptKind, EndpointProbe, ProbeSpec, Protocol

DEFAULT_TIMEOUT = 5.0
DEFAULT_CONCURRENCY = 32
PROGRESS_MIN_ENDPOINTS = 6
_PROTOCOLS = ("http", "tcp", "auto")
SCAN_DEADLINE = "scan deadline exceeded"


@dataclass(frozen=True)
class ProbeConfig:
    """How to probe: identities to present, time bounds, trust for the server certificate."""

    timeout: float = DEFAULT_TIMEOUT
    """Seconds per connection, covering connect, handshake, write and read."""
    concurrency: int = DEFAULT_CONCURRENCY
    """Endpoints probed in parallel."""
    identities: Identities = field(default_factory=Identities.minted)
    trust: str | None = None
    """CA file or folder for the server certificate check (MTLS508); ``None``: the system store."""
    protocol: Protocol = "auto"
    """Default for specs that do not say (``ProbeSpec.protocol`` wins when it is not ``auto``)."""
    version: str = __version__
    """Sent in the User-Agent, so server operators can recognise the probes in their logs."""
    scan_timeout: float | None = None
    """Bound on the whole scan; ``None``: ``timeout * attempts * 2 + 10``."""
    legacy: bool = True
    """Also try TLS 1.0/1.1 (MTLS507)."""

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise UsageError(f"--timeout must be positive, got {self.timeout}")
        if self.concurrency < 1:
            raise UsageError(f"--concurrency must be at least 1, got {self.concurrency}")
        if self.protocol not in _PROTOCOLS:
            raise UsageError(f"--protocol must be one of {', '.join(_PROTOCOLS)}, got {self.protocol!r}")

    @classmethod
    def from_paths(
        cls,
        *,
        client_cert: str | os.PathLike[str] | None = None,
        client_key: str | os.PathLike[str] | None = None,
        client_key_pass_env: str | None = None,
        ca_cert: str | os.PathLike[str] | None = None,
        ca_key: str | os.PathLike[str] | None = None,
        revoked_cert: str | os.PathLike[str] | None = None,
        revoked_key: str | os.PathLike[str] | None = None,
        trust: str | os.PathLike[str] | None = None,
        timeout: float | None = None,
        concurrency: int | None = None,
        protocol: Protocol = "auto",
        scan_timeout: float | None = None,
        version: str = __version__,
    ) -> ProbeConfig:
        """Build from CLI options; bad files raise ``InputFileError`` with one line naming them."""
        identities = Identities.from_paths(
            client_cert=client_cert,
            client_key=client_key,
            ca_cert=ca_cert,
            ca_key=ca_key,
            revoked_cert=revoked_cert,
            revoked_key=revoked_key,
            key_pass_env=client_key_pass_env,
        )
        trust_path = os.fspath(trust) if trust is not None else None
        if trust_path is not None:
            if not os.path.exists(trust_path):
                raise InputFileError(f"{trust_path}: --trust file or folder does not exist")
            try:
                check_trust_source(trust_path)
            except Exception as e:  # crypto.Error or OSError: either way, unusable
                raise InputFileError(f"{trust_path}: cannot load CA certificates for --trust ({e})") from None
        return cls(
            timeout=timeout if timeout is not None else DEFAULT_TIMEOUT,
            concurrency=concurrency if concurrency is not None else DEFAULT_CONCURRENCY,
            identities=identities,
            trust=trust_path,
            protocol=protocol,
            scan_timeout=scan_timeout,
            version=version,
        )

    @property
    def attempt_kinds(self) -> tuple[AttemptKind, ...]:
        """The attempts each endpoint gets, in order (``no_cert`` first: it checks reachability)."""
        optional: tuple[AttemptKind, ...] = ("valid", "expired", "revoked")
        given = tuple(k for k in optional if self.identities.for_kind(k) is not None)
        return ("no_cert", "untrusted", *given)

    @property
    def connections_per_endpoint(self) -> int:
        return len(self.attempt_kinds) + (2 if self.legacy else 0)

    def effective_scan_timeout(self) -> float:
        if self.scan_timeout is not None:
            return self.scan_timeout
        return self.timeout * self.connections_per_endpoint * 2 + 10


def probe_endpoint(spec: ProbeSpec, config: ProbeConfig, hard_deadline: float | None = None) -> EndpointProbe:
    """All attempts against one endpoint, one connection each, in sequence."""
    started = time.monotonic()
    protocol: Protocol = spec.protocol if spec.protocol != "auto" else config.protocol
    user_agent = f"mtls-audit/{config.version}"
    attempts: list[Attempt] = []
    first = run_attempt(
        spec.target,
        "no_cert",
        None,
        protocol=protocol,
        timeout=config.timeout,
        hard_deadline=hard_deadline,
        user_agent=user_agent,
    )
    attempts.append(first.attempt)
    if first.endpoint_error:
        error = SCAN_DEADLINE if _past(hard_deadline) else first.endpoint_error
        return EndpointProbe(spec=spec, attempts=tuple(attempts), error=error, elapsed_ms=_ms(started))
    for kind in config.attempt_kinds[1:]:
        if _past(hard_deadline):
            return EndpointProbe(spec=spec, attempts=tuple(attempts), error=SCAN_DEADLINE, elapsed_ms=_ms(started))
        result = run_attempt(
            spec.target,
            kind,
            config.identities.for_kind(kind),
            protocol=protocol,
            timeout=config.timeout,
            hard_deadline=hard_deadline,
            user_agent=user_agent,
        )
        attempts.append(result.attempt)
    accepted_legacy: list[str] = []
    not_tested: list[str] = []
    if config.legacy:
        for version in LEGACY_VERSIONS:
            verdict = probe_version(spec.target, version, timeout=config.timeout, hard_deadline=hard_deadline)
            if verdict == "accepted":
                accepted_legacy.append(version)
            elif verdict in ("not tested", "error"):
                not_tested.append(version)
    else:
        not_tested = list(LEGACY_VERSIONS)
    if _past(hard_deadline) and any(a.outcome == "error" for a in attempts):
        # Some attempt was cut short by the scan's end, not by the server: no verdict.
        return EndpointProbe(spec=spec, attempts=tuple(attempts), error=SCAN_DEADLINE, elapsed_ms=_ms(started))
    plain = first.attempt
    handshake = next((a for a in attempts if a.tls_version), plain)
    return EndpointProbe(
        spec=spec,
        attempts=tuple(attempts),
        cert_requested=plain.cert_requested,
        ca_names=plain.ca_names,
        tls_version=handshake.tls_version,
        cipher=handshake.cipher,
        legacy_versions=tuple(accepted_legacy),
        legacy_not_tested=tuple(not_tested),
        server_cert=analyze_server_chain(first.peer_chain, spec.target, config.trust),
        elapsed_ms=_ms(started),
    )


def _probe_guarded(spec: ProbeSpec, config: ProbeConfig, hard_deadline: float | None) -> EndpointProbe:
    """``probe_endpoint``, with a bug (or a peer that trips one) as this endpoint's error.

    One hostile endpoint must not cost the others their results, nor end the scan with a
    traceback; an error fails the gate (MTLS509), so nothing passes unseen.
    """
    started = time.monotonic()
    try:
        return probe_endpoint(spec, config, hard_deadline)
    except Exception as e:
        return EndpointProbe(spec=spec, error=f"probe failed: {type(e).__name__}: {e}"[:300], elapsed_ms=_ms(started))


def _past(hard_deadline: float | None) -> bool:
    return hard_deadline is not None and time.monotonic() >= hard_deadline


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


class _Progress:
    """A ``\\r`` counter on stderr; no dependency, silent when stderr is not a terminal."""

    def __init__(self, total: int, enabled: bool, stream: TextIO) -> None:
        self.total, self.enabled, self.stream = total, enabled, stream
        self.done = 0
        self.lock = threading.Lock()

    def tick(self) -> None:
        with self.lock:
            self.done += 1
            if self.enabled:
                self.stream.write(f"\rprobing endpoints: {self.done}/{self.total}")
                self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def probe_all(
    specs: Sequence[ProbeSpec],
    config: ProbeConfig,
    progress: bool | None = None,
) -> list[EndpointProbe]:
    """Probe every spec; results come back in the order of ``specs``.

    ``progress``: ``None`` shows a counter on stderr when it is a terminal and there are more
    than a handful of endpoints. Never raises for network outcomes: they are in the results.
    """
    if not specs:
        return []
    stream = sys.stderr
    show = progress if progress is not None else (stream.isatty() and len(specs) >= PROGRESS_MIN_ENDPOINTS)
    bar = _Progress(len(specs), show, stream)
    hard_deadline = time.monotonic() + config.effective_scan_timeout()
    results: list[EndpointProbe | None] = [None] * len(specs)
    pool = cf.ThreadPoolExecutor(max_workers=min(config.concurrency, len(specs)), thread_name_prefix="mtls-probe")
    try:
        futures = {pool.submit(_probe_guarded, spec, config, hard_deadline): i for i, spec in enumerate(specs)}
        try:
            for future in cf.as_completed(futures, timeout=max(0.0, hard_deadline - time.monotonic()) + 1.0):
                results[futures[future]] = future.result()
                bar.tick()
        except cf.TimeoutError:
            pass
    finally:
        # Attempts are capped by hard_deadline, so stragglers end on their own shortly.
        pool.shutdown(wait=False, cancel_futures=True)
        bar.close()
    return [
        result if result is not None else EndpointProbe(spec=specs[i], error=SCAN_DEADLINE)
        for i, result in enumerate(results)
    ]
