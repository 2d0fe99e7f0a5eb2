"""One customer-value run end to end without I/O: CLV (BG/NBD + Gamma-Gamma), its holdout backtest,
purchase propensity with its backtest, category affinity, the ml.customer_value rows, the run record and
the plots."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml.affinity import campaign_value, category_affinity, category_shares
from ml.clv import repeat_purchase_summary
from ml.config import MLConfig
from ml.customer_value import (
    KEY,
    OK,
    PREDICTION_COLUMNS,
    CLVFit,
    backtest_clv,
    completed_orders,
    fit_clv,
    score_customers,
)
from ml.plots import calibration_chart, gains_chart, value_distribution
from ml.propensity import behaviour_features, predict_propensity, run_propensity
from ml.registry import ModelRun, data_fingerprint, model_version

CUSTOMER_VALUE_MODEL = "customer_value"
VALUE_COLUMNS = (
    KEY,
    "historic_clv",
    *PREDICTION_COLUMNS,
    "avg_days_between_orders",
    "purchase_propensity_30d",
    "top_categories",
    "model_version",
    "scored_as_of",
)


@dataclass
class CustomerValueRun:
    version: str
    values: pd.DataFrame
    """ml.customer_value rows (VALUE_COLUMNS)."""
    run: ModelRun
    artefact: dict[str, Any]
    plots: dict[str, bytes] = field(default_factory=dict)


def value_orders(orders: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    frame = completed_orders(orders).copy()
    frame["ordered_at"] = pd.to_datetime(frame["ordered_at"], utc=True)
    frame["order_total"] = pd.to_numeric(frame["order_total"], errors="coerce")
    return frame[frame["ordered_at"] <= as_of].sort_values(["ordered_at", KEY], kind="stable")


def value_parameters(config: MLConfig) -> dict[str, Any]:
    """What a customer-value fit depends on besides the data (a change refits)."""
    return {"clv": config.clv.parameters(), "propensity": config.propensity.parameters()}


def score_customer_value(
    artefact: dict[str, Any],
    version: str,
    customers: pd.DataFrame,
    orders: pd.DataFrame,
    email_events: pd.DataFrame | None,
    web_sessions: pd.DataFrame | None,
    as_of: pd.Timestamp,
    config: MLConfig,
    summary: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """ml.customer_value rows of `customers` at `as_of` from a fit's artefact (no fitting): each row
    depends only on the customer's own orders, engagement and sessions, so scoring some customers gives
    their rows of scoring everyone. `orders`: completed orders up to as_of; `summary`: their
    repeat_purchase_summary when already computed."""
    if summary is None:
        summary = repeat_purchase_summary(orders, as_of)
    fit = CLVFit(OK, None, as_of, summary, artefact["bgnbd"], artefact["gamma_gamma"])
    values = score_customers(fit, customers[KEY], config.clv)
    values["historic_clv"] = values[KEY].map(orders.groupby(KEY)["order_total"].sum()).fillna(0.0)
    values["purchase_propensity_30d"] = np.nan
    model = artefact["propensity_model"]
    if model is not None and len(values):
        features = behaviour_features(
            values[KEY], orders, email_events, web_sessions, as_of, config.clv, bgnbd=artefact["bgnbd"]
        ).reindex(values[KEY])
        values["purchase_propensity_30d"] = predict_propensity(
            model, artefact["propensity_features"], features, config.propensity
        )
    shares = artefact["category_shares"]
    affinity = (
        category_affinity(
            orders,
            config.propensity.category_prior_strength,
            config.propensity.top_categories,
            base_share=shares,
        )
        if shares is not None and "categories" in orders.columns
        else pd.DataFrame({KEY: [], "top_categories": []})
    )
    values = values.merge(affinity[[KEY, "top_categories"]], on=KEY, how="left")
    values["model_version"] = version
    values["scored_as_of"] = as_of
    return values


def run_customer_value(
    customers: pd.DataFrame,
    orders: pd.DataFrame,
    as_of: pd.Timestamp,
    email_events: pd.DataFrame | None = None,
    web_sessions: pd.DataFrame | None = None,
    config: MLConfig | None = None,
) -> CustomerValueRun:
    """`orders`: marts.fct_orders rows (completed ones are used); `as_of`: the data's as-of."""
    config = config or MLConfig()
    as_of = pd.Timestamp(as_of)
    as_of = as_of.tz_localize("UTC") if as_of.tzinfo is None else as_of.tz_convert("UTC")
    customers = customers.sort_values(KEY, ignore_index=True)
    orders = value_orders(orders, as_of)
    parameters = value_parameters(config)
    fingerprint = data_fingerprint(
        customers[[KEY]], orders[[KEY, "ordered_at", "order_total"]].astype({"ordered_at": "int64"})
    )
    version = model_version(CUSTOMER_VALUE_MODEL, parameters, fingerprint, as_of)

    fit = fit_clv(orders, as_of, config.clv)
    propensity = run_propensity(
        customers, orders, email_events, web_sessions, as_of, config.propensity, config.clv, serve=False
    )
    artefact = {
        "bgnbd": fit.bgnbd,
        "gamma_gamma": fit.gamma_gamma,
        "propensity_model": propensity.model,
        "propensity_features": propensity.metrics.get("features"),
        "category_shares": category_shares(orders) if "categories" in orders.columns else None,
        "as_of": as_of,
    }
    values = score_customer_value(
        artefact, version, customers, orders, email_events, web_sessions, as_of, config, fit.summary
    )

    # the value of offering to everyone, per churn band: what a campaign to that band is worth
    order_value = values["expected_order_value"].fillna(values["expected_order_value"].mean())
    by_band = {
        str(band): campaign_value(
            values.loc[members.index, "purchase_propensity_30d"],
            order_value[members.index],
            config.propensity.cost_per_send,
        )
        for band, members in values.groupby("churn_risk_band")
    }
    metrics: dict[str, Any] = {
        "clv": fit.metrics(),
        "clv_backtest": backtest_clv(orders, as_of, config.clv),
        "propensity": propensity.metrics,
        "campaign_value_by_churn_band": by_band,
        "customers": len(values),
        "customers_scored": int(values["p_alive"].notna().sum()),
        "customers_valued": int(values["predicted_clv"].notna().sum()),
        "churn_risk_bands": values["churn_risk_band"].value_counts().to_dict(),
        "predicted_clv_total": float(np.nansum(values["predicted_clv"])),
        "customers_with_top_categories": int(values["top_categories"].notna().sum()),
    }
    run = ModelRun(
        model=CUSTOMER_VALUE_MODEL,
        version=version,
        parameters=parameters,
        data_snapshot={
            "as_of": as_of.isoformat(),
            "customers": len(customers),
            "completed_orders": len(orders),
            "email_events": 0 if email_events is None else len(email_events),
            "web_sessions": 0 if web_sessions is None else len(web_sessions),
            "fingerprint": fingerprint,
        },
        metrics=metrics,
    )
    plots: dict[str, bytes] = {}
    if propensity.backtest_scores is not None:
        scored = propensity.backtest_scores
        plots["propensity_gains"] = gains_chart(
            scored["label"].to_numpy(),
            {name: scored[name].to_numpy() for name in ("model", "recency_alone", "bgnbd_p_purchase")},
        )
        plots["propensity_calibration"] = calibration_chart(propensity.metrics["reliability"])
    if values["predicted_clv"].notna().any():
        plots["clv_distribution"] = value_distribution(values["predicted_clv"].to_numpy())
    return CustomerValueRun(version, values[list(VALUE_COLUMNS)], run, artefact, plots)
