"""mtls-audit: audit mutual-TLS client certificate setups on Nginx, statically and live."""

__version__ = "0.1.0"
