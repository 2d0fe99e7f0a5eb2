"""From the `fct_customer_features` mart to a numeric matrix: null handling, log transforms, scaling."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

KEY = "customer_key"


class FeatureError(ValueError):
    """Input that cannot be turned into features; the message names the records and the reason."""


@dataclass(frozen=True)
class FeatureTransform:
    """A fitted transform: fill nulls, log1p the skewed columns, standardise."""

    features: tuple[str, ...]
    log_mask: np.ndarray
    fill_values: np.ndarray
    mean: np.ndarray
    scale: np.ndarray

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        return (self.logged(frame) - self.mean) / self.scale

    def logged(self, frame: pd.DataFrame) -> np.ndarray:
        values = numeric_matrix(frame, self.features)
        values = np.where(np.isnan(values), self.fill_values, values)
        values[:, self.log_mask] = np.log1p(values[:, self.log_mask])
        return values

    def to_original_units(self, scaled: np.ndarray) -> pd.DataFrame:
        """Points in scaled space (e.g. centroids) back in the features' own units."""
        values = np.asarray(scaled, dtype=float) * self.scale + self.mean
        values[:, self.log_mask] = np.expm1(values[:, self.log_mask])
        return pd.DataFrame(values, columns=list(self.features))


def numeric_matrix(frame: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    """The feature columns as float64, with a clear error for missing columns or bad values."""
    missing = [name for name in features if name not in frame.columns]
    if missing:
        raise FeatureError(f"features table lacks column(s) {missing}")
    values = np.empty((len(frame), len(features)), dtype=float)
    for position, name in enumerate(features):
        column = pd.to_numeric(frame[name], errors="coerce").astype(float).to_numpy()
        unparsable = np.isnan(column) & frame[name].notna().to_numpy()
        if unparsable.any():
            raise FeatureError(_describe_rows(frame, unparsable, f"{name} is not a number"))
        values[:, position] = column
    infinite = np.isinf(values).any(axis=1)
    if infinite.any():
        raise FeatureError(_describe_rows(frame, infinite, "a feature is infinite"))
    return values


def fit_feature_transform(
    frame: pd.DataFrame, features: Sequence[str], log_features: Sequence[str]
) -> FeatureTransform:
    features = tuple(features)
    if frame.empty:
        raise FeatureError("features table is empty: nothing to segment")
    values = numeric_matrix(frame, features)
    log_mask = np.array([name in log_features for name in features])
    negative = (values[:, log_mask] < 0).any(axis=1)
    if negative.any():
        raise FeatureError(_describe_rows(frame, negative, "a log-transformed feature is negative"))
    fill_values = _fill_values(values, features)
    filled = np.where(np.isnan(values), fill_values, values)
    filled[:, log_mask] = np.log1p(filled[:, log_mask])
    mean = filled.mean(axis=0)
    scale = filled.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    return FeatureTransform(features, log_mask, fill_values, mean, scale)


def _fill_values(values: np.ndarray, features: tuple[str, ...]) -> np.ndarray:
    """Nulls mean 'never': recency of a customer without orders is as old as the oldest; others 0."""
    fill = np.zeros(len(features))
    for position, name in enumerate(features):
        if name == "recency_days":
            observed = values[:, position][~np.isnan(values[:, position])]
            fill[position] = float(observed.max()) + 1.0 if observed.size else 365.0
    return fill


def _describe_rows(frame: pd.DataFrame, mask: np.ndarray, reason: str, limit: int = 5) -> str:
    keys = frame[KEY].to_numpy()[mask] if KEY in frame.columns else np.flatnonzero(mask)
    shown = ", ".join(str(key) for key in keys[:limit])
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return f"{reason}: {KEY} {shown}{more}"
