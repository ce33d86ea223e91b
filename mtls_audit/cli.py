"""Command line: click options -> ScanRequest -> run_scan -> renderer -> exit code.

Exit codes are a contract (report-contract.md): 0 clean, 1 findings or probe errors, 2 the scan
could not run. Every tool failure is one line on stderr, never a traceback, and no report file is
written when the scan did not complete.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import click

from . import __version__
from .errors import MtlsAuditError, UsageError
from .model import FAIL_ON_CHOICES
from .render import FORMATS


def use_color(fmt: str, no_color: bool, output: str | None, isatty: bool, env: Mapping[str, str]) -> bool:
    """Colour only a table going to a terminal, unless --no-color or NO_COLOR (no-color.org)."""
    return fmt == "table" and not no_color and not env.get("NO_COLOR") and output is None and isatty


def _fail(e: MtlsAuditError) -> None:
    click.echo(f"mtls-audit: error: {e}", err=True)
    sys.exit(e.exit_code)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Examples:
  mtls-audit scan /etc/nginx/nginx.conf
  nginx -T | mtls-audit scan - --format sarif --output mtls.sarif
  mtls-audit scan --target 127.0.0.1:8443/api.internal --client-cert me.pem --client-key me.key
  mtls-audit rules list""",
)
@click.version_option(__version__, prog_name="mtls-audit")
@click.option("--settings", "settings_file", metavar="FILE",
              help="Settings file (default: ./.mtls-audit.toml, or [tool.mtls-audit] in ./pyproject.toml).")
@click.option("--no-settings", is_flag=True, help="Ignore settings files.")
@click.pass_context
def cli(ctx: click.Context, settings_file: str | None, no_settings: bool) -> None:
    """Audit mutual-TLS (client certificate) setups on Nginx, statically and live.

    Settings in .mtls-audit.toml (or [tool.mtls-audit] in pyproject.toml) become the defaults of
    `scan`: require-mtls, fail-on, warn-days, baseline, nginx-version, rules, ... Flags win.
    """
    if no_settings:
        return
    from .settings import find_settings, load_settings

    path = settings_file or find_settings()
    if path is None:
        return
    try:
        ctx.default_map = {"scan": load_settings(path)}
    except MtlsAuditError as e:
        _fail(e)


