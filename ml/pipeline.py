"""One run of each model, end to end but without I/O: inputs are frames read by the Dagster layer, outputs
are the rows to write, the run record for ml.model_runs, the fitted artefact, and the pictures."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml.config import MLConfig
from ml.evaluation import (
    backtest_send_time,
    global_best_hour,
    ground_truth_agreement,
    segmentation_quality,
    user_most_frequent_hours,
)
from ml.features import KEY
from ml.plots import segment_centroid_chart, send_time_heatmap
from ml.registry import ModelRun, data_fingerprint, model_version
from ml.segment_refresh import (
    StoredSegmentation,
    assign_segments,
    fit_statistics,
    measure_drift,
    refit_reason,
)
from ml.segmentation import SegmentationModel, SegmentationResult, fit_segments
from ml.send_time import Engagement, SendTimeModel, fit_send_time, next_send_slots, prepare_engagement

SEGMENTS_MODEL = "customer_segments"
SEND_TIME_MODEL = "send_time"


@dataclass
class SegmentationRun:
    version: str
    assignments: pd.DataFrame
    """ml.customer_segments rows (with previous_segment_id: the segment before this run, if any)"""
    profiles: pd.DataFrame
    """ml.segment_profiles rows"""
    run: ModelRun
    model: SegmentationModel
    plots: dict[str, bytes] = field(default_factory=dict)


@dataclass
class SendTimeRun:
    version: str
    predictions: pd.DataFrame
    """ml.send_time_predictions rows"""
    backtest: pd.DataFrame
    run: ModelRun
    model: SendTimeModel
    plots: dict[str, bytes] = field(default_factory=dict)


def segmentation_version(features: pd.DataFrame, config: MLConfig) -> str:
    """Known before fitting, so the previous run (any other version) can be looked up first."""
    features = features.sort_values(KEY, ignore_index=True)
    return model_version(SEGMENTS_MODEL, config.segmentation.parameters(), data_fingerprint(features))


def run_segmentation(
    features: pd.DataFrame,
    config: MLConfig | None = None,
    previous_profiles: pd.DataFrame | None = None,
    previous_assignments: pd.DataFrame | None = None,
    truth: pd.DataFrame | None = None,
    stored: StoredSegmentation | None = None,
    as_of: pd.Timestamp | None = None,
) -> SegmentationRun:
    """Assign customers to the stored model's centroids, or refit when `refit_reason` says so.

    `stored` is the last fitted model with its fit figures; `as_of` the data's as-of (for the refit
    schedule). `truth` (customer_key, archetype) is used only to score the result, never to fit it."""
    config = config or MLConfig()
    features = features.sort_values(KEY, ignore_index=True)
    fit_version = segmentation_version(features, config)
    if stored is not None and stored.reference.version == fit_version and stored.run is not None:
        return _rerun_of_fit(features, config, stored, previous_assignments)
    drift = (
        measure_drift(stored, features)
        if stored is not None and stored.model.config == config.segmentation
        else None
    )
    reason = refit_reason(stored, config.segmentation, config.segment_refresh, drift, as_of)
    snapshot: dict[str, Any] = {
        "customers": len(features),
        "fingerprint": data_fingerprint(features),
        "as_of": None if as_of is None else pd.Timestamp(as_of).isoformat(),
        "refit": reason is not None,
        "refit_reason": reason,
    }
    if reason is None:
        assert stored is not None
        version = model_version(
            SEGMENTS_MODEL,
            {**config.segmentation.parameters(), "assigned_with": stored.reference.version},
            snapshot["fingerprint"],
        )
        result = assign_segments(stored, features, previous_assignments)
        snapshot["fitted_version"] = stored.reference.version
        extra = {}
    else:
        version = fit_version
        result = fit_segments(features, config.segmentation, previous_profiles, previous_assignments)
        snapshot["fitted_version"] = version
        extra = fit_statistics(result.model, features)
    assignments, profiles = _versioned(result, version, previous_assignments)
    metrics = {
        **result.metrics,
        **extra,
        "refit": reason is not None,
        "refit_reason": reason,
        "drift": drift,
        **segmentation_quality(result.assignments, features, truth),
    }
    run = ModelRun(
        model=SEGMENTS_MODEL,
        version=version,
        parameters={**config.segmentation.parameters(), "refresh": config.segment_refresh.parameters()},
        data_snapshot=snapshot,
        metrics=metrics,
    )
    plots = {"segment_centroids": segment_centroid_chart(profiles, list(config.segmentation.features))}
    return SegmentationRun(version, assignments, profiles, run, result.model, plots)


def _versioned(
    result: SegmentationResult, version: str, previous_assignments: pd.DataFrame | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows to write: assignments (with each customer's segment before this run) and profiles."""
    before = (
        previous_assignments.set_index(KEY)["segment_id"]
        if previous_assignments is not None
        else pd.Series(dtype="Int64")
    )
    assignments = result.assignments.assign(
        model_version=version, previous_segment_id=result.assignments[KEY].map(before).astype("Int64")
    )
    return assignments, result.profiles.assign(model_version=version)


def _rerun_of_fit(
    features: pd.DataFrame,
    config: MLConfig,
    stored: StoredSegmentation,
    previous_assignments: pd.DataFrame | None,
) -> SegmentationRun:
    """The data the model was fitted on, again: the fit's own assignment and record, unchanged."""
    assert stored.run is not None
    version = stored.reference.version
    result = assign_segments(stored, features, previous_assignments)
    assignments, profiles = _versioned(result, version, previous_assignments)
    run = ModelRun(SEGMENTS_MODEL, version, **stored.run)
    plots = {"segment_centroids": segment_centroid_chart(profiles, list(config.segmentation.features))}
    return SegmentationRun(version, assignments, profiles, run, stored.model, plots)


