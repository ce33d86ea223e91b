"""Load an Nginx configuration into one tree of directives that remember file and line.

crossplane parses each file on its own (`single=True`); includes are resolved here, because
crossplane's own resolution cannot honour `--prefix`, cannot read an `nginx -T` dump, and
silently ignores include cycles. Nginx resolves a relative include against its conf prefix
(the main config's folder unless `-p`/`-c` say otherwise), expands globs sorted (glob(3)
without GLOB_NOSORT), accepts a glob that matches nothing, and refuses a missing explicit file.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

MAX_CONFIG_BYTES = 64 * 1024 * 1024
"""Refuse bigger files: a real nginx.conf is kilobytes; hundreds of MB is a mistake or an attack."""
MAX_INCLUDE_DEPTH = 64
MAX_DIRECTIVES = 5_000_000

SUPPRESS_RE = re.compile(
    r"mtls-audit:\s*ignore\s+(?P<ids>[A-Z0-9]+(?:\s*,\s*[A-Z0-9]+)*)"
    r"(?:\s+reason\s*=\s*\"(?P<reason>[^\"]*)\")?"
)
DUMP_MARKER_RE = re.compile(r"^# configuration file (?P<path>.+):\s*$")


@dataclass(eq=False)
class Directive:
    """One directive with its arguments, where it was written, and its block if any."""

    name: str
    args: list[str]
    file: str
    """Display path: relative to the main config's folder when under it (what Nginx users see)."""
    line: int
    block: list[Directive] | None = None

    def find(self, name: str) -> list[Directive]:
        """Direct children called `name`: Nginx directives merge level by level, never deeper."""
        return [d for d in self.block or () if d.name == name]

    def first(self, name: str) -> Directive | None:
        for d in self.block or ():
            if d.name == name:
                return d
        return None

    def walk(self) -> Iterator[Directive]:
        """This directive's descendants, depth first, in file order."""
        for d in self.block or ():
            yield d
            if d.block is not None:
                yield from d.walk()

    def __repr__(self) -> str:
        return f"<{self.name} {' '.join(self.args)} @{self.file}:{self.line}>"


@dataclass(frozen=True)
class InlineSuppression:
    """`# mtls-audit: ignore ID reason="..."` found in a config file."""

    rule_ids: tuple[str, ...]
    reason: str
    file: str
    line: int


@dataclass
class LoadedConfig:
    """The whole configuration after include expansion."""

    main_file: str
    """The main config as given (absolute path, or the dump's first file)."""
    prefix: str
    root: Directive
    """A synthetic `main` block holding the top-level directives."""
    files: list[str] = field(default_factory=list)
    """Display paths of every file read, in the order Nginx reads them."""
    suppressions: dict[tuple[str, int], list[InlineSuppression]] = field(default_factory=dict)
    directive_count: int = 0

    def suppression_for(self, rule_id: str, file: str, line: int) -> InlineSuppression | None:
        """A suppression on the directive's line or on the line just before it."""
        for ln in (line, line - 1):
            for s in self.suppressions.get((file, ln), ()):
                if rule_id in s.rule_ids:
                    return s
        return None


class _Source:
    """Where file contents come from: the disk, or the files of an `nginx -T` dump."""

    def __init__(self, files: Mapping[str, str] | None = None) -> None:
        self.dump = files
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._physical: dict[str, str] = {}

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()

    def expand(self, pattern: str) -> list[str]:
        if self.dump is not None:
            return sorted(p for p in self.dump if fnmatch.fnmatchcase(p, pattern))
        return sorted(glob.glob(pattern))

    def check_file(self, path: str) -> str | None:
        """Why Nginx could not read this file, or None when it can."""
        if self.dump is not None:
            return None if path in self.dump else "no such file in the nginx -T dump"
        try:
            st = os.stat(path)
        except OSError as e:
            return e.strerror or str(e)
        import stat as _stat

        if _stat.S_ISDIR(st.st_mode):
            return "is a directory"
        if not _stat.S_ISREG(st.st_mode):
            return "not a regular file"
        if st.st_size > MAX_CONFIG_BYTES:
            return f"file is {st.st_size} bytes, over the {MAX_CONFIG_BYTES} byte limit"
        if not os.access(path, os.R_OK):
            return "permission denied"
        return None

    def physical(self, path: str) -> str:
        """A path crossplane can open; dump files are written to a private temp dir once."""
        if self.dump is None:
            return path
        if path not in self._physical:
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="mtls-audit-dump-")
            phys = os.path.join(self._tmp.name, f"{len(self._physical)}.conf")
            with open(phys, "w", encoding="utf-8", errors="replace") as f:
                f.write(self.dump[path])
            self._physical[path] = phys
        return self._physical[path]


def _display(path: str, base: str) -> str:
    try:
        rel = os.path.relpath(path, base)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


