"""Load an Nginx configuration into one tree of directives that remember file and line.

Each file is read once per include context by crossplane's lexer and argument checks.
Includes are resolved here, because crossplane's own resolution cannot honour `--prefix`,
cannot read an `nginx -T` dump, and silently ignores include cycles. Nginx resolves a relative
include against its conf prefix (the main config's folder unless `-p`/`-c` say otherwise),
expands globs sorted (glob(3) without GLOB_NOSORT), accepts a glob that matches nothing, and
refuses a missing explicit file.
"""

from __future__ import annotations

import fnmatch
import glob
import io
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

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

    @property
    def root_dir(self) -> str:
        """The folder display paths are relative to (the main config's)."""
        return os.path.dirname(self.main_file)

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

    def expand(self, pattern: str) -> list[str]:
        if self.dump is not None:
            return sorted(p for p in self.dump if _glob_match(p, pattern))
        return sorted(glob.glob(pattern))

    def check_file(self, path: str) -> str | None:
        """Why Nginx could not read this file, or None when it can."""
        if self.dump is not None:
            return None if path in self.dump else "no such file in the nginx -T dump"
        if "\0" in path:
            return "file name contains a NUL byte"  # os.stat would raise ValueError
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

    def read(self, path: str) -> str:
        """The file's text as crossplane reads it: UTF-8 with replacement characters and
        universal newlines (a dump was split into lines already)."""
        if self.dump is not None:
            return self.dump[path]
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()


