"""Customer value end to end without I/O: parameter recovery on orders drawn from known BG/NBD
parameters, insufficient data as an outcome, churn bands, category lift, campaign value, propensity."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from clv_worlds import simulate_orders

from ml.affinity import campaign_value, category_affinity
from ml.config import CLVConfig, MLConfig, PropensityConfig
from ml.customer_value import PREDICTION_COLUMNS, churn_band, fit_clv, score_customers
from ml.propensity import behaviour_features, run_propensity
from ml.value_pipeline import VALUE_COLUMNS, run_customer_value

AS_OF = pd.Timestamp("2025-01-01", tz="UTC") + pd.Timedelta(days=240)
FAST_PROPENSITY = PropensityConfig(max_iter=40, learning_rate=0.15)  # test-sized boosting


@pytest.fixture(scope="module")
def world() -> pd.DataFrame:
    return simulate_orders(2500, r=0.8, alpha=20.0, a=1.0, b=4.0, days=240, seed=11)


def test_bgnbd_recovers_the_parameters_the_orders_were_drawn_from(world):
    fit = fit_clv(world, AS_OF, CLVConfig(unit_days=1.0))
    assert fit.status == "ok"
    got = fit.bgnbd
    # drawn per day: r = 0.8, alpha = 20 days, a = 1, b = 4 (2,500 customers: a few % of sampling noise)
    assert got.r == pytest.approx(0.8, rel=0.2)
    assert got.alpha == pytest.approx(20.0, rel=0.25)
    assert got.a / (got.a + got.b) == pytest.approx(1 / 5, rel=0.25)  # mean drop-out probability
    weekly = fit_clv(world, AS_OF, CLVConfig(unit_days=7.0))
    assert weekly.bgnbd.alpha == pytest.approx(got.alpha / 7, rel=1e-3)  # the unit only rescales alpha
    assert weekly.bgnbd.r == pytest.approx(got.r, rel=1e-3)
    # lambda^x in the likelihood: a weekly rate is 7 daily ones
    repeat_days = weekly.summary["frequency"].sum()
    assert weekly.bgnbd.log_likelihood == pytest.approx(
        got.log_likelihood + repeat_days * math.log(7), rel=1e-6
    )


def test_churn_bands_follow_the_klaviyo_thresholds():
    risk = pd.Series([0.10, 0.33, 0.5, 0.66, 0.70, np.nan])
    assert churn_band(risk, CLVConfig()).tolist() == ["Low", "Medium", "Medium", "Medium", "High", pd.NA]


def test_too_few_customers_is_an_outcome_with_a_reason_and_no_numbers(world):
    small = world[world["customer_key"] < "c00040"]
    customers = pd.DataFrame({"customer_key": sorted(small["customer_key"].unique())})
    run = run_customer_value(customers, small, AS_OF)
    clv_metrics = run.run.metrics["clv"]
    assert clv_metrics["status"] == "insufficient_data"
    assert "fewer than the minimum 100" in clv_metrics["reason"]
    assert run.run.metrics["propensity"]["status"] == "insufficient_data"
    assert list(run.values.columns) == list(VALUE_COLUMNS)
    assert len(run.values) == 40
    model_columns = [*PREDICTION_COLUMNS, "purchase_propensity_30d"]
    assert run.values[model_columns].isna().all().all()
    assert run.values["historic_clv"].sum() == pytest.approx(small["order_total"].sum())


def test_short_history_is_insufficient():
    orders = simulate_orders(400, days=30, seed=2)
    fit = fit_clv(orders, pd.Timestamp("2025-01-31", tz="UTC"), CLVConfig())
    assert fit.status == "insufficient_data"
    assert "fewer than the minimum 60" in fit.reason
    assert fit.bgnbd is None


def test_scores_for_buyers_only_and_consistent_with_each_other(world):
    config = CLVConfig()
    fit = fit_clv(world, AS_OF, config)
    keys = pd.concat([pd.Series(world["customer_key"].unique()), pd.Series(["never-bought"])])
    scores = score_customers(fit, keys, config).set_index("customer_key")
    assert scores.loc["never-bought", list(PREDICTION_COLUMNS)].isna().all()
    buyers = scores.drop(index="never-bought")
    assert buyers["p_alive"].between(0, 1).all() and buyers["churn_risk"].between(0, 1).all()
    assert (buyers["expected_purchases_365d"] >= buyers["expected_purchases_90d"]).all()
    assert (buyers["predicted_clv_discounted"] <= buyers["predicted_clv"]).all()
    # someone who stopped long ago is riskier than a recent repeat buyer with the same frequency
    recent = buyers[(buyers["frequency"] == 3) & (buyers["T"] - buyers["recency"] < 10)]
    lapsed = buyers[(buyers["frequency"] == 3) & (buyers["T"] - buyers["recency"] > 100)]
    assert recent["churn_risk"].max() < lapsed["churn_risk"].min()
    one_order = buyers[buyers["frequency"] == 0]
    assert (
        one_order["expected_next_order_at"].isna().all() and one_order["avg_days_between_orders"].isna().all()
    )
    dated = buyers["expected_next_order_at"].dropna()
    assert (dated >= AS_OF.normalize()).all()
    assert (buyers["avg_days_between_orders"].dropna() > 0).all()


def test_category_affinity_by_hand():
    # the base: books 8 orders, garden 2; ann bought garden once, bob books 3 times + garden once
    orders = pd.DataFrame(
        {
            "customer_key": ["ann", "bob", "bob", "bob", "bob", "cy", "cy", "cy", "cy", "cy"],
            "categories": [
                "garden",
                "books",
                "books",
                "books",
                "garden",
                "books",
                "books",
                "books",
                "books",
                "books",
            ],
        }
    )
    affinity = category_affinity(orders, prior_strength=5.0, top=3).set_index("customer_key")
    # ann: garden share (1 + 5 * 0.2) / (1 + 5) = 1/3, lift 1/3 / 0.2 = 5/3; books (0 + 4) / 6 < 0.8
    assert affinity.loc["ann", "top_categories"] == "garden"
    assert affinity.loc["ann", "top_category_lift"] == pytest.approx(5 / 3)
    # bob: garden (1 + 1) / 9 / 0.2 = 1.11 beats books (3 + 4) / 9 / 0.8 = 0.97 (not above the base)
    assert affinity.loc["bob", "top_categories"] == "garden"
    assert affinity.loc["bob", "top_category_lift"] == pytest.approx(2 / 9 / 0.2)
    # cy: books (5 + 4) / 10 / 0.8 = 1.125
    assert affinity.loc["cy", "top_categories"] == "books"
    assert affinity.loc["cy", "top_category_lift"] == pytest.approx(1.125)


def test_campaign_value_by_hand():
    value = campaign_value([0.5, 0.1, np.nan], [40.0, 100.0, 80.0], cost_per_send=0.25)
    assert value["expected_revenue"] == pytest.approx(0.5 * 40 + 0.1 * 100)
    assert value["expected_value"] == pytest.approx(30.0 - 0.75)
    assert value["members"] == 3


def test_features_never_see_the_future():
    orders = pd.DataFrame(
        {
            "customer_key": ["a", "a", "a"],
            "ordered_at": pd.to_datetime(["2025-01-01", "2025-01-20", "2025-02-10"], utc=True),
            "order_total": [10.0, 20.0, 30.0],
        }
    )
    at = pd.Timestamp("2025-01-31", tz="UTC")
    features = behaviour_features(pd.Series(["a", "b"]), orders, None, None, at, CLVConfig())
    assert features.loc["a", "orders"] == 2 and features.loc["a", "revenue"] == 30.0
    assert features.loc["a", "days_since_last_order"] == 11.0
    assert math.isnan(features.loc["b", "days_since_last_order"]) and features.loc["b", "orders"] == 0


def test_propensity_learns_from_engagement_and_beats_recency(world):
    """Customers who open mail in the last week before a window buy in it more often (planted here)."""
    rng = np.random.default_rng(5)
    keys = np.sort(world["customer_key"].unique())
    customers = pd.DataFrame({"customer_key": keys})
    events = []
    for start in (AS_OF - pd.Timedelta(days=60), AS_OF - pd.Timedelta(days=30), AS_OF):
        window = (world["ordered_at"] > start) & (world["ordered_at"] <= start + pd.Timedelta(days=30))
        buyers = set(world.loc[window, "customer_key"])
        opens = rng.random(len(keys)) < np.where(np.isin(keys, list(buyers)), 0.7, 0.1)
        when = start - pd.to_timedelta(rng.uniform(0.1, 6, opens.sum()), unit="D")
        events.append(
            pd.DataFrame(
                {
                    "customer_key": keys[opens],
                    "event_type": "open",
                    "event_at": when,
                    "is_machine_open": False,
                }
            )
        )
    email = pd.concat(events, ignore_index=True)
    result = run_propensity(customers, world, email, None, AS_OF, FAST_PROPENSITY, CLVConfig())
    assert result.status == "ok"
    backtest = result.metrics["backtest"]
    assert backtest["model"]["auc"] > backtest["recency_alone"]["auc"] + 0.05
    assert backtest["model"]["auc"] > backtest["bgnbd_p_purchase"]["auc"]
    assert result.scores["purchase_propensity_30d"].between(0, 1).all()
    assert len(result.scores) == len(keys)
    bins = result.metrics["reliability"]
    assert sum(b["customers"] for b in bins) == result.metrics["test_customers"]


def test_run_record_and_rows(world):
    customers = pd.DataFrame({"customer_key": [*sorted(world["customer_key"].unique()), "zz-no-orders"]})
    run = run_customer_value(customers, world, AS_OF, config=MLConfig(propensity=FAST_PROPENSITY))
    assert run.values["customer_key"].is_unique and len(run.values) == len(customers)
    assert run.values["model_version"].nunique() == 1
    metrics = run.run.metrics
    assert metrics["clv"]["status"] == "ok" and metrics["clv_backtest"]["status"] == "ok"
    assert metrics["clv_backtest"]["mae_model"] < metrics["clv_backtest"]["mae_naive_rate"]
    assert {"propensity_gains", "propensity_calibration", "clv_distribution"} <= set(run.plots)
    assert run.plots["clv_distribution"].startswith(b"\x89PNG")
