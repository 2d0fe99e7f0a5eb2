"""The health report's pictures (PNG bytes): each renders a "no data yet" figure on an empty frame."""

from __future__ import annotations

import pandas as pd

from ml.plots import _no_data as _empty
from ml.plots import _png, plt


def _lines(frame: pd.DataFrame, series: str, value: str, title: str, ylabel: str) -> bytes:
    data = frame.dropna(subset=[value])
    if data.empty:
        return _empty(title)
    figure, axis = plt.subplots(figsize=(8, 3.2))
    for name, part in data.groupby(series, sort=True):
        axis.plot(pd.to_datetime(part["day"]), part[value].astype(float), marker="o", label=str(name))
    axis.set_title(title)
    axis.set_ylabel(ylabel)
    axis.legend(fontsize=7, loc="best")
    figure.autofmt_xdate()
    return _png(figure)


def _bars(labels: list[str], values: list[float], title: str, xlabel: str) -> bytes:
    pairs = [(str(label), float(v)) for label, v in zip(labels, values, strict=True) if pd.notna(v)]
    if not pairs:
        return _empty(title)
    figure, axis = plt.subplots(figsize=(7, 0.8 + 0.35 * len(pairs)))
    axis.barh([p[0] for p in pairs], [p[1] for p in pairs], color="#2e90fa")
    axis.invert_yaxis()
    axis.set_title(title)
    axis.set_xlabel(xlabel)
    return _png(figure)


def health_plots(frames: dict[str, pd.DataFrame]) -> dict[str, bytes]:
    """One picture per question of the report, keyed by a metadata-friendly name."""
    freshness = frames["Sources: freshness and last load"]
    loads = frames["Loads per day: quarantine and failures"]
    quality = frames["Data quality: pass rate per suite and day"]
    sync = frames["ESP sync per destination"]
    triggers = frames["Trigger executions per day"]
    profiles = frames["Profiles"]
    per_day = triggers.groupby("day", as_index=False)["executions"].sum() if not triggers.empty else triggers
    return {
        "source_freshness": _bars(
            list(freshness["stream"]), list(freshness["hours_since_success"]),
            "Hours since the last successful load", "hours",
        ),
        "quarantine_rate": _lines(loads, "stream", "quarantine_rate", "Quarantined share per day", "share"),
        "quality_pass_rate": _lines(quality, "suite", "pass_rate", "Data-quality pass rate", "pass rate"),
        "sync_error_rate": _bars(
            list(sync["destination"]), list(sync["sync_error_rate"]), "Failed ESP syncs", "share of syncs"
        ),
        "trigger_executions": _bars(
            [str(d) for d in per_day["day"]], list(per_day["executions"]), "Trigger executions per day",
            "executions",
        ),
        "profiles": _bars(
            [f"{m}: {v}" for m, v in zip(profiles["measure"], profiles["value"], strict=True)],
            list(profiles["profiles"]), "Profiles", "profiles",
        ),
    }  # fmt: skip
