"""The JSON report: the shape in docs/report-contract.md, which users' scripts parse.

Key order follows the contract (not sorted) so a human diffing two reports reads them the way the
documentation shows them. Output is ASCII-only (non-ASCII is escaped): the bytes are then the same
whatever encoding the file or pipe it is written to uses, and `json.loads` gives the text back.
Every report this writes validates against `mtls_audit/schema/report.schema.json`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any, TextIO

from ..model import (
    Report,
    Result,
    Severity,
    SourceLocation,
    Status,
    Suppression,
    Target,
    json_default,
    jsonable,
    sorted_results,
)


def render(
    report: Report,
    *,
    show_passed: bool = False,
    color: bool = False,
    verbose: bool = False,
) -> str:
    """Passes are always included, whatever `show_passed` says: compliance needs the evidence.

    The envelope is indented; each result is one compact line. That keeps a 30,000-result report
    readable and diffable line by line, and lets json use its C encoder for the bulk (with
    `indent` it falls back to the pure-Python one, ten times slower).
    """
    buf = io.StringIO()
    write(report, buf)
    return buf.getvalue()


def write(report: Report, out: TextIO) -> None:
    """Stream the same text as `render` to `out`, one result at a time.

    A 20,000-server audit has 450,000 results and a 500 MB report: building it as one string
    (plus the list of its parts) tripled peak memory. The CLI streams to its output file.
    """
    doc = report_dict(report, raw_evidence=True, with_results=False)
    head = json.dumps(doc, indent=2)
    results = sorted_results(report.results)
    if not results:
        out.write(head[:-2] + ',\n  "results": []\n}\n')
        return
    out.write(head[:-2] + ',\n  "results": [\n    ')
    rule_parts: dict[tuple[Any, ...], tuple[str, str, str]] = {}
    locations: dict[int, str] = {}  # by id(): every result (so every location) lives until the end
    batch: list[str] = []
    sep = ""
    for r in results:
        batch.append(_result_line(r, rule_parts, locations))
        if len(batch) == 1000:
            out.write(sep + ",\n    ".join(batch))
            sep = ",\n    "
            batch.clear()
    if batch:
        out.write(sep + ",\n    ".join(batch))
    out.write("\n  ]\n}\n")


def _result_line(r: Result, cache: dict[tuple[Any, ...], tuple[str, str, str]], locations: dict[int, str]) -> str:
    """`json.dumps(result_dict(r))`, byte for byte, with the rule's constant parts encoded once.

    Title, remediation, references and compliance repeat for every result of a rule (hundreds
    of thousands of times in a large audit): they are encoded once per rule, severity and status,
    into the three runs of text between the per-result values. Checks share location objects
    between the results of a server, so those are encoded once too. Keys are ids: every result,
    and so everything it points to, lives until the report is written.
    """
    key = (r.rule_id, id(r.title), id(r.remediation), id(r.references), id(r.compliance), id(r.severity), id(r.status))
    parts = cache.get(key)
    if parts is None:
        compliance = json.dumps({k: list(v) for k, v in r.compliance.items()})
        parts = cache[key] = (
            f'{{"rule_id": {_encode_str(r.rule_id)}, "title": {json.dumps(r.title)}, '
            f'"severity": {_VALUES[r.severity]}, "status": {_VALUES[r.status]}, "message": ',
            f', "remediation": {json.dumps(r.remediation)}, "location": ',
            f', "references": {json.dumps(list(r.references))}, "compliance": {compliance}, "fingerprint": ',
        )
    head, middle, tail = parts
    loc = r.location
    if loc is None:
        location = "null"
    else:
        location = locations.get(id(loc)) or locations.setdefault(id(loc), _location_json(loc))
    target = "null" if r.target is None else json.dumps(target_dict(r.target))
    suppressed = "null" if r.suppressed is None else json.dumps(suppression_dict(r.suppressed))
    evidence = _encode_evidence(r.evidence if type(r.evidence) is dict else dict(r.evidence)) if r.evidence else "{}"
    return (
        f"{head}{_encode_str(r.message)}{middle}{location}, \"target\": {target}, \"evidence\": {evidence}"
        f'{tail}{_encode_str(r.fingerprint)}, "suppressed": {suppressed}}}'
    )


def _location_json(loc: SourceLocation) -> str:
    enc = _encode_str
    names = ", ".join(enc(n) for n in loc.server_name)
    listens = ", ".join(enc(x) for x in loc.listen)
    return (
        f'{{"file": {enc(loc.file)}, "line": {int(loc.line)}, "server_name": [{names}], "listen": [{listens}]}}'
    )


_VALUES: dict[Any, str] = {m: json.dumps(m.value) for m in (*Severity, *Status)}


def _evidence_encoder() -> Callable[[Any], str]:
    """One encoder for every result's evidence, as `json.dumps(default=json_default)` writes it.

    json.dumps(default=...) builds a new JSONEncoder per call, and JSONEncoder.encode wraps the
    C encoder in two Python layers; per result that was most of the cost of the evidence.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator (PyPy): the documented path
        return json.JSONEncoder(default=json_default).encode
    chunks = make(None, json_default, json.encoder.encode_basestring_ascii, None, ": ", ", ", False, False, True)
    return lambda value: "".join(chunks(value, 0))


_encode_evidence = _evidence_encoder()
_encode_str = json.encoder.encode_basestring_ascii


def report_dict(report: Report, *, raw_evidence: bool = False, with_results: bool = True) -> dict[str, Any]:
    """The report as plain JSON values; shared so other formats embed the same shapes."""
    doc = {
        "schema_version": report.schema_version,
        "tool": {"name": "mtls-audit", "version": report.tool_version},
        "started_at": report.started_at,
        "finished_at": report.finished_at,
        "inputs": {"configs": list(report.configs), "targets": list(report.targets)},
        "summary": jsonable(report.summary()),
    }
    if with_results:
        doc["results"] = [result_dict(r, raw_evidence=raw_evidence) for r in sorted_results(report.results)]
    return doc


def result_dict(result: Result, *, raw_evidence: bool = False) -> dict[str, Any]:
    """One entry of `results[]`, keys in contract order.

    With `raw_evidence` the evidence is left for json.dumps(default=json_default) to convert,
    instead of a dumps/loads round trip per result here.
    """
    return {
        "rule_id": result.rule_id,
        "title": result.title,
        "severity": result.severity.value,
        "status": result.status.value,
        "message": result.message,
        "remediation": result.remediation,
        "location": location_dict(result.location),
        "target": target_dict(result.target),
        "evidence": dict(result.evidence) if raw_evidence else jsonable(dict(result.evidence)),
        "references": list(result.references),
        "compliance": {k: list(v) for k, v in result.compliance.items()},
        "fingerprint": result.fingerprint,
        "suppressed": suppression_dict(result.suppressed),
    }


def location_dict(location: SourceLocation | None) -> dict[str, Any] | None:
    """`null` for live-only results, so scripts can tell them apart without a type field."""
    if location is None:
        return None
    return {
        "file": location.file,
        "line": location.line,
        "server_name": list(location.server_name),
        "listen": list(location.listen),
    }


def target_dict(target: Target | None) -> dict[str, Any] | None:
    """`null` for config-only results; `sni` stays `null` (not "") when none was sent."""
    if target is None:
        return None
    return {"host": target.host, "port": target.port, "sni": target.sni}


def suppression_dict(suppression: Suppression | None) -> dict[str, str] | None:
    """Suppressed results stay in the report; this says who forgave them and why."""
    if suppression is None:
        return None
    return {"kind": suppression.kind, "reason": suppression.reason}
