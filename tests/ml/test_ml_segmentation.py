import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans

from ml.config import SegmentationConfig
from ml.features import FeatureError
from ml.segmentation import (
    choose_k,
    count_moved,
    fit_projection,
    fit_segments,
    match_segment_ids,
    name_segment,
    name_segments,
    nearest_centroids,
    project,
    readable_centroids,
    sample_indices,
    score_k_range,
)
from ml.synthetic import synthesize_marts

SMALL = SegmentationConfig(k_min=2, k_max=5, selection_sample_size=2000, silhouette_sample_size=500)


def _blobs(n_per: int = 100, centres=((0, 0), (10, 0), (0, 10))) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.vstack([rng.normal(centre, 0.5, size=(n_per, 2)) for centre in centres])


def test_ml_projection_keeps_the_variance_target_or_skips():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(300, 2))
    data = np.hstack([base, base @ [[1.0], [1.0]] + rng.normal(0, 0.01, (300, 1))])
    pca = fit_projection(data, 0.95, 0)
    assert pca is not None and pca.n_components_ == 2
    assert project(data, pca).shape == (300, 2)
    assert fit_projection(data, None, 0) is None and project(data, None) is data


def test_ml_sample_indices_are_seeded_sorted_and_bounded():
    first = sample_indices(1000, 10, np.random.default_rng(5))
    again = sample_indices(1000, 10, np.random.default_rng(5))
    assert list(first) == list(again) and list(first) == sorted(first) and len(set(first)) == 10
    assert list(sample_indices(5, 10, np.random.default_rng(5))) == [0, 1, 2, 3, 4]


def test_ml_k_range_scores_find_three_clear_blobs():
    scores = score_k_range(_blobs(), SMALL)
    assert list(scores["k"]) == [2, 3, 4, 5]
    assert scores.set_index("k")["silhouette"].idxmax() == 3
    assert scores.set_index("k").loc[3, "stability"] > 0.95
    assert choose_k(scores, min_stability=0.8) == 3


def test_ml_choose_k_prefers_stable_then_falls_back_to_most_stable():
    scores = pd.DataFrame({"k": [2, 3, 4], "silhouette": [0.9, 0.5, 0.6], "stability": [0.5, 0.95, 0.9]})
    assert choose_k(scores, 0.8) == 4
    assert choose_k(scores, 0.99) == 3


def test_ml_nearest_centroids_distance_and_confidence():
    kmeans = KMeans(2, n_init=1, random_state=0).fit(np.array([[0.0], [0.1], [10.0], [10.1]]))
    clusters, distance, confidence = nearest_centroids(kmeans, np.array([[0.05], [5.05], [10.05]]))
    assert clusters[0] != clusters[2]
    assert distance[0] == pytest.approx(0.0, abs=1e-9)
    assert confidence[0] == pytest.approx(1.0) and confidence[1] == pytest.approx(0.0, abs=1e-9)


def test_ml_segment_names_follow_readable_rules():
    def z(**values: float) -> pd.Series:
        base = {"monetary": 0.0, "engagement_score": 0.0, "recency_days": 0.0, "web_sessions_30d": 0.0}
        return pd.Series({**base, **values})

    def original(frequency: float = 9.0, tenure: float = 400.0) -> pd.Series:
        return pd.Series({"frequency": frequency, "days_since_registration": tenure})

    assert name_segment(z(monetary=1.2, engagement_score=0.9), original()) == "High-Value Advocates"
    assert name_segment(z(monetary=1.2, engagement_score=-0.5), original()) == "High-Value Silent"
    assert name_segment(z(), original(frequency=0.0)) == "Dormant Prospects"
    assert name_segment(z(web_sessions_30d=1.0), original(frequency=0.0)) == "Window Shoppers"
    assert name_segment(z(), original(tenure=10.0)) == "New Customers"
    assert name_segment(z(recency_days=1.0), original()) == "At-Risk Customers"
    assert name_segment(z(recency_days=1.0, monetary=-1.0), original()) == "Lapsed Customers"
    assert name_segment(z(engagement_score=1.0), original()) == "Engaged Website Users"
    assert name_segment(z(), original()) == "Standard Customers"


