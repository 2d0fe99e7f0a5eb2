"""Category affinity (top categories by shrunk share relative to the base) and the expected value of a
campaign to an audience."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.customer_value import KEY


def _exploded(orders: pd.DataFrame, category_column: str) -> pd.DataFrame:
    lists = orders[[KEY, category_column]].dropna()
    exploded = (
        lists.assign(category=lists[category_column].astype(str).str.split(","))
        .explode("category")
        .assign(category=lambda f: f["category"].str.strip())
    )
    return exploded[exploded["category"] != ""]


def category_shares(orders: pd.DataFrame, category_column: str = "categories") -> pd.Series:
    """The base's share of each category (an order listing several counts once for each)."""
    counts = _exploded(orders, category_column)["category"].value_counts()
    return (counts / counts.sum()).sort_index() if len(counts) else counts.astype(float)


def category_affinity(
    orders: pd.DataFrame,
    prior_strength: float,
    top: int,
    category_column: str = "categories",
    base_share: pd.Series | None = None,
) -> pd.DataFrame:
    """Per customer with categorised orders: the `top` categories whose shrunk share beats the base's
    share, best lift first, as a comma-separated list (and the best lift).

    An order listing several categories counts once for each. share(c, k) = (n_ck + m s_k) / (n_c + m),
    s_k = the base's share of category k, m = `prior_strength` pseudo-orders; lift = share / s_k. A customer
    whose one order was in a rare category gets a lift well below 1 / s_k. `base_share`: the shares of
    a stored fit (scoring some customers with it); a category it does not know is never a top one."""
    exploded = _exploded(orders, category_column)
    if exploded.empty:
        return pd.DataFrame({KEY: pd.Series(dtype="object"), "top_categories": [], "top_category_lift": []})
    counts = exploded.groupby([KEY, "category"]).size().rename("n").reset_index()
    if base_share is None:
        base = counts.groupby("category")["n"].sum()
        base_share = base / base.sum()
    totals = counts.groupby(KEY)["n"].transform("sum")
    s = counts["category"].map(base_share)
    counts["lift"] = (counts["n"] + prior_strength * s) / (totals + prior_strength) / s
    chosen = counts[counts["lift"] > 1].sort_values([KEY, "lift", "category"], ascending=[True, False, True])
    chosen = chosen.groupby(KEY).head(top)
    grouped = chosen.groupby(KEY)
    return pd.DataFrame(
        {
            "top_categories": grouped["category"].agg(",".join),
            "top_category_lift": grouped["lift"].max(),
        }
    ).reset_index()


def campaign_value(
    propensity: pd.Series | np.ndarray, order_value: pd.Series | np.ndarray, cost_per_send: float
) -> dict[str, float]:
    """Expected value of sending to these members: sum of propensity x expected order value, minus the
    cost of every send. Members without a propensity or an order value count as sends only."""
    p = np.nan_to_num(np.asarray(propensity, dtype=float), nan=0.0)
    v = np.nan_to_num(np.asarray(order_value, dtype=float), nan=0.0)
    revenue = float((p * v).sum())
    cost = cost_per_send * len(p)
    return {
        "members": len(p),
        "expected_orders": float(p.sum()),
        "expected_revenue": revenue,
        "send_cost": cost,
        "expected_value": revenue - cost,
    }
