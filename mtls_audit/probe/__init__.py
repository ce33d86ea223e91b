"""Live probes: connect to endpoints as different clients and record how they answer.

Kept light on purpose: importing ``mtls_audit.probe`` loads no TLS library, so ``mtls-audit
--help`` and config-only scans stay fast. The heavy parts are imported on first use:

* ``mtls_audit.probe.types``: the observation types (no OpenSSL).
* ``mtls_audit.probe.targets``: ``parse_target``, ``parse_targets_file`` (no OpenSSL).
* ``mtls_audit.probe.runner``: ``probe_all``, ``ProbeConfig`` (imports pyOpenSSL).
* ``mtls_audit.probe.identities``: minted and loaded client identities (imports cryptography).

Attribute access (``mtls_audit.probe.probe_all``) imports the owning module lazily.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .identities import ClientIdentity, Identities
    from .runner import ProbeConfig, probe_all
    from .targets import parse_target, parse_targets_file
    from .types import Attempt, EndpointProbe, ProbeSpec, ServerCert

_LAZY = {
    "Attempt": "types",
    "EndpointProbe": "types",
    "ProbeSpec": "types",
    "ServerCert": "types",
    "parse_target": "targets",
    "parse_targets_file": "targets",
    "ProbeConfig": "runner",
    "probe_all": "runner",
    "ClientIdentity": "identities",
    "Identities": "identities",
}

__all__ = [
    "Attempt",
    "ClientIdentity",
    "EndpointProbe",
    "Identities",
    "ProbeConfig",
    "ProbeSpec",
    "ServerCert",
    "parse_target",
    "parse_targets_file",
    "probe_all",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
