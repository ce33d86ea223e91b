"""Target parsing: strict, with the offending text (and file:line) in every error."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtls_audit.errors import InputFileError, UsageError
from mtls_audit.model import Target
from mtls_audit.probe.specs import specs_from_targets
from mtls_audit.probe.targets import parse_target, parse_targets_file


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8443", Target("127.0.0.1", 8443)),
        ("127.0.0.1:8443/api.internal", Target("127.0.0.1", 8443, "api.internal")),
        ("localhost:443", Target("localhost", 443)),
        ("[::1]:443", Target("::1", 443)),
        ("[::1]:443/name.test", Target("::1", 443, "name.test")),
        ("  127.0.0.2:1/x  ", Target("127.0.0.2", 1, "x")),
        ("127.0.0.1:65535", Target("127.0.0.1", 65535)),
    ],
)
def test_parse_target_accepts_host_port_and_optional_sni(text: str, expected: Target) -> None:
    assert parse_target(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("127.0.0.1", "missing :PORT"),
        ("127.0.0.1:", "not a number"),
        ("127.0.0.1:0", "out of range"),
        ("127.0.0.1:65536", "out of range"),
        ("127.0.0.1:https", "not a number"),
        (":443", "missing host"),
        ("::1:443", "need brackets"),
        ("[::1]443", "missing :PORT"),
        ("[127.0.0.1]:443", "not an IPv6"),
        ("[::1:443", "missing ']'"),
        ("127.0.0.1:443/", "empty SNI"),
        ("127.0.0.1:443/127.0.0.1", "not an IP"),
        ("bad host:443", "whitespace"),
        ("ho$t:443", "not a valid host"),
        ("", "empty target"),
    ],
)
def test_parse_target_rejects_malformed_text_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_target(text)
    assert reason in str(info.value)
    assert repr(text) in str(info.value)


def test_targets_file_skips_comments_and_blanks_and_drops_duplicates(tmp_path: Path) -> None:
    f = tmp_path / "targets.txt"
    f.write_text(
        "# staging endpoints\n\n127.0.0.1:8443\n127.0.0.1:8444/api.test  # inline comment\n"
        "   \n[::1]:443\n127.0.0.1:8443\n"
    )
    assert parse_targets_file(f) == [
        Target("127.0.0.1", 8443),
        Target("127.0.0.1", 8444, "api.test"),
        Target("::1", 443),
    ]


def test_targets_file_error_names_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "targets.txt"
    f.write_text("127.0.0.1:8443\n# fine\n127.0.0.1:notaport\n")
    with pytest.raises(UsageError, match=rf"{f}:3: bad target '127.0.0.1:notaport'"):
        parse_targets_file(f)


def test_missing_targets_file_is_an_input_file_error(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="cannot read targets file"):
        parse_targets_file(tmp_path / "nope.txt")


def test_specs_from_targets_merges_options_and_file_in_order(tmp_path: Path) -> None:
    f = tmp_path / "t.txt"
    f.write_text("127.0.0.1:2\n127.0.0.1:1\n")
    specs = specs_from_targets(["127.0.0.1:1", "127.0.0.1:3/x.test"], str(f), "tcp")
    assert [str(s.target) for s in specs] == ["127.0.0.1:1", "127.0.0.1:3/x.test", "127.0.0.1:2"]
    assert {s.protocol for s in specs} == {"tcp"}
    assert specs[0].subject == "endpoint 127.0.0.1:1"
    assert specs[0].config_verify is None and specs[0].location is None


def test_specs_from_targets_rejects_unknown_protocol() -> None:
    with pytest.raises(UsageError, match="--protocol"):
        specs_from_targets(["127.0.0.1:1"], None, "smtp")
