import numpy as np
import pandas as pd
import pytest

from ml.config import BacktestConfig, SendTimeConfig
from ml.evaluation import (
    backtest_send_time,
    global_best_hour,
    ground_truth_agreement,
    hit_rates,
    hour_distance,
    rfm_quintile_segments,
    same_three_hour_window,
    segmentation_quality,
    truth_by_customer,
    user_most_frequent_hours,
)
from ml.send_time import prepare_engagement
from ml.synthetic import synthesize_marts


def test_ml_hour_distance_wraps_around_the_week():
    assert hour_distance(np.array([167, 5, 0]), np.array([0, 8, 84])).tolist() == [1, 3, 84]
    assert same_three_hour_window(np.array([3, 5, 2]), np.array([5, 6, 0])).tolist() == [True, False, True]


def test_ml_baselines_global_best_hour_and_user_mode():
    assert global_best_hour(np.array([3, 3, 9, -1, -1, -1]), default=50) == 3
    assert global_best_hour(np.array([], dtype=int), default=50) == 50
    users = np.array([0, 0, 0, 1, 1])
    hours = np.array([7, 9, 9, 20, 4])
    assert user_most_frequent_hours(users, hours, 3, fallback=11).tolist() == [9, 4, 11]  # tie: earliest


def test_ml_hit_rates_average_per_customer_and_split_by_history():
    test = pd.DataFrame({"user": [0, 0, 0, 1], "hour_of_week": [10, 11, 40, 100]})
    table = hit_rates(
        {"perfect_for_0": np.array([10, 0]), "always_100": np.array([100, 100])},
        test,
        past_responses=np.array([9, 1]),
        few_threshold=5,
    ).set_index(["method", "group"])
    # customer 0: 2 of 3 within 1 h (10, 11); customer 1: 0 of 1 -> mean 1/3
    assert table.loc[("perfect_for_0", "all"), "hit_rate_1h"] == pytest.approx((2 / 3 + 0) / 2)
    assert table.loc[("perfect_for_0", "all"), "hit_rate_3h_window"] == pytest.approx((2 / 3 + 0) / 2)
    assert table.loc[("always_100", "lt5_past"), "hit_rate_1h"] == 1.0
    assert table.loc[("always_100", "ge5_past"), "customers"] == 1
    assert table.loc[("always_100", "all"), "responses"] == 4


def test_ml_backtest_splits_by_time_and_reports_every_method():
    world = synthesize_marts(600, days=56, seed=2)
    config = SendTimeConfig()
    engagement = prepare_engagement(world.email_events, world.customers, config)
    result = backtest_send_time(
        engagement, world.customers, None, world.as_of, config, BacktestConfig(test_days=14)
    )
    assert result["cutoff"] == (world.as_of - pd.Timedelta(days=14)).isoformat()
    assert result["train_responses"] + result["test_responses"] == len(engagement.response_user)
    assert set(result["table"]["method"]) == {"model", "global_best_hour", "user_most_frequent_hour"}
    assert set(result["table"]["group"]) == {"all", "lt5_past", "ge5_past"}
    summary = result["summary"]
    assert summary["model.all.hit_rate_1h"] > summary["global_best_hour.all.hit_rate_1h"]
    assert all(0 <= value <= 1 for value in summary.values())


def test_ml_ground_truth_agreement_counts_within_one_hour():
    keys = np.array(["a", "b", "c"])
    truth = pd.DataFrame({"customer_key": ["a", "b", "zz"], "preferred_hour_of_week_local": [10, 0, 5]})
    agreement = ground_truth_agreement(
        {"m": np.array([11, 167, 3]), "n": np.array([50, 50, 50])}, keys, truth
    )
    assert agreement == {"m": 1.0, "n": 0.0}


def test_ml_rfm_quintiles_name_the_classic_groups():
    features = pd.DataFrame(
        {
            "customer_key": list("abcdefghij") + ["never"],
            "recency_days": [1, 2, 3, 4, 5, 200, 300, 400, 500, 600, None],
            "frequency": [20, 18, 16, 1, 1, 15, 14, 1, 1, 1, 0],
            "monetary": [2000, 1800, 1600, 10, 10, 1500, 1400, 10, 10, 10, 0],
        }
    )
    groups = rfm_quintile_segments(features).tolist()
    assert groups[0] == "Champions"
    assert groups[3] == "New"
    assert groups[5] == "Loyal"  # middle recency, high frequency and spend
    assert groups[6] == "At Risk"
    assert groups[9] == "Hibernating"
    assert groups[-1] == "No Purchase"


def test_ml_segmentation_quality_scores_against_archetypes():
    features = pd.DataFrame(
        {
            "customer_key": list("abcd"),
            "recency_days": [1, 2, 300, 400],
            "frequency": [9, 8, 1, 1],
            "monetary": [900, 800, 10, 10],
        }
    )
    assignments = pd.DataFrame({"customer_key": list("abcd"), "segment_id": [1, 1, 2, 2]})
    truth = pd.DataFrame({"customer_key": list("abcd"), "archetype": ["x", "x", "y", "y"]})
    quality = segmentation_quality(assignments, features, truth)
    assert quality["ari_kmeans"] == 1.0
    assert "ari_rfm_baseline" in quality and quality["segment_sizes"] == {1: 2, 2: 2}
    assert "ari_kmeans" not in segmentation_quality(assignments, features, None)


def test_ml_truth_by_customer_matches_profile_then_email():
    people = pd.DataFrame(
        {
            "person_id": [1, 2, 3],
            "archetype": ["x", "y", "z"],
            "preferred_hour_of_week_local": [1, 2, 3],
            "canonical_email": ["one@x.com", "Two@X.com", "three@x.com"],
            "esp_profile_id": ["esp-1", None, "esp-9"],
        }
    )
    customers = pd.DataFrame(
        {"customer_key": ["k1", "k2"], "email": ["one@x.com", "two@x.com"], "esp_profile_id": ["esp-1", None]}
    )
    truth = truth_by_customer(people, customers).sort_values("customer_key")
    assert truth["customer_key"].tolist() == ["k1", "k2"]
    assert truth["archetype"].tolist() == ["x", "y"]
