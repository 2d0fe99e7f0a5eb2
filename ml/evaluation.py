"""Honest measurements: a time-based send-time backtest against two baselines, ground-truth agreement,
and segmentation quality beside an RFM-quintile baseline."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from ml.config import BacktestConfig, SendTimeConfig
from ml.features import KEY
from ml.send_time import HOURS_OF_WEEK, Engagement, fit_send_time

METHODS = ("model", "global_best_hour", "user_most_frequent_hour")


def hour_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance in hours around the week (167 and 0 are one hour apart)."""
    diff = np.abs(np.asarray(a, dtype=np.int64) - np.asarray(b, dtype=np.int64)) % HOURS_OF_WEEK
    return np.minimum(diff, HOURS_OF_WEEK - diff)


def same_three_hour_window(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.int64) // 3 == np.asarray(b, dtype=np.int64) // 3


def global_best_hour(response_hours: np.ndarray, default: int) -> int:
    """The one local hour of week with the most past responses (what a marketer would pick)."""
    hours = response_hours[response_hours >= 0]
    if hours.size == 0:
        return default
    return int(np.argmax(np.bincount(hours, minlength=HOURS_OF_WEEK)))


def user_most_frequent_hours(
    response_users: np.ndarray, response_hours: np.ndarray, n_users: int, fallback: int
) -> np.ndarray:
    """Each customer's most frequent past response hour (ties: the earliest); `fallback` without history."""
    valid = response_hours >= 0
    frame = pd.DataFrame({"user": response_users[valid], "hour": response_hours[valid]})
    counts = (
        frame.value_counts()
        .rename("n")
        .reset_index()
        .sort_values(["user", "n", "hour"], ascending=[True, False, True])
    )
    modes = counts.drop_duplicates("user")
    result = np.full(n_users, fallback, dtype=np.int64)
    result[modes["user"].to_numpy()] = modes["hour"].to_numpy()
    return result


def hit_rates(
    predicted_by_user: dict[str, np.ndarray],
    test: pd.DataFrame,
    past_responses: np.ndarray,
    few_threshold: int,
) -> pd.DataFrame:
    """Per method and customer group: mean over customers of the share of their held-out responses
    within +/- 1 hour of the prediction, and in the same 3-hour window."""
    users = test["user"].to_numpy()
    observed = test["hour_of_week"].to_numpy()
    groups = {
        "all": np.ones(len(users), dtype=bool),
        f"lt{few_threshold}_past": past_responses[users] < few_threshold,
        f"ge{few_threshold}_past": past_responses[users] >= few_threshold,
    }
    rows = []
    for method, predictions in predicted_by_user.items():
        predicted = predictions[users]
        within_hour = hour_distance(predicted, observed) <= 1
        same_window = same_three_hour_window(predicted, observed)
        for group, mask in groups.items():
            per_user = pd.DataFrame({"user": users[mask], "h1": within_hour[mask], "w3": same_window[mask]})
            means = per_user.groupby("user")[["h1", "w3"]].mean()
            rows.append(
                {
                    "method": method,
                    "group": group,
                    "customers": len(means),
                    "responses": int(mask.sum()),
                    "hit_rate_1h": float(means["h1"].mean()) if len(means) else float("nan"),
                    "hit_rate_3h_window": float(means["w3"].mean()) if len(means) else float("nan"),
                }
            )
    return pd.DataFrame(rows)


def backtest_send_time(
    engagement: Engagement,
    customers: pd.DataFrame,
    segments: pd.DataFrame | None,
    as_of: pd.Timestamp,
    config: SendTimeConfig | None = None,
    backtest: BacktestConfig | None = None,
) -> dict[str, Any]:
    """Fit on engagement before `as_of - test_days`, score the real responses after it."""
    config = config or SendTimeConfig()
    backtest = backtest or BacktestConfig()
    cutoff = pd.Timestamp(as_of) - pd.Timedelta(days=backtest.test_days)
    train = engagement.before(cutoff)
    test = engagement.responses_from(cutoff)
    fitted = fit_send_time(train, customers, segments, config)
    n_users = len(engagement.customer_keys)
    past = np.bincount(train.response_user, minlength=n_users)
    best_global = global_best_hour(train.response_hour, config.default_hour_of_week)
    predictions = {
        "model": fitted.predictions["best_hour_of_week"].to_numpy(),
        "global_best_hour": np.full(n_users, best_global, dtype=np.int64),
        "user_most_frequent_hour": user_most_frequent_hours(
            train.response_user, train.response_hour, n_users, best_global
        ),
    }
    table = hit_rates(predictions, test, past, backtest.few_opens_threshold)
    return {
        "cutoff": cutoff.isoformat(),
        "train_responses": len(train.response_user),
        "test_responses": len(test),
        "table": table,
        "predictions": predictions,
        "summary": {
            f"{row.method}.{row.group}.{metric}": round(float(getattr(row, metric)), 4)
            for row in table.itertuples()
            for metric in ("hit_rate_1h", "hit_rate_3h_window")
        },
    }


