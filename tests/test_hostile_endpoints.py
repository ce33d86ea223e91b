"""Hostile endpoints: each gets ``error`` (or the right verdict) in bounded time and hurts no one else.

One ``probe_all`` call scans every hostile peer of tests/hostile_peers.py plus a healthy,
Nginx-like endpoint, all in-process on 127.0.0.1, with a short per-connection timeout. Then:

* per endpoint, the status of MTLS509 (reachability) and the verdicts that must follow;
* per attempt and per endpoint, the time taken (``Attempt.elapsed_ms``/``EndpointProbe.elapsed_ms``)
  stays within the timeout per connection plus a margin;
* the scan's wall time is that of its slowest endpoint, not the sum (the pool probes in parallel);
* the healthy endpoint's attempts are the same as when it is scanned alone;
* the endless body is cut at ``READ_LIMIT`` (Python heap peak bounded, the server sees the hang-up);
* every peer thread stops.

The CLI test scans the same peers through ``python -m mtls_audit``: exit 1, MTLS509 errors, JSON
valid against the shipped schema, no traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import hostile_peers as hp
import pytest
from hostile_peers import hostile, hostile_pki  # noqa: F401  (fixtures)
from jsonschema import Draft202012Validator
from pki import Pki, make_pki

from mtls_audit.context import CheckContext
from mtls_audit.engine import load_catalog, run_checks
from mtls_audit.model import Result
from mtls_audit.probe import tls
from mtls_audit.probe.identities import Identities, load_identity, make_untrusted
from mtls_audit.probe.runner import ProbeConfig, probe_all
from mtls_audit.probe.types import EndpointProbe, ProbeSpec, Protocol
from mtls_audit.schema import load_report_schema

ROOT = Path(__file__).resolve().parents[1]

TIMEOUT = 1.5
"""Seconds per connection: short, so the slow peers cost little, and well above loopback latency."""
MARGIN_MS = 750
"""Slack over a deadline for thread scheduling on a busy CI machine (the deadlines themselves are exact)."""
FAST_MS = int(TIMEOUT * 1000) - 250
"""Peers that break the handshake at once must not be waited on until the timeout."""
HEAP_LIMIT = 8 * 1024 * 1024
"""Python heap peak during the scan; an unbounded read of the endless body would blow through it."""

UNREACHABLE_BY_TIMEOUT = ("silent", "drip_per_second")
UNREACHABLE_AT_ONCE = (
    "garbage_random",
    "garbage_http",
    "reset_after_client_hello",
    "reset_after_server_hello",
    "plain_http",
    "huge_chain",
)
UNREACHABLE = UNREACHABLE_BY_TIMEOUT + UNREACHABLE_AT_ONCE

EXPECTED_ERROR: dict[str, tuple[str, ...]] = {
    # endpoint -> accepted prefixes of EndpointProbe.error
    "silent": ("timed out waiting for a TLS handshake (no TLS answer)",),
    "drip_per_second": ("timed out waiting for a TLS handshake (no TLS answer)",),
    "garbage_random": ("not TLS: ",),
    "garbage_http": ("not TLS: ",),
    "reset_after_client_hello": ("connection closed before a TLS handshake", "not TLS: "),
    "reset_after_server_hello": ("TLS handshake failed: connection reset by the server",),
    "plain_http": ("not TLS: ",),
    # OpenSSL's client refuses a Certificate message over 100 KiB (max_cert_list): bounded memory.
    "huge_chain": ("TLS handshake failed: excessive message size",),
}

P, F, X, S = "pass", "fail", "error", "skipped"
VERDICTS: dict[str, dict[str, str]] = {
    # Reachable but hostile after the handshake: the verdicts that must follow (others unchecked).
    "mute_http": {"MTLS509": P, "MTLS501": X, "MTLS505": X},  # an HTTP server that never answers: no verdict
    "mute_auto": {"MTLS509": P, "MTLS501": F, "MTLS505": P},  # unknown protocol, open and silent: served
    "endless_body": {"MTLS509": P, "MTLS501": F, "MTLS502": F},  # 200 and a body cut at READ_LIMIT
    "drip_response": {"MTLS509": P, "MTLS501": X, "MTLS502": X},  # never a complete status line in time
    "malformed_cert": {"MTLS509": P, "MTLS508": F},  # a certificate a strict parser rejects never passes
    "healthy": {"MTLS501": P, "MTLS502": P, "MTLS505": P, "MTLS508": P, "MTLS509": P},
}


@dataclass(frozen=True)
class HostileScan:
    probes: Mapping[str, EndpointProbe]
    statuses: Mapping[str, Mapping[str, str]]
    results: Mapping[str, list[Result]]
    wall: float
    heap_peak: int
    config: ProbeConfig
    solo_healthy: EndpointProbe
    endless_bytes_sent: int
    endless_hung_up: bool
    chain_bytes: int
    leftover_threads: list[str]


def _start_all(peers: hp.Peers, pki: Pki, directory: Path) -> tuple[dict[str, ProbeSpec], hp.Peer, int]:
    """Every hostile peer plus the healthy one; specs keyed by endpoint name (also the subject)."""
    plain_ctx = hp.server_context(pki)
    asking_ctx = hp.server_context(pki, ask_client_cert=True)
    huge_ctx, chain_bytes = hp.huge_chain_context(directory)
    starts: list[tuple[str, hp.Handler, Protocol]] = [
        ("silent", hp.silent, "auto"),
        ("drip_per_second", hp.drip_per_second, "auto"),
        ("garbage_random", hp.garbage_random, "auto"),
        ("garbage_http", hp.garbage_http, "auto"),
        ("reset_after_client_hello", hp.reset_after_client_hello, "auto"),
        ("reset_after_server_hello", hp.reset_after_server_hello(plain_ctx), "auto"),
        ("plain_http", hp.plain_http, "http"),
        ("huge_chain", hp.tls_then(huge_ctx, hp.mute), "auto"),
        ("mute_http", hp.tls_then(asking_ctx, hp.mute), "http"),
        ("endless_body", hp.tls_then(plain_ctx, hp.endless_body), "auto"),
        ("drip_response", hp.tls_then(plain_ctx, hp.drip_response), "http"),
        ("malformed_cert", hp.tls_then(hp.malformed_cert_context(directory), hp.nginx_like), "http"),
        ("healthy", hp.tls_then(asking_ctx, hp.nginx_like), "http"),
    ]
    specs: dict[str, ProbeSpec] = {}
    started: dict[str, hp.Peer] = {}
    for name, handler, protocol in starts:
        started[name] = peers.start(name, handler)
        specs[name] = ProbeSpec(started[name].target, protocol, subject=name)
    # The same silent-after-handshake server judged as an unknown protocol (the CLI's default).
    specs["mute_auto"] = ProbeSpec(started["mute_http"].target, "auto", subject="mute_auto")
    return specs, started["endless_body"], chain_bytes


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> HostileScan:
    directory = tmp_path_factory.mktemp("hostile")
    pki = make_pki(directory / "pki", bundle_extra=0)
    identities = Identities(untrusted=make_untrusted(), valid=load_identity("valid", pki.client.cert, pki.client.key))
    config = ProbeConfig(timeout=TIMEOUT, identities=identities, trust=str(pki.root.cert))
    peers = hp.Peers()
    try:
        specs, endless, chain_bytes = _start_all(peers, pki, directory)
        tracemalloc.start()
        started = time.monotonic()
        probes = probe_all(list(specs.values()), config, progress=False)
        wall = time.monotonic() - started
        _, heap_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        solo = probe_all([specs["healthy"]], config, progress=False)[0]
        deadline = time.monotonic() + 3  # the endless server notices the hang-up on its next send
        while any(c.ended_at is None for c in endless.conns) and time.monotonic() < deadline:
            time.sleep(0.05)
        hung_up = bool(endless.conns) and all(c.ended_at is not None for c in endless.conns)
        endless_bytes = endless.bytes_sent
    finally:
        if tracemalloc.is_tracing():
            tracemalloc.stop()
        leftover = peers.close()
    by_name = dict(zip(specs, probes, strict=True))
    results = run_checks(load_catalog(), CheckContext(config=None, probes=probes), kinds=("live", "drift"))
    per: dict[str, list[Result]] = {name: [] for name in specs}
    for r in results:
        per[r.subject].append(r)
    statuses = {name: {r.rule_id: r.status.value for r in rs} for name, rs in per.items()}
    return HostileScan(
        by_name, statuses, per, wall, heap_peak, config, solo, endless_bytes, hung_up, chain_bytes, leftover
    )


def _timeout_ms() -> int:
    return int(TIMEOUT * 1000)


def _report(scan: HostileScan) -> str:
    """Per-endpoint timings, printed on failure (and with -s) for the record."""
    lines = [f"wall {scan.wall:.2f}s, heap peak {scan.heap_peak / 1e6:.1f} MB"]
    for name, probe in scan.probes.items():
        attempts = ", ".join(f"{a.kind}={a.outcome}/{a.elapsed_ms}ms" for a in probe.attempts)
        lines.append(f"{name}: {probe.elapsed_ms}ms error={probe.error!r} [{attempts}]")
    return "\n".join(lines)


# --- verdicts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", UNREACHABLE)
def test_unprobeable_peer_is_an_mtls509_error_and_nothing_else_judges_it(scan: HostileScan, name: str) -> None:
    probe = scan.probes[name]
    assert probe.error is not None and probe.error.startswith(EXPECTED_ERROR[name]), _report(scan)
    assert len(probe.attempts) == 1 and probe.attempts[0].outcome == "error"
    statuses = scan.statuses[name]
    assert statuses["MTLS509"] == X
    assert {s for rule, s in statuses.items() if rule != "MTLS509"} == {S}  # skipped, never pass
    (mtls509,) = [r for r in scan.results[name] if r.rule_id == "MTLS509"]
    assert probe.error in mtls509.message and mtls509.target == probe.spec.target


@pytest.mark.parametrize("name", sorted(VERDICTS))
def test_reachable_peer_gets_the_right_verdict(scan: HostileScan, name: str) -> None:
    assert scan.probes[name].error is None, _report(scan)
    got = {rule: scan.statuses[name][rule] for rule in VERDICTS[name]}
    assert got == VERDICTS[name], {a.kind: a.how for a in scan.probes[name].attempts}


def test_no_hostile_peer_passes_the_gate(scan: HostileScan) -> None:
    for name, results in scan.results.items():
        if name == "healthy":
            continue
        assert any(r.status.value in (F, X) for r in results), name


def test_mute_and_dripping_servers_leave_attempts_without_a_verdict(scan: HostileScan) -> None:
    for name, error in (
        ("mute_http", "no HTTP response before the timeout"),
        ("drip_response", "incomplete HTTP response"),
    ):
        no_cert = scan.probes[name].attempt("no_cert")
        assert no_cert is not None and (no_cert.outcome, no_cert.error) == ("error", error)
        assert no_cert.tls_version is not None  # the handshake completed; only the answer is missing


def test_malformed_server_certificate_is_reported_not_raised(scan: HostileScan) -> None:
    cert = scan.probes["malformed_cert"].server_cert
    assert cert is not None and cert.trusted is False and cert.name_matches is None
    assert cert.verify_error == "the certificate's extensions cannot be parsed"


def test_healthy_endpoint_is_unaffected_by_its_neighbours(scan: HostileScan) -> None:
    def outcomes(probe: EndpointProbe) -> list[tuple[str, str, str, int | None]]:
        return [(a.kind, a.outcome, a.how, a.http_status) for a in probe.attempts]

    healthy = scan.probes["healthy"]
    assert outcomes(healthy) == outcomes(scan.solo_healthy)
    assert outcomes(healthy) == [
        ("no_cert", "rejected", "http 400 No required SSL certificate was sent", 400),
        ("untrusted", "rejected", "tls alert unknown_ca", None),
        ("valid", "accepted", "http 200", 200),
    ]
    assert healthy.cert_requested is True and healthy.server_cert is not None and healthy.server_cert.trusted


# --- time bounds --------------------------------------------------------------------------------


def test_every_attempt_ends_within_its_timeout(scan: HostileScan) -> None:
    for name, probe in scan.probes.items():
        for a in probe.attempts:
            assert a.elapsed_ms <= _timeout_ms() + MARGIN_MS, f"{name}/{a.kind}\n{_report(scan)}"


def test_every_endpoint_ends_within_timeout_times_connections(scan: HostileScan) -> None:
    bound = _timeout_ms() * scan.config.connections_per_endpoint + MARGIN_MS
    for name, probe in scan.probes.items():
        assert probe.elapsed_ms <= bound, f"{name}\n{_report(scan)}"


def test_silent_and_dripping_peers_are_cut_by_the_timeout(scan: HostileScan) -> None:
    for name in UNREACHABLE_BY_TIMEOUT:
        elapsed = scan.probes[name].elapsed_ms
        assert _timeout_ms() - 50 <= elapsed <= _timeout_ms() + MARGIN_MS, f"{name}\n{_report(scan)}"


def test_peers_that_break_the_handshake_are_not_waited_on(scan: HostileScan) -> None:
    for name in UNREACHABLE_AT_ONCE:
        assert scan.probes[name].elapsed_ms < FAST_MS, f"{name}\n{_report(scan)}"


def test_whole_scan_takes_as_long_as_its_slowest_endpoint_not_the_sum(scan: HostileScan) -> None:
    # Every endpoint has a worker (14 specs, 32 workers), so the scan lasts as long as its
    # slowest endpoint: drip_response, whose three attempts each wait out the full timeout
    # (about 3 x TIMEOUT). The hard bound is one endpoint's worst case, every connection waiting
    # the full timeout; the serial sum of all endpoints would be well over it.
    assert len(scan.probes) <= scan.config.concurrency
    elapsed = [p.elapsed_ms / 1000 for p in scan.probes.values()]
    slowest = max(elapsed)
    assert scan.wall <= slowest + MARGIN_MS / 1000, _report(scan)
    assert scan.wall <= TIMEOUT * scan.config.connections_per_endpoint + MARGIN_MS / 1000, _report(scan)
    assert scan.wall < 0.6 * sum(elapsed), _report(scan)


# --- size bounds and teardown ---------------------------------------------------------------------


def test_endless_body_is_cut_at_the_read_limit(scan: HostileScan) -> None:
    for a in scan.probes["endless_body"].attempts:
        assert (a.outcome, a.http_status, a.title) == ("accepted", 200, "endless")
        assert a.elapsed_ms < FAST_MS  # stopped reading at READ_LIMIT, did not wait for an end
    assert scan.endless_hung_up, "the endless server never saw the client go away"
    # What the server managed to push before the hang-up: the read cap plus socket buffers.
    assert scan.endless_bytes_sent < 64 * 1024 * 1024
    assert tls.READ_LIMIT <= 64 * 1024


def test_python_heap_stays_bounded_during_the_scan(scan: HostileScan) -> None:
    assert scan.heap_peak < HEAP_LIMIT, _report(scan)


def test_huge_chain_is_refused_before_it_is_read(scan: HostileScan) -> None:
    assert scan.chain_bytes > 1_000_000  # the peer really offers a ~1 MB chain
    assert scan.probes["huge_chain"].attempts[0].elapsed_ms < FAST_MS


def test_every_peer_thread_stopped(scan: HostileScan) -> None:
    assert scan.leftover_threads == []


# --- through the CLI ------------------------------------------------------------------------------


def test_cli_scan_of_hostile_peers_exits_1_with_errors_and_no_traceback(
    hostile: hp.Peers,  # noqa: F811
    hostile_pki: Pki,  # noqa: F811
) -> None:
    ctx = hp.server_context(hostile_pki)
    handlers: dict[str, hp.Handler] = {
        "silent": hp.silent,
        "drip_per_second": hp.drip_per_second,
        "garbage_random": hp.garbage_random,
        "reset_after_server_hello": hp.reset_after_server_hello(ctx),
        "plain_http": hp.plain_http,
        "endless_body": hp.tls_then(ctx, hp.endless_body),
        "healthy": hp.tls_then(hp.server_context(hostile_pki, ask_client_cert=True), hp.nginx_like),
    }
    peers = {name: hostile.start(name, handler) for name, handler in handlers.items()}
    timeout = 1.0
    args = [sys.executable, "-m", "mtls_audit", "scan", "--format", "json", "--timeout", str(timeout)]
    args += ["--trust", str(hostile_pki.root.cert)]
    for peer in peers.values():
        args += ["--target", str(peer.target)]
    started = time.monotonic()
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=ROOT, env=_env())
    elapsed = time.monotonic() - started
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.strip() == ""
    report = json.loads(proc.stdout)
    Draft202012Validator(load_report_schema()).validate(report)
    by_port: dict[int, dict[str, str]] = {}
    for r in report["results"]:
        by_port.setdefault(r["target"]["port"], {})[r["rule_id"]] = r["status"]
    status = {name: by_port[peer.port] for name, peer in peers.items()}
    for name in ("silent", "drip_per_second", "garbage_random", "reset_after_server_hello", "plain_http"):
        assert status[name]["MTLS509"] == X, name
    assert status["endless_body"]["MTLS501"] == F
    assert status["healthy"]["MTLS501"] == P and status["healthy"]["MTLS509"] == P
    assert report["summary"]["gate"] == "fail" and report["summary"]["error"] >= 5
    # Two attempts and two legacy probes per endpoint, all in parallel; plus interpreter start-up.
    assert elapsed < timeout * 4 + 10


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def test_every_endpoint_records_its_time(scan: HostileScan) -> None:
    print("\n" + _report(scan))  # the measured times, with `pytest -s`
    assert all(p.elapsed_ms > 0 or p.error for p in scan.probes.values())
