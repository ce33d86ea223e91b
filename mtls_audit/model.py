"""The value types every other module shares.

This module imports nothing from the package: the loader, the checks, the prober and the
renderers all meet here, and dependencies point only towards it. Every type is frozen so a
renderer can never change what a check said (bandit's engine mutating results after the fact is
the habit we avoid).
"""

from __future__ import annotations

import enum
import functools
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = "1.0"


def _fill(obj: object, values: dict[str, Any]) -> None:
    """Initialise a frozen dataclass in one step.

    The generated `__init__` of a frozen dataclass calls `object.__setattr__` once per field; for
    the tens of thousands of findings and results of a large scan that was 5 us per Result, a
    fifth of the cost of a check. The instance stays frozen: only `__init__` writes its dict.
    """
    obj.__dict__.update(values)


class Severity(str, enum.Enum):
    """How bad a failing result is; the gate compares against it (`--fail-on`)."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        """Higher is worse, so `--fail-on high` means `rank >= HIGH.rank`."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {
    Severity.CRITICAL: 4,
    Severity.HIGH: 3,
    Severity.MEDIUM: 2,
    Severity.LOW: 1,
    Severity.INFO: 0,
}


class Status(str, enum.Enum):
    """Outcome of one rule on one subject. `error` means "could not look" and never passes."""

    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    SKIPPED = "skipped"


FAIL_ON_CHOICES = ("critical", "high", "medium", "low", "info", "never")


@dataclass(frozen=True)
class SourceLocation:
    """Where in the Nginx configuration a result points."""

    file: str
    """Path as Nginx names it: relative to the main config's folder when under it."""
    line: int
    """1-based line of the directive the result is about."""
    server_name: tuple[str, ...] = ()
    """`server_name` values of the enclosing server, for people reading the report."""
    listen: tuple[str, ...] = ()
    """`listen` arguments of the enclosing server, each joined with spaces."""
    root: str = field(default="", compare=False)
    """Absolute folder `file` is relative to (the main config's). Not in JSON; lets SARIF and
    GitLab, which want repository paths, point at the file from the scan's working directory."""


@dataclass(frozen=True)
class Target:
    """A live endpoint that was probed."""

    host: str
    port: int
    sni: str | None = None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" + (f"/{self.sni}" if self.sni else "")


@dataclass(frozen=True)
class Suppression:
    """Why a failing result does not count against the gate; it stays in the report."""

    kind: str
    """`inline` (a comment in the config) or `baseline` (a fingerprint in a baseline file)."""
    reason: str


@dataclass(frozen=True)
class RuleMeta:
    """A rule's documentation, read from `rules/<ID>.yaml`; checks are paired with it by ID."""

    id: str
    title: str
    severity: Severity
    description: str
    remediation: str
    references: tuple[str, ...] = ()
    compliance: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    cwe: tuple[int, ...] = ()
    kind: str = "config"
    """`config` (static), `live` (probe) or `drift` (both): decides which fixtures prove it."""
    source: str = ""
    """The YAML file the rule came from, for error messages about it."""

    @property
    def family(self) -> str:
        """`MTLS1xx` style family name, used to group JUnit suites."""
        return self.id[:-2] + "xx"


@dataclass(frozen=True)
class Finding:
    """What a check returns: one verdict on one subject, without the rule's metadata.

    The engine turns a Finding into a Result by adding the rule's title, remediation and
    references, so checks stay short and cannot disagree with the catalog.
    """

    rule_id: str
    status: Status
    message: str
    subject: str
    """A stable description of what was judged (e.g. `server api.internal :443`); feeds the fingerprint."""
    location: SourceLocation | None = None
    target: Target | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)
    severity: Severity | None = None
    """Overrides the rule's default severity where the catalog allows it."""

    def __init__(
        self,
        rule_id: str,
        status: Status,
        message: str,
        subject: str,
        location: SourceLocation | None = None,
        target: Target | None = None,
        evidence: Mapping[str, Any] | None = None,
        severity: Severity | None = None,
    ) -> None:
        _fill(self, {
            "rule_id": rule_id,
            "status": status,
            "message": message,
            "subject": subject,
            "location": location,
            "target": target,
            "evidence": {} if evidence is None else evidence,
            "severity": severity,
        })


@dataclass(frozen=True)
class Result:
    """One row of the report: a rule's verdict on one subject, with everything a reader needs."""

    rule_id: str
    title: str
    severity: Severity
    status: Status
    message: str
    remediation: str
    location: SourceLocation | None
    target: Target | None
    evidence: Mapping[str, Any]
    references: tuple[str, ...]
    compliance: Mapping[str, tuple[str, ...]]
    fingerprint: str
    subject: str
    suppressed: Suppression | None = None

    def __init__(
        self,
        rule_id: str,
        title: str,
        severity: Severity,
        status: Status,
        message: str,
        remediation: str,
        location: SourceLocation | None,
        target: Target | None,
        evidence: Mapping[str, Any],
        references: tuple[str, ...],
        compliance: Mapping[str, tuple[str, ...]],
        fingerprint: str,
        subject: str,
        suppressed: Suppression | None = None,
    ) -> None:
        _fill(self, {
            "rule_id": rule_id,
            "title": title,
            "severity": severity,
            "status": status,
            "message": message,
            "remediation": remediation,
            "location": location,
            "target": target,
            "evidence": evidence,
            "references": references,
            "compliance": compliance,
            "fingerprint": fingerprint,
            "subject": subject,
            "suppressed": suppressed,
        })

    @property
    def counts_against_gate(self) -> bool:
        """Failures and errors count; suppressed ones are shown but forgiven."""
        return self.status in (Status.FAIL, Status.ERROR) and self.suppressed is None


