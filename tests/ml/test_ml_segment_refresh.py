"""Segments stay put day to day: a run assigns customers to the stored centroids and refits only on a
schedule (the data's as-of), on measured drift or on changed settings, and says which."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from ml.config import MLConfig, SegmentationConfig
from ml.pipeline import run_segmentation
from ml.segment_refresh import stored_from_record
from ml.synthetic import synthesize_marts

CONFIG = MLConfig(
    segmentation=SegmentationConfig(
        k_min=3, k_max=6, selection_sample_size=1500, silhouette_sample_size=500, stability_rounds=1
    )
)
FIT_AS_OF = pd.Timestamp("2026-11-01T00:00:00Z")


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    return synthesize_marts(1500, days=60, seed=11).features


@pytest.fixture(scope="module")
def fitted(features: pd.DataFrame):
    run = run_segmentation(features, CONFIG, as_of=FIT_AS_OF)
    record = {
        "parameters": run.run.parameters,
        "data_snapshot": run.run.data_snapshot,
        "metrics": run.run.metrics,
    }
    stored = stored_from_record(run.model, run.version, record)
    assert stored is not None
    return run, stored


def _a_day_later(features: pd.DataFrame, new_buyers: float = 0.01, seed: int = 5) -> pd.DataFrame:
    """Every clock-derived figure one day older, and a few customers who bought again."""
    day = features.copy()
    for column in ("recency_days", "days_since_registration"):
        day[column] = day[column] + 1
    rng = np.random.default_rng(seed)
    buyers = rng.random(len(day)) < new_buyers
    day.loc[buyers, "recency_days"] = 0
    day.loc[buyers, "frequency"] += 1
    day.loc[buyers, "monetary"] += day.loc[buyers, "avg_order_value"].fillna(50)
    return day


def _moved_share(before: pd.DataFrame, after: pd.DataFrame) -> float:
    both = before[["customer_key", "segment_id"]].merge(
        after[["customer_key", "segment_id"]], on="customer_key", suffixes=("_before", "_after")
    )
    return float((both["segment_id_before"] != both["segment_id_after"]).mean())


def test_a_new_day_is_assigned_to_the_stored_centroids_and_moves_under_two_percent(features, fitted):
    fit_run, stored = fitted
    day = _a_day_later(features)
    run = run_segmentation(
        day,
        CONFIG,
        previous_assignments=fit_run.assignments,
        stored=stored,
        as_of=FIT_AS_OF + pd.Timedelta(days=1),
    )
    assert run.run.data_snapshot["refit"] is False
    assert run.run.data_snapshot["fitted_version"] == fit_run.version
    assert run.version != fit_run.version
    assert run.run.metrics["k"] == fit_run.run.metrics["k"]
    assert set(run.assignments["segment_id"]) <= set(fit_run.assignments["segment_id"])
    moved = _moved_share(fit_run.assignments, run.assignments)
    assert moved < 0.02
    assert run.run.metrics["moved_customers"] == round(moved * len(features))
    assert run.run.metrics["drift"]["inertia_ratio"] < CONFIG.segment_refresh.max_inertia_ratio
    # the same names for the same ids as the fit
    names = dict(zip(fit_run.profiles["segment_id"], fit_run.profiles["segment_name"], strict=True))
    assert (run.assignments["segment_id"].map(names) == run.assignments["segment_name"]).all()


def test_customers_whose_features_did_not_change_keep_their_segment(features, fitted):
    fit_run, stored = fitted
    day = features.copy()
    changed = day.index[:30]
    day.loc[changed, "monetary"] = day.loc[changed, "monetary"] * 3 + 500
    run = run_segmentation(
        day, CONFIG, previous_assignments=fit_run.assignments, stored=stored, as_of=FIT_AS_OF
    )
    unchanged = ~features["customer_key"].isin(day.loc[changed, "customer_key"])
    keep = fit_run.assignments.set_index("customer_key")["segment_id"]
    now = run.assignments.set_index("customer_key")["segment_id"]
    keys = features.loc[unchanged, "customer_key"]
    assert (keep[keys] == now[keys]).all()


def test_a_rerun_on_the_fitted_data_is_the_fit_itself(features, fitted):
    fit_run, stored = fitted
    run = run_segmentation(features, CONFIG, stored=stored, as_of=FIT_AS_OF)
    assert run.version == fit_run.version
    assert run.run.metrics == fit_run.run.metrics
    pd.testing.assert_frame_equal(
        run.assignments.drop(columns="previous_segment_id"),
        fit_run.assignments.drop(columns="previous_segment_id"),
    )


def test_the_schedule_refits_by_the_datas_as_of(features, fitted):
    _, stored = fitted
    days = CONFIG.segment_refresh.refit_every_days
    run = run_segmentation(
        _a_day_later(features), CONFIG, stored=stored, as_of=FIT_AS_OF + pd.Timedelta(days=days)
    )
    assert run.run.data_snapshot["refit"] is True
    assert run.run.metrics["refit_reason"].startswith("scheduled")
    assert run.run.data_snapshot["fitted_version"] == run.version


def test_measured_drift_refits_and_is_recorded(features, fitted):
    _, stored = fitted
    shifted = features.copy()
    half = shifted.index[: len(shifted) // 2]
    shifted.loc[half, "monetary"] = shifted.loc[half, "monetary"] * 40 + 5000
    shifted.loc[half, "frequency"] = shifted.loc[half, "frequency"] + 25
    shifted.loc[half, "recency_days"] = 1
    run = run_segmentation(shifted, CONFIG, stored=stored, as_of=FIT_AS_OF + pd.Timedelta(days=1))
    assert run.run.metrics["refit_reason"].startswith("drift")
    drift = run.run.metrics["drift"]
    assert (
        drift["inertia_ratio"] > CONFIG.segment_refresh.max_inertia_ratio
        or drift["max_share_shift"] > CONFIG.segment_refresh.max_share_shift
    )


def test_changed_settings_refit(features, fitted):
    _, stored = fitted
    other = dataclasses.replace(CONFIG, segmentation=dataclasses.replace(CONFIG.segmentation, k_max=5))
    run = run_segmentation(_a_day_later(features), other, stored=stored, as_of=FIT_AS_OF)
    assert run.run.metrics["refit_reason"] == "the segmentation settings changed"


def test_a_fit_recorded_without_drift_figures_is_not_reused(fitted):
    fit_run, _ = fitted
    record = {"parameters": {}, "data_snapshot": {}, "metrics": {"k": 4}}
    assert stored_from_record(fit_run.model, fit_run.version, record) is None


def test_no_stored_model_fits(features):
    run = run_segmentation(features, CONFIG, stored=None, as_of=FIT_AS_OF)
    assert run.run.metrics["refit_reason"] == "no fitted model yet"
    assert isinstance(run.run.metrics["fit_mean_squared_distance"], float)
    assert abs(sum(run.run.metrics["fit_shares"].values()) - 1.0) < 1e-9
