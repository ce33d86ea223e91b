"""What a check may read: the effective config, probe observations, and run options.

Checks are pure functions `(CheckContext, RuleMeta) -> Iterable[Finding]`: they never open
sockets or files themselves (certificate facts come from a cache in the context), so every rule
is testable without a network.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .model import Finding, RuleMeta

if TYPE_CHECKING:
    from .nginx.effective import EffectiveConfig
    from .probe.types import EndpointProbe


@dataclass(frozen=True)
class Options:
    """Run-wide knobs that change what rules conclude."""

    require_mtls: tuple[str, ...] = ()
    """`--require-mtls` patterns: a server_name glob, or `:port`."""
    require_upstream_mtls: tuple[str, ...] = ()
    nginx_version: tuple[int, int, int] | None = None
    warn_days: int = 30
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


@dataclass(frozen=True)
class CheckContext:
    """Inputs shared by every check in one run."""

    config: EffectiveConfig | None
    probes: Sequence[EndpointProbe] = ()
    options: Options = field(default_factory=Options)


CheckFn = Callable[[CheckContext, RuleMeta], Iterable[Finding]]
