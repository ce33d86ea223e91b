"""Output formats: each a pure function of a `Report` returning the text to write.

Only the CLI does I/O; a renderer gets the frozen report and gives back a string, so every format
is testable without files or a terminal. The formats pull in tabulate and xml.etree, which a
`rules list` or a failed run never needs, so this package imports its submodules only when a
format is asked for (`get_renderer`), and `RENDERERS` holds lazy stand-ins rather than the
functions themselves.

The helpers below are the few facts every format has to agree on (where a result points, which
rule metadata describes it), kept here so the table, SARIF and JUnit cannot drift apart.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Mapping
from typing import Protocol

from ..model import Report, Result, RuleMeta, SourceLocation

FORMATS: tuple[str, ...] = ("table", "json", "sarif", "junit", "gitlab", "markdown")
"""Format names as `--format` accepts them; the first is the default."""

_MODULES: Mapping[str, str] = {
    "table": "table",
    "json": "json_",  # not `json`: a submodule named like the stdlib module only confuses readers
    "sarif": "sarif",
    "junit": "junit",
    "gitlab": "gitlab",
    "markdown": "markdown",
}


class Renderer(Protocol):
    """The signature every format shares, so the CLI can pass the same options to any of them."""

    def __call__(
        self,
        report: Report,
        *,
        show_passed: bool = False,
        color: bool = False,
        verbose: bool = False,
    ) -> str: ...


def get_renderer(name: str) -> Renderer:
    """Import the format's module on first use; unknown names fail with the list of valid ones."""
    try:
        module = _MODULES[name]
    except KeyError:
        raise ValueError(f"unknown output format {name!r}; choose one of {', '.join(FORMATS)}") from None
    render: Renderer = importlib.import_module(f"{__name__}.{module}").render
    return render


def _lazy(name: str) -> Callable[..., str]:
    """A stand-in that resolves the real renderer when called, keeping this import cheap."""

    def render(
        report: Report,
        *,
        show_passed: bool = False,
        color: bool = False,
        verbose: bool = False,
    ) -> str:
        return get_renderer(name)(report, show_passed=show_passed, color=color, verbose=verbose)

    render.__name__ = render.__qualname__ = f"render_{name}"
    render.__doc__ = f"Render a report as {name} (imports the format on first call)."
    return render


RENDERERS: dict[str, Callable[..., str]] = {name: _lazy(name) for name in FORMATS}
"""Format name -> renderer, for callers that want a mapping (e.g. to build `--format` choices)."""


def where(result: Result) -> str:
    """One human-readable pointer: `file:line`, the probed endpoint, or both for drift results."""
    parts = []
    if result.location is not None:
        parts.append(f"{result.location.file}:{result.location.line}")
    if result.target is not None:
        parts.append(str(result.target))
    if len(parts) == 2:
        return f"{parts[0]} ({parts[1]})"
    return parts[0] if parts else "-"


def repo_path(report: Report, location: SourceLocation) -> str:
    """The location's file relative to the scan's working directory, for SARIF and GitLab.

    Code scanning and merge-request widgets resolve paths against the repository checkout, where
    the scan runs; `location.file` is relative to the main config's folder instead. Files outside
    the working directory (an `nginx -T` dump's /etc paths) keep the path Nginx gave them.
    """
    if not location.root or not report.source_root or os.path.isabs(location.file):
        return location.file
    full = os.path.normpath(os.path.join(location.root, location.file))
    rel = os.path.relpath(full, report.source_root)
    return location.file if rel.startswith("..") else rel


def rule_catalog(report: Report) -> dict[str, RuleMeta]:
    """Rule metadata for every rule a result names, in catalog order then first appearance.

    SARIF indexes rules and JUnit groups by family, so a result whose rule is missing from
    `report.rules` (an engine bug, or a hand-built report) still gets a descriptor, made from what
    the result itself carries, instead of a dangling `ruleIndex` or a crash.
    """
    catalog: dict[str, RuleMeta] = {}
    for rule in report.rules:
        catalog.setdefault(rule.id, rule)
    for result in report.results:
        if result.rule_id not in catalog:
            catalog[result.rule_id] = RuleMeta(
                id=result.rule_id,
                title=result.title,
                severity=result.severity,
                description=result.title,
                remediation=result.remediation,
                references=result.references,
                compliance=result.compliance,
            )
    return catalog


def is_nginx_line(line: str) -> bool:
    """Whether a remediation line is Nginx config rather than prose, for fencing and hints.

    Config lines end like a directive or a block (`;`, `{`, `}`) or are `#` comments; prose in
    the catalog ends with `.` or `:` before a snippet.
    """
    stripped = line.strip()
    return stripped.endswith((";", "{", "}")) or stripped.startswith("#")


# C0 and C1 controls, DEL, the bidi overrides and isolates ("Trojan Source"), lone surrogates and
# the two non-characters XML 1.0 forbids. Tab and newline are left alone only on request.
_UNSAFE_CLASS = r"\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff"
_UNSAFE = re.compile(f"[{_UNSAFE_CLASS}]")
_UNSAFE_OR_BREAK = re.compile(f"[{_UNSAFE_CLASS}\\t\\n]")


def safe_text(text: str, *, keep_newlines: bool = True) -> str:
    """Make quoted text inert: each unsafe character becomes a visible `\\xNN`/`\\uNNNN` escape.

    Messages and evidence quote what a probed server sent (certificate DNs, CA names). A hostile
    endpoint must not be able to recolour or rewrite the auditor's terminal, reorder text, or
    make the JUnit file unparseable (XML 1.0 cannot carry most control characters at all).
    """
    pattern = _UNSAFE if keep_newlines else _UNSAFE_OR_BREAK
    return pattern.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
