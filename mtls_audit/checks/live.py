"""Live rules MTLS501-509 and the drift rule MTLS601: verdicts on what the prober observed.

These checks read ``ctx.probes`` (``EndpointProbe`` values) and nothing else: no sockets, no
files. Each endpoint gets exactly one finding per rule, so a compliance report shows the controls
that held as well as those that did not.

Two principles from docs/nginx-mtls.md and the report contract:

* Nginx rejects *after* the handshake (HTTP 400 or a closed stream), so the verdict comes from
  the attempt's ``outcome``, which the prober derived from the response, not from the handshake.
* Probes fail closed: an attempt without a verdict is ``error`` (it fails the gate), never
  ``pass``. An endpoint that could not be probed at all is MTLS509's ``error``; the other rules
  are ``skipped`` on it with the reason, so the report says why they did not judge.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from ..context import CheckContext, CheckFn
from ..model import Finding, RuleMeta, Severity, Status
from ..probe.types import Attempt, AttemptKind, EndpointProbe

DEFAULT_MAX_CA_NAMES = 20

_KIND_TEXT: dict[AttemptKind, str] = {
    "no_cert": "a request without a client certificate",
    "untrusted": "a request with an untrusted self-signed client certificate",
    "valid": "a request with the valid client certificate (--client-cert)",
    "expired": "a request with an expired certificate issued by the trusted CA",
    "revoked": "a request with the revoked certificate (--revoked-cert)",
}

_MISSING: dict[AttemptKind, str] = {
    "no_cert": "no attempt without a certificate was made",
    "untrusted": "no attempt with an untrusted certificate was made",
    "valid": "no valid client certificate given (--client-cert and --client-key)",
    "expired": "no CA given to mint an expired certificate (--ca-cert and --ca-key)",
    "revoked": "no revoked certificate given (--revoked-cert and --revoked-key)",
}


def _finding(
    rule: RuleMeta,
    probe: EndpointProbe,
    status: Status,
    message: str,
    evidence: dict[str, Any] | None = None,
    severity: Severity | None = None,
) -> Finding:
    spec = probe.spec
    return Finding(
        rule_id=rule.id,
        status=status,
        message=message,
        subject=spec.subject,
        location=spec.location,
        target=spec.target,
        evidence={k: v for k, v in (evidence or {}).items() if v not in (None, (), [], "")},
        severity=severity,
    )


def _attempt_evidence(attempt: Attempt) -> dict[str, Any]:
    return {
        "attempt": attempt.kind,
        "outcome": attempt.outcome,
        "how": attempt.how,
        "http_status": attempt.http_status,
        "title": attempt.title,
        "alert": attempt.alert,
        "tls_version": attempt.tls_version,
        "cipher": attempt.cipher,
        "cert_requested": attempt.cert_requested,
        "ca_names": list(attempt.ca_names),
        "presented": attempt.presented,
        "error": attempt.error,
        "elapsed_ms": attempt.elapsed_ms,
    }


def _reachable(ctx: CheckContext, rule: RuleMeta) -> Iterator[tuple[EndpointProbe, Finding | None]]:
    """Each probe, with a ready ``skipped`` finding when the endpoint could not be probed."""
    for probe in ctx.probes:
        if probe.error:
            yield (
                probe,
                _finding(
                    rule,
                    probe,
                    Status.SKIPPED,
                    f"not judged: endpoint {probe.spec.target} could not be probed ({probe.error}; see MTLS509)",
                    {"probe_error": probe.error},
                ),
            )
        else:
            yield probe, None


def _must_reject(kind: AttemptKind) -> CheckFn:
    """Rules 501-504: the attempt made with ``kind`` must not be served."""

    def check(ctx: CheckContext, rule: RuleMeta) -> Iterable[Finding]:
        for probe, skipped in _reachable(ctx, rule):
            if skipped:
                yield skipped
                continue
            attempt = probe.attempt(kind)
            what = _KIND_TEXT[kind]
            if attempt is None:
                yield _finding(rule, probe, Status.SKIPPED, f"not judged: {_MISSING[kind]}")
                continue
            evidence = _attempt_evidence(attempt)
            if attempt.outcome == "accepted":
                extra = ""
                if kind == "no_cert" and attempt.cert_requested is False:
                    extra = "; the server did not even request a client certificate"
                yield _finding(rule, probe, Status.FAIL, f"{what} was served ({attempt.how}){extra}", evidence)
            elif attempt.outcome == "rejected":
                yield _finding(rule, probe, Status.PASS, f"{what} was rejected ({attempt.how})", evidence)
            else:
                yield _finding(
                    rule,
                    probe,
                    Status.ERROR,
                    f"no verdict on {what}: {attempt.error or attempt.how}",
                    evidence,
                )

    check.__name__ = f"check_{kind}_rejected"
    check.__doc__ = f"Fail when {_KIND_TEXT[kind]} is served; error when the attempt got no verdict."
    return check


def check_valid_accepted(ctx: CheckContext, rule: RuleMeta) -> Iterable[Finding]:
    """MTLS505: the user's valid certificate must get through; a rejection locks users out."""
    for probe, skipped in _reachable(ctx, rule):
        if skipped:
            yield skipped
            continue
        attempt = probe.attempt("valid")
        if attempt is None:
            yield _finding(rule, probe, Status.SKIPPED, f"not judged: {_MISSING['valid']}")
            continue
        evidence = _attempt_evidence(attempt)
        what = _KIND_TEXT["valid"]
        if attempt.outcome == "rejected":
            yield _finding(rule, probe, Status.FAIL, f"{what} was rejected ({attempt.how})", evidence)
        elif attempt.outcome == "accepted":
            yield _finding(rule, probe, Status.PASS, f"{what} was served ({attempt.how})", evidence)
        else:
            yield _finding(rule, probe, Status.ERROR, f"no verdict on {what}: {attempt.error or attempt.how}", evidence)


