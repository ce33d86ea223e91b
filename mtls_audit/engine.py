"""Rule catalog loading and rule execution.

Each rule is a YAML file (its documentation) paired by ID with a Python check (its logic).
The pairing is explicit (each check family exports a `CHECKS` table) and strict: a YAML with no
check, a check with no YAML, a duplicate ID, an unknown key or a bad severity stops the run with
exit 2, because a catalog that silently drops a rule is a gate that silently passes.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import re
import stat
import sys
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .context import CheckContext, CheckFn
from .errors import RuleFileError
from .model import (
    Finding,
    Result,
    RuleMeta,
    Severity,
    SourceLocation,
    Status,
    Suppression,
    fingerprint,
    jsonable,
)

RULE_KEYS = {
    "id": str,
    "title": str,
    "severity": str,
    "kind": str,
    "description": str,
    "remediation": str,
    "references": list,
    "compliance": dict,
    "cwe": list,
    "tags": list,
    "params": dict,
}
REQUIRED_KEYS = ("id", "title", "severity", "kind", "description", "remediation")
RULE_ID_RE = re.compile(r"^[A-Z][A-Z0-9]{2,15}[0-9]{3}$")
RULE_KINDS = ("config", "live", "drift")
CHECK_MODULES = (
    "mtls_audit.checks.client_verify",
    "mtls_audit.checks.trust",
    "mtls_audit.checks.upstream",
    "mtls_audit.checks.protocols",
    "mtls_audit.checks.live",
)


def builtin_rules_dir() -> Path:
    """`rules/` ships inside the wheel as package data; in a checkout it is the top-level folder."""
    here = Path(__file__).resolve().parent
    for cand in (here / "rules", here.parent / "rules"):
        if cand.is_dir():
            return cand
    raise RuleFileError(f"built-in rules folder not found next to {here}")


MAX_RULE_BYTES = 1024 * 1024
"""A rule YAML is a few KiB; a bigger file is not a rule, and is refused before it is read."""
_SCALARS = (str, int, float)
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _one_line(text: str) -> str:
    """Error text on one line: whitespace runs collapsed, other controls escaped."""
    text = " ".join(text.split())
    return _CONTROL_RE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _read_rule_text(path: Path) -> str:
    """The file's text, refusing FIFOs, devices and oversized files without blocking on them."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise RuleFileError(f"{path}: not a regular file")
    if st.st_size > MAX_RULE_BYTES:
        raise RuleFileError(f"{path}: rule file is {st.st_size} bytes, over the {MAX_RULE_BYTES} byte limit")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise RuleFileError(f"{path}: not a regular file")
        data = f.read(MAX_RULE_BYTES + 1)
    if len(data) > MAX_RULE_BYTES:
        raise RuleFileError(f"{path}: rule file is over the {MAX_RULE_BYTES} byte limit")
    return data.decode("utf-8")


def parse_rule(path: Path) -> RuleMeta:
    """Read one rule YAML strictly: unknown keys and wrong types are errors, not warnings.

    Every error is one line (the CLI prints it after `mtls-audit: error: `), whatever the YAML
    parser's message or the keys of a hostile file hold.
    """
    try:
        return _parse_rule(path)
    except RuleFileError as e:
        raise RuleFileError(_one_line(str(e))) from e


