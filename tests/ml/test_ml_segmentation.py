import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans

from ml.config import SegmentationConfig, SegmentNamingConfig
from ml.features import FeatureError
from ml.segment_names import Signals, segment_name
from ml.segment_refresh import FitReference, StoredSegmentation, assign_segments, fit_statistics
from ml.segmentation import (
    choose_k,
    count_moved,
    fit_projection,
    fit_segments,
    match_segment_ids,
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


NAMING = SegmentNamingConfig()
SHOP_ONLY = Signals(orders=True, email=False, web=False)
EVERYTHING = Signals(orders=True, email=True, web=True)


def test_ml_segment_names_follow_absolute_thresholds():
    def median(**values: float) -> pd.Series:
        base = {"frequency": 1.0, "monetary": 50.0, "recency_days": 30.0, "days_since_registration": 400.0}
        return pd.Series({**base, "email_open_rate_90d": 0.0, "web_sessions_30d": 0.0, **values})

    assert segment_name(median(recency_days=480.0), SHOP_ONLY, NAMING) == "Lapsed One-Time Buyers"
    at_risk = median(recency_days=120.0, frequency=3.0)
    assert segment_name(at_risk, SHOP_ONLY, NAMING) == "At-Risk Repeat Buyers"
    assert segment_name(median(days_since_registration=20.0), SHOP_ONLY, NAMING) == "New One-Time Buyers"
    high = median(frequency=9.0, monetary=2500.0)
    assert segment_name(high, SHOP_ONLY, NAMING) == "High-Value Active Repeat Buyers"
    engaged = median(email_open_rate_90d=0.5, web_sessions_30d=4.0)
    assert segment_name(engaged, EVERYTHING, NAMING) == "Active One-Time Buyers (Email-Engaged, Web-Active)"
    # the same member without email or web data in the world: no email or web word
    assert segment_name(engaged, SHOP_ONLY, NAMING) == "Active One-Time Buyers"
    none = {"frequency": 0.0, "monetary": 0.0, "recency_days": np.nan}
    assert segment_name(median(**none), SHOP_ONLY, NAMING) == "Non-Buyers"
    assert segment_name(median(**none, web_sessions_30d=3.0), EVERYTHING, NAMING) == "Window Shoppers"
    readers = median(**none, email_open_rate_90d=0.4)
    assert segment_name(readers, EVERYTHING, NAMING) == "Email Readers Without Orders"
    # thresholds are configuration, not relative to the other segments
    strict = SegmentNamingConfig(lapsed_days=600)
    assert segment_name(median(recency_days=480.0), SHOP_ONLY, strict) == "At-Risk One-Time Buyers"


def shop_only_features() -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """A shop without ESP or web: idle one-time buyers of two registration cohorts, active repeat
    buyers, high-value repeat buyers and registered non-buyers (email and web features all 0)."""
    rng = np.random.default_rng(11)
    # group: size, orders (base, spread), revenue range, recency range, registration range
    spec = {
        "idle_once_2024": (30, (1, 1), (30, 50), (470, 490), (700, 705)),
        "idle_once_2025": (30, (1, 1), (30, 50), (470, 490), (500, 505)),
        "active_repeat": (40, (4, 3), (200, 400), (5, 40), (300, 400)),
        "high_value": (25, (8, 5), (1500, 3000), (10, 60), (500, 700)),
        "never_bought": (30, (0, 1), (0, 0), (0, 0), (100, 600)),
    }
    frames, groups = [], {}
    for group, (n, (orders, spread), revenue, recency, registered) in spec.items():
        frequency = orders + np.arange(n) % spread
        groups[group] = [f"{group}-{i:03d}" for i in range(n)]
        frames.append(
            pd.DataFrame(
                {
                    "customer_key": groups[group],
                    "frequency": frequency,
                    "monetary": rng.uniform(*revenue, n),
                    "recency_days": np.where(frequency > 0, rng.uniform(*recency, n), np.nan),
                    "days_since_registration": rng.uniform(*registered, n),
                }
            )  # fmt: skip
        )
    frame = pd.concat(frames, ignore_index=True)
    frame["avg_order_value"] = frame["monetary"] / frame["frequency"].clip(lower=1)
    frame["purchase_frequency"] = frame["frequency"] * 30 / frame["days_since_registration"]
    silent = ["email_open_rate_90d", "email_click_rate_90d", "email_sends_90d", "web_sessions_30d"]
    return frame.assign(**dict.fromkeys([*silent, "engagement_score"], 0.0)), groups


def test_ml_shop_only_segments_have_true_names_and_no_email_or_web_words():
    features, groups = shop_only_features()
    # six clusters for four kinds of customer: KMeans must split some kind (e.g. by registration cohort)
    config = SegmentationConfig(k_min=6, k_max=6, silhouette_sample_size=500)
    result = fit_segments(features, config)
    segments = result.assignments.merge(features, on="customer_key")
    names = segments.groupby("segment_id")["segment_name"].unique()
    assert (names.str.len() == 1).all() and segments.drop_duplicates("segment_id")["segment_name"].is_unique
    for word in ("Email", "Web", "Window", "Silent", "Engaged", "Readers"):
        assert not segments["segment_name"].str.contains(word).any(), word
    # the one-time buyers are one segment, whatever their registration cohort
    idle = segments[segments["customer_key"].isin(groups["idle_once_2024"] + groups["idle_once_2025"])]
    assert idle["segment_name"].unique().tolist() == ["Lapsed One-Time Buyers"]
    # every name is true of every member here (the groups are clean)
    for name, members in segments.groupby("segment_name"):
        recency, frequency, monetary = members["recency_days"], members["frequency"], members["monetary"]
        if "Lapsed" in name:
            assert (recency > NAMING.lapsed_days).all(), name
        if "Active" in name:
            assert (recency <= NAMING.active_days).all(), name
        if "One-Time" in name:
            assert (frequency == 1).all(), name
        if "Repeat" in name:
            assert (frequency >= NAMING.repeat_orders).all(), name
        assert ("High-Value" in name) == bool((monetary >= NAMING.high_value_monetary).all()), name
        if name == "Non-Buyers":
            assert (frequency == 0).all()
    assert set(segments["segment_name"]) == {
        "Lapsed One-Time Buyers", "Active Repeat Buyers", "High-Value Active Repeat Buyers", "Non-Buyers",
    }  # fmt: skip
    assert result.metrics["k"] == 6 and result.metrics["segments"] == 4
    assert result.profiles["size"].sum() == len(features)
    reassigned = result.model.assign(features)
    assert (reassigned["segment_id"].to_numpy() == result.assignments["segment_id"].to_numpy()).all()
    # the daily assignment against the stored model sees the four segments, not the six clusters
    shares = fit_statistics(result.model, features)["fit_shares"]
    assert len(shares) == 4 and sum(shares.values()) == pytest.approx(1.0)
    reference = FitReference("fit", None, 1.0, {int(k): v for k, v in shares.items()})
    daily = assign_segments(StoredSegmentation(result.model, reference), features, result.assignments)
    pd.testing.assert_frame_equal(daily.profiles[["segment_id", "segment_name", "size"]],
                                  result.profiles[["segment_id", "segment_name", "size"]])  # fmt: skip
    assert daily.metrics["moved_customers"] == 0 and daily.metrics["segments"] == 4


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
    assert first.assignments["segment_name"].nunique() == first.metrics["segments"] <= first.metrics["k"]
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
