"""Send-time sufficient statistics, updated from new engagement only.

`fit_send_time` needs per customer the counts of first real responses and of deliveries by local hour of
week, and the pooled histogram of whole hours from delivery to response; nothing else of the events. These
are kept here together with one small state row per (customer, message): its first delivery, its first
real response and the delivery time that response carries (what `prepare_engagement` derives from all
events). A new day's events change only the messages they touch: their old contribution is taken off the
counts and the merged one added, so late events (an earlier open arriving a day later) and time-zone
changes (a customer's messages recounted in the new zone) give the counts a full recomputation gives
(`test_incremental_send_time_statistics_equal_a_full_recomputation`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.config import SendTimeConfig
from ml.features import KEY
from ml.send_time import Engagement, _naive_utc, clean_timezones, local_hour_of_week

STATE_COLUMNS = (KEY, "message_key", "delivered_at", "response_at", "response_delivered_at")
_COUNT_INDEX = (KEY, "hour_of_week")


@dataclass
class SendTimeStats:
    messages: pd.DataFrame
    """one row per (customer, message): delivered_at, response_at, response_delivered_at (naive UTC)"""
    responses: pd.Series
    """first real responses per (customer_key, local hour of week)"""
    deliveries: pd.Series
    """deliveries per (customer_key, local hour of week)"""
    delays: pd.Series
    """responses per (customer_key, whole hours from delivery to response), delays >= 0 only"""
    zones: pd.Series
    """customer_key -> the zone its hours were counted in"""
    excluded_machine_opens: int = 0


def empty_stats() -> SendTimeStats:
    def counts() -> pd.Series:
        return pd.Series(dtype="int64", index=pd.MultiIndex.from_arrays([[], []], names=_COUNT_INDEX))

    index = pd.MultiIndex.from_arrays([[], []], names=[KEY, "message_key"])
    messages = pd.DataFrame({c: pd.Series(dtype="datetime64[ns]", index=index) for c in STATE_COLUMNS[2:]})
    return SendTimeStats(messages, counts(), counts(), counts(), pd.Series(dtype=object))


def message_state(events: pd.DataFrame, batch: str) -> tuple[pd.DataFrame, int]:
    """The state rows of these fct_email_events rows (and their machine opens, which never count).

    An event without a message id stands alone (as in prepare_engagement): its key is `~` and its
    email_event_id (the same whenever it is read again), or `batch` and its position without one."""
    events = events[events[KEY].notna()].reset_index(drop=True)
    kind = events["event_type"].astype(str).str.lower()
    machine = events["is_machine_open"].fillna(False).astype(bool)
    key = events["message_id"].astype(object)
    if "email_event_id" in events:
        alone = "~" + events["email_event_id"].astype(str)
    else:
        alone = pd.Series([f"~{batch}:{i}" for i in range(len(events))], dtype=object)
    key = key.where(key.notna(), alone)
    frame = pd.DataFrame(
        {
            KEY: events[KEY].astype(object),
            "message_key": key,
            "event_at": _naive_utc(events["event_at"]),
            "delivered_at": _naive_utc(events["delivered_at"]),
        }
    )
    delivered = frame[kind.eq("delivered").to_numpy()].groupby([KEY, "message_key"])["event_at"].min()
    real = ((kind.eq("open") & ~machine) | kind.eq("click")).to_numpy()
    first = frame[real].sort_values("event_at", kind="stable").groupby([KEY, "message_key"]).first()
    state = pd.DataFrame(
        {
            "delivered_at": delivered,
            "response_at": first["event_at"],
            "response_delivered_at": first["delivered_at"],
        }
    )
    return state, int((kind.eq("open") & machine).sum())


def merge_states(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """Per message: the earliest delivery, and the earliest response (with its delivery time; on a tie
    the one seen first, as a full recomputation over the events in load order keeps)."""
    both = pd.concat([old, new]).reset_index()
    both["_order"] = np.arange(len(both))
    keys = [KEY, "message_key"]
    delivered = both.groupby(keys)["delivered_at"].min()
    responded = both[both["response_at"].notna()].sort_values(["response_at", "_order"], kind="stable")
    first = responded.groupby(keys)[["response_at", "response_delivered_at"]].first()
    merged = pd.DataFrame({"delivered_at": delivered}).join(first, how="left")
    return merged[["delivered_at", "response_at", "response_delivered_at"]]


def contributions(state: pd.DataFrame, zones: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """(responses, deliveries, delays) that these state rows add, hours in each customer's zone."""
    customer = state.index.get_level_values(KEY)
    zone = zones.reindex(customer).to_numpy(dtype=object)
    # a message's delivery: its first delivered event, or the earlier delivery time its response carries
    delivery = state[["delivered_at", "response_delivered_at"]].min(axis=1)

    def counts(times: pd.Series) -> pd.Series:
        has = times.notna().to_numpy()
        hours = local_hour_of_week(times[has].to_numpy(), zone[has])
        frame = pd.DataFrame({KEY: customer[has], "hour_of_week": hours})
        return frame.groupby(list(_COUNT_INDEX)).size()

    delay = ((state["response_at"] - state["response_delivered_at"]) / np.timedelta64(1, "h")).to_numpy()
    has = np.isfinite(delay) & (delay >= 0)
    delays = pd.DataFrame({KEY: customer[has], "hour_of_week": np.floor(delay[has]).astype("int64")})
    return counts(state["response_at"]), counts(delivery), delays.groupby(list(_COUNT_INDEX)).size()


