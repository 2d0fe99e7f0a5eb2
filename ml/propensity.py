"""Purchase propensity: P(a completed order in the next `window_days`) from RFM, email engagement, web
activity and the BG/NBD's own view, with a time-split backtest against the honest baselines.

Every feature is rebuilt from event facts at any date (`behaviour_features(..., at)`), so the backtest
trains on features at as_of - 2w with labels from (as_of - 2w, as_of - w], tests on features at
as_of - w with labels from (as_of - w, as_of], and the served model learns from both windows and scores
features at as_of. Nothing after a feature date ever enters its features."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import brier_score_loss, roc_auc_score
from threadpoolctl import threadpool_limits

from ml import clv
from ml.config import CLVConfig, PropensityConfig
from ml.customer_value import KEY, fit_clv

OK = "ok"
INSUFFICIENT = "insufficient_data"
FEATURES = (
    "days_since_last_order",
    "days_since_first_order",
    "orders",
    "orders_30d",
    "orders_90d",
    "revenue",
    "avg_order_value",
    "email_deliveries_30d",
    "email_opens_30d",
    "email_clicks_30d",
    "email_opens_90d",
    "email_clicks_90d",
    "days_since_last_open",
    "days_since_last_click",
    "web_sessions_7d",
    "web_sessions_30d",
    "web_page_views_30d",
    "days_since_last_session",
    "bgnbd_p_alive",
    "bgnbd_p_purchase",
)


@dataclass
class PropensityResult:
    status: str
    reason: str | None
    scores: pd.DataFrame
    """customer_key, purchase_propensity_30d (null when there is no model)."""
    metrics: dict[str, Any] = field(default_factory=dict)
    backtest_scores: pd.DataFrame | None = None
    """The test window: label and every method's score, for the gains and calibration plots."""
    model: HistGradientBoostingClassifier | None = None


def _days_since(times: pd.Series, keys: pd.Series, at: pd.Timestamp, index: pd.Index) -> pd.Series:
    latest = times.groupby(keys).max()
    return ((at - latest).dt.total_seconds() / 86_400).reindex(index)


def _count_within(
    times: pd.Series, keys: pd.Series, at: pd.Timestamp, days: int, index: pd.Index, weights=None
) -> pd.Series:
    recent = times > at - pd.Timedelta(days=days)
    values = pd.Series(1.0 if weights is None else weights, index=times.index)[recent]
    return values.groupby(keys[recent]).sum().reindex(index, fill_value=0.0)


def behaviour_features(
    customer_keys: pd.Series,
    orders: pd.DataFrame,
    email_events: pd.DataFrame | None,
    web_sessions: pd.DataFrame | None,
    at: pd.Timestamp,
    clv_config: CLVConfig,
    bgnbd: clv.BGNBDParams | None | Literal["fit"] = "fit",
) -> pd.DataFrame:
    """One row per key (index), every column from facts strictly up to `at`. Missing = no such event.
    `bgnbd`: the purchase model behind the bgnbd_* columns ("fit": fitted on `orders` at `at`)."""
    index = pd.Index(pd.Series(customer_keys).drop_duplicates().sort_values(), name=KEY)
    at = pd.Timestamp(at)
    out = pd.DataFrame(index=index)
    past = orders[orders["ordered_at"] <= at]
    times, keys = past["ordered_at"], past[KEY]
    out["days_since_last_order"] = _days_since(times, keys, at, index)
    out["days_since_first_order"] = ((at - times.groupby(keys).min()).dt.total_seconds() / 86_400).reindex(
        index
    )
    out["orders"] = keys.value_counts().reindex(index, fill_value=0).astype(float)
    out["orders_30d"] = _count_within(times, keys, at, 30, index)
    out["orders_90d"] = _count_within(times, keys, at, 90, index)
    out["revenue"] = past.groupby(KEY)["order_total"].sum().reindex(index, fill_value=0.0)
    out["avg_order_value"] = (out["revenue"] / out["orders"]).where(out["orders"] > 0)
    if email_events is not None and len(email_events):
        events = email_events[email_events["event_at"] <= at]
        real = ~events["is_machine_open"].fillna(False).astype(bool)
        for kind, name in (("delivered", "deliveries"), ("open", "opens"), ("click", "clicks")):
            chosen = events[(events["event_type"] == kind) & real]
            windows = (30,) if kind == "delivered" else (30, 90)
            for days in windows:
                out[f"email_{name}_{days}d"] = _count_within(chosen["event_at"], chosen[KEY], at, days, index)
            if kind != "delivered":
                out[f"days_since_last_{kind}"] = _days_since(chosen["event_at"], chosen[KEY], at, index)
    if web_sessions is not None and len(web_sessions):
        sessions = web_sessions[web_sessions["started_at"] <= at]
        times, keys = sessions["started_at"], sessions[KEY]
        out["web_sessions_7d"] = _count_within(times, keys, at, 7, index)
        out["web_sessions_30d"] = _count_within(times, keys, at, 30, index)
        out["web_page_views_30d"] = _count_within(
            times, keys, at, 30, index, weights=sessions["page_views"].fillna(0).to_numpy(float)
        )
        out["days_since_last_session"] = _days_since(times, keys, at, index)
    if isinstance(bgnbd, str):  # "fit"
        fit = fit_clv(past, at, clv_config)
        bgnbd, summary = fit.bgnbd, fit.summary
    elif bgnbd is not None:
        summary = clv.repeat_purchase_summary(past, at)
    if bgnbd is not None:
        summary = summary.set_index(KEY).reindex(index)
        buyers = summary["frequency"].notna().to_numpy()
        x, t_x, T = (summary[c].to_numpy(float)[buyers] for c in ("frequency", "recency", "T"))
        for name, values in (
            ("bgnbd_p_alive", clv.p_alive(bgnbd, x, t_x, T)),
            ("bgnbd_p_purchase", 1 - clv.p_no_purchase(bgnbd, 30, x, t_x, T)),
        ):
            out[name] = np.nan
            out.loc[buyers, name] = values
    for name in FEATURES:
        if name not in out.columns:
            out[name] = np.nan
    return out[list(FEATURES)]