def _parse_rule(path: Path) -> RuleMeta:
    import yaml

    try:
        # CSafeLoader is safe_load's C implementation (same restricted constructors), 10x faster:
        # the catalog is read on every run, and `rules list` must start in well under 0.3 s.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        data = yaml.load(_read_rule_text(path), Loader=loader)
    except (OSError, UnicodeDecodeError) as e:
        raise RuleFileError(f"{path}: cannot read rule file: {e}") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise RuleFileError(f"{where}: invalid YAML: {getattr(e, 'problem', None) or e}") from e
    if not isinstance(data, dict):
        raise RuleFileError(f"{path}: a rule file must be a mapping of keys")
    unknown = sorted(set(data) - set(RULE_KEYS))
    if unknown:
        raise RuleFileError(f"{path}: unknown key(s): {', '.join(map(str, unknown))}")
    for key in REQUIRED_KEYS:
        if key not in data:
            raise RuleFileError(f"{path}: missing required key '{key}'")
    for key, typ in RULE_KEYS.items():
        if key in data and not isinstance(data[key], typ):
            raise RuleFileError(f"{path}: '{key}' must be a {typ.__name__}")
    rid = data["id"]
    if not RULE_ID_RE.match(rid):
        raise RuleFileError(f"{path}: bad rule id {rid!r}")
    if path.stem != rid:
        raise RuleFileError(f"{path}: file name must be {rid}.yaml")
    try:
        sev = Severity(data["severity"])
    except ValueError:
        raise RuleFileError(
            f"{path}: bad severity {data['severity']!r} (one of {', '.join(s.value for s in Severity)})"
        ) from None
    if data["kind"] not in RULE_KINDS:
        raise RuleFileError(f"{path}: bad kind {data['kind']!r} (one of {', '.join(RULE_KINDS)})")
    # Lists hold scalars only: YAML aliases can nest a list in itself a billion times over
    # (a few hundred bytes), and str() of such an item never finishes.
    for key in ("references", "tags", "cwe"):
        if not all(isinstance(v, _SCALARS) for v in data.get(key) or ()):
            raise RuleFileError(f"{path}: '{key}' must be a list of plain values")
    compliance = {}
    for fw, ids in (data.get("compliance") or {}).items():
        if not isinstance(ids, list) or not all(isinstance(i, _SCALARS) for i in ids):
            raise RuleFileError(f"{path}: compliance.{fw} must be a list of plain values")
        compliance[str(fw)] = tuple(str(i) for i in ids)
    try:
        cwe = tuple(int(c) for c in data.get("cwe") or ())
    except (TypeError, ValueError):
        raise RuleFileError(f"{path}: 'cwe' must be a list of integers") from None
    return RuleMeta(
        id=rid,
        title=data["title"].strip(),
        severity=sev,
        kind=data["kind"],
        description=data["description"].strip(),
        remediation=data["remediation"].strip(),
        references=tuple(str(r) for r in data.get("references") or ()),
        compliance=compliance,
        params=dict(data.get("params") or {}),
        tags=tuple(str(t) for t in data.get("tags") or ()),
        cwe=cwe,
        source=str(path),
    )


@dataclass(frozen=True)
class Catalog:
    """The rules of one run, each with its check."""

    rules: tuple[RuleMeta, ...]
    checks: Mapping[str, CheckFn]

    def get(self, rule_id: str) -> RuleMeta | None:
        return next((r for r in self.rules if r.id == rule_id), None)


def builtin_checks() -> dict[str, CheckFn]:
    checks: dict[str, CheckFn] = {}
    for mod_name in CHECK_MODULES:
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as e:
            if e.name == mod_name:
                continue  # a family not built yet has no rules either
            raise
        _add_checks(checks, getattr(mod, "CHECKS", {}), mod_name)
    return checks


def _add_checks(into: dict[str, CheckFn], table: Mapping[str, CheckFn], origin: str) -> None:
    for rid, fn in table.items():
        if rid in into:
            raise RuleFileError(f"{origin}: check {rid} is registered twice")
        into[rid] = fn


def _user_checks(folder: Path) -> dict[str, CheckFn]:
    """`--rules DIR` may hold Python files exporting `CHECKS` for the YAMLs beside them."""
    checks: dict[str, CheckFn] = {}
    for py in sorted(folder.glob("*.py")):
        if not py.is_file():  # importing a FIFO would block forever
            raise RuleFileError(f"{py}: not a regular file")
        # A unique name per file, registered while it runs: @dataclass (and anything else that
        # looks its module up in sys.modules) fails in a module that is not there.
        tag = hashlib.sha256(str(py.resolve()).encode()).hexdigest()[:12]
        name = f"mtls_audit_user_rules.{py.stem}_{tag}"
        spec = importlib.util.spec_from_file_location(name, py)
        if spec is None or spec.loader is None:
            raise RuleFileError(f"{py}: cannot load")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        try:
            spec.loader.exec_module(mod)
        except Exception as e:
            sys.modules.pop(name, None)
            raise RuleFileError(f"{py}: failed to import: {type(e).__name__}: {e}") from e
        table = getattr(mod, "CHECKS", None)
        if not isinstance(table, dict):
            raise RuleFileError(f"{py}: must define a CHECKS dict of rule id -> check function")
        _add_checks(checks, table, str(py))
    return checks


