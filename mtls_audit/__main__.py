"""`python -m mtls_audit` runs the same CLI as the `mtls-audit` console script."""

from .cli import main

main()