def check_ca_names(ctx: CheckContext, rule: RuleMeta) -> Iterable[Finding]:
    """MTLS506: the CertificateRequest should name the client CA(s): none or a public bundle is wrong."""
    limit = int(rule.params.get("max_ca_names", DEFAULT_MAX_CA_NAMES))
    for probe, skipped in _reachable(ctx, rule):
        if skipped:
            yield skipped
            continue
        names = list(probe.ca_names)
        evidence: dict[str, Any] = {"cert_requested": probe.cert_requested, "ca_names_count": len(names)}
        if probe.cert_requested is not True:
            yield _finding(
                rule,
                probe,
                Status.SKIPPED,
                "not judged: the server sent no CertificateRequest (client certificates are not asked for)",
                evidence,
            )
            continue
        evidence["ca_names"] = names
        if not names:
            yield _finding(
                rule,
                probe,
                Status.FAIL,
                "the CertificateRequest advertises no CA names (optional_no_ca without a CA, or only "
                "ssl_trusted_certificate): clients cannot pick the right certificate",
                evidence,
            )
        elif len(names) > limit:
            yield _finding(
                rule,
                probe,
                Status.FAIL,
                f"the CertificateRequest advertises {len(names)} CA names (over {limit}): a public or "
                "overly broad CA bundle is trusted for client authentication",
                evidence,
            )
        else:
            yield _finding(
                rule,
                probe,
                Status.PASS,
                f"the CertificateRequest advertises {len(names)} CA name(s)",
                evidence,
            )


def check_legacy_versions(ctx: CheckContext, rule: RuleMeta) -> Iterable[Finding]:
    """MTLS507: SSLv3/TLS 1.0/TLS 1.1 must be refused."""
    for probe, skipped in _reachable(ctx, rule):
        if skipped:
            yield skipped
            continue
        evidence: dict[str, Any] = {
            "accepted_versions": list(probe.legacy_versions),
            "not_tested": list(probe.legacy_not_tested),
            "negotiated_by_default": probe.tls_version,
        }
        if probe.legacy_versions:
            yield _finding(
                rule,
                probe,
                Status.FAIL,
                f"legacy protocol versions accepted: {', '.join(probe.legacy_versions)}",
                evidence,
            )
        elif {"TLSv1", "TLSv1.1"} <= set(probe.legacy_not_tested):
            yield _finding(
                rule,
                probe,
                Status.SKIPPED,
                "not judged: the local OpenSSL cannot offer TLS 1.0/1.1, or those attempts got no verdict",
                evidence,
            )
        else:
            tested = [v for v in ("SSLv3", "TLSv1", "TLSv1.1") if v not in probe.legacy_not_tested]
            note = f" (not tested: {', '.join(probe.legacy_not_tested)})" if probe.legacy_not_tested else ""
            yield _finding(rule, probe, Status.PASS, f"legacy versions refused: {', '.join(tested)}{note}", evidence)


