"""`mtls-audit certs FILE|DIR ...`: click options -> inventory -> renderer -> exit code.

Exit codes follow the tool's contract: 0 nothing expired or expiring, 1 something expired or
expires within `--warn-days` (a cron job can alert on it), 2 the inventory could not run (usage,
or not one of the paths could be read). Missing paths next to readable ones are problem rows,
so one stale path in a cron line does not hide the expiry of everything else.
"""

from __future__ import annotations

import sys

import click

from .errors import MtlsAuditError
from .inventory import (
    DEFAULT_WARN_DAYS,
    Inventory,
    build_inventory,
    exit_code,
    render_inventory_json,
    render_inventory_table,
)

FORMATS = ("table", "json")


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
def certs_command(paths: tuple[str, ...], warn_days: int, fmt: str, output: str | None) -> None:
    """Inventory certificates, CRLs and private keys, and flag what expires within the window.

    Keys are listed by type, size, encryption and file mode only; their contents are never shown.
    """
    inventory = build_inventory(paths, warn_days=warn_days)
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