def fingerprint(rule_id: str, subject: str) -> str:
    """Stable across runs and line moves: the rule and the subject, never the line number."""
    return hashlib.sha256(f"{rule_id}\x00{subject}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Report:
    """Everything one run produced; renderers are functions of this and nothing else."""

    tool_version: str
    started_at: str
    finished_at: str
    configs: tuple[str, ...]
    targets: tuple[str, ...]
    results: tuple[Result, ...]
    rules: tuple[RuleMeta, ...]
    """Metadata of every rule that was evaluated, for SARIF's rule table."""
    fail_on: str = "high"
    schema_version: str = SCHEMA_VERSION
    source_root: str = ""
    """Absolute working directory of the scan: SARIF and GitLab paths are made relative to it."""

    def summary(self) -> dict[str, Any]:
        """Counts and the gate verdict, shared by every renderer and the exit code."""
        counted = self._summary
        return {**counted, "fail_by_severity": dict(counted["fail_by_severity"])}

    @functools.cached_property
    def _summary(self) -> dict[str, Any]:
        """Computed once: the renderers and the exit code each ask, and a large scan holds
        hundreds of thousands of results (the report is frozen, so the counts cannot change)."""
        counts = {s.value: 0 for s in Status}
        by_sev = {s.value: 0 for s in Severity}
        suppressed = 0
        gate = False
        fail_on = self.fail_on
        for r in self.results:
            counts[r.status.value] += 1
            if r.suppressed is not None:
                suppressed += 1
            elif r.status is Status.FAIL:
                by_sev[r.severity.value] += 1
            if not gate and gate_counts(r, fail_on):
                gate = True
        return {
            "results": len(self.results),
            "pass": counts["pass"],
            "fail": counts["fail"],
            "error": counts["error"],
            "skipped": counts["skipped"],
            "suppressed": suppressed,
            "fail_by_severity": by_sev,
            "fail_on": fail_on,
            "gate": "fail" if gate else "pass",
        }

    def gate_fails(self) -> bool:
        """Exit 1 when a failure reaches `fail_on` or anything errored (probes fail closed)."""
        return bool(self._summary["gate"] == "fail")


def gate_counts(result: Result, fail_on: str) -> bool:
    """Whether one result makes the gate fail under `fail_on`.

    An `error` always counts, even with `--fail-on never`: a gate that could not look must not
    say "pass" (the contract's exit code 1 covers "any result with status error").
    """
    if result.suppressed is not None:
        return False
    if result.status is Status.ERROR:
        return True
    if result.status is not Status.FAIL or fail_on == "never":
        return False
    return result.severity.rank >= Severity(fail_on).rank


def sorted_results(results: Sequence[Result]) -> list[Result]:
    """Failures and errors first, worst severity first; stable for identical inputs."""
    order = {Status.ERROR: 0, Status.FAIL: 1, Status.SKIPPED: 2, Status.PASS: 3}

    def key(r: Result) -> tuple[int, int, int, str, str, int]:
        loc = r.location
        return (
            1 if r.suppressed else 0,
            order[r.status],
            -r.severity.rank,
            r.rule_id,
            loc.file if loc else str(r.target or ""),
            loc.line if loc else 0,
        )

    return sorted(results, key=key)


_PLAIN = (str, int, float, bool, type(None))
_PLAIN_TYPES = frozenset(_PLAIN)


def jsonable(value: Any) -> Any:
    """Evidence is free-form; make sure it can be written as JSON (tuples, enums, sets).

    A direct walk rather than a dumps/loads round trip: it runs once per result, and a large
    scan has tens of thousands of results. Flat dicts come back as they are (the caller copies
    them); dicts and lists holding containers, and lists of any kind, come back as new objects.
    Plain values are tested inline rather than by a call each: most evidence is a dict of
    strings with a list of strings or two.
    """
    t = type(value)
    if t in _PLAIN_TYPES:
        return value
    plain = _PLAIN_TYPES
    if t is dict:
        # The common case, flat evidence of strings and numbers, returned as is (a plain loop:
        # `all(<generator>)` cost more than the rest of this function).
        for k, v in value.items():
            if type(v) not in plain or type(k) is not str:
                break
        else:
            return value
        return {k if type(k) is str else _key(k): v if type(v) in plain else jsonable(v)
                for k, v in value.items()}
    if t is list or t is tuple:
        return [v if type(v) in plain else jsonable(v) for v in value]
    if isinstance(value, _PLAIN) and not isinstance(value, enum.Enum):
        return value
    if isinstance(value, Mapping):
        return {_key(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [jsonable(v) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return sorted(items, key=str)
    return json_default(value)


def _key(k: Any) -> str:
    """A JSON object key: enums by value, anything else as text."""
    return str(k.value if isinstance(k, enum.Enum) else k)


def json_default(o: Any) -> Any:
    """`default=` hook for json.dumps: enums by value, sets sorted, anything else as text."""
    if isinstance(o, enum.Enum):
        return o.value
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    return str(o)