@cli.command(
    epilog="""\b
Examples:
  mtls-audit scan /etc/nginx                       # folder holding nginx.conf
  nginx -T 2>/dev/null | mtls-audit scan -          # a running server's full config
  mtls-audit scan nginx.conf --require-mtls '*.internal' --fail-on medium
  mtls-audit scan nginx.conf --format json --output report.json
  mtls-audit scan nginx.conf --write-baseline .mtls-baseline.json
  mtls-audit scan nginx.conf --probe --probe-host 127.0.0.1 --client-cert c.pem --client-key c.key

\b
Exit codes: 0 no failing result at or above --fail-on; 1 failures or probe errors;
2 the scan could not run (bad config, bad rule file, usage)."""
)
@click.argument("configs", nargs=-1, metavar="[CONFIG]...")
@click.option("--prefix", metavar="DIR", help="Resolve relative paths as Nginx -p would (default: the main config's folder).")
@click.option("--target", "targets", multiple=True, metavar="HOST:PORT[/SNI]", help="Probe this endpoint (repeatable).")
@click.option("--targets-file", metavar="FILE", help="One target a line (# comments allowed).")
@click.option("--probe/--no-probe", default=None, help="--probe: also probe the configs' listen addresses; --no-probe: open no connection at all.")
@click.option("--probe-host", metavar="HOST", help="Host to probe for wildcard listens (e.g. 127.0.0.1).")
@click.option("--protocol", type=click.Choice(["auto", "http", "tcp"]), default="auto", show_default=True, help="What to speak after the handshake.")
@click.option("--client-cert", metavar="FILE", help="A client certificate the endpoint must accept (PEM).")
@click.option("--client-key", metavar="FILE", help="Its private key (PEM).")
@click.option("--client-key-pass-env", metavar="VAR", help="Environment variable holding the key's passphrase.")
@click.option("--ca-cert", metavar="FILE", help="The client CA, to mint bad-but-signed certificates.")
@click.option("--ca-key", metavar="FILE", help="The client CA's key.")
@click.option("--revoked-cert", metavar="FILE", help="A revoked client certificate the endpoint must reject.")
@click.option("--revoked-key", metavar="FILE", help="Its private key.")
@click.option("--trust", metavar="FILE", help="CA bundle to verify the server certificate (default: system store).")
@click.option("--require-mtls", multiple=True, metavar="PATTERN", help="server_name glob or :port that must require client certs (repeatable).")
@click.option("--require-upstream-mtls", multiple=True, metavar="PATTERN", help="upstream name glob that must get a client certificate (repeatable).")
@click.option("--nginx-version", metavar="X.Y.Z", help="Enables version-aware rules.")
@click.option("--warn-days", type=click.IntRange(min=0), default=30, show_default=True, help="Expiry warning window.")
@click.option("--rules", "rules_dirs", multiple=True, metavar="DIR", help="Extra rule definitions (YAML + checks).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--output", metavar="FILE", help="Write the report here (atomically) instead of stdout.")
@click.option("--fail-on", type=click.Choice(FAIL_ON_CHOICES), default="high", show_default=True)
@click.option("--timeout", type=click.FloatRange(min=0.1), default=5.0, show_default=True, help="Seconds per connection.")
@click.option("--concurrency", type=click.IntRange(min=1, max=1024), default=None, help="Endpoints probed at once.")
@click.option("--baseline", metavar="FILE", help="Suppress failures whose fingerprints are in this baseline.")
@click.option("--write-baseline", metavar="FILE", help="Write the current failures as a baseline.")
@click.option("--show-passed", is_flag=True, help="Table: list passing results too.")
@click.option("--verbose", "-v", is_flag=True, help="Table: evidence per result.")
@click.option("--quiet", "-q", is_flag=True, help="Table: only the summary line.")
@click.option("--no-color", is_flag=True, help="No ANSI colours (NO_COLOR is respected too).")
def scan(configs: tuple[str, ...], **kw: Any) -> None:
    """Audit Nginx configs (files, folders, or "-" for an `nginx -T` dump) and live endpoints."""
    from .context import Options
    from .scan import Content, ScanRequest, baseline_text, gc_paused, parse_version, run_scan, write_all_atomic

    try:
        if not configs and not kw["targets"] and not kw["targets_file"]:
            raise UsageError("give a CONFIG, --target or --targets-file (see mtls-audit scan --help)")
        if configs.count("-") > 1:
            raise UsageError('"-" (stdin) can be given once')
        for flag in ("client", "ca", "revoked"):
            if bool(kw[f"{flag}_cert"]) != bool(kw[f"{flag}_key"]):
                raise UsageError(f"--{flag}-cert and --{flag}-key go together")
        version = parse_version(kw["nginx_version"]) if kw["nginx_version"] else None
        req = ScanRequest(
            configs=configs,
            prefix=kw["prefix"],
            targets=kw["targets"],
            targets_file=kw["targets_file"],
            probe=kw["probe"],
            probe_host=kw["probe_host"],
            protocol=kw["protocol"],
            client_cert=kw["client_cert"],
            client_key=kw["client_key"],
            client_key_pass_env=kw["client_key_pass_env"],
            ca_cert=kw["ca_cert"],
            ca_key=kw["ca_key"],
            revoked_cert=kw["revoked_cert"],
            revoked_key=kw["revoked_key"],
            trust=kw["trust"],
            timeout=kw["timeout"],
            concurrency=kw["concurrency"],
            options=Options(
                require_mtls=kw["require_mtls"],
                require_upstream_mtls=kw["require_upstream_mtls"],
                nginx_version=version,
                warn_days=kw["warn_days"],
            ),
            rules_dirs=kw["rules_dirs"],
            fail_on=kw["fail_on"],
            baseline=kw["baseline"],
        )
        from .render import get_renderer

        color = use_color(kw["fmt"], kw["no_color"], kw["output"], sys.stdout.isatty(), os.environ)
        with gc_paused():
            report = run_scan(req)
            content: Content
            if kw["fmt"] == "json":
                # streamed: a 20,000-server report is hundreds of MB
                from .render.json_ import write as write_json

                def content(out: TextIO) -> None:
                    write_json(report, out)
            else:
                content = get_renderer(kw["fmt"])(
                    report, show_passed=kw["show_passed"], color=color, verbose=kw["verbose"]
                )
                if kw["quiet"] and kw["fmt"] == "table":
                    content = content.rstrip("\n").splitlines()[-1] + "\n"
            files: list[tuple[str, Content]] = []
            if kw["write_baseline"]:
                files.append((kw["write_baseline"], baseline_text(report.results)))
            if kw["output"]:
                files.append((kw["output"], content))
            write_all_atomic(files)
            if not kw["output"]:
                if isinstance(content, str):
                    click.echo(content, nl=not content.endswith("\n"))
                else:
                    content(sys.stdout)
    except MtlsAuditError as e:
        _fail(e)
    sys.exit(1 if report.gate_fails() else 0)


@cli.group(
    epilog="""\b
Examples:
  mtls-audit rules list
  mtls-audit rules show MTLS101
  mtls-audit rules docs > docs/rules.md
  mtls-audit rules list --rules ./my-rules     # with your own rules"""
)
def rules() -> None:
    """List and explain the rule catalog."""


