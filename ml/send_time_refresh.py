"""Daily send times from the stored statistics: which customers to score again, and their new rows.

A refit (`run_send_time` over all engagement) stores the level model (kernel, global / zone / segment
rates) and one state row per (customer, message). Until the next refit a daily run refreshes the state
rows of the messages whose events were (re)built since the last run, and scores against the stored level
model only the customers whose statistics, time zone or segment changed; everyone else keeps their
prediction (only the next UTC slot moves with the as-of). Scoring every customer against the same model
gives the same rows (`test_daily_send_times_equal_a_full_recomputation`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml.config import MLConfig
from ml.features import KEY
from ml.pipeline import SEND_TIME_MODEL, SendTimeRun, send_time_parameters
from ml.plots import send_time_heatmap
from ml.registry import ModelRun, data_fingerprint, model_version, scheduled_refit_reason
from ml.send_time import LEVELS, SendTimeModel, clean_timezones, next_send_slots, score_send_time
from ml.send_time_stats import engagement_from_stats, stats_from_messages

SCORED_COLUMNS = (KEY, "timezone", "segment_id")
"""what a customer was last scored with (a change scores it again)"""


@dataclass
class StoredSendTime:
    fitted_version: str
    fitted_as_of: pd.Timestamp
    parameters: dict[str, Any]
    metrics: dict[str, Any]
    model: SendTimeModel | None
    """None when the artefact is gone"""


def refit_reason(stored: StoredSendTime | None, config: MLConfig, as_of: pd.Timestamp) -> str | None:
    """Why this run refits on all engagement (None: score the changed customers against `stored`)."""
    if stored is None:
        return "no stored statistics"
    return scheduled_refit_reason(
        stored.parameters,
        send_time_parameters(config),
        stored.model is not None,
        stored.fitted_as_of,
        as_of,
        config.send_time.refit_every_days,
    )


def scored_inputs(customers: pd.DataFrame, segments: pd.DataFrame | None) -> pd.DataFrame:
    """Per customer the time zone and segment its prediction is computed with."""
    segment = _segment_of(customers, segments)
    return pd.DataFrame(
        {KEY: customers[KEY].to_numpy(), "timezone": customers["timezone"].to_numpy(), "segment_id": segment}
    )


def _segment_of(customers: pd.DataFrame, segments: pd.DataFrame | None) -> pd.Series:
    if segments is None or segments.empty:
        return pd.Series(pd.NA, index=range(len(customers)), dtype="Int64")
    by_key = pd.Series(segments["segment_id"].to_numpy(), index=segments[KEY].to_numpy())
    return pd.Series(by_key.reindex(customers[KEY].to_numpy()).to_numpy()).astype("Int64")


def customers_to_score(
    current: pd.DataFrame, scored: pd.DataFrame, previous: pd.DataFrame, changed: set[str]
) -> set[str]:
    """Customers whose statistics changed (`changed`), whose zone or segment differs from what they were
    scored with, and customers without a stored prediction (new, or rows lost)."""
    before = scored.set_index(KEY).reindex(current[KEY].to_numpy())
    zone_moved = ~_same(current["timezone"].to_numpy(), before["timezone"].to_numpy())
    segment_moved = ~_same(current["segment_id"].to_numpy(), before["segment_id"].to_numpy())
    unscored = ~current[KEY].isin(scored[KEY]) | ~current[KEY].isin(previous[KEY])
    moved = current.loc[(zone_moved | segment_moved | unscored.to_numpy()), KEY]
    return (set(moved) | changed) & set(current[KEY])


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a_na, b_na = pd.isna(a), pd.isna(b)
    return (a_na & b_na) | (~a_na & ~b_na & (a.astype(object) == b.astype(object)))


def rescore_send_time(
    stored: StoredSendTime,
    messages: pd.DataFrame,
    customers: pd.DataFrame,
    segments: pd.DataFrame | None,
    previous: pd.DataFrame,
    to_score: set[str],
    config: MLConfig,
    as_of: pd.Timestamp,
    snapshot: dict[str, Any],
) -> SendTimeRun:
    """All prediction rows: `to_score` customers scored again from their state rows (`messages`) against
    the stored model (each keeps its previous hour while nearly as good), the others' rows kept; the
    next slot of everyone after `as_of`. Customers no longer in `customers` are dropped."""
    assert stored.model is not None
    settings = config.send_time
    customers = customers.sort_values(KEY, ignore_index=True)
    scope = customers[customers[KEY].isin(to_score)].reset_index(drop=True)
    zones = pd.Series(clean_timezones(scope["timezone"], settings.default_timezone)[0], index=scope[KEY])
    stats = stats_from_messages(messages[messages[KEY].isin(to_score)], zones)
    engagement = engagement_from_stats(stats, scope)
    previous_by_key = previous.set_index(KEY)
    previous_best = (
        previous_by_key["best_hour_of_week"].reindex(scope[KEY]).fillna(-1).to_numpy(dtype=np.int64)
    )
    scored = score_send_time(stored.model, engagement, scope, segments, previous_best=previous_best)
    parameters = {**send_time_parameters(config), "scored_with": stored.fitted_version}
    fingerprint = data_fingerprint(
        scored, pd.DataFrame({"watermark": [str(snapshot.get("events_built_until"))]})
    )
    version = model_version(SEND_TIME_MODEL, parameters, fingerprint, as_of)
    columns = ["best_hour_of_week", "source_level", "confidence", "model_version"]
    kept = previous_by_key.loc[
        previous_by_key.index.isin(customers[KEY]) & ~previous_by_key.index.isin(to_score)
    ]
    rows = pd.concat([kept[columns], scored.set_index(KEY).assign(model_version=version)[columns]])
    rows = rows.reindex(customers[KEY].to_numpy())
    slots = next_send_slots(
        rows["best_hour_of_week"].to_numpy(), customers["timezone"], as_of, settings.default_timezone
    )
    predictions = pd.concat(
        [
            pd.DataFrame(
                {KEY: customers[KEY].to_numpy(), "best_hour_of_week": rows["best_hour_of_week"].to_numpy()}
            ),
            slots,
            rows[["source_level", "confidence", "model_version"]].reset_index(drop=True),
        ],
        axis=1,
    )
    level = predictions["source_level"].to_numpy()
    fit_metrics = stored.metrics
    metrics = {
        "customers": len(customers),
        "rescored_customers": len(scope),
        "source_levels": {name: int((level == name).sum()) for name in LEVELS},
        "refit": False,
        "scored_with": stored.fitted_version,
        # the backtest runs with each refit; a daily run reports its model's
        **{key: value for key, value in fit_metrics.items() if key.startswith("backtest")},
        "backtest_of": stored.fitted_version,
    }
    run = ModelRun(
        model=SEND_TIME_MODEL,
        version=version,
        parameters=parameters,
        data_snapshot={
            **snapshot,
            "as_of": as_of.isoformat(),
            "customers": len(customers),
            "fitted_version": stored.fitted_version,
            "refit": False,
        },
        metrics=metrics,
    )
    plots = {"best_send_hour_heatmap": send_time_heatmap(predictions["best_hour_of_week"].to_numpy())}
    return SendTimeRun(version, predictions, pd.DataFrame(), run, stored.model, plots)
