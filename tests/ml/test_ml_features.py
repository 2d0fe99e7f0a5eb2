import numpy as np
import pandas as pd
import pytest

from ml.config import MLConfig, SegmentationConfig, SendTimeConfig
from ml.features import FeatureError, fit_feature_transform, numeric_matrix


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_key": ["a", "b", "c", "d"],
            "recency_days": [1.0, 10.0, None, 100.0],
            "monetary": [0.0, 10.0, 100.0, 1000.0],
            "engagement_score": [0.1, 0.2, 0.3, 0.4],
        }
    )


def test_ml_numeric_matrix_reads_numbers_and_names_bad_records():
    values = numeric_matrix(_frame(), ["monetary", "engagement_score"])
    assert values.shape == (4, 2) and values[3, 0] == 1000.0
    with pytest.raises(FeatureError, match="lacks column"):
        numeric_matrix(_frame(), ["frequency"])
    bad = _frame().astype({"monetary": object})
    bad.loc[2, "monetary"] = "lots"
    with pytest.raises(FeatureError, match="monetary is not a number: customer_key c"):
        numeric_matrix(bad, ["monetary"])
    infinite = _frame()
    infinite.loc[1, "monetary"] = np.inf
    with pytest.raises(FeatureError, match="infinite: customer_key b"):
        numeric_matrix(infinite, ["monetary"])


def test_ml_feature_transform_logs_fills_scales_and_inverts():
    features = ["recency_days", "monetary", "engagement_score"]
    transform = fit_feature_transform(_frame(), features, log_features=["recency_days", "monetary"])
    # a customer without orders is as long ago as the oldest order plus one day
    assert transform.fill_values[0] == 101.0
    scaled = transform.transform(_frame())
    np.testing.assert_allclose(scaled.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(scaled.std(axis=0), 1, atol=1e-12)
    assert np.isclose(transform.logged(_frame())[3, 1], np.log1p(1000.0))
    back = transform.to_original_units(scaled)
    np.testing.assert_allclose(back["monetary"], _frame()["monetary"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(back["recency_days"], [1, 10, 101, 100], rtol=1e-9)


def test_ml_feature_transform_rejects_negative_logged_values_and_empty_input():
    frame = _frame()
    frame.loc[0, "monetary"] = -5.0
    with pytest.raises(FeatureError, match="negative: customer_key a"):
        fit_feature_transform(frame, ["monetary"], ["monetary"])
    with pytest.raises(FeatureError, match="empty"):
        fit_feature_transform(_frame().head(0), ["monetary"], ["monetary"])


def test_ml_constant_feature_does_not_divide_by_zero():
    frame = _frame().assign(engagement_score=0.5)
    transform = fit_feature_transform(frame, ["engagement_score"], [])
    assert np.all(transform.transform(frame) == 0)


def test_ml_configs_serialise_to_plain_json_ready_parameters():
    parameters = SegmentationConfig(k_min=3).parameters()
    assert parameters["k_min"] == 3
    assert isinstance(parameters["features"], list)
    assert SendTimeConfig().parameters()["default_hour_of_week"] == 34
    assert MLConfig().backtest.few_opens_threshold == 5