def send_time_parameters(config: MLConfig) -> dict[str, Any]:
    """What a send-time fit depends on besides the data (a change refits)."""
    return {"send_time": config.send_time.parameters(), "backtest_test_days": config.backtest.test_days}


def run_send_time(
    events: pd.DataFrame,
    customers: pd.DataFrame,
    segments: pd.DataFrame | None,
    config: MLConfig | None = None,
    truth: pd.DataFrame | None = None,
    as_of: pd.Timestamp | None = None,
    previous: pd.DataFrame | None = None,
) -> SendTimeRun:
    """Fit on all engagement, predict for every customer, backtest against the baselines.

    `previous` (customer_key, best_hour_of_week): the last run's predictions; a customer keeps its hour
    while it rates within `keep_previous_within` of the best (day-to-day flips re-sent ESP profiles).

    `as_of` is the data's as-of instant (the pipeline passes dbt's int_calendar__as_of, which also sees
    orders and web data); without it, the latest email event time (never now() or the epoch: with
    neither there is no time to predict after, which is an error). `truth` (customer_key,
    preferred_hour_of_week_local) is used only to score."""
    config = config or MLConfig()
    customers = customers.sort_values(KEY, ignore_index=True)
    if as_of is None:
        latest = pd.to_datetime(events["event_at"], utc=True).max() if len(events) else pd.NaT
        if pd.isna(latest):
            raise ValueError("run_send_time needs as_of when there are no email events (the data's as-of)")
        as_of = latest
    as_of = pd.Timestamp(as_of)
    engagement = prepare_engagement(events, customers, config.send_time)
    previous_best = None
    if previous is not None and not previous.empty:
        by_key = pd.Series(previous["best_hour_of_week"].to_numpy(), index=previous[KEY].to_numpy())
        previous_best = by_key.reindex(customers[KEY].to_numpy()).fillna(-1).to_numpy(dtype=np.int64)
    fitted = fit_send_time(engagement, customers, segments, config.send_time, previous_best=previous_best)
    slots = next_send_slots(
        fitted.predictions["best_hour_of_week"].to_numpy(),
        customers["timezone"],
        as_of,
        config.send_time.default_timezone,
    )
    parameters = send_time_parameters(config)
    fingerprint = _engagement_fingerprint(engagement, customers, segments)
    version = model_version(SEND_TIME_MODEL, parameters, fingerprint, as_of)
    predictions = pd.concat(
        [
            fitted.predictions[[KEY, "best_hour_of_week"]],
            slots,
            fitted.predictions[["source_level", "confidence"]],
        ],
        axis=1,
    ).assign(model_version=version)

    backtest = backtest_send_time(engagement, customers, segments, as_of, config.send_time, config.backtest)
    metrics: dict[str, Any] = {
        **fitted.model.metrics,
        "backtest_cutoff": backtest["cutoff"],
        "backtest_train_responses": backtest["train_responses"],
        "backtest_test_responses": backtest["test_responses"],
        "backtest": backtest["summary"],
    }
    if truth is not None and not truth.empty:
        n_users = len(engagement.customer_keys)
        best_global = global_best_hour(engagement.response_hour, config.send_time.default_hour_of_week)
        metrics["ground_truth_within_1h"] = ground_truth_agreement(
            {
                "model": predictions["best_hour_of_week"].to_numpy(),
                "global_best_hour": np.full(n_users, best_global),
                "user_most_frequent_hour": user_most_frequent_hours(
                    engagement.response_user, engagement.response_hour, n_users, best_global
                ),
            },
            engagement.customer_keys,
            truth,
        )
    run = ModelRun(
        model=SEND_TIME_MODEL,
        version=version,
        parameters=parameters,
        data_snapshot={
            "as_of": as_of.isoformat(),
            "customers": len(customers),
            "email_events": len(events),
            "fingerprint": fingerprint,
        },
        metrics=metrics,
    )
    plots = {"best_send_hour_heatmap": send_time_heatmap(predictions["best_hour_of_week"].to_numpy())}
    return SendTimeRun(version, predictions, backtest["table"], run, fitted.model, plots)


def markdown_table(frame: pd.DataFrame, digits: int = 3, limit: int = 30) -> str:
    """A small frame as a Markdown table (numbers rounded), for Dagster metadata."""
    shown = frame.head(limit)
    header = "| " + " | ".join(map(str, shown.columns)) + " |"
    rule = "|" + "---|" * len(shown.columns)
    lines = [header, rule]
    for row in shown.itertuples(index=False):
        cells = [_cell(value, digits) for value in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, float | np.floating):
        if not np.isfinite(value):
            return ""
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.{digits}g}"
    return str(value)


def _engagement_fingerprint(
    engagement: Engagement, customers: pd.DataFrame, segments: pd.DataFrame | None
) -> str:
    digest = hashlib.sha256()
    for array in (
        engagement.delivery_user,
        engagement.delivery_hour,
        engagement.response_user,
        engagement.response_hour,
        engagement.response_at.astype(np.int64),
    ):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(data_fingerprint(customers[[KEY, "timezone"]]).encode())
    if segments is not None:
        digest.update(data_fingerprint(segments[[KEY, "segment_id"]]).encode())
    return digest.hexdigest()[:16]
