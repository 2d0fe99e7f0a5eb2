"""Both ML assets materialized by Dagster against a real Postgres, on marts built from a synthetic world
with planted preferred hours."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from dagster_project.ml.assets import customer_segments, send_time_predictions
from dagster_project.ml.definitions import defs
from dagster_project.warehouse.connection import create_engine
from dagster_project.warehouse.resource import WarehouseResource
from ml.synthetic import synthesize_marts

N_CUSTOMERS = 700
WEEK = pd.Timedelta(days=7, hours=1)  # a week of local time, plus the hour a DST change can add


@pytest.fixture
def marts(warehouse_url: str):
    world = synthesize_marts(N_CUSTOMERS, days=70, seed=3)
    engine = create_engine(warehouse_url)
    with engine.begin() as conn:
        conn.execute(sa.text("create schema if not exists marts"))
        conn.execute(sa.text("create schema if not exists intermediate"))
        conn.execute(
            sa.text(
                "create table intermediate.int_calendar__as_of as select cast(:at as timestamptz) as as_of_at"
            ),
            {"at": world.as_of.isoformat()},
        )
    world.features.to_sql("fct_customer_features", engine, schema="marts", index=False)
    world.customers.to_sql("dim_customers", engine, schema="marts", index=False)
    world.email_events.to_sql("fct_email_events", engine, schema="marts", index=False, chunksize=5000)
    engine.dispose()
    truth_dir = Path(os.environ["SENDWISE_HOME"]) / "world" / "ground_truth"
    truth_dir.mkdir(parents=True)
    world.people.to_csv(truth_dir / "people.csv", index=False)
    return world


def _materialize(url: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [customer_segments, send_time_predictions], resources={"warehouse": WarehouseResource(url=url)}
    )


def _query(url: str, sql: str) -> pd.DataFrame:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return pd.read_sql(sa.text(sql), conn)
    finally:
        engine.dispose()


def test_ml_definitions_expose_the_three_assets():
    keys = {key.to_user_string() for assets in defs.assets for key in assets.keys}
    assert {"ml/customer_segments", "ml/segment_profiles", "ml/send_time_predictions"} <= keys


def test_ml_assets_materialize_write_outputs_and_record_runs(warehouse_url: str, marts):
    result = _materialize(warehouse_url)
    assert result.success

    segments = _query(warehouse_url, "select * from ml.customer_segments")
    assert len(segments) == N_CUSTOMERS
    assert segments["customer_key"].is_unique
    assert {"segment_id", "segment_name", "distance", "confidence", "model_version"} <= set(segments.columns)
    assert segments["confidence"].between(0, 1).all()
    names = segments.groupby("segment_id")["segment_name"].nunique()
    assert (names == 1).all()
    assert segments.drop_duplicates("segment_id")["segment_name"].is_unique

    profiles = _query(warehouse_url, "select * from ml.segment_profiles")
    assert profiles["size"].sum() == N_CUSTOMERS
    assert {"monetary", "recency_days", "engagement_score"} <= set(profiles.columns)

    predictions = _query(warehouse_url, "select * from ml.send_time_predictions")
    assert len(predictions) == N_CUSTOMERS
    assert predictions["best_hour_of_week"].between(0, 167).all()
    assert (predictions["local_hour"] == predictions["best_hour_of_week"] % 24).all()
    assert set(predictions["source_level"]) <= {"user", "segment", "timezone", "global", "default"}
    assert marts.email_events["event_at"].max() < marts.as_of
    next_send = pd.to_datetime(predictions["next_send_at_utc"], utc=True)
    assert next_send.between(marts.as_of, marts.as_of + WEEK, inclusive="right").all()

    runs = _query(
        warehouse_url, "select model, version, metrics, parameters from ml.model_runs order by model"
    )
    assert list(runs["model"]) == ["customer_segments", "send_time"]
    segment_metrics, send_metrics = runs["metrics"].iloc[0], runs["metrics"].iloc[1]
    for name in ("k", "silhouette", "stability_ari", "ari_kmeans", "ari_rfm_baseline", "k_scores"):
        assert name in segment_metrics
    backtest = send_metrics["backtest"]
    for method in ("model", "global_best_hour", "user_most_frequent_hour"):
        assert f"{method}.all.hit_rate_1h" in backtest
        assert f"{method}.lt5_past.hit_rate_3h_window" in backtest
    # planted preferences: the model must beat both baselines
    assert backtest["model.all.hit_rate_1h"] > backtest["user_most_frequent_hour.all.hit_rate_1h"]
    assert backtest["model.all.hit_rate_1h"] > backtest["global_best_hour.all.hit_rate_1h"]
    truth = send_metrics["ground_truth_within_1h"]
    assert truth["model"] > truth["user_most_frequent_hour"]

    home = Path(os.environ["SENDWISE_HOME"])
    for model, version in zip(runs["model"], runs["version"], strict=True):
        assert (home / "models" / model / f"{version}.joblib").exists()
    assert list((home / "reports" / "ml").glob("*/segment_centroids.png"))

    materializations = result.asset_materializations_for_node("customer_segments")
    profile_metadata = next(
        m for m in materializations if m.asset_key.path[-1] == "segment_profiles"
    ).metadata
    assert profile_metadata["segment_centroids"].value.startswith(
        "![segment_centroids](data:image/png;base64,"
    )


def test_ml_send_times_follow_the_data_as_of_without_email_events(warehouse_url: str, marts):
    """A shop without an ESP: no email events, yet every send time is in the week after the data's as-of
    (dbt's int_calendar__as_of), not after the epoch or the wall clock."""
    engine = create_engine(warehouse_url)
    with engine.begin() as conn:
        conn.execute(sa.text("delete from marts.fct_email_events"))
    engine.dispose()
    assert _materialize(warehouse_url).success
    predictions = _query(warehouse_url, "select next_send_at_utc, source_level from ml.send_time_predictions")
    assert len(predictions) == N_CUSTOMERS and set(predictions["source_level"]) == {"default"}
    next_send = pd.to_datetime(predictions["next_send_at_utc"], utc=True)
    assert next_send.between(marts.as_of, marts.as_of + WEEK, inclusive="right").all()


def test_ml_assets_rerun_is_idempotent(warehouse_url: str, marts):
    assert _materialize(warehouse_url).success
    first = _query(warehouse_url, "select * from ml.customer_segments order by customer_key")
    first_times = _query(warehouse_url, "select * from ml.send_time_predictions order by customer_key")

    assert _materialize(warehouse_url).success
    second = _query(warehouse_url, "select * from ml.customer_segments order by customer_key")
    second_times = _query(warehouse_url, "select * from ml.send_time_predictions order by customer_key")
    pd.testing.assert_frame_equal(
        first.drop(columns="previous_segment_id"), second.drop(columns="previous_segment_id")
    )
    pd.testing.assert_frame_equal(first_times, second_times)
    runs = _query(warehouse_url, "select model, version, metrics from ml.model_runs")
    assert len(runs) == 2
    assert _query(warehouse_url, "select count(*) as n from ml.segment_profiles")["n"].iloc[0] == len(
        first["segment_id"].unique()
    )


def test_ml_segment_ids_survive_a_changed_dataset(warehouse_url: str, marts):
    assert _materialize(warehouse_url).success
    before = _query(warehouse_url, "select customer_key, segment_id, segment_name from ml.customer_segments")

    engine = create_engine(warehouse_url)
    with engine.begin() as conn:  # a day later: a few customers gone, engagement drifts a little
        conn.execute(sa.text("delete from marts.fct_customer_features where customer_key like '%7'"))
        conn.execute(
            sa.text("update marts.fct_customer_features set engagement_score = engagement_score * 0.98")
        )
    engine.dispose()
    assert _materialize(warehouse_url).success

    after = _query(warehouse_url, "select customer_key, segment_id, segment_name from ml.customer_segments")
    runs = _query(
        warehouse_url, "select version, metrics from ml.model_runs where model = 'customer_segments'"
    )
    assert len(runs) == 2
    metrics = max(runs["metrics"], key=lambda m: m["compared_with_previous"])
    both = before.merge(after, on="customer_key", suffixes=("_before", "_after"))
    assert metrics["compared_with_previous"] == len(both)
    assert metrics["moved_customers"] == int((both["segment_id_before"] != both["segment_id_after"]).sum())
    # matched ids: nearly everyone keeps their segment id
    assert metrics["moved_customers"] < 0.1 * len(both)
    # the second run assigned customers to the stored model instead of refitting it
    assert metrics["refit"] is False and metrics["drift"]["inertia_ratio"] > 0
    artefacts = list((Path(os.environ["SENDWISE_HOME"]) / "models" / "customer_segments").glob("*.joblib"))
    assert len(artefacts) == 1


def test_ml_read_frame_types_text_nulls_times_and_booleans(warehouse_url: str):
    import psycopg

    from dagster_project.ml import io

    with psycopg.connect(warehouse_url) as conn:
        conn.execute(
            "create table t as select * from (values ('NA', 1.5, timestamptz '2026-11-02 10:00+01', true), "
            "(null, null, null, false)) v(key, amount, at, flag)"
        )
        frame = io.read_frame(
            conn, "select * from t where amount is distinct from %s", (0,), ("key",), ("at",), ("flag",)
        )
    assert frame["key"].tolist()[0] == "NA" and pd.isna(frame["key"].tolist()[1])
    assert frame["at"].iloc[0] == pd.Timestamp("2026-11-02T09:00Z") and pd.isna(frame["at"].iloc[1])
    assert frame["flag"].tolist() == [True, False]
    assert frame["amount"].iloc[0] == 1.5 and pd.isna(frame["amount"].iloc[1])