def ground_truth_agreement(
    predictions_by_method: dict[str, np.ndarray], customer_keys: np.ndarray, truth: pd.DataFrame
) -> dict[str, float]:
    """Share of customers with a known preferred hour whose prediction is within +/- 1 hour of it.

    `truth`: customer_key, preferred_hour_of_week_local."""
    index = pd.Index(customer_keys)
    rows = index.get_indexer(truth[KEY])
    known = rows >= 0
    preferred = truth["preferred_hour_of_week_local"].to_numpy()[known]
    return {
        method: round(float((hour_distance(predicted[rows[known]], preferred) <= 1).mean()), 4)
        if known.any()
        else float("nan")
        for method, predicted in predictions_by_method.items()
    }


def rfm_quintile_segments(features: pd.DataFrame) -> pd.Series:
    """The marketer's classic baseline: R, F, M quintile scores (1-5) mapped to named RFM groups."""
    recency = features["recency_days"].astype(float)
    has_orders = recency.notna() & (features["frequency"].astype(float) > 0)

    def score(values: pd.Series, ascending: bool) -> pd.Series:
        ranks = values.rank(method="average", ascending=ascending, pct=True)  # ties share a score
        return np.ceil(ranks * 5).clip(1, 5)

    r = score(recency.where(has_orders), ascending=False)
    fm = (
        score(features["frequency"].astype(float).where(has_orders), True)
        + score(features["monetary"].astype(float).where(has_orders), True)
    ) / 2
    labels = np.select(
        [
            ~has_orders,
            (r >= 4) & (fm >= 4),
            (r >= 3) & (fm >= 3),
            (r >= 4) & (fm < 2.5),
            (r <= 2) & (fm >= 3),
            r <= 2,
        ],
        ["No Purchase", "Champions", "Loyal", "New", "At Risk", "Hibernating"],
        "Need Attention",
    )
    return pd.Series(labels, index=features.index, name="rfm_segment")


def segmentation_quality(
    assignments: pd.DataFrame, features: pd.DataFrame, truth: pd.DataFrame | None
) -> dict[str, Any]:
    """Sizes, and when ground truth is given (customer_key, archetype), ARI of the segments and of the
    RFM baseline against the archetypes."""
    result: dict[str, Any] = {
        "segment_sizes": assignments["segment_id"].value_counts().sort_index().to_dict(),
    }
    if truth is None or truth.empty:
        return result
    rfm = pd.DataFrame(
        {KEY: features[KEY].to_numpy(), "rfm_segment": rfm_quintile_segments(features).to_numpy()}
    )
    joined = truth[[KEY, "archetype"]].merge(assignments[[KEY, "segment_id"]], on=KEY).merge(rfm, on=KEY)
    result.update(
        {
            "ground_truth_customers": len(joined),
            "ari_kmeans": round(float(adjusted_rand_score(joined["archetype"], joined["segment_id"])), 4),
            "ari_rfm_baseline": round(
                float(adjusted_rand_score(joined["archetype"], joined["rfm_segment"])), 4
            ),
        }
    )
    return result


def truth_by_customer(people: pd.DataFrame, customers: pd.DataFrame) -> pd.DataFrame:
    """Ground-truth rows keyed by customer_key: matched on ESP profile id, else on email."""
    by_profile = people.merge(customers[[KEY, "esp_profile_id"]].dropna(), on="esp_profile_id", how="inner")
    rest = people[~people["person_id"].isin(by_profile["person_id"])]
    emails = customers[[KEY, "email"]].dropna().assign(email=lambda f: f["email"].astype(str).str.lower())
    by_email = rest.assign(email=rest["canonical_email"].astype(str).str.lower()).merge(emails, on="email")
    columns = [KEY, "archetype", "preferred_hour_of_week_local"]
    return pd.concat([by_profile[columns], by_email[columns]], ignore_index=True).drop_duplicates(KEY)