def test_ml_segment_names_are_unique_with_a_distinguishing_feature():
    z = pd.DataFrame(
        {"monetary": [0.0, 0.0, 0.0], "web_sessions_30d": [0.0, 0.2, -0.2], "engagement_score": [0, 0, 0]}
    )
    original = pd.DataFrame({"frequency": [3.0, 3.0, 3.0], "days_since_registration": [400.0] * 3})
    names = name_segments(z, original)
    assert names == [
        "Standard Customers (mid web visits)",
        "Standard Customers (most web visits)",
        "Standard Customers (least web visits)",
    ]
    pair = name_segments(z.iloc[1:], original.iloc[1:])
    assert pair == ["Standard Customers (more web visits)", "Standard Customers (less web visits)"]
    four = pd.concat([z, z.iloc[[0]]], ignore_index=True)
    assert len(set(name_segments(four, pd.concat([original, original.iloc[[0]]], ignore_index=True)))) == 4


def test_ml_readable_centroids_round_clip_and_hide_fill_recency():
    original = pd.DataFrame(
        {"recency_days": [12.3456789, 880.0], "frequency": [4.0, 1e-14], "monetary": [5, -1e-15]}
    )
    readable = readable_centroids(original)
    assert readable.loc[0, "recency_days"] == 12.3457
    assert np.isnan(readable.loc[1, "recency_days"])
    assert readable.loc[1, "monetary"] == 0


def test_ml_hungarian_matching_keeps_ids_and_numbers_new_clusters():
    previous = np.array([[0.0, 0.0], [5.0, 5.0], [10.0, 0.0]])
    previous_ids = np.array([7, 3, 9])
    current = np.array([[10.1, 0.0], [0.1, 0.1], [5.0, 4.9], [50.0, 50.0]])
    ids = match_segment_ids(current, previous, previous_ids, np.array([10, 20, 30, 40]), max_distance=1.5)
    assert list(ids) == [9, 7, 3, 10]
    fresh = match_segment_ids(current, None, None, np.array([10, 20, 30, 40]), 1.5)
    assert list(fresh) == [4, 3, 2, 1]


def test_ml_count_moved_compares_common_customers():
    previous = pd.DataFrame({"customer_key": ["a", "b", "c"], "segment_id": [1, 2, 2]})
    current = pd.DataFrame({"customer_key": ["a", "b", "d"], "segment_id": [1, 1, 2]})
    assert count_moved(previous, current) == {"compared": 2, "moved": 1}
    assert count_moved(None, current) == {"compared": 0, "moved": 0}


def test_ml_fit_segments_is_seeded_and_ids_survive_a_refit():
    world = synthesize_marts(1200, days=7, seed=5)
    first = fit_segments(world.features, SMALL)
    again = fit_segments(world.features, SMALL)
    pd.testing.assert_frame_equal(first.assignments, again.assignments)
    assert first.profiles["size"].sum() == 1200
    assert first.assignments["segment_name"].nunique() == first.metrics["k"]
    reassigned = first.model.assign(world.features)
    assert (reassigned["segment_id"].to_numpy() == first.assignments["segment_id"].to_numpy()).all()

    # a different seed fits different cluster indices; matching brings back the same ids
    reseeded = SegmentationConfig(**{**SMALL.__dict__, "random_state": 99})
    second = fit_segments(world.features, reseeded, first.profiles, first.assignments)
    assert second.metrics["compared_with_previous"] == 1200
    assert second.metrics["moved_customers"] < 60
    assert set(second.profiles["segment_id"]) == set(first.profiles["segment_id"])


def test_ml_fit_segments_rejects_duplicate_keys():
    world = synthesize_marts(50, days=7, seed=5)
    features = pd.concat([world.features, world.features.head(1)])
    with pytest.raises(FeatureError, match="duplicated"):
        fit_segments(features, SMALL)
