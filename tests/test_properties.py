"""Property tests: generated and mutated input never crashes a scan (issue: fuzzing).

Invariant: a config (or certificate file) yields a report or an input error (MtlsAuditError, one
line), never another exception, and never a hidden one: `run_checks` turns a crashing check into
an `error` result saying "check crashed", which `fuzz_support.check_report` counts as a failure.
Every result must point at a loaded file and a line >= 1, and every output format must render
(the JSON one valid against the shipped schema).

Deterministic for CI: `derandomize=True`, no example database, fixed `max_examples`; the whole
module runs in well under 25 s. `fuzz/fuzz_config.py` and `fuzz/fuzz_certs.py` drive the same
strategies (tests/fuzz_support.py) for minutes, with random seeds.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import fuzz_support as fs
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mtls_audit.certs import CertCache, parse_file, parse_material
from mtls_audit.context import CheckContext, Options
from mtls_audit.engine import Catalog, load_catalog
from mtls_audit.errors import ConfigError, MtlsAuditError
from mtls_audit.inventory import build_inventory, render_inventory_json, render_inventory_table
from mtls_audit.model import Finding, Report, RuleMeta
from mtls_audit.nginx.load import load_config

CI = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def _scan_case(case: fs.ConfigCase, catalog: Catalog, options: Options | None = None) -> Report | MtlsAuditError:
    with tempfile.TemporaryDirectory(prefix="mtls-prop-") as d:
        main = case.write(Path(d))
        outcome = fs.scan_config(str(main), catalog, options)
    event("report" if isinstance(outcome, Report) else "input error")  # --hypothesis-show-statistics
    return outcome


# --------------------------------------------------------------------------------------------
# Configs


@settings(CI, max_examples=60)
@given(case=fs.config_case(), options=fs.options_strategy())
def test_generated_configs_give_a_report_or_an_input_error(
    catalog: Catalog, case: fs.ConfigCase, options: Options
) -> None:
    _scan_case(case, catalog, options)


def _mutated_fixture() -> st.SearchStrategy[fs.ConfigCase]:
    corpus = fs.fixture_corpus()
    return st.sampled_from(corpus).flatmap(
        lambda item: fs.mutated(item[1]).map(lambda data: fs.fixture_config_case(item[0], data))
    )


@settings(CI, max_examples=80)
@given(case=_mutated_fixture(), options=fs.options_strategy())
def test_mutated_real_fixtures_give_a_report_or_an_input_error(
    catalog: Catalog, case: fs.ConfigCase, options: Options
) -> None:
    _scan_case(case, catalog, options)


def test_the_fixture_corpus_is_what_the_mutation_test_thinks_it_is() -> None:
    corpus = dict(fs.fixture_corpus())
    assert len(corpus) >= 50, sorted(corpus)
    assert "demo/nginx.conf" in corpus and "invalid/unterminated_quote.conf" in corpus


@settings(CI, max_examples=25)
@given(case=fs.config_case(with_pki=False))
def test_generated_configs_as_an_nginx_T_dump_through_run_scan(catalog: Catalog, case: fs.ConfigCase) -> None:
    # `scan -` reads a dump from stdin; the files it names are not on this machine
    fs.scan_config("-", catalog, stdin_text=case.dump(), via_run_scan=True)


@settings(CI, max_examples=150)
@given(data=st.one_of(st.binary(max_size=600), st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_any_bytes_as_a_config_load_or_raise_config_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory(prefix="mtls-prop-") as d:
        path = os.path.join(d, "nginx.conf")
        with open(path, "wb") as f:
            f.write(data)
        try:
            cfg = load_config(path)
        except ConfigError as e:
            fs.check_error_line(e)
            assert e.file, str(e)  # a config error always names its file
            return
        assert all(d.line >= 1 for d in cfg.root.walk())


def test_a_hidden_crash_is_caught_by_the_invariant(catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    """The invariant must see through run_checks' safety net, or the tests above prove nothing."""

    def boom(ctx: CheckContext, rule: RuleMeta) -> Iterable[Finding]:
        raise KeyError("planted")

    monkeypatch.setitem(catalog.checks, "MTLS101", boom)
    case = fs.ConfigCase({"nginx.conf": b"http { server { listen 443 ssl; ssl_verify_client optional; } }\n"})
    with pytest.raises(fs.InvariantError, match="check crashed: MTLS101"):
        _scan_case(case, catalog)


# --------------------------------------------------------------------------------------------
# Certificates, CRLs and keys


@settings(CI, max_examples=300)
@given(data=fs.trust_material())
def test_generated_and_mutated_pem_der_never_raise(data: bytes) -> None:
    fs.check_material(parse_material(data))


@settings(CI, max_examples=60)
@given(data=fs.trust_material(), name=st.sampled_from(["ca.pem", "client.crl", "server.key", "x.der"]))
def test_trust_files_parse_and_inventory_without_raising(data: bytes, name: str) -> None:
    with tempfile.TemporaryDirectory(prefix="mtls-prop-") as d:
        path = os.path.join(d, name)
        with open(path, "wb") as f:
            f.write(data)
        fs.check_file_facts(parse_file(path))
        inventory = build_inventory([path, d], cache=CertCache())
        render_inventory_json(inventory)
        render_inventory_table(inventory)


@settings(CI, max_examples=40)
@given(case=fs.trust_slots_case(), options=fs.options_strategy())
def test_mutated_trust_material_through_every_trust_rule(catalog: Catalog, case: fs.ConfigCase, options: Options) -> None:
    report = _scan_case(case, catalog, options)
    assert isinstance(report, Report), report  # bad files are findings, never an input error
    assert {r.rule_id for r in report.results} >= {"MTLS201", "MTLS202", "MTLS209"}
