"""Pictures for the Dagster UI, as PNG bytes (matplotlib's Agg backend, no display, no files)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _png(figure: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def centroid_scores(profiles: pd.DataFrame, features: list[str]) -> np.ndarray:
    """Each segment's centroid per feature relative to the size-weighted average, in standard deviations
    of log1p(value) (so revenue and rates share one scale). NaN where a centroid is unknown (the recency
    of a segment without orders); those cells are left out of the averages instead of poisoning them."""
    values = profiles[features].astype(float).to_numpy()
    if values.size == 0:
        return values
    logged = np.ma.masked_invalid(np.log1p(np.clip(values, 0, None)))
    weights = np.broadcast_to(np.maximum(profiles["size"].to_numpy(dtype=float), 1e-9)[:, None], logged.shape)
    average = np.ma.average(logged, axis=0, weights=weights)
    std = logged.std(axis=0).filled(0.0)
    spread = np.where(std > 1e-9, std, 1.0)
    return ((logged - average) / spread).filled(np.nan)


def _no_data(title: str) -> bytes:
    figure, axis = plt.subplots(figsize=(6, 1.6))
    axis.axis("off")
    axis.text(0.5, 0.5, "no data yet", ha="center", va="center", color="#667085")
    axis.set_title(title)
    return _png(figure)


def segment_centroid_chart(profiles: pd.DataFrame, features: list[str]) -> bytes:
    """Heatmap of each segment's centroid, per feature, relative to the size-weighted average
    (log scale for positive features so revenue and rates share one picture); unknown cells in grey."""
    title = "Segment centroids (original units)"
    if profiles.empty or not features:
        return _no_data(title)
    values = profiles[features].astype(float).to_numpy()
    relative = centroid_scores(profiles, features)
    labels = [f"{row.segment_id}: {row.segment_name} ({row.size:,})" for row in profiles.itertuples()]
    figure, axis = plt.subplots(figsize=(1.0 + 0.8 * len(features), 0.9 + 0.5 * len(labels)))
    finite = np.abs(relative[np.isfinite(relative)])
    limit = max(float(finite.max()) if finite.size else 0.0, 1e-9)
    colours = plt.get_cmap("RdBu_r").with_extremes(bad="#d0d5dd")
    image = axis.imshow(np.ma.masked_invalid(relative), cmap=colours, vmin=-limit, vmax=limit, aspect="auto")
    axis.set_xticks(range(len(features)), features, rotation=45, ha="right")
    axis.set_yticks(range(len(labels)), labels)
    for row in range(values.shape[0]):
        for column in range(values.shape[1]):
            value = values[row, column]
            text = f"{value:.3g}" if np.isfinite(value) else "n/a"
            axis.text(column, row, text, ha="center", va="center", fontsize=7)
    figure.colorbar(image, ax=axis, label="above / below average (std)")
    axis.set_title(title)
    return _png(figure)


def send_time_heatmap(hours_of_week: np.ndarray, title: str = "Best send hour (local)") -> bytes:
    """Customers per local weekday x hour."""
    counts = np.bincount(np.asarray(hours_of_week, dtype=np.int64), minlength=168)[:168].reshape(7, 24)
    figure, axis = plt.subplots(figsize=(10, 3.2))
    image = axis.imshow(counts, cmap="viridis", aspect="auto")
    axis.set_yticks(range(7), WEEKDAYS)
    axis.set_xticks(range(0, 24, 2), [f"{h:02d}" for h in range(0, 24, 2)])
    axis.set_xlabel("local hour")
    axis.set_title(title)
    figure.colorbar(image, ax=axis, label="customers")
    return _png(figure)


def gains_chart(label: np.ndarray, scores: dict[str, np.ndarray], title: str = "Gains (backtest)") -> bytes:
    """Share of the window's buyers reached when contacting the top x % by each score."""
    label = np.asarray(label, dtype=float)
    figure, axis = plt.subplots(figsize=(5.5, 4.2))
    share = np.arange(1, len(label) + 1) / max(len(label), 1)
    for name, score in scores.items():
        order = np.argsort(-np.asarray(score, dtype=float), kind="stable")
        captured = np.cumsum(label[order]) / max(label.sum(), 1.0)
        axis.plot(share, captured, label=name)
    axis.plot([0, 1], [0, 1], color="grey", linestyle=":", label="random")
    axis.set_xlabel("share of customers contacted (best first)")
    axis.set_ylabel("share of buyers reached")
    axis.set_title(title)
    axis.legend(loc="lower right", fontsize=8)
    return _png(figure)


def calibration_chart(bins: list[dict[str, float]], title: str = "Calibration (backtest)") -> bytes:
    """Mean predicted probability vs observed rate per bin (point size ~ customers)."""
    figure, axis = plt.subplots(figsize=(4.8, 4.2))
    predicted = [b["mean_predicted"] for b in bins]
    observed = [b["observed_rate"] for b in bins]
    sizes = np.asarray([b["customers"] for b in bins], dtype=float)
    axis.plot([0, 1], [0, 1], color="grey", linestyle=":")
    axis.plot(predicted, observed, color="tab:blue")
    axis.scatter(predicted, observed, s=20 + 200 * sizes / max(sizes.max(initial=0), 1.0), color="tab:blue")
    axis.set_xlabel("predicted P(order in window)")
    axis.set_ylabel("observed share who ordered")
    axis.set_title(title)
    return _png(figure)


def value_distribution(values: np.ndarray, title: str = "Predicted CLV") -> bytes:
    """Histogram of predicted CLV on a log scale (the distribution is very skewed)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    figure, axis = plt.subplots(figsize=(6, 3.6))
    if len(values):
        # a histogram of log10 on a linear axis: matplotlib's log axis took seconds to lay out
        logged = np.log10(np.clip(values, 1e-2, None))
        axis.hist(logged, bins=40, color="tab:green")
        ticks = np.arange(np.floor(logged.min()), np.ceil(logged.max()) + 1)
        axis.set_xticks(ticks, [f"{10**t:,.0f}" if t >= 0 else f"{10**t:g}" for t in ticks])
    axis.set_xlabel("predicted value over the horizon (log scale)")
    axis.set_ylabel("customers")
    axis.set_title(title)
    return _png(figure)