def check_server_cert(ctx: CheckContext, rule: RuleMeta) -> Iterable[Finding]:
    """MTLS508: the server's own certificate: expired, untrusted, wrong name; medium when expiring soon."""
    warn_days = ctx.options.warn_days
    for probe, skipped in _reachable(ctx, rule):
        if skipped:
            yield skipped
            continue
        cert = probe.server_cert
        if cert is None:
            yield _finding(rule, probe, Status.SKIPPED, "not judged: no server certificate was received")
            continue
        evidence: dict[str, Any] = {
            "subject": cert.subject,
            "issuer": cert.issuer,
            "not_after": cert.not_after,
            "days_left": cert.days_left,
            "trusted": cert.trusted,
            "verify_error": cert.verify_error,
            "name_matches": cert.name_matches,
            "checked_name": cert.checked_name,
            "chain_length": cert.chain_length,
        }
        problems = []
        if cert.days_left < 0:
            problems.append(f"expired on {cert.not_after}")
        if cert.trusted is False:
            problems.append(f"not trusted ({cert.verify_error or 'verification failed'})")
        if cert.name_matches is False:
            problems.append(f"does not match the name {cert.checked_name!r}")
        if problems:
            yield _finding(rule, probe, Status.FAIL, "server certificate " + "; ".join(problems), evidence)
        elif cert.days_left <= warn_days:
            yield _finding(
                rule,
                probe,
                Status.FAIL,
                f"server certificate expires in {cert.days_left} day(s) ({cert.not_after}), "
                f"within --warn-days {warn_days}",
                evidence,
                severity=Severity.MEDIUM,
            )
        elif cert.trusted is None:
            yield _finding(
                rule,
                probe,
                Status.SKIPPED,
                f"not judged: could not check trust ({cert.verify_error or 'no trust store'})",
                evidence,
            )
        else:
            yield _finding(
                rule,
                probe,
                Status.PASS,
                f"server certificate trusted, matches {cert.checked_name!r}, {cert.days_left} days left",
                evidence,
            )


def check_reachable(ctx: CheckContext, rule: RuleMeta) -> Iterable[Finding]:
    """MTLS509: an endpoint that could not be probed is an error (never a pass): the gate fails closed."""
    for probe in ctx.probes:
        if probe.error:
            first = probe.attempts[0] if probe.attempts else None
            evidence = {"probe_error": probe.error, "elapsed_ms": probe.elapsed_ms}
            if first is not None:
                evidence["how"] = first.how
            yield _finding(rule, probe, Status.ERROR, f"endpoint could not be probed: {probe.error}", evidence)
        else:
            yield _finding(
                rule,
                probe,
                Status.PASS,
                f"endpoint answered TLS ({probe.tls_version or 'version unknown'})",
                {"tls_version": probe.tls_version, "cipher": probe.cipher, "elapsed_ms": probe.elapsed_ms},
            )


_EXPECT: dict[str, tuple[AttemptKind, ...]] = {
    # What Nginx itself refuses under each mode (nginx-mtls.md 3.3): `on` refuses no certificate and
    # bad certificates; `optional` serves no certificate but refuses bad ones; `optional_no_ca` serves
    # self-signed ones. Serving what the mode refuses means the live server is not this config.
    "on": ("no_cert", "untrusted"),
    "optional": ("untrusted",),
    "optional_no_ca": (),
}


def check_drift(ctx: CheckContext, rule: RuleMeta) -> Iterable[Finding]:
    """MTLS601: the config says the server verifies clients; the live endpoint must behave that way."""
    for probe, skipped in _reachable(ctx, rule):
        mode = probe.spec.config_verify
        if mode is None:
            yield _finding(rule, probe, Status.SKIPPED, "not judged: no configuration describes this endpoint")
            continue
        if skipped:
            yield skipped
            continue
        if mode not in _EXPECT:
            yield _finding(
                rule,
                probe,
                Status.SKIPPED,
                f"not judged: the config does not verify clients (ssl_verify_client {mode})",
                {"config_verify": mode},
            )
            continue
        evidence: dict[str, Any] = {"config_verify": mode, "cert_requested": probe.cert_requested}
        contradictions: list[str] = []
        if probe.cert_requested is False:
            contradictions.append("the endpoint sent no CertificateRequest")
        for kind in _EXPECT[mode]:
            attempt = probe.attempt(kind)
            if attempt is None:
                continue
            evidence[kind] = attempt.how
            if attempt.outcome == "accepted":
                contradictions.append(f"{_KIND_TEXT[kind]} was served ({attempt.how})")
        if contradictions:
            yield _finding(
                rule,
                probe,
                Status.FAIL,
                f"config says ssl_verify_client {mode}, but " + "; ".join(contradictions),
                evidence,
            )
        elif probe.cert_requested is None:
            yield _finding(
                rule,
                probe,
                Status.SKIPPED,
                "not judged: the handshake did not show a CertificateRequest",
                evidence,
            )
        else:
            yield _finding(
                rule,
                probe,
                Status.PASS,
                f"live endpoint enforces ssl_verify_client {mode} as configured",
                evidence,
            )


CHECKS: dict[str, CheckFn] = {
    "MTLS501": _must_reject("no_cert"),
    "MTLS502": _must_reject("untrusted"),
    "MTLS503": _must_reject("expired"),
    "MTLS504": _must_reject("revoked"),
    "MTLS505": check_valid_accepted,
    "MTLS506": check_ca_names,
    "MTLS507": check_legacy_versions,
    "MTLS508": check_server_cert,
    "MTLS509": check_reachable,
    "MTLS601": check_drift,
}

__all__ = ["CHECKS"]