def load_catalog(extra_dirs: Sequence[str] = (), *, with_checks: bool = True) -> Catalog:
    """Built-in rules plus `--rules` folders, strictly paired with their checks.

    `with_checks=False` reads only the built-in YAML (for `rules list/show/docs`): importing the
    checks pulls in cryptography, which alone would take `rules list` past 0.3 s. Pairing is
    still enforced by every scan and by the test suite.
    """
    dirs = [builtin_rules_dir()]
    if not with_checks and not extra_dirs:
        rules_only = [parse_rule(path) for path in sorted(dirs[0].glob("*.y*ml"))]
        return Catalog(tuple(sorted(rules_only, key=lambda r: r.id)), {})
    checks = builtin_checks()
    for extra in extra_dirs:
        p = Path(extra)
        if not p.is_dir():
            raise RuleFileError(f"{extra}: --rules must be a folder of rule YAML files")
        dirs.append(p)
        for rid, fn in _user_checks(p).items():
            if rid in checks:
                raise RuleFileError(f"{p}: check {rid} duplicates a built-in check")
            checks[rid] = fn
    rules: dict[str, RuleMeta] = {}
    for folder in dirs:
        for path in sorted(folder.glob("*.y*ml")):
            meta = parse_rule(path)
            if meta.id in rules:
                raise RuleFileError(
                    f"{path}: duplicate rule id {meta.id} (also in {rules[meta.id].source})"
                )
            rules[meta.id] = meta
    missing_check = sorted(set(rules) - set(checks))
    if missing_check:
        rid = missing_check[0]
        raise RuleFileError(f"{rules[rid].source}: rule {rid} has no registered check")
    missing_yaml = sorted(set(checks) - set(rules))
    if missing_yaml:
        rid = missing_yaml[0]
        code = getattr(checks[rid], "__code__", None)
        where = f"{code.co_filename}: " if code is not None else ""
        raise RuleFileError(f"{where}check {rid} has no rule file {rid}.yaml")
    ordered = tuple(sorted(rules.values(), key=lambda r: r.id))
    return Catalog(ordered, {r.id: checks[r.id] for r in ordered})


def run_checks(
    catalog: Catalog,
    ctx: CheckContext,
    kinds: Iterable[str] = RULE_KINDS,
    baseline: Mapping[str, str] | None = None,
) -> list[Result]:
    """Run every rule of the given kinds; a crashing check becomes an `error` result."""
    wanted = set(kinds)
    results: list[Result] = []
    for rule in catalog.rules:
        if rule.kind not in wanted:
            continue
        fn = catalog.checks[rule.id]
        try:
            converted = []
            for f in fn(ctx, rule):
                if not isinstance(f, Finding) or not isinstance(f.status, Status):
                    raise TypeError(f"check returned {type(f).__name__}, not a Finding with a Status")
                converted.append(to_result(rule, f, ctx, baseline))
            results.extend(converted)
        except (Exception, SystemExit) as e:  # a bug in one check must not hide the others, nor pass
            tb = traceback.extract_tb(sys.exc_info()[2])
            where = f"{os.path.basename(tb[-1].filename)}:{tb[-1].lineno}" if tb else "?"
            crash = Finding(
                rule_id=rule.id,
                status=Status.ERROR,
                message=f"check crashed: {type(e).__name__}: {str(e)[:300]} ({where})",
                subject="check",
            )
            results.append(to_result(rule, crash, ctx, baseline))
    return results


def to_result(
    rule: RuleMeta,
    f: Finding,
    ctx: CheckContext,
    baseline: Mapping[str, str] | None = None,
) -> Result:
    """Attach the rule's metadata, the fingerprint and any suppression to a finding."""
    fp = fingerprint(rule.id, f.subject)
    suppressed: Suppression | None = None
    if f.status is Status.FAIL:
        if f.location is not None and ctx.config is not None:
            s = ctx.config.loaded.suppression_for(rule.id, f.location.file, f.location.line)
            if s is not None:
                suppressed = Suppression("inline", s.reason or "suppressed inline")
        if suppressed is None and baseline and fp in baseline:
            suppressed = Suppression("baseline", baseline[fp] or "in baseline")
    evidence: Any = {}
    if f.evidence:
        # One copy, never shared with the check: jsonable returns flat dicts as they are and
        # anything it had to convert as a new dict.
        evidence = jsonable(f.evidence)
        if evidence is f.evidence:
            evidence = dict(evidence)
    location = f.location
    if location is not None and ctx.config is not None and not location.root:
        # Checks building their own locations may leave the root out; the config knows it.
        location = SourceLocation(
            location.file, location.line, location.server_name, location.listen, ctx.config.loaded.root_dir
        )
    # Positional: this runs once per result, tens of thousands of times in a large scan.
    return Result(
        rule.id,
        rule.title,
        f.severity or rule.severity,
        f.status,
        f.message,
        rule.remediation,
        location,
        f.target,
        evidence,
        rule.references,
        rule.compliance,
        fp,
        f.subject,
        suppressed,
    )
