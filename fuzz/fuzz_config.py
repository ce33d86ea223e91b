"""Fuzz the config side for minutes: loader, includes, effective settings, every config rule, renderers.

    python fuzz/fuzz_config.py --minutes 5                  # all targets in turn
    python fuzz/fuzz_config.py --target mutated --minutes 2
    python fuzz/fuzz_config.py --replay fuzz/crashes/generated-0123456789ab

Targets:
  generated  configs drawn from a grammar (tests/fuzz_support.py), with includes, PKI files,
             FIFOs and symlink loops next to them, and random scan options
  mutated    the committed fixtures (fixtures/**/*.conf, the nginx -T dump) after byte-level edits
  dump       generated configs fed as an `nginx -T` dump, the way `scan -` reads stdin

Invariant: a report (every result pointing at a loaded file and line, no "check crashed" error,
every output format rendering, the JSON one valid against the schema) or an input error whose
message is one clean line. Anything else is saved under fuzz/crashes/.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import common
import fuzz_support as fs
from hypothesis import strategies as st

from mtls_audit.context import Options
from mtls_audit.engine import Catalog, load_catalog
from mtls_audit.model import Report


def _outcome(result: Report | Exception) -> str:
    """`report`, or the input error's kind with file, line and quoted text left out."""
    if isinstance(result, Report):
        return "report"
    text = re.sub(r"^\S+?:(\d+:)? ", "", str(result))
    return "input error: " + re.sub(r'"[^"]*"', '"…"', text)[:60]


def _scan(case: fs.ConfigCase, options: Options, catalog: Catalog) -> str:
    with tempfile.TemporaryDirectory(prefix="mtls-fuzz-") as d:
        main = case.write(Path(d))
        return _outcome(fs.scan_config(str(main), catalog, options))


def _mutated() -> st.SearchStrategy[fs.ConfigCase]:
    return st.sampled_from(fs.fixture_corpus()).flatmap(
        lambda item: fs.mutated(item[1], max_ops=8).map(lambda data: fs.fixture_config_case(item[0], data))
    )


def _files(value: tuple[fs.ConfigCase, Options]) -> Mapping[str, bytes]:
    case, options = value
    saved = {
        "require_mtls": list(options.require_mtls),
        "require_upstream_mtls": list(options.require_upstream_mtls),
        "nginx_version": list(options.nginx_version) if options.nginx_version else None,
        "warn_days": options.warn_days,
    }
    return {**case.files, "OPTIONS.json": json.dumps(saved).encode()}


def targets(catalog: Catalog) -> dict[str, common.Target]:
    def scan(value: tuple[fs.ConfigCase, Options]) -> str:
        return _scan(value[0], value[1], catalog)

    def dump(value: tuple[fs.ConfigCase, Options]) -> str:
        case, options = value
        return _outcome(fs.scan_config("-", catalog, options, stdin_text=case.dump()))

    opts = fs.options_strategy()
    return {
        "generated": common.Target("generated", st.tuples(fs.config_case(), opts), scan, _files),
        "mutated": common.Target("mutated", st.tuples(_mutated(), opts), scan, _files),
        "dump": common.Target("dump", st.tuples(fs.config_case(with_pki=False), opts), dump, _files),
    }


def replay(folder: Path, catalog: Catalog) -> int:
    """Scan a saved crash folder's nginx.conf with the invariant checks; 0 when it now passes."""
    options = Options()
    if (folder / "OPTIONS.json").exists():
        saved = json.loads((folder / "OPTIONS.json").read_text())
        version = saved.get("nginx_version")
        options = Options(
            require_mtls=tuple(saved.get("require_mtls") or ()),
            require_upstream_mtls=tuple(saved.get("require_upstream_mtls") or ()),
            nginx_version=(version[0], version[1], version[2]) if version else None,
            warn_days=int(saved.get("warn_days", 30)),
        )
    result = fs.scan_config(str(folder / "nginx.conf"), catalog, options)  # raises if it still fails
    print(_outcome(result) if isinstance(result, Report) else f"input error: {result}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    names = ("generated", "mutated", "dump")
    args = common.parse_args(__doc__.splitlines()[0], names, argv)
    catalog = load_catalog()
    if args.replay:
        return replay(args.replay, catalog)
    fs.pki_pool()  # mint the test PKI before the clock starts
    fs.der_pool()
    return common.fuzz(args, targets(catalog))


if __name__ == "__main__":
    sys.exit(main())
