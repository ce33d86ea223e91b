"""`if` conditions and `map` lookups, evaluated the way Nginx would (doc nginx-mtls.md §4.2).

Maps and `if` blocks are read from real configs written to tmp_path, so crossplane's handling of
quotes and parentheses is part of what is tested.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from mtls_audit.nginx.conditions import (
    build_maps,
    eval_if,
    map_lookup,
    mentions_verify,
    resolve,
    verify_guard_verdict,
)
from mtls_audit.nginx.load import Directive, load_config

MapTable = Mapping[str, tuple[str, Directive]]

MAPS = r"""
http {
    map $ssl_client_verify $mtls_denied {
        default 1;
        SUCCESS 0;
    }
    map $ssl_client_verify $mtls_kind {
        default          other;
        NONE             none;
        "~^FAILED:"      failed;
        "~*^success$"    ci-success;
    }
    map $mtls_kind $mtls_label {
        default  "label-$mtls_kind";
        none     anonymous;
    }
    map $ssl_client_verify $no_default {
        SUCCESS yes;
    }
    map $ssl_client_verify $failed_only {
        default 0;
        "~^FAILED" 1;
    }
    map $ssl_client_verify $lower_ok {
        default 0;
        success 1;
    }
}
"""


@pytest.fixture
def maps(tmp_path: Path) -> MapTable:
    conf = tmp_path / "nginx.conf"
    conf.write_text(MAPS, encoding="utf-8")
    cfg = load_config(str(conf))
    return build_maps([d for d in cfg.root.walk() if d.name == "map"])


def if_args(tmp_path: Path, cond: str) -> list[str]:
    """The arguments crossplane gives for `if (cond) { return 403; }`."""
    conf = tmp_path / "if.conf"
    conf.write_text(f"server {{\n    if ({cond}) {{ return 403; }}\n}}\n", encoding="utf-8")
    cfg = load_config(str(conf))
    return next(d.args for d in cfg.root.walk() if d.name == "if")


# ---------------------------------------------------------------- eval_if


@pytest.mark.parametrize(
    ("cond", "value", "expected"),
    [
        ("$ssl_client_verify = SUCCESS", "SUCCESS", True),
        ("$ssl_client_verify = SUCCESS", "NONE", False),
        ('$ssl_client_verify = "SUCCESS"', "SUCCESS", True),
        ("$ssl_client_verify != SUCCESS", "NONE", True),
        ("$ssl_client_verify != SUCCESS", "SUCCESS", False),
        ("$ssl_client_verify ~ ^FAILED", "FAILED:certificate has expired", True),
        ("$ssl_client_verify ~ ^failed", "FAILED:x", False),
        ("$ssl_client_verify ~* ^failed", "FAILED:x", True),
        ("$ssl_client_verify !~ ^SUCCESS$", "NONE", True),
        ("$ssl_client_verify !~ ^SUCCESS$", "SUCCESS", False),
        ("$ssl_client_verify !~* ^success$", "SUCCESS", False),
        ("$ssl_client_verify", "NONE", True),
        ("$ssl_client_verify", "", False),
        ("$ssl_client_verify", "0", False),
    ],
)
def test_eval_if_operators(
    tmp_path: Path, maps: MapTable, cond: str, value: str, expected: bool
) -> None:
    args = if_args(tmp_path, cond)
    assert eval_if(args, {"$ssl_client_verify": value}, maps) is expected


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["$other_var", "=", "x"],  # not about the variables we know
        ["-f", "/etc/passwd"],  # file tests
        ["$ssl_client_verify", "~", "("],  # a regex Python cannot compile
        ["$ssl_client_verify", "<", "x"],  # not an nginx operator
    ],
)
def test_eval_if_returns_none_when_it_cannot_decide(maps: MapTable, args: list[str]) -> None:
    assert eval_if(args, {"$ssl_client_verify": "NONE"}, maps) is None


# ---------------------------------------------------------------- map lookups


def test_map_exact_match(maps: MapTable) -> None:
    env = {"$ssl_client_verify": "SUCCESS"}
    assert resolve("$mtls_denied", env, maps) == "0"


def test_map_default_when_nothing_matches(maps: MapTable) -> None:
    assert resolve("$mtls_denied", {"$ssl_client_verify": "NONE"}, maps) == "1"
    assert resolve("$mtls_kind", {"$ssl_client_verify": "weird"}, maps) == "other"


def test_map_without_default_yields_empty_string(maps: MapTable) -> None:
    assert resolve("$no_default", {"$ssl_client_verify": "NONE"}, maps) == ""


def test_map_regex_keys_in_order_after_exact_match(maps: MapTable) -> None:
    assert resolve("$mtls_kind", {"$ssl_client_verify": "FAILED:expired"}, maps) == "failed"
    assert resolve("$mtls_kind", {"$ssl_client_verify": "NONE"}, maps) == "none"  # exact first


def test_map_case_insensitive_regex(maps: MapTable) -> None:
    assert resolve("$mtls_kind", {"$ssl_client_verify": "SUCCESS"}, maps) == "ci-success"


def test_map_string_keys_match_ignoring_case(maps: MapTable) -> None:
    # nginx docs: "Strings are matched ignoring the case" (checked on nginx 1.22: y=yes both ways)
    assert resolve("$lower_ok", {"$ssl_client_verify": "SUCCESS"}, maps) == "1"
    assert resolve("$lower_ok", {"$ssl_client_verify": "NONE"}, maps) == "0"


def test_chained_maps_and_variables_in_values(maps: MapTable) -> None:
    assert resolve("$mtls_label", {"$ssl_client_verify": "NONE"}, maps) == "anonymous"
    assert resolve("$mtls_label", {"$ssl_client_verify": "FAILED:x"}, maps) == "label-failed"


def test_unknown_source_variable_resolves_to_none(maps: MapTable) -> None:
    assert resolve("$mtls_denied", {}, maps) is None
    assert resolve("$not_a_map", {"$ssl_client_verify": "NONE"}, maps) is None


def test_map_lookup_on_a_block_directly(maps: MapTable) -> None:
    _, block = maps["$mtls_kind"]
    assert map_lookup(block, "FAILED:self-signed certificate") == "failed"
    assert map_lookup(block, "") == "other"


# ---------------------------------------------------------------- verify guards


@pytest.mark.parametrize(
    ("cond", "ok"),
    [
        ("$ssl_client_verify != SUCCESS", True),
        ('$ssl_client_verify != "SUCCESS"', True),
        ("$ssl_client_verify !~ ^SUCCESS$", True),
        ("$ssl_client_verify = FAILED", False),  # never matches since 1.11.7, misses NONE
        ("$ssl_client_verify ~ FAILED", False),  # misses NONE
        ("$ssl_client_verify = NONE", False),  # misses FAILED:*
        ("$ssl_client_verify", False),  # true for SUCCESS too
    ],
)
def test_verify_guard_verdict_direct(tmp_path: Path, maps: MapTable, cond: str, ok: bool) -> None:
    verdict, truth = verify_guard_verdict(if_args(tmp_path, cond), maps)
    assert verdict is ok
    assert set(truth) == {"NONE", "FAILED", "SUCCESS"}


def test_verify_guard_verdict_explains_each_value(tmp_path: Path, maps: MapTable) -> None:
    _, truth = verify_guard_verdict(if_args(tmp_path, "$ssl_client_verify ~ FAILED"), maps)
    assert truth == {"NONE": False, "FAILED": True, "SUCCESS": False}


@pytest.mark.parametrize(
    ("cond", "ok"),
    [
        ("$mtls_denied", True),  # default 1; SUCCESS 0
        ("$mtls_denied = 1", True),
        ("$mtls_kind != ci-success", True),
        ("$mtls_label = anonymous", False),  # misses FAILED
        ("$failed_only", False),  # misses NONE
        ("$no_default != yes", True),
        ("$lower_ok = 0", True),  # `success 1;` matches SUCCESS
    ],
)
def test_verify_guard_verdict_through_maps(tmp_path: Path, maps: MapTable, cond: str, ok: bool) -> None:
    args = if_args(tmp_path, cond)
    assert verify_guard_verdict(args, maps)[0] is ok
    assert mentions_verify(args, maps)


def test_mentions_verify_is_false_for_unrelated_variables(tmp_path: Path, maps: MapTable) -> None:
    assert not mentions_verify(if_args(tmp_path, "$scheme = http"), maps)
    assert not mentions_verify([], maps)
