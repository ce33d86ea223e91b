"""`mtls-audit certs nginx.conf` inventories every file the config references."""

from __future__ import annotations

import json
from pathlib import Path

from certgen import make_expired, make_root, make_server, write_key, write_pem
from click.testing import CliRunner

from mtls_audit.cli import cli


def test_certs_on_a_config_lists_the_files_it_references(tmp_path: Path) -> None:
    root = make_root()
    server = make_server(root)
    (tmp_path / "ssl").mkdir()
    write_pem(tmp_path / "ssl" / "ca.pem", root.cert)
    write_pem(tmp_path / "ssl" / "server.pem", server.cert)
    write_key(tmp_path / "ssl" / "server.key", server.key)
    write_pem(tmp_path / "ssl" / "old.pem", make_expired(root).cert)
    (tmp_path / "nginx.conf").write_text(
        "events {}\nhttp {\n  ssl_client_certificate ssl/ca.pem;\n  server {\n    listen 443 ssl;\n"
        "    ssl_certificate ssl/server.pem;\n    ssl_certificate_key ssl/server.key;\n"
        "    ssl_certificate $ssl_server_name.pem;\n  }\n}\n",
        encoding="utf-8",
    )
    res = CliRunner().invoke(cli, ["certs", str(tmp_path / "nginx.conf"), "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    paths = {Path(i["path"]).name for i in doc["items"]}
    # old.pem is on disk but not referenced: not listed; the $variable path is skipped
    assert paths == {"ca.pem", "server.pem", "server.key"}
    assert "PRIVATE KEY" not in res.stdout


def test_certs_on_a_broken_config_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "nginx.conf").write_text("http {\n  server {\n", encoding="utf-8")
    res = CliRunner().invoke(cli, ["certs", str(tmp_path / "nginx.conf")])
    assert res.exit_code == 2
    assert "nginx.conf" in res.stderr and "Traceback" not in res.output
