"""Turn scan inputs into probe specs and a ProbeConfig (the glue ``scan.py`` calls).

Targets come from ``--target``/``--targets-file`` (no config facts attached), and with
``--probe`` from the configs' TLS ``listen`` lines, which carry the line to point at and the
server's effective ``ssl_verify_client`` for the drift rule (MTLS601). Wildcard listens
(``443``, ``*:443``, ``[::]:443``) say nothing about where the server runs, so they need
``--probe-host``; guessing (say, 127.0.0.1) would probe a different machine than the config's.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..model import Target
from .targets import parse_target, parse_targets_file
from .types import ProbeSpec, Protocol

if TYPE_CHECKING:
    from ..nginx.effective import EffectiveConfig, Listen, Server
    from ..scan import ScanRequest
    from .runner import ProbeConfig

_WILDCARDS = {"*", "0.0.0.0", "[::]", "::"}


def _protocol(value: str) -> Protocol:
    if value == "http":
        return "http"
    if value == "tcp":
        return "tcp"
    if value == "auto":
        return "auto"
    raise UsageError(f"--protocol must be http, tcp or auto, got {value!r}")


def specs_from_targets(targets: Sequence[str], targets_file: str | None, protocol: str = "auto") -> list[ProbeSpec]:
    """``--target`` values then ``--targets-file`` lines, duplicates dropped, order kept."""
    proto = _protocol(protocol)
    found = [parse_target(t) for t in targets]
    if targets_file:
        found += parse_targets_file(targets_file)
    seen: set[Target] = set()
    specs: list[ProbeSpec] = []
    for target in found:
        if target not in seen:
            seen.add(target)
            specs.append(ProbeSpec(target=target, protocol=proto))
    return specs


def _sni(server: Server) -> str | None:
    """The first literal server name (not ``_``, a wildcard or a regex), as a client would send it."""
    for name in server.names:
        if not name or name == "_" or name.startswith("~") or "*" in name or name.startswith("."):
            continue
        try:
            ipaddress.ip_address(name)
            continue  # an IP is never sent as SNI
        except ValueError:
            return name
    return None


def _host(listen: Listen, probe_host: str | None) -> str | None:
    address = listen.address
    if address.startswith("unix:"):
        return None
    if address in _WILDCARDS:
        if probe_host is None:
            raise UsageError(
                f"{listen.directive.file}:{listen.directive.line}: 'listen {listen.text}' is on every "
                "address; give --probe-host HOST to say where to probe it"
            )
        return probe_host
    return address[1:-1] if address.startswith("[") and address.endswith("]") else address


def specs_from_config(cfg: EffectiveConfig, probe_host: str | None = None, protocol: str = "auto") -> list[ProbeSpec]:
    """One spec per (TLS listen, server name) of every server that builds an SSL context."""
    fallback = _protocol(protocol)
    specs: list[ProbeSpec] = []
    seen: set[Target] = set()
    for server in cfg.servers:
        if not server.has_ssl_context:
            continue
        for listen in server.listens:
            if not server.listen_is_tls(listen) or listen.port is None:
                continue
            host = _host(listen, probe_host)
            if host is None:
                continue
            target = Target(host=host, port=listen.port, sni=_sni(server))
            if target in seen:
                continue
            seen.add(target)
            kind_protocol: Protocol = "tcp" if server.kind == "stream" else "http"
            specs.append(
                ProbeSpec(
                    target=target,
                    protocol=kind_protocol if fallback == "auto" else fallback,
                    location=server.loc(listen.directive),
                    config_verify=server.verify,
                )
            )
    return specs


def probe_config_from_request(req: ScanRequest) -> ProbeConfig:
    """The CLI's file and timing options as a ProbeConfig (bad files: ``InputFileError``)."""
    from .runner import ProbeConfig

    return ProbeConfig.from_paths(
        client_cert=req.client_cert,
        client_key=req.client_key,
        client_key_pass_env=req.client_key_pass_env,
        ca_cert=req.ca_cert,
        ca_key=req.ca_key,
        revoked_cert=req.revoked_cert,
        revoked_key=req.revoked_key,
        trust=req.trust,
        timeout=req.timeout,
        concurrency=req.concurrency,
        protocol=_protocol(req.protocol),
    )