@rules.command("list")
@click.option("--rules", "rules_dirs", multiple=True, metavar="DIR", help="Extra rule definitions.")
def rules_list(rules_dirs: tuple[str, ...]) -> None:
    """One line per rule: id, severity, kind, title."""
    from .engine import load_catalog

    try:
        cat = load_catalog(rules_dirs, with_checks=False)
    except MtlsAuditError as e:
        _fail(e)
    rows = [("id", "severity", "kind", "title")] + [(r.id, r.severity.value, r.kind, r.title) for r in cat.rules]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  {d}" for a, b, c, d in rows]
    lines.insert(1, "  ".join("-" * w for w in [*widths, len("title")]))
    click.echo("\n".join(lines))


@rules.command("show")
@click.argument("rule_id")
@click.option("--rules", "rules_dirs", multiple=True, metavar="DIR", help="Extra rule definitions.")
def rules_show(rule_id: str, rules_dirs: tuple[str, ...]) -> None:
    """The full text of one rule, for people."""
    from .engine import load_catalog

    try:
        cat = load_catalog(rules_dirs, with_checks=False)
    except MtlsAuditError as e:
        _fail(e)
    rule = cat.get(rule_id.upper())
    if rule is None:
        click.echo(f"mtls-audit: error: no rule {rule_id!r} (see `mtls-audit rules list`)", err=True)
        sys.exit(2)
    lines = [
        f"{rule.id}  {rule.title}",
        f"severity: {rule.severity.value}   kind: {rule.kind}"
        + (f"   cwe: {', '.join(f'CWE-{c}' for c in rule.cwe)}" if rule.cwe else ""),
        "",
        rule.description,
        "",
        "Remediation:",
        rule.remediation,
    ]
    if rule.references:
        lines += ["", "References:"] + [f"  {r}" for r in rule.references]
    if rule.compliance:
        lines += ["", "Compliance:"] + [f"  {k}: {', '.join(v)}" for k, v in rule.compliance.items()]
    click.echo("\n".join(lines))


@rules.command("docs")
@click.option("--rules", "rules_dirs", multiple=True, metavar="DIR", help="Extra rule definitions.")
def rules_docs(rules_dirs: tuple[str, ...]) -> None:
    """Markdown reference of every rule (what docs/rules.md holds)."""
    from .docs import rules_markdown
    from .engine import load_catalog

    try:
        cat = load_catalog(rules_dirs, with_checks=False)
    except MtlsAuditError as e:
        _fail(e)
    click.echo(rules_markdown(cat.rules), nl=False)


def _add_optional_commands() -> None:
    try:
        from .cli_certs import certs_command
    except ImportError:
        return
    cli.add_command(certs_command)


_add_optional_commands()


def main() -> None:
    """Console entry: click's own usage errors become one line too, with exit code 2.

    The cyclic collector is off for the whole process: a CLI process runs one command and exits,
    and collections only rescan the config and results that live until the end (scan pauses it
    anyway; turning it back on cost a 0.2 s full collection after a 2,000-server scan, just
    before exit). Code that makes cyclic garbage collects it explicitly (after probing).
    In-process callers (click's runner, tests) keep their collector, and their interpreter.
    """
    gc.disable()
    _hard_exit(_run())


def _run() -> int:
    """The command's exit code; every way out of click ends here as a number."""
    try:
        rv = cli.main(prog_name="mtls-audit", standalone_mode=False)
    except SystemExit as e:
        if isinstance(e.code, int):
            return e.code
        if e.code is not None:
            click.echo(str(e.code), err=True)
            return 1
        return 0
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        click.echo(f"mtls-audit: error: {e.format_message()}", err=True)
        return e.exit_code
    except click.Abort:
        click.echo("mtls-audit: aborted", err=True)
        return 130
    except BrokenPipeError:
        return 1
    return rv if isinstance(rv, int) else 0  # click returns Exit's code when not standalone


def _hard_exit(code: int) -> None:
    """Flush what was printed, then end the process without tearing the heap down object by object.

    A scan's config tree and results live until exit; the interpreter's orderly shutdown freed
    them one at a time, 0.2 s after a 2,000-server scan had written its report (2 s after a
    20,000-server one). Reports and baselines are closed and renamed before this point and the
    package leaves no temp files; what others registered with `atexit` (coverage.py saving its
    data, a wrapper script's report) still runs, and the standard streams are flushed, as
    mypy's own `hard_exit` does.
    """
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        code = code or 1  # the reader went away: the output is incomplete
    with contextlib.suppress(BrokenPipeError, ValueError):
        sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
