"""Our lexer must give exactly crossplane's tokens and errors (issue 6: it replaced crossplane's
character-by-character lexer, which was most of a scan's time).

The oracle is crossplane's own `_lex_file_object` + `_balance_braces` on the same text, compared
token by token (text, line, quoted) and on the brace error it raises after the last token.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fuzz_support import crossplane_tokens
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mtls_audit.errors import ConfigError
from mtls_audit.nginx.lexer import Lexed, lex_text, needs_crossplane
from mtls_audit.nginx.load import load_config

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

CI = settings(
    deadline=None,
    derandomize=True,
    database=None,
    max_examples=1500,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def ours(text: str) -> Lexed:
    """Ours on the same text, after the newline translation `open()` does for us in the loader."""
    return lex_text(text.replace("\r\n", "\n").replace("\r", "\n"))


def assert_same(text: str) -> None:
    assert not needs_crossplane(text)
    assert ours(text) == crossplane_tokens(text), repr(text)


def config_files() -> list[Path]:
    found = [p for p in (ROOT / "fixtures").rglob("*") if p.is_file() and p.suffix in (".conf", ".txt")]
    assert len(found) > 80
    return sorted(found)


@pytest.mark.parametrize("path", config_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_fixture_lexes_as_crossplane(path: Path) -> None:
    text = path.read_text(encoding="utf-8", errors="replace")
    if needs_crossplane(text):
        pytest.skip("Lua blocks go to crossplane's lexer itself")
    assert_same(text)


def test_generated_benchmark_tree_lexes_as_crossplane(tmp_path: Path) -> None:
    from gen_config import generate

    conf = generate(tmp_path / "tree", 120)
    files = list(conf.parent.rglob("*.conf"))
    assert len(files) > 3
    for path in files:
        assert_same(path.read_text())


QUIRKS = [
    "a b;",
    "a ${b} c;",  # the space after `${b}` joins the token, as in crossplane
    "set $x ${a;b} ;",
    "a ${b",  # cut off inside `${`: dropped
    "a \\$${x}y;",
    "a # comment\nb;",
    "# comment \\\nb;",  # a backslash before the newline ends the comment with it
    "a 'b\\'c' \"d\\\"e\\'\" f;",
    'a "b\nc" d;\ne;',
    'a "unterminated;\n',
    "a b\\",  # a lone backslash at the end
    "a b\\;c;",
    "a\\\nb c;",
    "\\\nb c;",  # a token starting with backslash-newline counts the newline first
    'a"b"c;',
    '"a"b;',
    "a{b}",
    "}",
    "a {",
    "a { b { } } }",
    "a;  ",
    "a; # trailing comment without newline",
    "a\u00a0b\x1cc\x0bd;",
    "\t\n \n",
    "",
]


@pytest.mark.parametrize("text", QUIRKS)
def test_quirks_match_crossplane(text: str) -> None:
    assert_same(text)


ALPHABET = st.sampled_from(
    list("ab$#{};\"'\\ \n\t") + ["${", "\\\n", "\u00a0", "\x1c", "\r", "\r\n", "server", "listen 443 ssl"]
)


@CI
@given(st.lists(ALPHABET, max_size=40).map("".join))
def test_generated_text_lexes_as_crossplane(text: str) -> None:
    assert ours(text) == crossplane_tokens(text)


@CI
@given(st.text(max_size=60))
def test_any_text_lexes_as_crossplane(text: str) -> None:
    if needs_crossplane(text):
        return
    assert ours(text) == crossplane_tokens(text)


def test_lua_blocks_go_to_crossplane(tmp_path: Path) -> None:
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
