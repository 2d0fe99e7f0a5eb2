"""Segment names that are true of their members: absolute thresholds on the members' median values,
words only for the signals the data has, and one segment per name.

A KMeans cluster is a region of the scaled feature space; its name says what its typical member does
("Lapsed One-Time Buyers": the median member ordered once, more than `lapsed_days` ago). Clusters that
the present signals cannot tell apart get the same name and are merged by the caller, so a name never
hides a split that only an unnamed feature (say, the registration cohort) makes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.config import SegmentNamingConfig


@dataclass(frozen=True)
class Signals:
    """Which sources the features table has any data from (a shop-only world has orders only)."""

    orders: bool
    email: bool
    web: bool


def present_signals(features: pd.DataFrame) -> Signals:
    def any_positive(*columns: str) -> bool:
        return any(
            bool((pd.to_numeric(features[c], errors="coerce").fillna(0) > 0).any())
            for c in columns
            if c in features.columns
        )

    return Signals(
        orders=any_positive("frequency", "monetary"),
        email=any_positive("email_sends_90d", "email_sends_30d", "email_open_rate_90d"),
        web=any_positive("web_sessions_30d", "web_page_views_30d"),
    )


def member_medians(features: pd.DataFrame, clusters: np.ndarray, k: int) -> pd.DataFrame:
    """Per cluster, the median of each column its members have a value for (NaN for an empty cluster)."""
    columns = [
        c
        for c in (
            "frequency",
            "monetary",
            "recency_days",
            "days_since_registration",
            "email_open_rate_90d",
            "web_sessions_30d",
        )
        if c in features.columns
    ]
    values = features[columns].apply(pd.to_numeric, errors="coerce")
    medians = values.groupby(np.asarray(clusters)).median()
    return medians.reindex(range(k))


def segment_name(median: pd.Series, signals: Signals, config: SegmentNamingConfig) -> str:
    """The name of a segment whose typical member has the `median` values."""

    def value(name: str) -> float:
        found = median.get(name, np.nan)
        return float(found) if pd.notna(found) else 0.0

    email_engaged = signals.email and value("email_open_rate_90d") >= config.email_engaged_open_rate
    web_active = signals.web and value("web_sessions_30d") >= config.web_active_sessions_30d
    if not signals.orders or value("frequency") < 1:
        if web_active:
            return "Window Shoppers" + (" (Email-Engaged)" if email_engaged else "")
        if email_engaged:
            return "Email Readers Without Orders"
        return "Non-Buyers" if signals.orders else "Inactive Contacts"
    buyers = "Repeat Buyers" if value("frequency") >= config.repeat_orders else "One-Time Buyers"
    recency = median.get("recency_days", np.nan)
    if pd.notna(recency) and recency > config.lapsed_days:
        stage = "Lapsed"
    elif pd.notna(recency) and recency > config.active_days:
        stage = "At-Risk"
    elif pd.notna(median.get("days_since_registration", np.nan)) and (
        median["days_since_registration"] < config.new_customer_days
    ):
        stage = "New"
    else:
        stage = "Active"
    words = ["High-Value"] if value("monetary") >= config.high_value_monetary else []
    name = " ".join([*words, stage, buyers])
    qualifiers = [q for q, on in (("Email-Engaged", email_engaged), ("Web-Active", web_active)) if on]
    return name + (f" ({', '.join(qualifiers)})" if qualifiers else "")


def cluster_names(
    features: pd.DataFrame, clusters: np.ndarray, k: int, config: SegmentNamingConfig
) -> list[str]:
    """One name per KMeans cluster (clusters with the same name are one segment)."""
    signals = present_signals(features)
    medians = member_medians(features, clusters, k)
    return [segment_name(medians.iloc[c], signals, config) for c in range(k)]
