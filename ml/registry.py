"""Model versions and the records of each run (the rows of ml.model_runs). No I/O: the Dagster layer
writes these rows and the joblib artefacts."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


def data_fingerprint(*frames: pd.DataFrame) -> str:
    """A short hash of the frames' contents (order-sensitive), to tell whether the inputs changed."""
    digest = hashlib.sha256()
    for frame in frames:
        digest.update(",".join(map(str, frame.columns)).encode())
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def model_version(
    model: str, parameters: dict[str, Any], fingerprint: str, as_of: pd.Timestamp | None = None
) -> str:
    """Deterministic: the same parameters on the same data give the same version, so a re-run
    overwrites its own rows instead of adding a new model. `as_of` (the data's date) is a readable prefix."""
    digest = hashlib.sha256(
        json.dumps(
            {"model": model, "parameters": parameters, "data": fingerprint}, sort_keys=True, default=str
        ).encode()
    ).hexdigest()[:10]
    date = "" if as_of is None else f"{pd.Timestamp(as_of).strftime('%Y%m%d')}-"
    return f"{model}-{date}{digest}"


@dataclass(frozen=True)
class ModelRun:
    model: str
    version: str
    parameters: dict[str, Any]
    data_snapshot: dict[str, Any]
    metrics: dict[str, Any]

    def row(self) -> dict[str, str]:
        """Column values for ml.model_runs, JSON columns already serialised."""
        return {
            "model": self.model,
            "version": self.version,
            "parameters": to_json(self.parameters),
            "data_snapshot": to_json(self.data_snapshot),
            "metrics": to_json(self.metrics),
        }


def to_json(value: Any) -> str:
    return json.dumps(json_ready(value), sort_keys=True, allow_nan=False)


def json_ready(value: Any) -> Any:
    """numpy/pandas scalars -> Python; NaN/inf -> None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
    if isinstance(value, np.ndarray):
        return [json_ready(item) for item in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def scheduled_refit_reason(
    fitted_parameters: dict[str, Any],
    parameters: dict[str, Any],
    has_model: bool,
    fitted_as_of: pd.Timestamp,
    as_of: pd.Timestamp,
    refit_every_days: int,
) -> str | None:
    """Why a model scored daily against its stored fit must be refitted now (None: score with it)."""
    if fitted_parameters != parameters:
        return "settings changed"
    if not has_model:
        return "no stored model"
    if as_of - fitted_as_of >= pd.Timedelta(days=refit_every_days):
        return f"fit older than {refit_every_days} days"
    return None
