"""Daily segment assignment against the stored model, and the rule that decides when to refit.

A marketer's segments should not churn because a day passed: refitting KMeans every run re-chooses k
and re-draws every boundary. So a run assigns each customer to the nearest stored centroid, and
refits only when the model is missing or stale (schedule, by the data's as-of) or when the data has
drifted away from what the model was fitted on (measured, and recorded either way).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml.config import SegmentationConfig, SegmentRefreshConfig
from ml.features import KEY
from ml.segmentation import (
    SegmentationModel,
    SegmentationResult,
    count_moved,
    member_centroids,
    nearest_centroids,
    profile_frame,
)


@dataclass(frozen=True)
class FitReference:
    """What the stored model looked like when it was fitted: the yardstick for drift."""

    version: str
    as_of: pd.Timestamp | None
    mean_squared_distance: float
    """Mean squared distance of the fitted customers to their centroid, in the model's projected space."""
    shares: dict[int, float]
    """Share of customers in each segment id at fit time."""


@dataclass(frozen=True)
class StoredSegmentation:
    model: SegmentationModel
    reference: FitReference
    run: dict[str, Any] | None = None
    """The fit's ml.model_runs record (parameters, data_snapshot, metrics), reused by a rerun on its data."""


def stored_from_record(
    model: SegmentationModel, version: str, record: dict[str, Any]
) -> StoredSegmentation | None:
    """The stored model with the figures its fit recorded (`record`: parameters, data_snapshot, metrics
    of its ml.model_runs row); None for a fit that recorded none (made before drift was measured)."""
    metrics, snapshot = record["metrics"], record["data_snapshot"]
    if "fit_mean_squared_distance" not in metrics:
        return None
    as_of = snapshot.get("as_of")
    reference = FitReference(
        version=version,
        as_of=pd.Timestamp(as_of) if as_of else None,
        mean_squared_distance=float(metrics["fit_mean_squared_distance"]),
        shares={int(key): float(value) for key, value in metrics["fit_shares"].items()},
    )
    return StoredSegmentation(model, reference, dict(record))


def fit_statistics(model: SegmentationModel, features: pd.DataFrame) -> dict[str, Any]:
    """The figures a fit records so later runs can measure drift against it."""
    _, distance, _ = nearest_centroids(model.kmeans, model.project(features))
    ids = model.segments()[0]
    sizes = np.bincount(model.segment_positions(features), minlength=len(ids))
    return {
        "fit_mean_squared_distance": float(np.mean(distance**2)) if len(distance) else 0.0,
        "fit_shares": {
            str(segment): float(size / max(len(features), 1))
            for segment, size in zip(ids, sizes, strict=True)
        },
    }


def measure_drift(stored: StoredSegmentation, features: pd.DataFrame) -> dict[str, float]:
    """How far today's customers sit from the stored centroids, relative to the fit: the ratio of mean
    squared distances, and the largest change of any segment's share (in share points)."""
    model, reference = stored.model, stored.reference
    _, distance, _ = nearest_centroids(model.kmeans, model.project(features))
    ids = model.segments()[0]
    shares = np.bincount(model.segment_positions(features), minlength=len(ids)) / max(len(features), 1)
    shifts = [
        abs(float(share) - reference.shares.get(int(segment), 0.0))
        for segment, share in zip(ids, shares, strict=True)
    ]
    current = float(np.mean(distance**2)) if len(distance) else 0.0
    ratio = current / reference.mean_squared_distance if reference.mean_squared_distance > 0 else 1.0
    return {"inertia_ratio": round(ratio, 4), "max_share_shift": round(max(shifts, default=0.0), 4)}


def refit_reason(
    stored: StoredSegmentation | None,
    config: SegmentationConfig,
    refresh: SegmentRefreshConfig,
    drift: dict[str, float] | None,
    as_of: pd.Timestamp | None,
) -> str | None:
    """Why this run must refit, or None when assigning against the stored model is right."""
    if stored is None:
        return "no fitted model yet"
    if stored.model.config != config:
        return "the segmentation settings changed"
    fitted_at = stored.reference.as_of
    if as_of is not None and fitted_at is not None:
        age = (pd.Timestamp(as_of) - pd.Timestamp(fitted_at)) / pd.Timedelta(days=1)
        if age >= refresh.refit_every_days:
            return f"scheduled: the model is {age:.0f} days old (refit_every_days={refresh.refit_every_days})"
    if drift is not None:
        if drift["inertia_ratio"] > refresh.max_inertia_ratio:
            return (
                f"drift: customers sit {drift['inertia_ratio']:.2f}x as far from the centroids as at fit "
                f"(max_inertia_ratio={refresh.max_inertia_ratio})"
            )
        if drift["max_share_shift"] > refresh.max_share_shift:
            return (
                f"drift: a segment's share moved by {drift['max_share_shift']:.3f} "
                f"(max_share_shift={refresh.max_share_shift})"
            )
    return None


def assign_segments(
    stored: StoredSegmentation, features: pd.DataFrame, previous_assignments: pd.DataFrame | None
) -> SegmentationResult:
    """Every customer to the nearest stored centroid: ids, names and k as they were fitted."""
    model = stored.model
    assignments = model.assign(features)
    ids, names, _ = model.segments()
    positions = model.segment_positions(features)
    sizes = np.bincount(positions, minlength=len(ids))
    scaled = model.transform.transform(features)
    original = model.transform.to_original_units(member_centroids(scaled, positions, len(ids)))
    profiles = profile_frame(ids, names, sizes, len(features), original)
    moved = count_moved(previous_assignments, assignments[[KEY, "segment_id"]])
    metrics: dict[str, Any] = {
        "customers": len(features),
        "k": int(model.kmeans.n_clusters),
        "segments": len(ids),
        "sizes": {str(i): int(s) for i, s in zip(ids, sizes, strict=True)},
        "moved_customers": moved["moved"],
        "compared_with_previous": moved["compared"],
    }
    return SegmentationResult(model, assignments, profiles, pd.DataFrame(), metrics)
