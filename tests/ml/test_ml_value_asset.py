"""ml/customer_value materialized by Dagster against a real Postgres, on marts written by the test."""

from __future__ import annotations

import json

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa
from clv_worlds import simulate_orders

from dagster_project.ml.value_assets import customer_value
from dagster_project.warehouse.connection import create_engine
from dagster_project.warehouse.resource import WarehouseResource


def _write_marts(url: str, orders: pd.DataFrame, as_of: str | None = None) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("create schema if not exists marts"))
        conn.execute(sa.text("create schema if not exists intermediate"))
    keys = sorted(orders["customer_key"].unique()) + ["c-never-ordered"]
    customers = pd.DataFrame({"customer_key": keys, "registered_at": pd.Timestamp("2024-12-01", tz="UTC")})
    customers.to_sql("dim_customers", engine, schema="marts", index=False)
    orders.to_sql("fct_orders", engine, schema="marts", index=False)
    if as_of:
        pd.DataFrame({"as_of_at": [pd.Timestamp(as_of)]}).to_sql(
            "int_calendar__as_of", engine, schema="intermediate", index=False
        )
    engine.dispose()


def _query(url: str, sql: str) -> pd.DataFrame:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return pd.read_sql(sa.text(sql), conn)
    finally:
        engine.dispose()


def _materialize(url: str) -> dg.ExecuteInProcessResult:
    return dg.materialize([customer_value], resources={"warehouse": WarehouseResource(url=url)})


def test_customer_value_asset_writes_rows_and_its_run_record(warehouse_url: str):
    orders = simulate_orders(600, days=200, seed=4)
    _write_marts(warehouse_url, orders, as_of="2025-07-20T00:00:00Z")
    result = _materialize(warehouse_url)
    assert result.success
    values = _query(warehouse_url, "select * from ml.customer_value")
    assert len(values) == 601 and values["customer_key"].is_unique
    buyers = values[values["customer_key"] != "c-never-ordered"]
    assert buyers["p_alive"].notna().all() and buyers["predicted_clv"].notna().all()
    assert set(buyers["churn_risk_band"]) <= {"Low", "Medium", "High"}
    never = values[values["customer_key"] == "c-never-ordered"].iloc[0]
    assert pd.isna(never["p_alive"]) and never["historic_clv"] == 0
    run = _query(warehouse_url, "select * from ml.model_runs where model = 'customer_value'")
    assert len(run) == 1
    metrics = run["metrics"].iloc[0]
    metrics = json.loads(metrics) if isinstance(metrics, str) else metrics
    assert metrics["clv"]["status"] == "ok"
    # the run records its own backtests: BG/NBD on the last 30 days, propensity AUC vs both baselines
    backtest = metrics["clv_backtest"]
    assert backtest["status"] == "ok" and backtest["holdout_days"] == 30
    assert backtest["actual_purchase_days"] > 0 and backtest["forecast_purchase_days"] > 0
    assert backtest["forecast_error"] == pytest.approx(
        backtest["forecast_purchase_days"] / backtest["actual_purchase_days"] - 1
    )
    assert backtest["mae_model"] >= 0 and backtest["mae_naive_rate"] >= 0
    aucs = {method: scores["auc"] for method, scores in metrics["propensity"]["backtest"].items()}
    assert set(aucs) == {"model", "recency_alone", "bgnbd_p_purchase"}
    assert all(0 <= auc <= 1 for auc in aucs.values())
    snapshot = run["data_snapshot"].iloc[0]
    snapshot = json.loads(snapshot) if isinstance(snapshot, str) else snapshot
    assert snapshot["as_of"].startswith("2025-07-20")  # the build's as-of, not the newest order
    materialization = result.asset_materializations_for_node("ml__customer_value")[0]
    assert "clv_distribution" in materialization.metadata


def test_too_little_data_materializes_with_the_reason_and_null_predictions(warehouse_url: str):
    orders = simulate_orders(30, days=200, seed=4)
    _write_marts(warehouse_url, orders)
    result = _materialize(warehouse_url)
    assert result.success
    values = _query(warehouse_url, "select * from ml.customer_value")
    assert len(values) == 31
    assert values[["p_alive", "predicted_clv", "churn_risk", "purchase_propensity_30d"]].isna().all().all()
    materialization = result.asset_materializations_for_node("ml__customer_value")[0]
    assert "fewer than the minimum 100" in materialization.metadata["clv_status"].value
