"""The loader: include resolution as Nginx does it, parse errors with file:line, `nginx -T` dumps.

Configs are written into tmp_path per test; the realistic dump lives in fixtures/dump/.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from mtls_audit.cli import cli
from mtls_audit.errors import ConfigError
from mtls_audit.nginx.load import Directive, LoadedConfig, load_config, load_dump, split_dump

ROOT = Path(__file__).resolve().parents[1]
DUMP = ROOT / "fixtures" / "dump" / "nginx-T.txt"
INVALID = ROOT / "fixtures" / "invalid"

SERVER = """server {{
    listen 443 ssl;
    server_name {name};
}}
"""


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    """Write `files` (relative path -> text or bytes) under root; return root/nginx.conf."""
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content, encoding="utf-8")
    return root / "nginx.conf"


def server_names(cfg: LoadedConfig) -> list[str]:
    return [a for d in cfg.root.walk() if d.name == "server_name" for a in d.args]


def find(cfg: LoadedConfig, name: str) -> list[Directive]:
    return [d for d in cfg.root.walk() if d.name == name]


# ---------------------------------------------------------------- include resolution


def test_glob_include_resolves_against_main_config_folder_sorted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    main = write(
        tmp_path / "etc",
        {
            "nginx.conf": "events {}\nhttp {\n    include conf.d/*.conf;\n}\n",
            "conf.d/b.conf": SERVER.format(name="b.test"),
            "conf.d/a.conf": SERVER.format(name="a.test"),
            "conf.d/c.conf": SERVER.format(name="c.test"),
        },
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the working directory must not matter
    cfg = load_config(str(main))
    assert server_names(cfg) == ["a.test", "b.test", "c.test"]
    assert cfg.files == ["nginx.conf", "conf.d/a.conf", "conf.d/b.conf", "conf.d/c.conf"]


def test_glob_matching_nothing_is_not_an_error(tmp_path: Path) -> None:
    main = write(tmp_path, {"nginx.conf": "events {}\nhttp {\n    include sites/*.conf;\n}\n"})
    cfg = load_config(str(main))
    assert find(cfg, "http")[0].block == []


def test_included_files_resolve_their_includes_against_the_prefix(tmp_path: Path) -> None:
    # Nginx resolves every relative include against the conf prefix, not the including file.
    main = write(
        tmp_path,
        {
            "nginx.conf": "http {\n    include conf.d/*.conf;\n}\n",
            "conf.d/api.conf": "server {\n    include snippets/tls.conf;\n}\n",
            "snippets/tls.conf": "ssl_verify_client on;\n",
        },
    )
    cfg = load_config(str(main))
    (d,) = find(cfg, "ssl_verify_client")
    assert (d.file, d.line) == ("snippets/tls.conf", 1)


def test_prefix_changes_where_relative_includes_resolve(tmp_path: Path) -> None:
    main = write(tmp_path / "conf", {"nginx.conf": "http {\n    include snippets/tls.conf;\n}\n"})
    write(tmp_path / "prefix", {"snippets/tls.conf": "ssl_verify_client on;\n"})
    with pytest.raises(ConfigError, match=r"^nginx\.conf:2: "):
        load_config(str(main))
    cfg = load_config(str(main), str(tmp_path / "prefix"))
    (d,) = find(cfg, "ssl_verify_client")
    # outside the main config's folder: shown as an absolute path
    assert d.file == str(tmp_path / "prefix" / "snippets" / "tls.conf")
    assert cfg.prefix == str(tmp_path / "prefix")


def test_folder_argument_loads_its_nginx_conf(tmp_path: Path) -> None:
    write(tmp_path, {"nginx.conf": "events {}\n"})
    cfg = load_config(str(tmp_path))
    assert cfg.main_file == str(tmp_path / "nginx.conf")


def test_missing_explicit_include_names_the_include_line(tmp_path: Path) -> None:
    main = write(tmp_path, {"nginx.conf": "events {}\nhttp {\n    include missing.conf;\n}\n"})
    with pytest.raises(ConfigError) as exc:
        load_config(str(main))
    assert str(exc.value).startswith("nginx.conf:3:")
    assert "missing.conf" in str(exc.value)


def test_include_cycle_names_the_chain_and_the_closing_include(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        {
            "nginx.conf": "events {}\ninclude a.conf;\n",
            "a.conf": "# a\ninclude b.conf;\n",
            "b.conf": "include a.conf;\n",
        },
    )
    with pytest.raises(ConfigError) as exc:
        load_config(str(main))
    assert str(exc.value) == "b.conf:1: include cycle: a.conf -> b.conf -> a.conf"


def test_self_include_is_a_cycle(tmp_path: Path) -> None:
    main = write(tmp_path, {"nginx.conf": "events {}\ninclude nginx.conf;\n"})
    with pytest.raises(ConfigError) as exc:
        load_config(str(main))
    assert str(exc.value) == "nginx.conf:2: include cycle: nginx.conf -> nginx.conf"


def test_explicit_include_of_a_directory_is_an_error(tmp_path: Path) -> None:
    main = write(tmp_path, {"nginx.conf": "http {\n    include conf.d;\n}\n", "conf.d/x.conf": "\n"})
    with pytest.raises(ConfigError, match=r'^nginx\.conf:2: include "conf\.d": is a directory'):
        load_config(str(main))


def test_directory_matched_by_a_glob_is_an_error(tmp_path: Path) -> None:
    # nginx -t: pread() "conf.d/old" failed (21: Is a directory)
    main = write(
        tmp_path,
        {"nginx.conf": "http {\n    include conf.d/*;\n}\n", "conf.d/a.conf": "\n", "conf.d/old/x.conf": "\n"},
    )
    with pytest.raises(ConfigError) as exc:
        load_config(str(main))
    assert str(exc.value) == 'nginx.conf:2: include "conf.d/*" (conf.d/old): is a directory'


# ---------------------------------------------------------------- parse errors


@pytest.mark.parametrize(
    ("fixture", "where"),
    [
        ("unbalanced_braces.conf", "unbalanced_braces.conf:6:"),
        ("unterminated_quote.conf", "unterminated_quote.conf:4:"),
        ("missing_semicolon.conf", "missing_semicolon.conf:5:"),
        ("missing_semicolon_before_brace.conf", "missing_semicolon_before_brace.conf:5:"),
        ("extra_brace.conf", "extra_brace.conf:4:"),
    ],
)
def test_syntax_errors_raise_config_error_with_file_and_line(fixture: str, where: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(str(INVALID / fixture))
    assert str(exc.value).startswith(where), str(exc.value)
    assert "\n" not in str(exc.value)


def test_syntax_error_in_included_file_names_that_file(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        {
            "nginx.conf": "http {\n    include conf.d/*.conf;\n}\n",
            "conf.d/bad.conf": "server {\n    listen 443 ssl\n}\n",
        },
    )
    with pytest.raises(ConfigError, match=r"^conf\.d/bad\.conf:2: .*not terminated"):
        load_config(str(main))


def test_argument_errors_in_included_server_files_are_caught(tmp_path: Path) -> None:
    # a missing `;` glues two one-argument directives together; Nginx refuses the config
    main = write(
        tmp_path,
        {
            "nginx.conf": "http {\n    include conf.d/*.conf;\n}\n",
            "conf.d/api.conf": (
                "server {\n    listen 443 ssl;\n    ssl_verify_client optional\n"
                "    ssl_client_certificate ca.pem;\n}\n"
            ),
        },
    )
    with pytest.raises(ConfigError, match=r'^conf\.d/api\.conf:3: invalid number of arguments in "ssl_'):
        load_config(str(main))


@pytest.mark.parametrize(
    ("later", "message"),
    [
        ("    ssl_prefer_server_ciphers maybe;", 'invalid value "maybe" in "ssl_prefer_server_ciphers" directive'),
        ("    ssl_prefer_server_ciphers on off;", 'invalid number of arguments in "ssl_prefer_server_ciphers"'),
        ("    ssl_prefer_server_ciphers { }", 'directive "ssl_prefer_server_ciphers" is not terminated by ";"'),
    ],
)
def test_an_accepted_statement_shape_does_not_excuse_a_different_one(
    tmp_path: Path, later: str, message: str
) -> None:
    """crossplane's argument check is remembered per statement shape; a flag with a bad value,
    another count or another terminator after a good one must still be checked."""
    main = write(
        tmp_path,
        {
            "nginx.conf": (
                "events {}\nhttp {\n  server {\n    ssl_prefer_server_ciphers on;\n  }\n"
                f"  server {{\n{later}\n  }}\n}}\n"
            )
        },
    )
    with pytest.raises(ConfigError) as exc:
        load_config(str(main))
    assert str(exc.value).startswith(f"nginx.conf:7: {message}")


def test_missing_semicolon_at_end_of_file_has_a_message(tmp_path: Path) -> None:
    main = write(tmp_path, {"nginx.conf": "events {}\nworker_processes 1\n"})
    with pytest.raises(ConfigError) as exc:
        load_config(str(main))
    assert str(exc.value) == 'nginx.conf:2: unexpected end of file, expecting ";" or "}"'


def test_absurdly_deep_nesting_is_a_config_error_not_a_crash(tmp_path: Path) -> None:
    depth = 5000
    main = write(tmp_path, {"nginx.conf": "http {" + " location / {" * depth + "}" * (depth + 1) + "\n"})
    with pytest.raises(ConfigError, match=r"^nginx\.conf: configuration nested too deeply$"):
        load_config(str(main))


def test_unknown_directives_are_accepted(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        {
            "nginx.conf": (
                "events {}\nhttp {\n"
                "    ssl_ocsp on;\n"
                '    more_set_headers "X: y";\n'
                "    http2 on;\n"
                "    server {\n        listen 443 ssl;\n        ssl_reject_handshake on;\n    }\n"
                "}\n"
            )
        },
    )
    cfg = load_config(str(main))
    names = {d.name for d in cfg.root.walk()}
    assert {"ssl_ocsp", "more_set_headers", "http2", "ssl_reject_handshake"} <= names
    assert find(cfg, "more_set_headers")[0].args == ["X: y"]


def test_non_utf8_bytes_load_and_a_scan_still_reports(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        {
            "nginx.conf": (
                b"events {}\n# caf\xff\xfe comment\nhttp {\n  server {\n    listen 443 ssl;\n"
                b'    server_name "a\xff\xfeb.test";\n'
                b"    ssl_certificate s.pem;\n    ssl_certificate_key s.key;\n"
                b"    ssl_verify_client optional;\n    ssl_client_certificate ca.pem;\n  }\n}\n"
            )
        },
    )
    cfg = load_config(str(main))
    (d,) = find(cfg, "ssl_verify_client")
    assert d.line == 9
    res = CliRunner().invoke(cli, ["scan", str(main), "--format", "json"])
    assert res.exit_code == 1, res.output  # MTLS101 fails: optional and no check
    report = json.loads(res.stdout)
    assert any(
        r["rule_id"] == "MTLS101" and r["status"] == "fail" and r["location"]["line"] == 9
        for r in report["results"]
    )


def test_every_directive_keeps_file_and_line(tmp_path: Path) -> None:
    main = write(
        tmp_path / "etc",
        {
            "nginx.conf": "events {}\nhttp {\n    include conf.d/api.conf;\n    include /abs/x.conf;\n}\n",
            "conf.d/api.conf": "\n\nserver {\n    listen 443 ssl;\n}\n",
        },
    )
    outside = tmp_path / "abs" / "x.conf"
    outside.parent.mkdir()
    outside.write_text("\nssl_verify_depth 2;\n", encoding="utf-8")
    main.write_text(main.read_text().replace("/abs/x.conf", str(outside)), encoding="utf-8")
    cfg = load_config(str(main))
    got = {(d.name, d.file, d.line) for d in cfg.root.walk()}
    assert got == {
        ("events", "nginx.conf", 1),
        ("http", "nginx.conf", 2),
        ("server", "conf.d/api.conf", 3),
        ("listen", "conf.d/api.conf", 4),
        ("ssl_verify_depth", str(outside), 2),
    }


# ---------------------------------------------------------------- inline suppressions


def test_inline_suppressions_are_parsed_from_comments(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        {
            "nginx.conf": (
                "http {\n"
                '    # mtls-audit: ignore MTLS101 reason="legacy partners"\n'
                "    ssl_verify_client optional;\n"
                '    ssl_verify_depth 9;  # mtls-audit: ignore MTLS105, MTLS106 reason="deep PKI"\n'
                "    ssl_crl crl.pem;\n"
                "}\n"
            )
        },
    )
    cfg = load_config(str(main))
    before = cfg.suppression_for("MTLS101", "nginx.conf", 3)
    assert before is not None and before.reason == "legacy partners" and before.line == 2
    same = cfg.suppression_for("MTLS106", "nginx.conf", 4)
    assert same is not None and same.rule_ids == ("MTLS105", "MTLS106") and same.reason == "deep PKI"
    assert cfg.suppression_for("MTLS102", "nginx.conf", 3) is None  # other rule
    assert cfg.suppression_for("MTLS101", "nginx.conf", 5) is None  # two lines below


# ---------------------------------------------------------------- nginx -T dumps


def test_split_dump_keeps_paths_contents_and_line_numbers() -> None:
    files = split_dump(DUMP.read_text(encoding="utf-8"))
    assert list(files) == [
        "/etc/nginx/nginx.conf",
        "/etc/nginx/modules-enabled/50-mod-stream.conf",
        "/etc/nginx/mime.types",
        "/etc/nginx/conf.d/api.conf",
        "/etc/nginx/conf.d/strict.conf",
        "/etc/nginx/snippets/proxy-headers.conf",
        "/etc/nginx/sites-enabled/default",
    ]
    assert files["/etc/nginx/nginx.conf"].splitlines()[0] == "user www-data;"
    api = files["/etc/nginx/conf.d/api.conf"].splitlines()
    assert api[6].strip() == "ssl_verify_client optional;"  # line 7 in the original file
    assert "syntax is ok" not in "".join(files.values())


@pytest.mark.parametrize("odd", ["\x0c", "\x0b", "\x1c", "\x85", "\u2028", "\u2029"])
def test_dump_breaks_lines_where_a_file_on_disk_does(tmp_path: Path, odd: str) -> None:
    """A form feed or U+2028 inside a comment is not a line break: the rest stays a comment."""
    text = f"events {{}}\n# before{odd}ssl_verify_client off;\nhttp {{\n    server {{ listen 80; }}\n}}\n"
    (tmp_path / "nginx.conf").write_text(text, encoding="utf-8", newline="")
    on_disk = [(d.name, d.args, d.line) for d in load_config(str(tmp_path / "nginx.conf")).root.walk()]
    dumped = load_dump(f"# configuration file {tmp_path}/nginx.conf:\n{text}")
    assert [(d.name, d.args, d.line) for d in dumped.root.walk()] == on_disk
    assert [d.name for d in dumped.root.walk()] == ["events", "http", "server", "listen"]
    assert dumped.root.walk().__next__().file == "nginx.conf"


def test_dump_accepts_crlf_and_keeps_line_numbers() -> None:
    dumped = load_dump("# configuration file /etc/nginx/nginx.conf:\r\nevents {}\r\n\r\nhttp {}\r\n")
    assert [(d.name, d.line) for d in dumped.root.walk()] == [("events", 1), ("http", 3)]


def test_dump_directives_carry_original_paths_and_lines() -> None:
    cfg = load_dump(DUMP.read_text(encoding="utf-8"))
    assert cfg.main_file == "/etc/nginx/nginx.conf"
    got = {(d.name, " ".join(d.args)): (d.file, d.line) for d in cfg.root.walk()}
    assert got[("ssl_verify_client", "optional")] == ("conf.d/api.conf", 7)
    assert got[("proxy_set_header", "X-SSL-Client-DN $ssl_client_s_dn")] == (
        "snippets/proxy-headers.conf",
        2,
    )
    assert got[("load_module", "modules/ngx_stream_module.so")] == (
        "modules-enabled/50-mod-stream.conf",
        1,
    )
    assert got[("listen", "[::]:80 default_server")] == ("sites-enabled/default", 3)


def test_dump_glob_stays_within_one_directory_level() -> None:
    text = (
        "# configuration file /etc/nginx/nginx.conf:\n"
        "http {\n    include conf.d/*.conf;\n}\n\n"
        "# configuration file /etc/nginx/conf.d/a.conf:\n"
        "server { server_name a.test; include conf.d/extra/b.conf; }\n\n"
        "# configuration file /etc/nginx/conf.d/extra/b.conf:\n"
        "location /b { }\n\n"
        "# configuration file /etc/nginx/conf.d/.hidden.conf:\n"
        "server { server_name hidden.test; }\n\n"
    )
    cfg = load_dump(text)
    assert server_names(cfg) == ["a.test"]
    assert len(find(cfg, "location")) == 1  # b.conf only through its explicit include


def test_scanning_stdin_dump_reports_original_paths() -> None:
    res = CliRunner().invoke(
        cli, ["scan", "-", "--format", "json"], input=DUMP.read_text(encoding="utf-8")
    )
    assert res.exit_code == 1, res.output
    report = json.loads(res.stdout)
    assert report["inputs"]["configs"] == ["<stdin>"]
    mtls101 = {
        (r["location"]["file"], r["location"]["line"])
        for r in report["results"]
        if r["rule_id"] == "MTLS101" and r["status"] == "fail"
    }
    assert mtls101 == {("conf.d/api.conf", 7)}
    dumped = {os.path.relpath(p, "/etc/nginx") for p in split_dump(DUMP.read_text(encoding="utf-8"))}
    files = {r["location"]["file"] for r in report["results"] if r["location"]}
    assert {"conf.d/api.conf", "conf.d/strict.conf"} <= files <= dumped  # never a temp file name


def test_stdin_text_without_markers_exits_2() -> None:
    res = CliRunner().invoke(cli, ["scan", "-"], input="events {}\nhttp {}\n")
    assert res.exit_code == 2
    assert res.stderr.startswith("mtls-audit: error: <stdin>: not an `nginx -T` dump")
    assert res.stdout == ""


def test_dump_temp_files_are_removed_after_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    load_dump(DUMP.read_text(encoding="utf-8"))
    assert os.listdir(tmp_path) == []


def test_lua_blocks_use_crossplanes_external_lexer(tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        "http {\n  server {\n    location / {\n      content_by_lua_block {\n"
        "        ngx.say('}{;')\n      }\n    }\n  }\n}\n"
    )
    loaded = load_config(str(conf))
    names = [d.name for d in loaded.root.walk()]
    assert "content_by_lua_block" in names


def test_brace_error_is_raised_where_crossplane_raises_it(tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text("events {}\nhttp {\n  server {\n}\n")
    with pytest.raises(ConfigError) as e:
        load_config(str(conf))
    assert 'expecting "}"' in str(e.value)
    assert e.value.line == 4
    conf.write_text("events {}\n}\nhttp {}\n")
    with pytest.raises(ConfigError) as e:
        load_config(str(conf))
    assert 'unexpected "}"' in str(e.value)
    assert e.value.line == 2
