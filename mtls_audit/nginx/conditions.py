"""Evaluate `if (...)` conditions and `map` lookups for the few variables the rules care about.

A correct guard must reject both `NONE` and `FAILED:<reason>` and let `SUCCESS` through; the
common mistakes (`= FAILED`, which never matches since 1.11.7 made it `FAILED:<reason>`, or
`~ FAILED`, which misses `NONE`) are caught by evaluating the condition for each value rather than
by pattern-matching its text. Anything we cannot evaluate returns None and counts as no guard.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from .load import Directive

VERIFY_VALUES = {
    "NONE": "NONE",
    "FAILED": "FAILED:self-signed certificate",
    "SUCCESS": "SUCCESS",
}


def build_maps(maps: Sequence[Directive]) -> dict[str, tuple[str, Directive]]:
    """Output variable -> (source expression, map block)."""
    out: dict[str, tuple[str, Directive]] = {}
    for m in maps:
        if len(m.args) == 2:
            out[m.args[1]] = (m.args[0], m)
    return out


def map_lookup(block: Directive, value: str) -> str:
    """What `map` yields for `value`: exact match, then regexes in order, then `default`.

    Exact (string) keys match ignoring case, as the map module documents and does
    (`ngx_hash_strlow`): `success 1;` matches `SUCCESS`.
    """
    default = ""
    regexes: list[tuple[str, str]] = []
    for e in block.block or ():
        key = e.name
        val = e.args[0] if e.args else ""
        if key in ("hostnames", "volatile", "include"):
            continue
        if key == "default":
            default = val
        elif key.startswith("~"):
            regexes.append((key, val))
        elif key.replace("\\", "").lower() == value.lower():
            return val
    for key, val in regexes:
        flags = re.IGNORECASE if key.startswith("~*") else 0
        pat = key[2:] if key.startswith("~*") else key[1:]
        try:
            if re.search(pat, value, flags):
                return val
        except re.error:
            continue
    return default


def resolve(
    var: str, env: Mapping[str, str], maps: Mapping[str, tuple[str, Directive]], depth: int = 0
) -> str | None:
    """The value of `$var` given base variables in `env`, following maps (chained ones too)."""
    if var in env:
        return env[var]
    if depth < 8 and var in maps:
        source, block = maps[var]
        src = _expand(source, env, maps, depth + 1)
        if src is None:
            return None
        return _expand(map_lookup(block, src), env, maps, depth + 1)
    return None


_VAR_RE = re.compile(r"\$(\{\w+\}|\w+)")


def _expand(
    text: str, env: Mapping[str, str], maps: Mapping[str, tuple[str, Directive]], depth: int
) -> str | None:
    unknown = False

    def sub(m: re.Match[str]) -> str:
        nonlocal unknown
        name = "$" + m.group(1).strip("{}")
        v = resolve(name, env, maps, depth)
        if v is None:
            unknown = True
            return ""
        return v

    out = _VAR_RE.sub(sub, text)
    return None if unknown else out


def eval_if(
    args: Sequence[str], env: Mapping[str, str], maps: Mapping[str, tuple[str, Directive]]
) -> bool | None:
    """Nginx `if` semantics for variable tests; None when the condition is not about `env`."""
    if not args:
        return None
    if len(args) == 1:
        if not args[0].startswith("$"):
            return None
        v = resolve(args[0], env, maps)
        return None if v is None else v not in ("", "0")
    if len(args) != 3 or not args[0].startswith("$"):
        return None
    left = resolve(args[0], env, maps)
    if left is None:
        return None
    op, right = args[1], args[2]
    if op == "=":
        return left == right
    if op == "!=":
        return left != right
    if op in ("~", "~*", "!~", "!~*"):
        flags = re.IGNORECASE if op.endswith("*") else 0
        try:
            hit = re.search(right, left, flags) is not None
        except re.error:
            return None
        return (not hit) if op.startswith("!") else hit
    return None


def rejects(block: Directive) -> bool:
    """An `if` body that ends the request with a 4xx (444 included): a real rejection."""
    for d in block.block or ():
        if d.name == "return" and d.args:
            code = d.args[0]
            if code.isdigit() and 400 <= int(code) <= 499:
                return True
    return False


def redirects_to_https(block: Directive) -> bool:
    """A `return 301|302|303|307|308 https://...` (or `rewrite ^ https://... permanent`)."""
    for d in block.block or ():
        if d.name == "return" and len(d.args) >= 2:
            if d.args[0] in ("301", "302", "303", "307", "308") and d.args[1].startswith("https://"):
                return True
        if d.name == "rewrite" and len(d.args) >= 2 and d.args[1].startswith("https://"):
            return True
    return False


def verify_guard_verdict(
    cond: Sequence[str], maps: Mapping[str, tuple[str, Directive]]
) -> tuple[bool, dict[str, bool | None]]:
    """Whether a condition is true for NONE and FAILED:* and false for SUCCESS."""
    truth = {
        k: eval_if(cond, {"$ssl_client_verify": v}, maps) for k, v in VERIFY_VALUES.items()
    }
    ok = truth["NONE"] is True and truth["FAILED"] is True and truth["SUCCESS"] is False
    return ok, truth


def mentions_verify(cond: Sequence[str], maps: Mapping[str, tuple[str, Directive]]) -> bool:
    """The condition reads `$ssl_client_verify`, directly or through a map."""
    if not cond:
        return False
    var = cond[0]
    seen = 0
    while var.startswith("$") and seen < 8:
        if var == "$ssl_client_verify":
            return True
        if var not in maps:
            return False
        var = maps[var][0]
        seen += 1
    return False