def _add(total: pd.Series, part: pd.Series, sign: int) -> pd.Series:
    result = total.add(sign * part, fill_value=0).astype("int64")
    return result[result != 0]


def update_stats(
    stats: SendTimeStats, events: pd.DataFrame, customers: pd.DataFrame, config: SendTimeConfig, batch: str
) -> SendTimeStats:
    """`stats` with a new batch of events (any day's, late ones included) and the customers' current
    time zones; the work grows with the batch and the customers whose zone changed, not the history."""
    new, machine = message_state(events, batch)
    zone, _ = clean_timezones(customers["timezone"], config.default_timezone)
    current = pd.Series(zone, index=customers[KEY].to_numpy(), dtype=object)
    seen = new.index.get_level_values(KEY).unique().union(stats.zones.index)
    zones = pd.Series(config.default_timezone, index=seen, dtype=object)
    zones.update(current.reindex(seen).dropna())
    moved = zones.index[zones.ne(stats.zones.reindex(zones.index)).to_numpy()]
    moved = moved.intersection(stats.zones.index)  # counted before in another zone: recount them all
    touched = new.index.union(stats.messages.index[stats.messages.index.get_level_values(KEY).isin(moved)])
    before = stats.messages[stats.messages.index.isin(touched)]
    after = merge_states(before, new)
    old_parts = contributions(before, stats.zones)
    new_parts = contributions(after, zones)
    totals = [
        _add(_add(total, old, -1), added, 1)
        for total, old, added in zip(
            (stats.responses, stats.deliveries, stats.delays), old_parts, new_parts, strict=True
        )
    ]
    messages = pd.concat([stats.messages[~stats.messages.index.isin(touched)], after]).sort_index()
    return SendTimeStats(
        messages, *totals, zones=zones, excluded_machine_opens=stats.excluded_machine_opens + machine
    )


def engagement_from_stats(stats: SendTimeStats, customers: pd.DataFrame) -> Engagement:
    """An Engagement for `fit_send_time` rebuilt from the counts (same histograms, same delay kernel)."""
    keys = customers[KEY].to_numpy()
    index = pd.Index(keys)

    def expand(counts: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """(customer position, hour) once per count, for the known customers."""
        user = index.get_indexer(counts.index.get_level_values(KEY))
        keep = user >= 0
        repeats = counts.to_numpy()[keep]
        hours = counts.index.get_level_values("hour_of_week").to_numpy()[keep]
        return np.repeat(user[keep], repeats), np.repeat(hours, repeats).astype(np.int16)

    response_user, response_hour = expand(stats.responses)
    delivery_user, delivery_hour = expand(stats.deliveries)
    delays = expand(stats.delays)[1].astype(float)  # whole hours: the kernel bins them the same
    nat = np.full(len(response_user), np.datetime64("NaT"), dtype="datetime64[ns]")
    return Engagement(
        customer_keys=keys,
        delivery_user=delivery_user,
        delivery_hour=delivery_hour,
        delivery_at=np.full(len(delivery_user), np.datetime64("NaT"), dtype="datetime64[ns]"),
        response_user=response_user,
        response_hour=response_hour,
        response_at=nat,
        response_delay_hours=delays,
        excluded_machine_opens=stats.excluded_machine_opens,
    )


def stats_from_messages(messages: pd.DataFrame, zones: pd.Series) -> SendTimeStats:
    """The counts of stored state rows (KEY, message_key, the STATE_COLUMNS times) in the given zones
    (customer_key -> zone): what a daily run rebuilds for the customers it scores."""
    state = messages.set_index([KEY, "message_key"])[list(STATE_COLUMNS[2:])]
    for column in STATE_COLUMNS[2:]:
        state[column] = _naive_utc(state[column])
    responses, deliveries, delays = contributions(state, zones)
    return SendTimeStats(state, responses, deliveries, delays, zones)
