"""Probe specs from a config's listen lines: where to probe, what to point at, what to expect."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtls_audit.errors import UsageError
from mtls_audit.model import Target
from mtls_audit.nginx.effective import build_effective
from mtls_audit.nginx.load import load_config
from mtls_audit.probe.specs import specs_from_config

CONF = """\
events {}
http {
    ssl_certificate server.pem;
    ssl_certificate_key server.key;
    ssl_verify_client on;
    ssl_client_certificate ca.pem;
    server {
        listen 127.0.0.1:8443 ssl;
        server_name api.test *.wild.test;
    }
    server {
        listen 127.0.0.1:8443 ssl;
        server_name open.test;
        ssl_verify_client off;
    }
    server {
        listen [::1]:9443 ssl;
        server_name _;
        ssl_verify_client optional;
    }
    server {
        listen 127.0.0.1:8080;
        server_name plain.test;
    }
}
stream {
    server {
        listen 127.0.0.1:7443 ssl;
        ssl_certificate server.pem;
        ssl_certificate_key server.key;
        ssl_verify_client on;
        ssl_client_certificate ca.pem;
        proxy_pass 127.0.0.1:7000;
    }
}
"""


def _load(tmp_path: Path, text: str) -> object:
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    return build_effective(load_config(str(conf)))


def test_one_spec_per_tls_listen_and_name_with_effective_verify(tmp_path: Path) -> None:
    specs = specs_from_config(_load(tmp_path, CONF))  # type: ignore[arg-type]
    got = {str(s.target): (s.protocol, s.config_verify, s.location and s.location.line) for s in specs}
    assert got == {
        "127.0.0.1:8443/api.test": ("http", "on", 8),  # inherited from http{}; wildcard name skipped
        "127.0.0.1:8443/open.test": ("http", "off", 12),
        "[::1]:9443": ("http", "optional", 17),  # "_" is no SNI name
        "127.0.0.1:7443": ("tcp", "on", 28),
    }
    assert all(s.location and s.location.file == "nginx.conf" for s in specs)


def test_explicit_protocol_overrides_the_server_kind(tmp_path: Path) -> None:
    specs = specs_from_config(_load(tmp_path, CONF), protocol="auto")  # type: ignore[arg-type]
    assert {s.protocol for s in specs} == {"http", "tcp"}
    specs = specs_from_config(_load(tmp_path, CONF), protocol="http")  # type: ignore[arg-type]
    assert {s.protocol for s in specs} == {"http"}


def test_wildcard_listen_needs_probe_host(tmp_path: Path) -> None:
    text = CONF.replace(
        "listen 127.0.0.1:8443 ssl;\n        server_name api.test", "listen 443 ssl;\n        server_name api.test"
    )
    cfg = _load(tmp_path, text)
    with pytest.raises(UsageError, match=r"nginx.conf:8: 'listen 443 ssl' is on every address.*--probe-host"):
        specs_from_config(cfg)  # type: ignore[arg-type]
    specs = specs_from_config(cfg, probe_host="127.0.0.1")  # type: ignore[arg-type]
    assert Target("127.0.0.1", 443, "api.test") in [s.target for s in specs]
