"""`mtls-audit certs FILE|DIR ...`: click options -> inventory -> renderer -> exit code.

Exit codes follow the tool's contract: 0 nothing expired or expiring, 1 something expired or
expires within `--warn-days` (a cron job can alert on it), 2 the inventory could not run (usage,
or not one of the paths could be read). Missing paths next to readable ones are problem rows,
so one stale path in a cron line does not hide the expiry of everything else.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import click

from .errors import MtlsAuditError

if TYPE_CHECKING:
    from .inventory import Inventory

FORMATS = ("table", "json")
DEFAULT_WARN_DAYS = 30
"""Same default as inventory.DEFAULT_WARN_DAYS; repeated so `--help` does not import cryptography."""

# Directives whose argument is a certificate, key or CRL file (http, stream and upstream side).
FILE_DIRECTIVES = (
    "ssl_certificate", "ssl_certificate_key", "ssl_client_certificate", "ssl_trusted_certificate",
    "ssl_crl", "proxy_ssl_certificate", "proxy_ssl_certificate_key", "proxy_ssl_trusted_certificate",
    "proxy_ssl_crl", "grpc_ssl_certificate", "grpc_ssl_certificate_key", "grpc_ssl_trusted_certificate",
    "grpc_ssl_crl", "uwsgi_ssl_certificate", "uwsgi_ssl_certificate_key", "uwsgi_ssl_trusted_certificate",
    "uwsgi_ssl_crl",
)


def referenced_files(config: str, prefix: str | None = None) -> list[str]:
    """Every certificate, key and CRL file an Nginx config names, resolved like Nginx would.

    Paths with variables (`ssl_certificate $ssl_server_name.crt`) cannot be resolved statically
    and are left out.
    """
    from .nginx.load import load_config

    loaded = load_config(config, prefix)
    seen: dict[str, None] = {}
    for d in loaded.root.walk():
        if d.name in FILE_DIRECTIVES and d.args and "$" not in d.args[0] and not d.args[0].startswith("data:"):
            path = d.args[0]
            if not os.path.isabs(path):
                path = os.path.join(loaded.prefix, path)
            seen.setdefault(os.path.normpath(path), None)
    return list(seen)


def _unreadable_message(inventory: Inventory) -> str:
    reasons = {item.path: "; ".join(item.problems) for item in inventory.items if item.index is None}
    listed = ", ".join(f"{path} ({reasons.get(path, 'unreadable')})" for path in inventory.unusable_inputs)
    return f"mtls-audit: error: no readable input: {listed}"


@click.command(
    "certs",
    epilog="""\b
Examples:
  mtls-audit certs /etc/nginx/ssl                 # every cert, CRL and key under the folder
  mtls-audit certs client-ca.pem crl.pem --warn-days 14
  mtls-audit certs /etc/nginx/ssl --format json --output inventory.json
  mtls-audit certs /etc/nginx/nginx.conf         # every file the config references

\b
Exit codes: 0 nothing expired or expiring; 1 something expired or expires within --warn-days
(certificates and CRL nextUpdate); 2 usage error, or none of the paths could be read.""",
)
@click.argument("paths", nargs=-1, required=True, metavar="FILE|DIR...", type=click.Path())
@click.option(
    "--warn-days",
    type=click.IntRange(min=0),
    default=DEFAULT_WARN_DAYS,
    show_default=True,
    help="Expiry warning window in days.",
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--output", metavar="FILE", help="Write the report here (atomically) instead of stdout.")
@click.option("--prefix", metavar="DIR", help="Resolve a config's relative paths as Nginx -p would.")
def certs_command(paths: tuple[str, ...], warn_days: int, fmt: str, output: str | None, prefix: str | None) -> None:
    """Inventory certificates, CRLs and private keys, and flag what expires within the window.

    Keys are listed by type, size, encryption and file mode only; their contents are never shown.

    An Nginx config (`*.conf`) stands for every certificate, key and CRL file it references.
    """
    from .inventory import build_inventory, exit_code, render_inventory_json, render_inventory_table

    expanded: list[str] = []
    try:
        for p in paths:
            if p.endswith(".conf") and os.path.isfile(p):
                expanded.extend(referenced_files(p, prefix))
            else:
                expanded.append(p)
    except MtlsAuditError as e:
        click.echo(f"mtls-audit: error: {e}", err=True)
        sys.exit(e.exit_code)
    inventory = build_inventory(expanded, warn_days=warn_days)
    code = exit_code(inventory)
    if code == 2:
        click.echo(_unreadable_message(inventory), err=True)
        sys.exit(code)
    text = render_inventory_json(inventory) if fmt == "json" else render_inventory_table(inventory)
    if output:
        from .scan import write_atomic

        try:
            write_atomic(output, text)
        except MtlsAuditError as e:
            click.echo(f"mtls-audit: error: {e}", err=True)
            sys.exit(e.exit_code)
    else:
        click.echo(text, nl=False)
    sys.exit(code)