def purchased_within(
    customer_keys: pd.Index, orders: pd.DataFrame, start: pd.Timestamp, days: int
) -> np.ndarray:
    window = (orders["ordered_at"] > start) & (orders["ordered_at"] <= start + pd.Timedelta(days=days))
    return customer_keys.isin(orders.loc[window, KEY].unique())


def known_at(customers: pd.DataFrame, at: pd.Timestamp) -> pd.Series:
    """Customers who existed at `at` (registered by then, or of unknown registration date)."""
    if "registered_at" not in customers.columns:
        return customers[KEY]
    registered = pd.to_datetime(customers["registered_at"], utc=True)
    return customers.loc[registered.isna() | (registered <= at), KEY]


def reliability_bins(label: np.ndarray, score: np.ndarray, bins: int) -> list[dict[str, float]]:
    """Equal-width bins of predicted probability: mean prediction vs observed rate, with counts."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(score, edges[1:-1]), 0, bins - 1)
    rows = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            rows.append(
                {
                    "bin": b,
                    "lower": float(edges[b]),
                    "mean_predicted": float(score[mask].mean()),
                    "observed_rate": float(label[mask].mean()),
                    "customers": int(mask.sum()),
                }
            )
    return rows


def _classifier(config: PropensityConfig) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        max_iter=config.max_iter,
        learning_rate=config.learning_rate,
        max_leaf_nodes=config.max_leaf_nodes,
        min_samples_leaf=config.min_samples_leaf,
        l2_regularization=config.l2_regularization,
        early_stopping=False,
        random_state=config.random_state,
    )


def _fit(config: PropensityConfig, x: np.ndarray, y: np.ndarray) -> HistGradientBoostingClassifier:
    with threadpool_limits(limits=config.n_threads, user_api="openmp"):
        return _classifier(config).fit(x, y)


def _predict(config: PropensityConfig, model: HistGradientBoostingClassifier, x: pd.DataFrame) -> np.ndarray:
    with threadpool_limits(limits=config.n_threads, user_api="openmp"):
        return model.predict_proba(x.to_numpy(float))[:, 1]


def _insufficient(label: np.ndarray, config: PropensityConfig, window: str) -> str | None:
    if len(label) < config.min_training_customers:
        return f"{len(label)} customers in the {window} window, fewer than {config.min_training_customers}"
    positives, negatives = int(label.sum()), int((~label).sum())
    if min(positives, negatives) < config.min_positive_labels:
        return (
            f"{positives} buyers and {negatives} non-buyers in the {window} window: each needs at least "
            f"{config.min_positive_labels}"
        )
    return None


def run_propensity(
    customers: pd.DataFrame,
    orders: pd.DataFrame,
    email_events: pd.DataFrame | None,
    web_sessions: pd.DataFrame | None,
    as_of: pd.Timestamp,
    config: PropensityConfig,
    clv_config: CLVConfig,
    serve: bool = True,
) -> PropensityResult:
    """`orders`: completed orders with customer_key, ordered_at (UTC), order_total. `serve=False`: fit
    and backtest only (`scores` stay null; score with `predict_propensity`)."""
    as_of = pd.Timestamp(as_of)
    w = pd.Timedelta(days=config.window_days)
    train_at, test_at = as_of - 2 * w, as_of - w
    everyone = pd.Index(customers[KEY].drop_duplicates().sort_values(), name=KEY)
    empty = pd.DataFrame({KEY: everyone, "purchase_propensity_30d": np.nan})

    def window(at: pd.Timestamp) -> tuple[pd.DataFrame, np.ndarray]:
        features = behaviour_features(
            known_at(customers, at), orders, email_events, web_sessions, at, clv_config
        )
        return features, purchased_within(features.index, orders, at, config.window_days)

    train_x, train_y = window(train_at)
    test_x, test_y = window(test_at)
    metrics: dict[str, Any] = {
        "window_days": config.window_days,
        "train_feature_date": train_at.isoformat(),
        "test_feature_date": test_at.isoformat(),
        "train_customers": len(train_y),
        "train_buyers": int(train_y.sum()),
        "test_customers": len(test_y),
        "test_buyers": int(test_y.sum()),
    }
    reason = _insufficient(train_y, config, "training") or _insufficient(test_y, config, "test")
    if reason:
        return PropensityResult(
            INSUFFICIENT, reason, empty, {**metrics, "status": INSUFFICIENT, "reason": reason}
        )
    # a feature with no value anywhere (no web data, BG/NBD not fitted) carries nothing, and sklearn's
    # binning fails on it
    used = [name for name in FEATURES if train_x[name].notna().any() and test_x[name].notna().any()]
    metrics["features"] = used
    backtest_model = _fit(config, train_x[used].to_numpy(float), train_y)
    scores = {
        "model": _predict(config, backtest_model, test_x[used]),
        "recency_alone": -test_x["days_since_last_order"].fillna(1e9).to_numpy(),
        "bgnbd_p_purchase": test_x["bgnbd_p_purchase"].fillna(0.0).to_numpy(),
    }
    buyers = test_x["orders"].to_numpy() > 0
    metrics["backtest"] = {
        method: {
            "auc": float(roc_auc_score(test_y, score)),
            "auc_customers_with_orders": (
                float(roc_auc_score(test_y[buyers], score[buyers]))
                if 0 < test_y[buyers].sum() < buyers.sum()
                else None
            ),
            **(
                {"brier": float(brier_score_loss(test_y, score))}
                if method != "recency_alone"  # a rank, not a probability
                else {}
            ),
        }
        for method, score in scores.items()
    }
    metrics["base_rate"] = float(test_y.mean())
    metrics["brier_base_rate"] = float(brier_score_loss(test_y, np.full(len(test_y), train_y.mean())))
    metrics["reliability"] = reliability_bins(test_y, scores["model"], config.calibration_bins)
    if test_x["bgnbd_p_purchase"].isna().all():
        metrics["backtest"]["bgnbd_p_purchase"]["note"] = "BG/NBD had too little data: every score is 0"
    final = _fit(
        config,
        np.vstack([train_x[used].to_numpy(float), test_x[used].to_numpy(float)]),
        np.concatenate([train_y, test_y]),
    )
    served = empty
    if serve:
        now_x = behaviour_features(
            everyone.to_series(), orders, email_events, web_sessions, as_of, clv_config
        )
        served = pd.DataFrame(
            {KEY: everyone, "purchase_propensity_30d": _predict(config, final, now_x[used])}
        )
    backtest_scores = pd.DataFrame({KEY: test_x.index, "label": test_y, **scores})
    return PropensityResult(OK, None, served, {**metrics, "status": OK}, backtest_scores, final)


def predict_propensity(
    model: HistGradientBoostingClassifier, used: list[str], features: pd.DataFrame, config: PropensityConfig
) -> np.ndarray:
    """P(order in the window) of a fitted model for `behaviour_features` rows (`used`: its columns)."""
    return _predict(config, model, features[used])
