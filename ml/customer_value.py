"""Per-customer value predictions from completed orders: BG/NBD + Gamma-Gamma fitted at the data's as-of,
scored for every customer with an order, and backtested on a time split (refit before as-of - holdout,
forecast the holdout).

Insufficient data is an outcome: `CLVFit.status == "insufficient_data"` with the reason, and every
prediction column stays empty (null) rather than holding numbers from a model that could not be fitted."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml import clv
from ml.config import CLVConfig

KEY = "customer_key"
OK = "ok"
INSUFFICIENT = "insufficient_data"
CHURN_BANDS = ("Low", "Medium", "High")
PREDICTION_COLUMNS = (
    "p_alive",
    "expected_purchases_90d",
    "expected_purchases_365d",
    "expected_order_value",
    "predicted_clv",
    "predicted_clv_discounted",
    "churn_risk",
    "churn_risk_band",
    "expected_next_order_at",
)


@dataclass
class CLVFit:
    status: str
    reason: str | None
    as_of: pd.Timestamp
    summary: pd.DataFrame
    """repeat_purchase_summary at as_of (days)."""
    bgnbd: clv.BGNBDParams | None = None
    gamma_gamma: clv.GammaGammaParams | None = None
    spend_reason: str | None = None
    """Why there is no Gamma-Gamma (then no CLV), when the purchase model itself is fine."""
    data: dict[str, Any] = field(default_factory=dict)

    def metrics(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reason": self.reason,
            "spend_reason": self.spend_reason,
            **self.data,
            "bgnbd": None if self.bgnbd is None else self.bgnbd.as_dict(),
            "gamma_gamma": None if self.gamma_gamma is None else self.gamma_gamma.as_dict(),
        }


def completed_orders(orders: pd.DataFrame) -> pd.DataFrame:
    """Orders the models learn from: completed, with a customer and a time."""
    keep = orders[KEY].notna() & orders["ordered_at"].notna()
    if "is_completed" in orders.columns:
        keep &= orders["is_completed"].fillna(False).astype(bool)
    return orders[keep]


def insufficient_reason(summary: pd.DataFrame, as_of: pd.Timestamp, config: CLVConfig) -> str | None:
    buyers = len(summary)
    repeaters = int((summary["frequency"] > 0).sum())
    if buyers < config.min_customers:
        return f"{buyers} customers with a completed order, fewer than the minimum {config.min_customers}"
    if repeaters < config.min_repeat_customers:
        return (
            f"{repeaters} customers with a repeat purchase, fewer than the minimum "
            f"{config.min_repeat_customers}"
        )
    history = int(summary["T"].max())
    if history < config.min_history_days:
        return (
            f"{history} days between the first order and the as-of {pd.Timestamp(as_of).date()}, fewer "
            f"than the minimum {config.min_history_days}"
        )
    return None


def fit_clv(orders: pd.DataFrame, as_of: pd.Timestamp, config: CLVConfig) -> CLVFit:
    """`orders`: completed orders (customer_key, ordered_at, order_total) up to as_of (later ones ignored)."""
    summary = clv.repeat_purchase_summary(orders, as_of)
    data = {
        "customers_with_orders": len(summary),
        "repeat_customers": int((summary["frequency"] > 0).sum()),
        "history_days": int(summary["T"].max()) if len(summary) else 0,
    }
    reason = insufficient_reason(summary, as_of, config)
    if reason:
        return CLVFit(INSUFFICIENT, reason, as_of, summary, data=data)
    bgnbd = clv.fit_bgnbd(
        summary["frequency"], summary["recency"], summary["T"], config.unit_days, config.max_iter
    )
    if not (bgnbd.converged and np.isfinite(bgnbd.log_likelihood)):
        return CLVFit(INSUFFICIENT, "the BG/NBD likelihood did not converge", as_of, summary, data=data)
    repeat_value = summary["monetary"]
    spenders = int(((summary["frequency"] > 0) & (repeat_value > 0)).sum())
    if spenders < config.min_repeat_customers:
        return CLVFit(
            OK,
            None,
            as_of,
            summary,
            bgnbd,
            spend_reason=f"{spenders} repeaters with a positive order value, fewer than "
            f"{config.min_repeat_customers}",
            data=data,
        )
    spend = clv.fit_gamma_gamma(summary["frequency"], repeat_value, config.max_iter)
    spend_reason = None
    if not spend.converged or spend.q <= 1:
        spend, spend_reason = None, "the Gamma-Gamma fit did not converge to a finite mean (q <= 1)"
    data["frequency_value_correlation"] = float(
        summary.loc[summary["frequency"] > 0, ["frequency", "monetary"]].corr().iloc[0, 1]
    )  # Gamma-Gamma assumes spend independent of frequency: near 0 is good
    return CLVFit(OK, None, as_of, summary, bgnbd, spend, spend_reason, data)


def churn_band(risk: pd.Series, config: CLVConfig) -> pd.Series:
    """Low < medium_from <= Medium <= high_above < High (null risk -> null band)."""
    band = pd.Series(pd.NA, index=risk.index, dtype="object")
    known = risk.notna()
    band[known & (risk < config.churn_medium_from)] = "Low"
    band[known & (risk >= config.churn_medium_from) & (risk <= config.churn_high_above)] = "Medium"
    band[known & (risk > config.churn_high_above)] = "High"
    return band


def score_customers(fit: CLVFit, customer_keys: pd.Series, config: CLVConfig) -> pd.DataFrame:
    """One row per key: observed repeat history, and the model's predictions when it could be fitted.
    Customers without a completed order get no predictions (the models describe buyers)."""
    frame = pd.DataFrame({KEY: pd.Series(customer_keys, dtype="object").drop_duplicates().sort_values()})
    frame = frame.merge(fit.summary, on=KEY, how="left").reset_index(drop=True)
    freq, rec, age = frame["frequency"], frame["recency"], frame["T"]
    frame["avg_days_between_orders"] = (rec / freq).where(freq > 0)
    for name in PREDICTION_COLUMNS:
        frame[name] = np.nan
    frame["churn_risk_band"] = pd.Series(pd.NA, index=frame.index, dtype="object")
    frame["expected_next_order_at"] = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns, UTC]")
    buyers = freq.notna().to_numpy()
    if fit.bgnbd is None or not buyers.any():
        return frame
    params, x, t_x, T = (
        fit.bgnbd,
        freq[buyers].to_numpy(float),
        rec[buyers].to_numpy(),
        age[buyers].to_numpy(),
    )
    frame.loc[buyers, "p_alive"] = clv.p_alive(params, x, t_x, T)
    frame.loc[buyers, "expected_purchases_90d"] = clv.conditional_expected_purchases(params, 90, x, t_x, T)
    frame.loc[buyers, "expected_purchases_365d"] = clv.conditional_expected_purchases(params, 365, x, t_x, T)
    risk = clv.p_no_purchase(params, config.churn_window_days, x, t_x, T)
    frame.loc[buyers, "churn_risk"] = risk
    frame["churn_risk_band"] = churn_band(frame["churn_risk"], config)
    # the median wait of an active customer; only for repeat buyers (one order says nothing of their own
    # rhythm) and within the value horizon (beyond it the date is noise)
    wait = clv.median_days_to_next_purchase(params, x, T)
    dated = (x > 0) & (wait <= config.horizon_days)
    days = np.round(np.where(dated, wait, 0.0))
    when = pd.Timestamp(fit.as_of).normalize() + pd.to_timedelta(days, unit="D")
    frame.loc[buyers, "expected_next_order_at"] = pd.Series(when, index=frame.index[buyers]).where(dated)
    if fit.gamma_gamma is not None:
        value = clv.expected_order_value(fit.gamma_gamma, x, frame["monetary"][buyers].to_numpy())
        frame.loc[buyers, "expected_order_value"] = value
        frame.loc[buyers, "predicted_clv"] = clv.customer_lifetime_value(
            params, value, x, t_x, T, config.horizon_days
        )
        frame.loc[buyers, "predicted_clv_discounted"] = clv.customer_lifetime_value(
            params,
            value,
            x,
            t_x,
            T,
            config.horizon_days,
            config.annual_discount_rate,
            config.discount_step_days,
        )
    return frame


def backtest_clv(orders: pd.DataFrame, as_of: pd.Timestamp, config: CLVConfig) -> dict[str, Any]:
    """Refit on orders up to as_of - holdout, forecast each customer's purchase days in the holdout; the
    naive baseline is the customer's past rate (repeat days / T) x holdout."""
    holdout = config.backtest_holdout_days
    cutoff = pd.Timestamp(as_of) - pd.Timedelta(days=holdout)
    fit = fit_clv(orders[pd.to_datetime(orders["ordered_at"], utc=True) <= cutoff], cutoff, config)
    result: dict[str, Any] = {"cutoff": cutoff.isoformat(), "holdout_days": holdout, "status": fit.status}
    if fit.bgnbd is None:
        return {**result, "reason": fit.reason}
    summary = fit.summary
    actual_by_key = clv.purchase_days_between(orders, cutoff, as_of)
    actual = summary[KEY].map(actual_by_key).fillna(0).to_numpy(float)
    freq, rec, age = summary["frequency"], summary["recency"], summary["T"]
    forecast = clv.conditional_expected_purchases(fit.bgnbd, holdout, freq, rec, age)
    naive = np.where(age > 0, freq / np.maximum(age, 1e-9), 0.0) * holdout
    total = float(actual.sum())
    return {
        **result,
        "customers": len(summary),
        "actual_purchase_days": total,
        "forecast_purchase_days": float(forecast.sum()),
        "forecast_error": float(forecast.sum() / total - 1) if total else None,
        "mae_model": float(np.abs(forecast - actual).mean()),
        "mae_naive_rate": float(np.abs(naive - actual).mean()),
        "bgnbd": fit.bgnbd.as_dict(),
    }
