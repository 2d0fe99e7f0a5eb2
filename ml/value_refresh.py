"""Daily customer value from the stored fits: the customers whose inputs were rebuilt are scored again.

A refit (`run_customer_value`) fits BG/NBD, Gamma-Gamma, the propensity model (with both backtests) and
the base's category shares on everyone, stores them as the artefact and scores everyone. Until the next
refit a daily run scores against that artefact only the customers whose features or profile rows were
rebuilt since the last run (a new order, email or web event, a window edge crossed, a key merge) and
customers without a row; everyone else keeps their row, its `model_version` (the fit that made it) and
its `scored_as_of`. Scoring is per customer, so those rows equal scoring everyone with the stored fit
(`test_a_daily_run_scores_the_changed_customers_with_the_stored_fit`).

Day counts move with the clock for everyone (BG/NBD's T, the propensity's days since last order), so an
untouched customer's p_alive, churn risk and propensity are as of its `scored_as_of`, at most
`refit_every_days` old: scoring everyone daily would cost most of what the fit costs (the behaviour
features over all engagement) and move every customer's pushed profile every day.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from ml.config import MLConfig
from ml.registry import ModelRun, data_fingerprint, model_version, scheduled_refit_reason
from ml.value_pipeline import (
    CUSTOMER_VALUE_MODEL,
    VALUE_COLUMNS,
    CustomerValueRun,
    score_customer_value,
    value_orders,
    value_parameters,
)

ARTEFACT_KEYS = ("bgnbd", "gamma_gamma", "propensity_model", "propensity_features", "category_shares")


@dataclass
class StoredValue:
    fitted_version: str
    fitted_as_of: pd.Timestamp
    parameters: dict[str, Any]
    metrics: dict[str, Any]
    artefact: dict[str, Any] | None
    """None when the file is gone or predates the stored scoring inputs"""


def refit_reason(stored: StoredValue | None, config: MLConfig, as_of: pd.Timestamp) -> str | None:
    """Why this run fits on everyone (None: score the changed customers against `stored`)."""
    if stored is None:
        return "no stored fit"
    usable = stored.artefact is not None and all(key in stored.artefact for key in ARTEFACT_KEYS)
    return scheduled_refit_reason(
        stored.parameters,
        value_parameters(config),
        usable,
        stored.fitted_as_of,
        as_of,
        config.clv.refit_every_days,
    )


def rescore_customer_value(
    stored: StoredValue,
    customers: pd.DataFrame,
    orders: pd.DataFrame,
    email_events: pd.DataFrame | None,
    web_sessions: pd.DataFrame | None,
    as_of: pd.Timestamp,
    config: MLConfig,
    snapshot: dict[str, Any],
) -> CustomerValueRun:
    """The rows of `customers` (the changed ones; `orders`, `email_events`, `web_sessions`: theirs)
    scored at `as_of` with the stored fit, and this run's record (the fit's metrics, what was scored)."""
    assert stored.artefact is not None
    orders = value_orders(orders, as_of)
    values = score_customer_value(
        stored.artefact, stored.fitted_version, customers, orders, email_events, web_sessions, as_of, config
    )
    parameters = {**value_parameters(config), "scored_with": stored.fitted_version}
    fingerprint = data_fingerprint(
        values[["customer_key"]], pd.DataFrame({"until": [str(snapshot.get("inputs_built_until"))]})
    )
    version = model_version(CUSTOMER_VALUE_MODEL, parameters, fingerprint, as_of)
    metrics = {  # the fit's figures (status, backtests, per-band value): a daily run fits nothing
        **stored.metrics,
        "refit": False,
        "scored_with": stored.fitted_version,
        "rescored_customers": len(values),
    }
    run = ModelRun(
        model=CUSTOMER_VALUE_MODEL,
        version=version,
        parameters=parameters,
        data_snapshot={
            **snapshot,
            "as_of": as_of.isoformat(),
            "rescored_customers": len(values),
            "fitted_version": stored.fitted_version,
            "refit": False,
        },
        metrics=metrics,
    )
    return CustomerValueRun(version, values[list(VALUE_COLUMNS)], run, stored.artefact)