class _Loader:
    def __init__(self, main: str, prefix: str, source: _Source) -> None:
        self.main = main
        self.prefix = prefix
        self.base = os.path.dirname(main)
        self.source = source
        self.parsed: dict[str, list[dict[str, Any]]] = {}
        self.files: list[str] = []
        self.suppressions: dict[tuple[str, int], list[InlineSuppression]] = {}
        self.count = 0

    def display(self, path: str) -> str:
        return _display(path, self.base)

    def parse_file(self, path: str) -> list[dict[str, Any]]:
        """crossplane's payload for one file, parsed once however often it is included."""
        cached = self.parsed.get(path)
        if cached is not None:
            return cached
        import crossplane  # heavy-ish import; only scans need it

        disp = self.display(path)
        try:
            payload = crossplane.parse(
                self.source.physical(path),
                single=True,
                comments=True,
                check_ctx=False,
                check_args=True,
                catch_errors=True,
            )
        except Exception as e:  # crossplane raises plain exceptions on some broken input
            raise ConfigError(f"cannot parse: {_clean(str(e))}", disp) from e
        if payload.get("status") != "ok":
            err = (payload.get("errors") or [{}])[0]
            msg = _clean(str(err.get("error", "parse failed")))
            raise ConfigError(msg, disp, err.get("line"))
        parsed: list[dict[str, Any]] = payload["config"][0]["parsed"]
        self.parsed[path] = parsed
        self.files.append(disp)
        return parsed

    def build(self, path: str, stack: tuple[str, ...], ctx: str) -> list[Directive]:
        disp = self.display(path)
        out: list[Directive] = []
        self._convert(self.parse_file(path), disp, stack + (path,), out)
        return out

    def _convert(
        self, stmts: list[dict[str, Any]], disp: str, stack: tuple[str, ...], out: list[Directive]
    ) -> None:
        for s in stmts:
            name = s["directive"]
            line = int(s.get("line") or 0)
            if name == "#":
                m = SUPPRESS_RE.search(s.get("comment", ""))
                if m:
                    ids = tuple(i.strip() for i in m.group("ids").split(","))
                    sup = InlineSuppression(ids, m.group("reason") or "", disp, line)
                    self.suppressions.setdefault((disp, line), []).append(sup)
                continue
            self.count += 1
            if self.count > MAX_DIRECTIVES:
                raise ConfigError(f"more than {MAX_DIRECTIVES} directives; refusing", disp, line)
            args = [str(a) for a in s.get("args", ())]
            if name == "include":
                self._include(args, disp, line, stack, out)
                continue
            d = Directive(name, args, disp, line)
            if "block" in s:
                d.block = []
                self._convert(s["block"], disp, stack, d.block)
            out.append(d)

    def _include(
        self, args: list[str], disp: str, line: int, stack: tuple[str, ...], out: list[Directive]
    ) -> None:
        if len(args) != 1:
            raise ConfigError('invalid number of arguments in "include"', disp, line)
        pattern = args[0]
        if not os.path.isabs(pattern):
            pattern = os.path.join(self.prefix, pattern)
        pattern = os.path.normpath(pattern)
        if glob.has_magic(pattern):
            names = self.source.expand(pattern)
        else:
            names = [pattern]
        for name in names:
            why = self.source.check_file(name)
            if why is not None:
                if glob.has_magic(pattern) and why == "is a directory":
                    continue  # nginx skips directories matched by a glob
                raise ConfigError(f'include "{args[0]}": {why}', disp, line)
            if name in stack:
                chain = " -> ".join(self.display(p) for p in stack[stack.index(name):] + (name,))
                raise ConfigError(f"include cycle: {chain}", disp, line)
            if len(stack) >= MAX_INCLUDE_DEPTH:
                raise ConfigError(f"includes nested deeper than {MAX_INCLUDE_DEPTH}", disp, line)
            out.extend(self.build(name, stack, ""))


def _clean(msg: str) -> str:
    """One line, without crossplane's own 'in FILE:LINE' suffix (we print file:line first)."""
    msg = re.sub(r"\s+in \S+:\d+$", "", msg.strip())
    return " ".join(msg.split())


def load_config(path: str, prefix: str | None = None) -> LoadedConfig:
    """Load `path` (nginx.conf, or a folder holding one) and everything it includes."""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        cand = os.path.join(path, "nginx.conf")
        if not os.path.exists(cand):
            raise ConfigError("folder holds no nginx.conf", path)
        path = cand
    source = _Source()
    why = source.check_file(path)
    if why is not None:
        raise ConfigError(why, path)
    return _load(path, prefix, source)


def load_dump(text: str, prefix: str | None = None, name: str = "<stdin>") -> LoadedConfig:
    """Load the output of `nginx -T`: files follow `# configuration file PATH:` markers."""
    files = split_dump(text, name)
    main = next(iter(files))
    source = _Source(files)
    try:
        return _load(main, prefix, source)
    finally:
        source.close()


def split_dump(text: str, name: str = "<stdin>") -> dict[str, str]:
    """Split an `nginx -T` dump into {path: content}, keeping each file's own line numbers."""
    files: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        m = DUMP_MARKER_RE.match(line)
        if m:
            path = os.path.normpath(m.group("path").strip())
            current = files.setdefault(path, [])
            current.clear()
            continue
        if current is not None:
            current.append(line)
    if not files:
        raise ConfigError(
            "not an `nginx -T` dump: no '# configuration file PATH:' marker found", name
        )
    return {p: "\n".join(lines) + "\n" for p, lines in files.items()}


def _load(path: str, prefix: str | None, source: _Source) -> LoadedConfig:
    base_prefix = os.path.abspath(prefix) if prefix else os.path.dirname(path)
    loader = _Loader(path, base_prefix, source)
    try:
        top = loader.build(path, (), "main")
    except RecursionError as e:
        raise ConfigError("configuration nested too deeply", loader.display(path)) from e
    finally:
        source.close()
    root = Directive("main", [], loader.display(path), 0, top)
    return LoadedConfig(
        main_file=path,
        prefix=base_prefix,
        root=root,
        files=loader.files,
        suppressions=loader.suppressions,
        directive_count=loader.count,
    )
