"""The suites as Dagster asset checks: error checks block downstream assets in the run, warn checks do not.

A tiny graph of stand-in assets with the real keys (the profile and feature tables are already in the
warehouse; the stand-ins only "materialize" them) plus downstream ML and ESP-sync stand-ins, run with
the real quality checks through `dg.materialize`.
"""

from __future__ import annotations

import subprocess
import sys

import dagster as dg
import pytest
from quality_world import execute

from dagster_project.quality.checks import SUITES, build_suite_check
from dagster_project.quality.definitions import defs as quality_defs
from dagster_project.settings import PROJECT_ROOT
from dagster_project.warehouse.resource import WarehouseResource

DIM = dg.AssetKey(["dim_customers"])
FEATURES = dg.AssetKey(["fct_customer_features"])
SEGMENTS = dg.AssetKey(["ml", "customer_segments"])
SYNC = dg.AssetKey(["activation", "esp_profile_sync"])


@dg.asset(key=DIM)
def dim_customers_standin() -> None:
    """Stands in for the dbt model (the test wrote marts.dim_customers already)."""


@dg.asset(key=FEATURES, deps=[DIM])
def features_standin() -> None:
    """Stands in for the dbt model (the test wrote marts.fct_customer_features already)."""


@dg.asset(key=SEGMENTS, deps=[FEATURES])
def segments_standin() -> None:
    """Stands in for the ML segmentation."""


@dg.asset(key=SYNC, deps=[DIM, SEGMENTS])
def esp_sync_standin() -> None:
    """Stands in for the ESP profile sync."""


def _run(warehouse_url: str) -> dg.ExecuteInProcessResult:
    checks = [build_suite_check(s) for s in SUITES if s.name in ("dim_customers", "fct_customer_features")]
    return dg.materialize(
        [dim_customers_standin, features_standin, segments_standin, esp_sync_standin, *checks],
        resources={"warehouse": WarehouseResource(url=warehouse_url)},
        raise_on_error=False,
    )


def _materialized(result: dg.ExecuteInProcessResult) -> set[dg.AssetKey]:
    return {e.asset_key for e in result.get_asset_materialization_events()}


def _evaluations(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    return {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}


def test_clean_world_materializes_everything(world: str) -> None:
    result = _run(world)
    assert result.success
    assert _materialized(result) == {DIM, FEATURES, SEGMENTS, SYNC}
    evaluations = _evaluations(result)
    assert all(e.passed for e in evaluations.values())
    assert ("dim_customers", "valid_email_format") in evaluations
    assert ("fct_customer_features", "row_count_vs_previous_run") in evaluations


def test_failed_error_check_on_profiles_blocks_ml_and_esp_sync(world: str) -> None:
    execute(
        world,
        "update marts.dim_customers set email = 'not-an-email' where customer_key in ('ck-1', 'ck-2')",
    )
    result = _run(world)
    assert not result.success
    assert _materialized(result) == {DIM}  # nothing downstream of the profiles materialized
    evaluations = _evaluations(result)
    failed = evaluations[("dim_customers", "valid_email_format")]
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
    metadata = failed.metadata
    assert metadata["unexpected_count"].value == 2
    assert "ck-1" in metadata["sample"].value and "ck-2" in metadata["sample"].value
    assert metadata["expectation"].value["type"] == "expect_column_values_to_match_regex"
    assert metadata["offline_report"].value.endswith("summary.html")
    assert failed.blocking
    # The feature checks never ran: their asset was not materialized in this run.
    assert not any(key[0] == "fct_customer_features" for key in evaluations)


def test_failed_error_check_on_features_blocks_ml_but_not_profiles(world: str) -> None:
    execute(world, "update marts.fct_customer_features set monetary = -3 where customer_key = 'ck-5'")
    result = _run(world)
    assert _materialized(result) == {DIM, FEATURES}
    failed = _evaluations(result)[("fct_customer_features", "monetary_not_negative")]
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
    assert "ck-5" in failed.metadata["sample"].value


def test_failed_warn_check_is_recorded_but_does_not_block(world: str) -> None:
    execute(
        world, "update marts.dim_customers set timezone = 'Mars Standard Time' where customer_key = 'ck-4'"
    )
    result = _run(world)
    assert result.success
    assert _materialized(result) == {DIM, FEATURES, SEGMENTS, SYNC}
    warned = _evaluations(result)[("dim_customers", "timezone_looks_iana")]
    assert not warned.passed and warned.severity == dg.AssetCheckSeverity.WARN
    assert "Mars Standard Time" in warned.metadata["sample"].value


def test_email_less_shop_is_a_legitimate_state_and_does_not_block(world: str) -> None:
    """Email is optional (SOURCES.md): a shop that holds no emails at all still gets its profiles and ML."""
    execute(
        world,
        "update marts.dim_customers set email = null, is_email_valid = false, is_contactable = false",
    )
    result = _run(world)
    assert result.success
    assert _materialized(result) == {DIM, FEATURES, SEGMENTS, SYNC}
    warned = _evaluations(result)[("dim_customers", "email_null_share")]
    assert not warned.passed and warned.severity == dg.AssetCheckSeverity.WARN
    raw_customers = next(s for s in SUITES if s.name == "raw_shop_customers")
    assert not raw_customers.check("email_null_share").blocking


def test_every_suite_is_wired_with_blocking_matching_severity() -> None:
    specs = {
        (spec.asset_key.to_user_string(), spec.name): spec
        for checks in quality_defs.asset_checks or []
        for spec in checks.check_specs
    }
    expected_assets = {
        "raw/shop_orders", "raw/shop_customers", "raw/esp_events", "raw/web_events", "dim_customers",
        "fct_customer_features", "ml/customer_segments", "ml/send_time_predictions", "ml/customer_value",
        "quarantine_shares",
    }  # fmt: skip
    assert {asset for asset, _ in specs} == expected_assets
    for suite in SUITES:
        for expectation in suite.expectations:
            spec = specs[(suite.asset_path, expectation.check)]
            assert spec.blocking == (expectation.severity == "error"), (suite.name, expectation.check)
    assert specs[("raw/esp_events", "quarantine_share")].blocking
    assert specs[("quarantine_shares", "quarantine_share")].blocking
    assert not specs[("raw/esp_events", "newest_event_is_fresh")].blocking


def test_definitions_load_without_importing_great_expectations() -> None:
    code = (
        "import sys; from dagster_project.quality.definitions import defs; "
        "assert 'great_expectations' not in sys.modules, 'GX imported at definition load'; print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


@pytest.fixture(autouse=True)
def _no_dagster_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
