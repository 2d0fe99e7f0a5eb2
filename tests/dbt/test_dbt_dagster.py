"""The dbt project as Dagster assets: lineage from the raw assets, groups, tests as checks, and an
error-severity test failure stopping what is downstream (here a stand-in for ML / ESP sync)."""

from __future__ import annotations

import dagster as dg
import pytest
from dbt_support import create_raw_tables, load_raw, new_database, query
from sendwise_hand_world import load_phase, t

from dagster_project.dbt.definitions import defs
from dagster_project.dbt.project import dbt_resource
from dagster_project.warehouse.resource import WarehouseResource

RAW_TABLES = (
    "shop_customers",
    "shop_products",
    "shop_orders",
    "shop_order_items",
    "crm_contacts",
    "web_events",
    "esp_events",
)


@dg.asset(deps=[dg.AssetKey("fct_customer_features"), dg.AssetKey("dim_customers")])
def downstream_sync() -> dg.MaterializeResult:
    """Stands in for the ML and ESP sync assets that read the profile marts."""
    return dg.MaterializeResult(metadata={"ran": True})


def dbt_assets_def() -> dg.AssetsDefinition:
    (assets_def,) = defs.assets
    return assets_def


def test_sources_join_the_raw_assets_and_groups_follow_folders():
    assets_def = dbt_assets_def()
    specs = {spec.key: spec for spec in assets_def.specs}
    upstream = {dep.asset_key for spec in specs.values() for dep in spec.deps}
    assert {dg.AssetKey(["raw", t]) for t in RAW_TABLES} <= upstream
    assert specs[dg.AssetKey("stg_shop__customers")].group_name == "staging"
    assert specs[dg.AssetKey("int_identity__identifiers")].group_name == "intermediate"
    assert specs[dg.AssetKey("dim_customers")].group_name == "marts"
    assert specs[dg.AssetKey("snap_crm__contacts")].group_name == "snapshots"
    assert "unified customer profile" in specs[dg.AssetKey("dim_customers")].description
    check_keys = {key.asset_key for key in assets_def.check_keys}
    assert dg.AssetKey("fct_customer_features") in check_keys and dg.AssetKey("dim_customers") in check_keys


@pytest.fixture(scope="module")
def dagster_warehouse(pg_server: str) -> str:
    url = new_database(pg_server, "dbt_dagster")
    create_raw_tables(url)
    load_phase(url, 1)
    return url


def materialize(url: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [dbt_assets_def(), downstream_sync],
        resources={"dbt": dbt_resource(), "warehouse": WarehouseResource(url=url)},
        raise_on_error=False,
    )


def test_a_clean_build_materializes_everything_and_reports_checks(dagster_warehouse: str):
    result = materialize(dagster_warehouse)
    assert result.success
    materialized = {event.asset_key for event in result.get_asset_materialization_events()}
    assert {dg.AssetKey("fct_customer_features"), dg.AssetKey("downstream_sync")} <= materialized
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) > 50 and all(e.passed for e in evaluations)
    assert query(dagster_warehouse, "select count(*) as n from marts.dim_customers")[0]["n"] == 7


def test_an_error_severity_test_failure_stops_downstream_assets(dagster_warehouse: str):
    load_raw(
        dagster_warehouse,
        "shop_orders",
        [
            dict(
                order_id=9999,
                customer_id=101,
                status="lost",
                order_total=1,
                currency="USD",
                ordered_at=t("2026-03-30"),
                created_at=t("2026-03-30"),
                updated_at=t("2026-03-30"),
            )
        ],
    )
    result = materialize(dagster_warehouse)
    assert not result.success
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert any(
        e.asset_key == dg.AssetKey("stg_shop__orders")
        and "accepted_values" in e.check_name
        and e.severity == dg.AssetCheckSeverity.ERROR
        for e in failed
    )
    materialized = {event.asset_key for event in result.get_asset_materialization_events()}
    assert dg.AssetKey("downstream_sync") not in materialized
    assert dg.AssetKey("fct_customer_features") not in materialized
    assert dg.AssetKey("fct_orders") not in materialized
    assert dg.AssetKey("stg_crm__contacts") in materialized  # unrelated models still built
