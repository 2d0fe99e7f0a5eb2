"""Every ML plot renders on empty and NaN data, and unknown centroids do not poison the colour scale."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.plots import centroid_scores, segment_centroid_chart, send_time_heatmap

PNG = b"\x89PNG"


def _profiles(recency: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "segment_id": [0, 1, 2],
            "segment_name": ["loyal", "new", "browsers"],
            "size": [10, 10, 20],
            "recency_days": recency,
            "frequency": [np.e - 1, 0.0, np.e**2 - 1],  # log1p: 1, 0, 2
        }
    )


def test_a_segment_without_orders_leaves_the_other_scores_finite() -> None:
    scores = centroid_scores(_profiles([np.e - 1, np.e**3 - 1, np.nan]), ["recency_days", "frequency"])
    # recency: log1p values 1 and 3 (the NaN segment left out), equal weights: mean 2, std 1.
    assert scores[:, 0][:2] == pytest.approx([-1.0, 1.0]) and np.isnan(scores[2, 0])
    # frequency: log1p 1, 0, 2 with weights 10, 10, 20: mean 1.25, std of (1, 0, 2) = sqrt(2/3).
    assert scores[:, 1] == pytest.approx((np.array([1, 0, 2]) - 1.25) / np.sqrt(2 / 3))


@pytest.mark.parametrize(
    "profiles",
    [
        _profiles([np.nan, np.nan, np.nan]),
        _profiles([1.0, np.nan, 5.0]),
        _profiles([3.0, 3.0, 3.0]),  # no spread
        _profiles([1.0, 2.0, 3.0]).iloc[0:0],  # no segments
        _profiles([1.0, 2.0, 3.0]).iloc[0:1],  # one segment
    ],
    ids=["all-nan", "some-nan", "constant", "empty", "single"],
)
def test_segment_centroid_chart_renders_on_degenerate_frames(profiles: pd.DataFrame) -> None:
    assert segment_centroid_chart(profiles, ["recency_days", "frequency"]).startswith(PNG)


def test_send_time_heatmap_renders_without_predictions() -> None:
    assert send_time_heatmap(np.array([], dtype=np.int64)).startswith(PNG)
