"""A small synthetic world shaped like the marts the ML reads (fct_customer_features, dim_customers,
fct_email_events) plus its ground truth, for tests and benchmarks. Pure and seeded.

Planted structure: six archetypes with distinct purchase/engagement profiles, and a preferred local
hour of the week per person (archetype-typical hour of day and day, with personal noise). Real opens
happen at the preferred hour with some probability, otherwise soon after delivery, at the preferred
hour of day on another day, or at random; a quarter of people use a privacy proxy whose machine opens
arrive seconds after delivery and hide their real opens (their clicks remain).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

ARCHETYPES = ("champion", "loyal", "new", "at_risk", "hibernating", "browser")
_ARCHETYPE_SHARE = np.array([0.12, 0.20, 0.15, 0.18, 0.20, 0.15])
_ORDERS_MEAN = np.array([11.0, 5.0, 0.4, 4.0, 1.0, 0.0])
_ORDER_VALUE = np.array([130.0, 80.0, 60.0, 70.0, 40.0, 50.0])
_RECENCY_BASE = np.array([0.0, 0.0, 0.0, 90.0, 200.0, 0.0])
_RECENCY_SCALE = np.array([10.0, 25.0, 10.0, 60.0, 120.0, 1.0])
_TENURE_BASE = np.array([300.0, 200.0, 1.0, 250.0, 400.0, 10.0])
_TENURE_SCALE = np.array([400.0, 300.0, 39.0, 300.0, 300.0, 500.0])
_OPEN_BETA = np.array([[6, 4], [4, 5], [5, 5], [2, 8], [1, 12], [3, 6]], dtype=float)
_SESSIONS = np.array([8.0, 4.0, 5.0, 1.0, 0.3, 7.0])
_PREFERRED_HOUR = np.array([8, 12, 20, 18, 21, 22])
_PREFERRED_DAY = np.array([1, 2, 5, 3, 6, 0])
TIMEZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Australia/Sydney",
    None,
)
_TIMEZONE_SHARE = np.array([0.25, 0.1, 0.15, 0.15, 0.15, 0.05, 0.05, 0.1])
CAMPAIGN_UTC_HOURS = np.array([8, 11, 14, 15, 17, 20])
MACHINE_USER_AGENT = "Mozilla/5.0 (Macintosh) AppleWebKit (KHTML, like Gecko) Mail-Privacy-Proxy"
HUMAN_USER_AGENT = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Mobile Mail"


@dataclass
class SyntheticMarts:
    features: pd.DataFrame
    customers: pd.DataFrame
    email_events: pd.DataFrame
    people: pd.DataFrame
    as_of: pd.Timestamp


def synthesize_marts(
    n_customers: int = 1000,
    days: int = 84,
    seed: int = 7,
    campaigns_per_week: float = 2.5,
    end: str = "2026-11-01T00:00:00Z",
    string_keys: bool = True,
) -> SyntheticMarts:
    """`string_keys=False` keeps customer/message ids as integers (saves memory at a million people)."""
    rng = np.random.default_rng(seed)
    n = n_customers
    archetype = rng.choice(len(ARCHETYPES), size=n, p=_ARCHETYPE_SHARE)
    keys: np.ndarray = np.arange(1, n + 1)
    customer_key = np.array([f"c{key:08d}" for key in keys], dtype=object) if string_keys else keys

    open_rate = rng.beta(_OPEN_BETA[archetype, 0], _OPEN_BETA[archetype, 1])
    features = _features(rng, archetype, open_rate, customer_key)

    zone_index = rng.choice(len(TIMEZONES), size=n, p=_TIMEZONE_SHARE)
    timezone = np.array(TIMEZONES, dtype=object)[zone_index]
    own_hour = (_PREFERRED_HOUR[archetype] + np.rint(rng.normal(0, 2.0, n)).astype(int)) % 24
    typical_day = rng.random(n) < 0.5
    day = np.where(typical_day, _PREFERRED_DAY[archetype], rng.integers(0, 7, n))
    preferred = day * 24 + own_hour
    is_test = rng.random(n) < 0.005
    customers = pd.DataFrame(
        {
            "customer_key": customer_key,
            "email": [f"person{key}@example.com" for key in keys] if string_keys else keys,
            "timezone": timezone,
            "is_contactable": ~is_test & (rng.random(n) > 0.05),
            "esp_profile_id": [f"esp-{key:08d}" for key in keys] if string_keys else keys,
        }
    )
    people = pd.DataFrame(
        {
            "person_id": keys,
            "archetype": np.array(ARCHETYPES, dtype=object)[archetype],
            "timezone": timezone,
            "preferred_hour_of_week_local": preferred,
            "canonical_email": customers["email"].to_numpy(),
            "esp_profile_id": customers["esp_profile_id"].to_numpy(),
            "is_test_account": is_test,
        }
    )
    end_at = pd.Timestamp(end)
    events = _email_events(
        rng, customer_key, timezone, preferred, open_rate, days, campaigns_per_week, end_at, string_keys
    )
    return SyntheticMarts(features, customers, events, people, end_at)


def _features(
    rng: np.random.Generator, archetype: np.ndarray, open_rate: np.ndarray, customer_key: np.ndarray
) -> pd.DataFrame:
    n = len(archetype)
    orders = rng.poisson(_ORDERS_MEAN[archetype]) + (_ORDERS_MEAN[archetype] >= 1)
    order_value = _ORDER_VALUE[archetype] * rng.lognormal(0.0, 0.35, n)
    monetary = orders * order_value * rng.lognormal(0.0, 0.1, n)
    tenure = _TENURE_BASE[archetype] + rng.exponential(_TENURE_SCALE[archetype])
    recency = np.minimum(_RECENCY_BASE[archetype] + rng.exponential(_RECENCY_SCALE[archetype]), tenure)
    first_order = np.maximum(recency, tenure * rng.uniform(0.5, 1.0, n))
    has_orders = orders > 0
    sessions = rng.poisson(_SESSIONS[archetype])
    click_rate = open_rate * rng.beta(2, 8, n)
    sends_90d = rng.integers(25, 36, n)
    sends_30d = sends_90d // 3
    engagement = np.clip(
        0.5 * open_rate + 0.3 * np.minimum(sessions / 10, 1) + 0.2 * (has_orders & (recency < 30)), 0, 1
    )
    nullable = np.where(has_orders, 1.0, np.nan)
    return pd.DataFrame(
        {
            "customer_key": customer_key,
            "recency_days": np.floor(recency) * nullable,
            "frequency": orders,
            "monetary": np.round(monetary, 2),
            "avg_order_value": np.where(has_orders, np.round(order_value, 2), 0.0),
            "days_since_first_order": np.floor(first_order) * nullable,
            "purchase_frequency": orders / np.maximum(first_order / 30.0, 1.0),
            "email_sends_30d": sends_30d,
            "email_unique_opens_30d": rng.binomial(sends_30d, open_rate),
            "email_unique_clicks_30d": rng.binomial(sends_30d, click_rate),
            "email_open_rate_30d": open_rate,
            "email_click_rate_30d": click_rate,
            "email_sends_90d": sends_90d,
            "email_unique_opens_90d": rng.binomial(sends_90d, open_rate),
            "email_unique_clicks_90d": rng.binomial(sends_90d, click_rate),
            "email_open_rate_90d": open_rate,
            "email_click_rate_90d": click_rate,
            "web_sessions_30d": sessions,
            "web_page_views_30d": sessions * rng.integers(1, 6, n),
            "avg_session_duration_seconds": np.where(sessions > 0, rng.gamma(2.0, 90.0, n), 0.0),
            "active_days_30d": np.minimum(sessions, 30),
            "days_since_registration": np.floor(tenure),
            "top_categories": "",
            "engagement_score": engagement,
            "behavioural_segments": "",
            "lifetime_value": np.round(monetary, 2),
        }
    )


def _local_hour_of_week(utc: pd.DatetimeIndex, timezone: np.ndarray) -> np.ndarray:
    """Fractional local hour of week for each UTC time, by the person's time zone (None = UTC)."""
    result = np.empty(len(utc))
    zones = pd.Series(timezone, dtype=object).fillna("UTC").to_numpy()
    for zone in pd.unique(zones):
        mask = zones == zone
        local = utc[mask].tz_convert(zone)
        result[mask] = local.dayofweek * 24 + local.hour + local.minute / 60 + local.second / 3600
    return result


