"""The customer_value asset over a refit day, a daily run and a scheduled refit on Postgres: the daily run
scores with the stored fit only the customer whose features were rebuilt (and one without a row), the
others keep their row and version, and the rescored row equals scoring everyone with that fit."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import joblib
import pandas as pd
import pytest
import sqlalchemy as sa
from clv_worlds import simulate_orders
from test_ml_value_asset import _query

from dagster_project.ml.value_assets import customer_value
from dagster_project.warehouse.connection import create_engine
from dagster_project.warehouse.resource import WarehouseResource
from ml.config import CLVConfig, MLConfig
from ml.value_pipeline import score_customer_value, value_orders, value_parameters
from ml.value_refresh import StoredValue, refit_reason

DAY_1 = pd.Timestamp("2025-07-20", tz="UTC")
CHANGED = "c00003"
NEW_ORDER_TOTAL = 1234.5


def _run(url: str, sql: list[str]) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        for statement in sql:
            conn.execute(sa.text(statement))
    engine.dispose()


def _materialize(url: str) -> dict:
    result = dg.materialize([customer_value], resources={"warehouse": WarehouseResource(url=url)})
    assert result.success
    return result.asset_materializations_for_node("ml__customer_value")[0].metadata


def _values(url: str) -> pd.DataFrame:
    return _query(url, "select * from ml.customer_value order by customer_key").set_index("customer_key")


@pytest.fixture
def world(warehouse_url: str) -> tuple[str, pd.DataFrame]:
    orders = simulate_orders(400, days=200, seed=5)
    orders = orders[orders["ordered_at"] < DAY_1]
    keys = sorted(orders["customer_key"].unique())
    engine = create_engine(warehouse_url)
    with engine.begin() as conn:
        for schema in ("marts", "intermediate"):
            conn.execute(sa.text(f"create schema if not exists {schema}"))
    built = DAY_1 + pd.Timedelta(hours=1)
    customers = pd.DataFrame({"customer_key": keys, "registered_at": DAY_1 - pd.Timedelta(days=300)})
    customers.assign(_built_at=built).to_sql("dim_customers", engine, schema="marts", index=False)
    customers[["customer_key"]].assign(_built_at=built).to_sql(
        "int_customers__features", engine, schema="intermediate", index=False
    )
    orders.to_sql("fct_orders", engine, schema="marts", index=False)
    as_of = pd.DataFrame({"as_of_at": [DAY_1]})
    as_of.to_sql("int_calendar__as_of", engine, schema="intermediate", index=False)
    engine.dispose()
    return warehouse_url, orders


def _next_day(url: str, day: pd.Timestamp, sql: list[str] = ()) -> None:
    _run(url, [*sql, f"update intermediate.int_calendar__as_of set as_of_at = '{day.isoformat()}'"])


def test_a_daily_run_scores_the_changed_customers_with_the_stored_fit(world):
    url, orders = world
    first = _materialize(url)
    assert first["refit_reason"].value == "no stored fit"
    day_1 = _values(url)
    fitted = day_1["model_version"].iloc[0]
    assert (day_1["model_version"] == fitted).all()

    # day 2: one customer orders again (its features row is rebuilt), one customer is new
    day_2 = DAY_1 + pd.Timedelta(days=1)
    built = (day_2 + pd.Timedelta(hours=1)).isoformat()
    _next_day(
        url,
        day_2,
        [
            "insert into marts.fct_orders (order_id, customer_key, ordered_at, order_total, is_completed, "
            f"categories) values ('o-new', '{CHANGED}', '{(day_2 - pd.Timedelta(hours=3)).isoformat()}', "
            f"{NEW_ORDER_TOTAL}, true, 'books')",
            f"update intermediate.int_customers__features set _built_at = '{built}' "
            f"where customer_key = '{CHANGED}'",
            f"insert into marts.dim_customers values ('c-new', '{day_2.isoformat()}', '{built}')",
            f"insert into intermediate.int_customers__features values ('c-new', '{built}')",
        ],
    )
    second = _materialize(url)
    assert second["refit_reason"].value == "none: changed customers scored"
    assert second["rescored_customers"].value == 2
    day_2_rows = _values(url)
    assert len(day_2_rows) == len(day_1) + 1
    others = day_1.index.drop(CHANGED)
    pd.testing.assert_frame_equal(day_2_rows.loc[others], day_1.loc[others])  # untouched: same row
    changed = day_2_rows.loc[CHANGED]
    assert changed["model_version"] == fitted and changed["scored_as_of"] == day_2
    assert changed["historic_clv"] == pytest.approx(day_1.loc[CHANGED, "historic_clv"] + NEW_ORDER_TOTAL)
    assert day_2_rows.loc["c-new", "historic_clv"] == 0 and pd.isna(day_2_rows.loc["c-new", "p_alive"])

    # what scoring everyone with the stored fit at day 2 gives, for the two scored customers
    artefact = joblib.load(next(Path(os.environ["SENDWISE_HOME"]).rglob(f"{fitted}.joblib")))
    all_orders = _query(url, "select * from marts.fct_orders")
    all_orders["ordered_at"] = pd.to_datetime(all_orders["ordered_at"], utc=True)
    everyone = _query(url, "select customer_key, registered_at from marts.dim_customers")
    expected = score_customer_value(
        artefact, fitted, everyone, value_orders(all_orders, day_2), None, None, day_2, MLConfig()
    ).set_index("customer_key")
    assert changed["scored_at"] > day_1.loc[CHANGED, "scored_at"]  # what the day's quality checks read
    for key in (CHANGED, "c-new"):
        for column in day_2_rows.columns.drop("scored_at"):
            got, want = day_2_rows.loc[key, column], expected.loc[key, column]
            same = got == pytest.approx(want) if isinstance(want, float) else got == want
            assert (pd.isna(got) and pd.isna(want)) or same, (key, column, got, want)

    # a week after the fit: everyone scored again by a new fit
    _next_day(url, DAY_1 + pd.Timedelta(days=7))
    third = _materialize(url)
    assert third["refit_reason"].value == "fit older than 7 days"
    day_8 = _values(url)
    assert (day_8["model_version"] != fitted).all() and day_8["model_version"].nunique() == 1
    assert (day_8["scored_as_of"] == DAY_1 + pd.Timedelta(days=7)).all()


def test_changed_settings_or_a_missing_artefact_refit():
    config = MLConfig()
    artefact = dict.fromkeys(("bgnbd", "gamma_gamma", "propensity_model", "propensity_features"))
    stored = StoredValue("v1", DAY_1, value_parameters(config), {}, {**artefact, "category_shares": None})
    assert refit_reason(stored, config, DAY_1 + pd.Timedelta(days=6)) is None
    other = MLConfig(clv=CLVConfig(churn_window_days=60))
    assert refit_reason(stored, other, DAY_1) == "settings changed"
    stored.artefact = artefact  # written before the scoring inputs were stored
    assert refit_reason(stored, config, DAY_1) == "no stored model"
