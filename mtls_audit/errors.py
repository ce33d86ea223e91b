"""Tool failures: the scan could not run. Each maps to exit code 2 with one line of text.

Expected outcomes (a server refusing a handshake, a rule failing) are data in results; only
input the tool cannot read, and bugs, raise.
"""

from __future__ import annotations


class MtlsAuditError(Exception):
    """Base of every error that ends a run with exit code 2 and a one-line message."""

    exit_code = 2


class ConfigError(MtlsAuditError):
    """The Nginx configuration could not be read or parsed; the message names file:line."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None) -> None:
        self.file = file
        self.line = line
        where = ""
        if file:
            where = f"{file}:{line}: " if line else f"{file}: "
        super().__init__(f"{where}{message}")


class RuleFileError(MtlsAuditError):
    """A rule YAML is malformed, duplicated, or has no check (or a check has no YAML)."""


class UsageError(MtlsAuditError):
    """Options that cannot work together, or a target that cannot be parsed."""


class InputFileError(MtlsAuditError):
    """A file given on the command line (baseline, certificate, key) could not be used."""