def _email_events(
    rng: np.random.Generator,
    customer_key: np.ndarray,
    timezone: np.ndarray,
    preferred: np.ndarray,
    open_rate: np.ndarray,
    days: int,
    campaigns_per_week: float,
    end_at: pd.Timestamp,
    string_keys: bool,
) -> pd.DataFrame:
    n = len(customer_key)
    start = end_at - pd.Timedelta(days=days)
    n_campaigns = max(int(days / 7 * campaigns_per_week), 1)
    campaign_days = np.sort(rng.choice(days - 1, size=n_campaigns, replace=n_campaigns > days - 1))
    campaign_at = (
        start
        + pd.to_timedelta(campaign_days, unit="D")
        + pd.to_timedelta(rng.choice(CAMPAIGN_UTC_HOURS, n_campaigns), unit="h")
        + pd.to_timedelta(rng.integers(0, 60, n_campaigns), unit="min")
    )
    uses_proxy = rng.random(n) < 0.25
    frames = []
    for campaign, sent_at in enumerate(campaign_at):
        recipients = np.flatnonzero(rng.random(n) < 0.9)
        delivered = pd.DatetimeIndex(sent_at + pd.to_timedelta(rng.integers(5, 300, len(recipients)), "s"))
        local = _local_hour_of_week(delivered, timezone[recipients])
        responds = rng.random(len(recipients)) < open_rate[recipients]
        mode = rng.choice(4, size=len(recipients), p=[0.3, 0.45, 0.15, 0.1])
        preferred_hours = preferred[recipients] + rng.normal(0, 0.4, len(recipients))
        to_week_peak = np.mod(preferred_hours - local, 168)
        to_day_peak = np.mod(preferred_hours - local, 24) + 24 * rng.integers(0, 3, len(recipients))
        delay_hours = np.select(
            [mode == 0, mode == 1, mode == 2],
            [rng.exponential(0.3, len(recipients)), to_week_peak, to_day_peak],
            rng.uniform(0, 96, len(recipients)),
        )
        delay_hours = np.clip(delay_hours, 0.01, 167.0)
        response_at = delivered + pd.to_timedelta(np.rint(delay_hours * 3600), unit="s")
        responds &= response_at < end_at
        clicks = responds & (rng.random(len(recipients)) < 0.25)
        real_open = responds & ~uses_proxy[recipients]
        click_at = response_at + pd.to_timedelta(rng.integers(10, 300, len(recipients)), unit="s")
        proxy = uses_proxy[recipients]
        machine_at = delivered + pd.to_timedelta(rng.integers(1, 8, len(recipients)), unit="s")
        campaign_id = f"cmp-{campaign:04d}"
        for event_type, mask, at, machine in (
            ("delivered", np.ones(len(recipients), bool), delivered, False),
            ("open", proxy, machine_at, True),
            ("open", real_open, response_at, False),
            ("click", clicks, click_at, False),
        ):
            frames.append(
                pd.DataFrame(
                    {
                        "customer_idx": recipients[mask],
                        "event_type": event_type,
                        "event_at": at[mask],
                        "campaign_id": campaign_id,
                        "campaign_no": campaign,
                        "delivered_at": delivered[mask],
                        "user_agent": None
                        if event_type == "delivered"
                        else (MACHINE_USER_AGENT if machine else HUMAN_USER_AGENT),
                        "is_machine_open": machine if event_type == "open" else False,
                    }
                )
            )
    events = pd.concat(frames, ignore_index=True)
    idx = events.pop("customer_idx").to_numpy()
    campaign_no = events.pop("campaign_no").to_numpy()
    events.insert(0, "customer_key", customer_key[idx])
    message_number = campaign_no.astype(np.int64) * (n + 1) + idx
    events["message_id"] = [f"msg-{m}" for m in message_number] if string_keys else message_number
    events["esp_profile_id"] = events["customer_key"]
    events["seconds_since_delivery"] = (events["event_at"] - events["delivered_at"]).dt.total_seconds()
    events.insert(0, "email_event_id", np.arange(1, len(events) + 1))
    if string_keys:
        events["email_event_id"] = [f"ev-{i}" for i in events["email_event_id"]]
    return events
