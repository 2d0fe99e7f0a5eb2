import numpy as np
import pandas as pd
import pytest

from ml.config import MLConfig, SegmentationConfig
from ml.evaluation import truth_by_customer
from ml.pipeline import markdown_table, run_segmentation, run_send_time, segmentation_version
from ml.synthetic import ARCHETYPES, synthesize_marts

CONFIG = MLConfig(segmentation=SegmentationConfig(selection_sample_size=2000, silhouette_sample_size=500))


def test_ml_markdown_table_formats_numbers():
    table = markdown_table(
        pd.DataFrame({"name": ["a"], "value": [1234567.891], "rate": [0.123456], "n": [np.nan]})
    )
    assert table.splitlines() == [
        "| name | value | rate | n |",
        "|---|---|---|---|",
        "| a | 1,234,568 | 0.123 |  |",
    ]


def test_ml_run_segmentation_rows_run_record_and_plot():
    world = synthesize_marts(800, days=7, seed=4)
    truth = truth_by_customer(world.people, world.customers)
    run = run_segmentation(world.features.sample(frac=1, random_state=1), CONFIG, truth=truth)
    assert run.version == segmentation_version(world.features, CONFIG)  # row order does not matter
    assert list(run.assignments.columns) == [
        "customer_key",
        "segment_id",
        "segment_name",
        "distance",
        "confidence",
        "model_version",
        "previous_segment_id",
    ]
    assert run.assignments["previous_segment_id"].isna().all()
    assert len(run.assignments) == 800 and run.profiles["size"].sum() == 800
    assert {"ari_kmeans", "ari_rfm_baseline", "silhouette", "k"} <= set(run.run.metrics)
    assert run.plots["segment_centroids"].startswith(b"\x89PNG")
    # ground truth scores the run, it never changes it
    untouched = run_segmentation(world.features, CONFIG)
    pd.testing.assert_frame_equal(untouched.assignments, run.assignments)


def test_ml_run_send_time_rows_and_metrics():
    world = synthesize_marts(500, days=56, seed=4)
    segments = run_segmentation(world.features, CONFIG).assignments
    truth = truth_by_customer(world.people, world.customers)
    run = run_send_time(world.email_events, world.customers, segments, CONFIG, truth=truth)
    assert list(run.predictions.columns) == [
        "customer_key",
        "best_hour_of_week",
        "timezone",
        "local_hour",
        "local_weekday",
        "next_send_at_utc",
        "source_level",
        "confidence",
        "model_version",
    ]
    assert len(run.predictions) == 500
    assert run.run.data_snapshot["as_of"] == world.email_events["event_at"].max().isoformat()
    metrics = run.run.metrics
    assert metrics["machine_opens_excluded"] > 0
    assert set(metrics["ground_truth_within_1h"]) == {"model", "global_best_hour", "user_most_frequent_hour"}
    assert "model.lt5_past.hit_rate_1h" in metrics["backtest"]
    untouched = run_send_time(world.email_events, world.customers, segments, CONFIG)
    pd.testing.assert_frame_equal(untouched.predictions, run.predictions)


def test_ml_send_time_without_email_events_needs_the_data_as_of():
    world = synthesize_marts(60, days=14, seed=5)
    no_events = world.email_events.iloc[0:0]
    with pytest.raises(ValueError, match="as_of"):
        run_send_time(no_events, world.customers, None, CONFIG)
    as_of = pd.Timestamp("2026-10-20T15:30:00Z")
    run = run_send_time(no_events, world.customers, None, CONFIG, as_of=as_of)
    slots = run.predictions["next_send_at_utc"]
    assert (slots > as_of).all() and (slots <= as_of + pd.Timedelta(days=7, hours=1)).all()
    assert run.run.data_snapshot["as_of"] == as_of.isoformat()


def test_ml_synthetic_world_is_seeded_and_shaped_like_the_marts():
    first, again = synthesize_marts(200, days=14, seed=9), synthesize_marts(200, days=14, seed=9)
    pd.testing.assert_frame_equal(first.email_events, again.email_events)
    assert first.features["customer_key"].is_unique and len(first.features) == 200
    assert set(first.people["archetype"]) <= set(ARCHETYPES)
    assert first.people["preferred_hour_of_week_local"].between(0, 167).all()
    events = first.email_events
    assert set(events["event_type"]) == {"delivered", "open", "click"}
    machine = events[events["is_machine_open"]]
    assert (machine["event_type"] == "open").all() and (machine["seconds_since_delivery"] < 10).all()
    assert (events["event_at"] < first.as_of).all()