def _glob_match(path: str, pattern: str) -> bool:
    """glob(3) matching for dump paths: `*` stays within one path component and skips dot files.

    fnmatch alone lets `conf.d/*.conf` match `conf.d/extra/x.conf`, which Nginx never includes.
    """
    parts, pats = path.split("/"), pattern.split("/")
    if len(parts) != len(pats):
        return False
    return all(
        fnmatch.fnmatchcase(part, pat) and (pat.startswith(".") or not part.startswith("."))
        for part, pat in zip(parts, pats, strict=True)
    )


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
        self.parsed: dict[tuple[str, tuple[str, ...]], list[Stmt]] = {}
        self.files: list[str] = []
        self.seen: set[str] = set()
        self.suppressions: dict[tuple[str, int], list[InlineSuppression]] = {}
        self.count = 0

    def display(self, path: str) -> str:
        return _display(path, self.base)

    def parse_file(self, path: str, ctx: tuple[str, ...]) -> list[Stmt]:
        """The statements of one file, parsed once per context however often it is included."""
        cached = self.parsed.get((path, ctx))
        if cached is not None:
            return cached
        disp = self.display(path)
        try:
            parsed = _parse_file(self.source.read(path), disp, ctx)
        except ConfigError:
            raise
        except RecursionError as e:
            raise ConfigError("configuration nested too deeply", disp) from e
        except Exception as e:  # crossplane raises plain exceptions on some broken input
            raise ConfigError(f"cannot parse: {_clean(str(e))}", disp) from e
        self.parsed[(path, ctx)] = parsed
        if disp not in self.seen:  # a set beside the list: one file a vhost is 20,000 files
            self.seen.add(disp)
            self.files.append(disp)
        return parsed

    def build(self, path: str, stack: tuple[str, ...], ctx: tuple[str, ...]) -> list[Directive]:
        disp = self.display(path)
        out: list[Directive] = []
        self._convert(self.parse_file(path, ctx), disp, (*stack, path), out, ctx)
        return out

    def _convert(
        self,
        stmts: list[Stmt],
        disp: str,
        stack: tuple[str, ...],
        out: list[Directive],
        ctx: tuple[str, ...],
    ) -> None:
        for name, line, args, block in stmts:
            if name == "#":
                m = SUPPRESS_RE.search(args[0])
                if m:
                    ids = tuple(i.strip() for i in m.group("ids").split(","))
                    sup = InlineSuppression(ids, m.group("reason") or "", disp, line)
                    self.suppressions.setdefault((disp, line), []).append(sup)
                continue
            self.count += 1
            if self.count > MAX_DIRECTIVES:
                raise ConfigError(f"more than {MAX_DIRECTIVES} directives; refusing", disp, line)
            if name == "include":
                self._include(args, disp, line, stack, out, ctx)
                continue
            # A copy per inclusion: the parse is cached, and a file included twice makes two
            # independent sets of directives.
            d = Directive(name, list(args), disp, line)
            if block is not None:
                d.block = []
                self._convert(block, disp, stack, d.block, _block_ctx(name, ctx))
            out.append(d)

    def _include(
        self,
        args: list[str],
        disp: str,
        line: int,
        stack: tuple[str, ...],
        out: list[Directive],
        ctx: tuple[str, ...],
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
                # Nginx reads every glob match, directories included: `pread() ... failed (21: Is a
                # directory)` makes `nginx -t` fail, so a directory under `conf.d/*` is an error.
                what = f'include "{args[0]}"' + (f" ({self.display(name)})" if name != pattern else "")
                raise ConfigError(f"{what}: {why}", disp, line)
            if name in stack:
                chain = " -> ".join(self.display(p) for p in stack[stack.index(name) :] + (name,))
                raise ConfigError(f"include cycle: {chain}", disp, line)
            if len(stack) >= MAX_INCLUDE_DEPTH:
                raise ConfigError(f"includes nested deeper than {MAX_INCLUDE_DEPTH}", disp, line)
            out.extend(self.build(name, stack, ctx))


def _block_ctx(name: str, ctx: tuple[str, ...]) -> tuple[str, ...]:
    """crossplane's context naming: nested locations are all `("http", "location")`."""
    if ctx and ctx[0] == "http" and name == "location":
        return ("http", "location")
    return (*ctx, name)


Token = tuple[str, int, bool]
"""(text, line, quoted), crossplane's token tuple."""
Lexed = tuple[list[Token], "tuple[str, int | None] | None"]
"""A file's tokens, and the (message, line) of the brace error raised after the last of them."""

Stmt = tuple[str, int, list[str], "list[Stmt] | None"]
"""(name, line, args, block) of one parsed statement; a comment is ("#", line, [text], None)."""


def _parse_file(text: str, disp: str, ctx: tuple[str, ...]) -> list[Stmt]:
    """crossplane's lexer and argument checks for one file, starting in context `ctx`.

    `crossplane.parse(single=True)` always starts an included file at the top level, where its
    `server { ... }` has no known context, so nothing inside it was checked: a missing `;` before
    `}` or between two one-argument directives went through silently. Here the file starts in
    the context of the `include` that pulled it in, as Nginx parses it, and the first error stops
    the parse (crossplane's wording, or Nginx's where crossplane has none).
    """
    from crossplane.errors import NgxParserBaseException

    parser = _FileParser(disp, _lex_file(text))
    try:
        return parser.block(ctx, False)
    except NgxParserBaseException as e:
        raise ConfigError(_clean(e.strerror), disp, e.lineno) from e


_ARGS_OK: set[tuple[str, tuple[str, ...], str, int, bool]] = set()
"""Statement shapes crossplane's argument check has accepted (it raises on the others)."""


class _FileParser:
    """Statements from one file's tokens.

    A class rather than closures over each other: nested functions that call themselves form
    reference cycles, which kept every file's tokens alive until the next garbage collection,
    and a scan runs with the collector paused.
    """

    def __init__(self, disp: str, lexed: Lexed) -> None:
        from crossplane.analyzer import analyze

        self.analyze = analyze
        self.disp = disp
        self.tokens = iter(lexed[0])
        self.error = lexed[1]
        self.last = 1

    def end_of_tokens(self, expecting: str) -> ConfigError:
        """What the lexer raised after its last token (a brace error), else a cut-off file."""
        if self.error is not None:
            return ConfigError(_clean(self.error[0]), self.disp, self.error[1])
        return ConfigError(f"unexpected end of file, expecting {expecting}", self.disp, self.last)

    def block(self, ctx: tuple[str, ...], nested: bool) -> list[Stmt]:
        parsed: list[Stmt] = []
        tokens = self.tokens
        disp = self.disp
        while True:
            tok0 = next(tokens, None)
            if tok0 is None:
                if nested or self.error is not None:
                    raise self.end_of_tokens('"}"')
                return parsed
            token, line, quoted = tok0
            self.last = line
            if not quoted:
                if token == "}":
                    return parsed
                if token[0] == "#":
                    parsed.append(("#", line, [token[1:]], None))
                    continue
                if token == "{" or token == ";":
                    raise ConfigError(f'unexpected "{token}"', disp, line)
            args: list[str] = []
            comments: list[str] = []
            while True:
                nxt = next(tokens, None)
                if nxt is None:
                    raise self.end_of_tokens('";" or "}"')
                tok, self.last, q = nxt
                if q:
                    args.append(tok)
                elif tok == ";" or tok == "{" or tok == "}":
                    break
                elif tok[0] == "#":
                    comments.append(tok[1:])
                else:
                    args.append(tok)
            if tok == "}":
                raise ConfigError(f'directive "{token}" is not terminated by ";"', disp, line)
            if token == "if":
                _strip_if_parens(args)
            # crossplane's verdict depends on these alone (its masks: context, terminator, count,
            # and on/off for a one-argument flag); a config repeats the same few thousand times.
            n = len(args)
            key = (token, ctx, tok, n, n == 1 and args[0].lower() in ("on", "off"))
            if key not in _ARGS_OK:
                stmt = {"directive": token, "line": line, "args": args}
                try:
                    self.analyze(disp, stmt, tok, ctx, strict=False, check_ctx=False, check_args=True)
                except (TypeError, ValueError, KeyError):
                    # crossplane %-formats the value into its own message, so `ssl on%x;` raised
                    # "%x format: an integer is required" here, without a line number.
                    raise ConfigError(_bad_args(token, args), disp, line) from None
                if len(_ARGS_OK) < 100_000:  # bounded whatever names a hostile config invents
                    _ARGS_OK.add(key)
            block = self.block(_block_ctx(token, ctx), True) if tok == "{" else None
            parsed.append((token, line, args, block))
            for c in comments:
                parsed.append(("#", line, [c], None))


def _lex_file(text: str) -> Lexed:
    """crossplane's own tokens for the file's text (its external Lua-block lexers included),
    and the brace error it raised after the last of them.

    crossplane's public `lex()` only takes a path, and a dump's files exist only in memory; its
    file-object lexer is what `lex()` runs on the open file. The tokens are read out before the
    parse: a generator driven from deep inside the recursive parse would hit the recursion
    limit itself on a hostile nesting depth, and its error would read as a cut-off file.
    """
    from crossplane.errors import NgxParserSyntaxError
    from crossplane.lexer import _balance_braces, _lex_file_object

    tokens: list[Token] = []
    try:
        tokens.extend(_balance_braces(_lex_file_object(io.StringIO(text))))
    except NgxParserSyntaxError as e:
        return tokens, (e.strerror, e.lineno)
    return tokens, None


def _bad_args(name: str, args: list[str]) -> str:
    """The message crossplane meant to give for a flag directive with a bad value."""
    if len(args) == 1:
        return f'invalid value "{args[0]}" in "{name}" directive, it must be "on" or "off"'
    return f'invalid number of arguments in "{name}" directive'


def _strip_if_parens(args: list[str]) -> None:
    """`if ($a = b)` -> [`$a`, `=`, `b`], as crossplane's parser does."""
    if args and args[0].startswith("(") and args[-1].endswith(")"):
        args[0] = args[0][1:].lstrip()
        args[-1] = args[-1][:-1].rstrip()
        start = int(not args[0])
        end = len(args) - int(not args[-1])
        args[:] = args[start:end]


def _clean(msg: str) -> str:
    """One line, without crossplane's own 'in FILE:LINE' suffix (we print file:line first)."""
    msg = re.sub(r"\s+in \S+:\d+$", "", msg.strip())
    return " ".join(msg.split())


# C0/C1 controls, DEL, the Unicode line and paragraph separators, bidi overrides and isolates,
# and lone surrogates: none may reach the one-line error a terminal or a CI log shows.
_UNSAFE_IN_MESSAGE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape_char(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _one_line(e: ConfigError) -> ConfigError:
    """The same error with every control character escaped (`\\x1b`), file and line kept.

    Messages quote tokens and file names from the config (a directive name, an include
    pattern, a glob match); a NUL, an ESC sequence or a U+2028 there would break the "one line
    on stderr" contract or drive the terminal.
    """
    text = str(e)
    safe = _UNSAFE_IN_MESSAGE.sub(_escape_char, text)
    if safe == text:
        return e
    clean = ConfigError(safe)
    clean.file, clean.line = e.file, e.line
    return clean


def load_config(path: str, prefix: str | None = None) -> LoadedConfig:
    """Load `path` (nginx.conf, or a folder holding one) and everything it includes."""
    try:
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
    except ConfigError as e:
        raise _one_line(e) from e


def load_dump(text: str, prefix: str | None = None, name: str = "<stdin>") -> LoadedConfig:
    """Load the output of `nginx -T`: files follow `# configuration file PATH:` markers."""
    try:
        files = split_dump(text, name)
        main = next(iter(files))
        return _load(main, prefix, _Source(files))
    except ConfigError as e:
        raise _one_line(e) from e


def split_dump(text: str, name: str = "<stdin>") -> dict[str, str]:
    """Split an `nginx -T` dump into {path: content}, keeping each file's own line numbers.

    Lines end where they end in a file read from disk (universal newlines, as crossplane opens
    files): `str.splitlines` also breaks at form feeds, vertical tabs, U+2028 and others, which
    turned the rest of a comment into a directive and shifted every line number after it.
    """
    files: dict[str, list[str]] = {}
    current: list[str] | None = None
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line starts no line of its own
    for line in lines:
        m = DUMP_MARKER_RE.match(line)
        if m:
            path = os.path.normpath(m.group("path").strip())
            current = files.setdefault(path, [])
            current.clear()
            continue
        if current is not None:
            current.append(line)
    if not files:
        raise ConfigError("not an `nginx -T` dump: no '# configuration file PATH:' marker found", name)
    return {p: "\n".join(lines) + "\n" for p, lines in files.items()}


def _load(path: str, prefix: str | None, source: _Source) -> LoadedConfig:
    base_prefix = os.path.abspath(prefix) if prefix else os.path.dirname(path)
    loader = _Loader(path, base_prefix, source)
    try:
        top = loader.build(path, (), ())
    except RecursionError as e:
        raise ConfigError("configuration nested too deeply", loader.display(path)) from e
    root = Directive("main", [], loader.display(path), 0, top)
    return LoadedConfig(
        main_file=path,
        prefix=base_prefix,
        root=root,
        files=loader.files,
        suppressions=loader.suppressions,
        directive_count=loader.count,
    )
