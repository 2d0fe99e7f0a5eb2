"""Send-time statistics updated day by day equal a full recomputation over all events (hand-written)."""

import numpy as np
import pandas as pd

from ml.config import SendTimeConfig
from ml.send_time import HOURS_OF_WEEK, _histograms, delay_kernel, fit_send_time, prepare_engagement
from ml.send_time_stats import empty_stats, engagement_from_stats, update_stats

CONFIG = SendTimeConfig()
COLUMNS = ["customer_key", "event_type", "event_at", "message_id", "delivered_at", "is_machine_open"]


def _events(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=COLUMNS)
    for column in ("event_at", "delivered_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def _customers(tokyo: bool) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_key": ["a", "b", "c", "d"],
            "timezone": ["Europe/Berlin", "America/New_York", None, "Asia/Tokyo" if tokyo else "UTC"],
        }
    )


# Monday 2025-03-03 is day 1; each list is what one day's load brings (late events included)
DAYS = [
    [
        ("a", "delivered", "2025-03-03T08:00Z", "m1", None, False),
        ("a", "open", "2025-03-03T09:30Z", "m1", "2025-03-03T08:00Z", False),
        ("b", "delivered", "2025-03-03T14:00Z", "m3", None, False),
        ("d", "delivered", "2025-03-03T00:00Z", "m5", None, False),
        ("d", "open", "2025-03-03T01:00Z", "m5", "2025-03-03T00:00Z", False),
        ("e", "open", "2025-03-03T05:00Z", "m9", "2025-03-03T04:00Z", False),  # not a known customer
    ],
    [
        ("a", "click", "2025-03-04T10:00Z", "m1", "2025-03-03T08:00Z", False),  # not the first response
        ("a", "delivered", "2025-03-04T07:00Z", "m2", None, False),
        ("a", "open", "2025-03-04T07:01Z", "m2", "2025-03-04T07:00Z", True),  # machine open: never counts
        ("b", "open", "2025-03-04T15:00Z", "m3", "2025-03-03T14:00Z", False),
        ("c", "open", "2025-03-04T18:00Z", "m4", "2025-03-04T12:00Z", False),  # delivery only implied
    ],
    [
        ("a", "open", "2025-03-05T06:00Z", "m2", "2025-03-04T07:00Z", False),
        ("b", "open", "2025-03-03T20:00Z", "m3", "2025-03-03T14:00Z", False),  # late: now the first
        ("c", "open", "2025-03-05T21:00Z", None, None, False),  # no message id: stands alone
        ("c", "delivered", "2025-03-04T11:00Z", "m4", None, False),  # late delivery, earlier than implied
    ],
    [
        ("c", "open", "2025-03-06T21:00Z", None, None, False),
        ("d", "delivered", "2025-03-06T02:00Z", "m6", None, False),
        ("d", "click", "2025-03-06T03:30Z", "m6", "2025-03-06T02:00Z", False),
    ],
]


def _per_customer(users: np.ndarray, hours: np.ndarray, n: int) -> np.ndarray:
    return _histograms(users, hours.astype(np.int64), n).astype(int)


def test_incremental_send_time_statistics_equal_a_full_recomputation():
    stats = empty_stats()
    for day, rows in enumerate(DAYS):
        customers = _customers(tokyo=day >= 2)  # d moves to Tokyo on day 3: its hours are recounted
        stats = update_stats(stats, _events(rows), customers, CONFIG, batch=str(day))

    customers = _customers(tokyo=True)
    everything = _events([row for rows in DAYS for row in rows])
    full = prepare_engagement(everything, customers, CONFIG)
    incremental = engagement_from_stats(stats, customers)
    n = len(customers)
    assert (
        _per_customer(incremental.response_user, incremental.response_hour, n)
        == _per_customer(full.response_user, full.response_hour, n)
    ).all()
    assert (
        _per_customer(incremental.delivery_user, incremental.delivery_hour, n)
        == _per_customer(full.delivery_user, full.delivery_hour, n)
    ).all()
    horizon = CONFIG.delay_horizon_hours
    assert np.allclose(
        delay_kernel(incremental.response_delay_hours, horizon),
        delay_kernel(full.response_delay_hours, horizon),
    )

    # by hand: b's first response is the late Monday 20:00Z open = Monday 15:00 in New York (EST)
    assert stats.responses[("b", 15)] == 1 and ("b", 24 + 10) not in stats.responses.index
    # d's Monday 01:00Z open counted in Tokyo: Monday 10:00 (it was 01 while d was in UTC)
    assert stats.responses[("d", 10)] == 1 and ("d", 1) not in stats.responses.index
    # c: m4 delivered Tuesday 11:00 UTC (the late delivered event beats the implied 12:00), two lone opens
    assert stats.deliveries[("c", 24 + 11)] == 1 and ("c", 24 + 12) not in stats.deliveries.index
    assert stats.responses.xs("c").sum() == 3
    # responses: a m1, a m2, b m3, c m4 + two lone opens, d m5, d m6 (e is unknown, the machine open never)
    assert incremental.response_user.size == 8 and stats.excluded_machine_opens == 1

    full_fit = fit_send_time(full, customers, None, CONFIG).predictions
    incremental_fit = fit_send_time(incremental, customers, None, CONFIG).predictions
    assert (full_fit["best_hour_of_week"] == incremental_fit["best_hour_of_week"]).all()
    assert np.allclose(full_fit["confidence"], incremental_fit["confidence"])
    assert full_fit["source_level"].tolist() == incremental_fit["source_level"].tolist()
    assert HOURS_OF_WEEK == 168
