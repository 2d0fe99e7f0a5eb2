import json

import numpy as np
import pandas as pd
import pytest

from ml.plots import segment_centroid_chart, send_time_heatmap
from ml.registry import ModelRun, data_fingerprint, json_ready, model_version, to_json

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_ml_fingerprint_and_version_are_deterministic_and_sensitive():
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    assert data_fingerprint(frame) == data_fingerprint(frame.copy())
    assert data_fingerprint(frame) != data_fingerprint(frame.assign(a=[1, 3]))
    first = model_version("m", {"k": 3}, "abc", pd.Timestamp("2026-11-01T05:00Z"))
    assert first == model_version("m", {"k": 3}, "abc", pd.Timestamp("2026-11-01T05:00Z"))
    assert first.startswith("m-20261101-")
    assert first != model_version("m", {"k": 4}, "abc", pd.Timestamp("2026-11-01T05:00Z"))
    assert model_version("m", {"k": 3}, "abc").startswith("m-") and "2026" not in model_version(
        "m", {}, "abc"
    )


def test_ml_model_run_row_is_json_without_nan():
    run = ModelRun(
        "m", "v1", {"k": np.int64(3)}, {"rows": 10}, {"score": np.float64(0.5), "bad": float("nan")}
    )
    row = run.row()
    assert json.loads(row["metrics"]) == {"bad": None, "score": 0.5}
    assert json.loads(row["parameters"]) == {"k": 3}
    assert json_ready({"t": pd.Timestamp("2026-01-01T00:00Z"), "a": np.array([1, 2])}) == {
        "t": "2026-01-01T00:00:00+00:00",
        "a": [1, 2],
    }
    assert to_json({1: (1, 2)}) == '{"1": [1, 2]}'


def test_ml_plots_are_png_bytes():
    profiles = pd.DataFrame(
        {
            "segment_id": [1, 2],
            "segment_name": ["A", "B"],
            "size": [10, 20],
            "monetary": [100.0, 5.0],
            "x": [0.1, 0.9],
        }
    )
    chart = segment_centroid_chart(profiles, ["monetary", "x"])
    assert chart.startswith(PNG_SIGNATURE) and len(chart) > 1000
    heatmap = send_time_heatmap(np.array([0, 34, 34, 167]))
    assert heatmap.startswith(PNG_SIGNATURE)
    with pytest.raises(ValueError):
        send_time_heatmap(np.array([-1]))
