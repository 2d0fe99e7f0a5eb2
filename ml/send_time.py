"""Per-customer best send hour of the week, learned from real engagement.

Model: an observed/expected rate per local hour of the week. Observed = a customer's first real
response (open or click; machine opens excluded) to each message, by local hour. Expected = where
responses would fall if the customer had no hour preference at all: each delivery spreads one
response over the following hours with the pooled delivery->response delay distribution, scaled to
the customer's response count. O/E > 1 marks hours the customer chooses, not hours we happened to
send at. Rates are shrunk (Poisson-Gamma empirical Bayes) toward the customer's segment, whose rate
is shrunk toward the time zone's, which is shrunk toward everyone's; the fallback chain
user -> segment -> timezone -> global -> default records which level each prediction rests on.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from ml.config import SendTimeConfig
from ml.features import KEY

HOURS_OF_WEEK = 168
RESPONSE_TYPES = ("open", "click")
LEVELS = ("user", "segment", "timezone", "global", "default")
UNKNOWN = "(unknown)"
_QUARTER_NS = 15 * 60 * 10**9


@lru_cache(maxsize=1)
def _known_timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def clean_timezones(timezones: pd.Series, default: str) -> tuple[np.ndarray, np.ndarray]:
    """(zone to compute local time in, whether the customer's zone is known and valid)."""
    values = timezones.astype(object).where(timezones.notna(), None).to_numpy()
    known = np.array([isinstance(v, str) and v in _known_timezones() for v in values], dtype=bool)
    return np.where(known, values, default).astype(object), known


def local_hour_of_week(utc_times: pd.Series | np.ndarray, timezones: np.ndarray) -> np.ndarray:
    """Local hour of week (Mon 00:00 = 0) of each UTC time in its row's IANA zone (-1 when missing)."""
    zone_codes, zone_names = pd.factorize(np.asarray(timezones, dtype=object))
    return _local_hours_by_zone_code(_naive_utc(pd.Series(utc_times)), zone_codes, list(zone_names))


def _local_hours_by_zone_code(
    naive_utc: np.ndarray, zone_codes: np.ndarray, zone_names: list[str]
) -> np.ndarray:
    """Converts each distinct (zone, quarter hour) once, so tens of millions of rows stay cheap."""
    valid = ~np.isnat(naive_utc)
    quarter = naive_utc.astype(np.int64) // _QUARTER_NS
    result = np.full(len(naive_utc), -1, dtype=np.int16)
    for code, zone in enumerate(zone_names):
        mask = valid & (zone_codes == code)
        if not mask.any():
            continue
        codes, uniques = pd.factorize(quarter[mask])
        local = pd.DatetimeIndex(uniques * _QUARTER_NS).tz_localize("UTC").tz_convert(zone)
        result[mask] = (local.dayofweek * 24 + local.hour).to_numpy()[codes]
    return result


def _first_per_key(keys: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Positions (ascending) of the earliest row of each key; ties keep the earlier position."""
    order = np.argsort(times, kind="stable")
    keep = ~pd.Series(keys[order]).duplicated().to_numpy()
    return np.sort(order[keep])


@dataclass
class Engagement:
    """Deliveries and first real responses per message, with local hours and integer customer ids."""

    customer_keys: np.ndarray
    delivery_user: np.ndarray
    delivery_hour: np.ndarray
    delivery_at: np.ndarray
    response_user: np.ndarray
    response_hour: np.ndarray
    response_at: np.ndarray
    response_delay_hours: np.ndarray
    """NaN when the delivery time is unknown"""
    excluded_machine_opens: int = 0
    unknown_timezones: int = 0
    unknown_customer_events: int = 0
    """events whose customer_key is not among the customers (ignored, counted)"""

    def before(self, cutoff: pd.Timestamp) -> Engagement:
        cut = np.datetime64(cutoff.tz_convert("UTC").tz_localize(None), "ns")
        deliveries = self.delivery_at < cut
        responses = self.response_at < cut
        return Engagement(
            self.customer_keys,
            self.delivery_user[deliveries],
            self.delivery_hour[deliveries],
            self.delivery_at[deliveries],
            self.response_user[responses],
            self.response_hour[responses],
            self.response_at[responses],
            self.response_delay_hours[responses],
        )

    def responses_from(self, cutoff: pd.Timestamp) -> pd.DataFrame:
        cut = np.datetime64(cutoff.tz_convert("UTC").tz_localize(None), "ns")
        mask = self.response_at >= cut
        return pd.DataFrame({"user": self.response_user[mask], "hour_of_week": self.response_hour[mask]})


def prepare_engagement(events: pd.DataFrame, customers: pd.DataFrame, config: SendTimeConfig) -> Engagement:
    """From fct_email_events rows (and dim_customers time zones) to deliveries and real responses.

    Customers are indexed in the order of `customers`; events of unknown customers are ignored."""
    customer_keys = customers[KEY].to_numpy()
    zone, known = clean_timezones(customers["timezone"], config.default_timezone)
    zone_codes, zone_index = pd.factorize(zone)
    zone_names = [str(name) for name in zone_index]
    user = pd.Index(customer_keys).get_indexer(events[KEY])
    type_codes, type_names = pd.factorize(events["event_type"])
    lowered = np.array([str(name).lower() for name in type_names], dtype=object)

    def of_type(*names: str) -> np.ndarray:
        return np.isin(type_codes, np.flatnonzero(np.isin(lowered, names)))

    is_open, is_click, is_delivery = of_type("open"), of_type("click"), of_type("delivered")
    machine = events["is_machine_open"].fillna(False).astype(bool).to_numpy()
    event_at = _naive_utc(events["event_at"])
    delivered_at = _naive_utc(events["delivered_at"])
    message, messages = pd.factorize(events["message_id"])
    # events without a message id stand alone: give each its own code
    missing = message < 0
    message[missing] = len(messages) + np.flatnonzero(missing)
    message_key = np.where(user >= 0, user, 0).astype(np.int64) * (len(messages) + len(message) + 1) + message
    in_scope = user >= 0

    # one response per message: the first real open or click (a click implies the person was there)
    response_rows = np.flatnonzero(in_scope & ((is_open & ~machine) | is_click))
    response_rows = response_rows[_first_per_key(message_key[response_rows], event_at[response_rows])]

    # deliveries: delivered rows, plus the delivery time a response carries when its row is missing
    delivery_rows = np.flatnonzero(in_scope & is_delivery)
    implied_rows = response_rows[~np.isnat(delivered_at[response_rows])]
    delivery_time = np.concatenate([event_at[delivery_rows], delivered_at[implied_rows]])
    first = _first_per_key(
        np.concatenate([message_key[delivery_rows], message_key[implied_rows]]), delivery_time
    )
    delivery_user = np.concatenate([user[delivery_rows], user[implied_rows]])[first]
    delivery_time = delivery_time[first]

    response_user = user[response_rows]
    response_time = event_at[response_rows]
    delay = (response_time - delivered_at[response_rows]) / np.timedelta64(1, "h")
    return Engagement(
        customer_keys=customer_keys,
        delivery_user=delivery_user,
        delivery_hour=_local_hours_by_zone_code(delivery_time, zone_codes[delivery_user], zone_names),
        delivery_at=delivery_time,
        response_user=response_user,
        response_hour=_local_hours_by_zone_code(response_time, zone_codes[response_user], zone_names),
        response_at=response_time,
        response_delay_hours=delay,
        excluded_machine_opens=int((in_scope & machine & is_open).sum()),
        unknown_timezones=int((~known).sum()),
        unknown_customer_events=int((~in_scope).sum()),
    )


def _naive_utc(values: pd.Series) -> np.ndarray:
    """Timestamps as naive UTC datetime64[ns] (fast to compare and subtract; NaT for missing)."""
    times = pd.to_datetime(values, utc=True)
    return times.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")


def delay_kernel(delay_hours: np.ndarray, horizon: int) -> np.ndarray:
    """Share of responses arriving 0, 1, ..., 167 hours after delivery (pooled; later ones dropped)."""
    delays = delay_hours[np.isfinite(delay_hours) & (delay_hours >= 0) & (delay_hours < horizon)]
    kernel = np.bincount(delays.astype(int), minlength=HOURS_OF_WEEK)[:HOURS_OF_WEEK].astype(float)
    kernel += 1e-3  # never exactly zero, so no hour is impossible
    return kernel / kernel.sum()


def circulant(kernel: np.ndarray) -> np.ndarray:
    """Matrix C with (histogram @ C)[h] = sum_d histogram[d] * kernel[(h - d) mod 168]."""
    hours = np.arange(HOURS_OF_WEEK)
    return kernel[(hours[None, :] - hours[:, None]) % HOURS_OF_WEEK]


def smoothing_matrix(hour_share: float, day_sharing: float) -> np.ndarray:
    """Spread each response: `hour_share` to each neighbouring hour, `day_sharing` over the same hour of
    the other days."""
    hours = np.arange(HOURS_OF_WEEK)
    offset = (hours[None, :] - hours[:, None]) % HOURS_OF_WEEK
    near = np.where(offset == 0, 1 - 2 * hour_share, 0.0) + np.where(
        (offset == 1) | (offset == HOURS_OF_WEEK - 1), hour_share, 0.0
    )
    same_hour_other_day = ((offset % 24) == 0) & (offset != 0)
    return (1 - day_sharing) * near + day_sharing * same_hour_other_day / 6.0


def _histograms(
    rows: np.ndarray, hours: np.ndarray, n_rows: int, weights: np.ndarray | None = None
) -> np.ndarray:
    """Dense (n_rows x 168) counts (or weight sums) of hours per row id; ids or hours < 0 are skipped."""
    keep = (rows >= 0) & (hours >= 0)
    flat = rows[keep].astype(np.int64) * HOURS_OF_WEEK + hours[keep]
    counts = np.bincount(
        flat, weights=None if weights is None else weights[keep], minlength=n_rows * HOURS_OF_WEEK
    )
    return counts.reshape(n_rows, HOURS_OF_WEEK).astype(float)


def shrink(observed: np.ndarray, expected: np.ndarray, prior_rate: np.ndarray, strength: float) -> np.ndarray:
    """Posterior mean O/E rate under a Gamma prior worth `strength` responses spread over the week."""
    pseudo = strength / HOURS_OF_WEEK
    return (observed + pseudo * prior_rate) / (expected + pseudo)


@dataclass
class SendTimeModel:
    config: SendTimeConfig
    kernel: np.ndarray
    global_rate: np.ndarray
    global_responses: int
    timezone_rates: dict[str, np.ndarray]
    timezone_responses: dict[str, int]
    segment_rates: dict[tuple[Any, str], np.ndarray]
    """(segment id, zone) -> rate; the segment's counts shrunk toward that zone's rate"""
    segment_responses: dict[Any, int]
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class SendTimeFit:
    model: SendTimeModel
    predictions: pd.DataFrame
    """customer_key, best_hour_of_week, source_level, confidence, past_responses"""


def fit_send_time(
    engagement: Engagement,
    customers: pd.DataFrame,
    segments: pd.DataFrame | None,
    config: SendTimeConfig | None = None,
    chunk_size: int = 200_000,
    previous_best: np.ndarray | None = None,
) -> SendTimeFit:
    """Fit the level rates and predict the best local hour of week for every customer of `customers`.

    `previous_best` (per customer, -1 for none): the last run's hours, kept while nearly as good."""
    config = config or SendTimeConfig()
    n_users = len(engagement.customer_keys)
    if len(customers) != n_users or not (customers[KEY].to_numpy() == engagement.customer_keys).all():
        raise ValueError("fit_send_time needs the same customers frame (same order) as prepare_engagement")
    zone_group, segment = _zones_and_segments(engagement, customers, segments, config)

    kernel = delay_kernel(engagement.response_delay_hours, config.delay_horizon_hours)
    smoothing = smoothing_matrix(config.hour_smoothing, config.day_sharing)
    exposure_operator = (circulant(kernel) @ smoothing).astype(np.float32)
    smoothing = smoothing.astype(np.float32)
    response_counts = np.bincount(engagement.response_user, minlength=n_users)

    zone_codes, zone_names_index = pd.factorize(zone_group, sort=True)
    zone_names = [str(z) for z in zone_names_index]
    segment_names = sorted({s for s in segment.tolist() if s is not None}, key=str)
    user_zone = zone_codes.astype(np.int64)
    user_segment = pd.Index(segment_names, dtype=object).get_indexer(segment).astype(np.int64)

    # level sums. A customer's expected responses are its response count spread over its deliveries'
    # delay-shifted hours, so summing per level is one weighted histogram of deliveries.
    valid_delivery = engagement.delivery_hour >= 0
    delivery_counts = np.bincount(engagement.delivery_user[valid_delivery], minlength=n_users)
    per_delivery = np.divide(
        response_counts, delivery_counts, out=np.zeros(n_users), where=delivery_counts > 0
    )
    without_deliveries = np.where(delivery_counts == 0, response_counts, 0)

    def level_sums(group_of_user: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
        observed = (
            _histograms(group_of_user[engagement.response_user], engagement.response_hour, n_groups)
            @ smoothing
        )
        delivered = _histograms(
            group_of_user[engagement.delivery_user],
            engagement.delivery_hour,
            n_groups,
            weights=per_delivery[engagement.delivery_user],
        )
        flat = np.bincount(
            group_of_user[group_of_user >= 0],
            weights=without_deliveries[group_of_user >= 0],
            minlength=n_groups,
        )
        return observed, delivered @ exposure_operator + flat[:, None] / HOURS_OF_WEEK

    zone_obs, zone_exp = level_sums(user_zone, len(zone_names))
    segment_obs, segment_exp = level_sums(user_segment, len(segment_names))

    global_obs, global_exp = zone_obs.sum(axis=0), zone_exp.sum(axis=0)
    global_responses = int(response_counts.sum())
    if global_responses >= config.min_level_responses:
        global_rate = global_obs / np.maximum(global_exp, 1e-9)
    else:
        global_rate = np.ones(HOURS_OF_WEEK)
        global_rate[config.default_hour_of_week] = 2.0
    zone_totals = np.bincount(user_zone, weights=response_counts, minlength=len(zone_names))
    timezone_rates = {
        z: global_rate
        if z == UNKNOWN
        else shrink(zone_obs[i], zone_exp[i], global_rate, config.timezone_prior_strength)
        for i, z in enumerate(zone_names)
    }
    with_segment = user_segment >= 0
    segment_totals = np.bincount(
        user_segment[with_segment], weights=response_counts[with_segment], minlength=len(segment_names)
    )
    segment_rates = {
        (s, z): shrink(segment_obs[i], segment_exp[i], timezone_rates[z], config.segment_prior_strength)
        for i, s in enumerate(segment_names)
        for z in zone_names
    }
    model = SendTimeModel(
        config=config,
        kernel=kernel,
        global_rate=global_rate,
        global_responses=global_responses,
        timezone_rates=timezone_rates,
        timezone_responses={z: int(zone_totals[i]) for i, z in enumerate(zone_names)},
        segment_rates=segment_rates,
        segment_responses={s: int(segment_totals[i]) for i, s in enumerate(segment_names)},
    )

    predictions = score_send_time(model, engagement, customers, segments, chunk_size, previous_best)
    level = predictions["source_level"].to_numpy()
    model.metrics = {
        "customers": n_users,
        "real_responses": global_responses,
        "deliveries": len(engagement.delivery_user),
        "machine_opens_excluded": engagement.excluded_machine_opens,
        "unknown_timezones": engagement.unknown_timezones,
        "unknown_customer_events": engagement.unknown_customer_events,
        "source_levels": {name: int((level == name).sum()) for name in LEVELS},
    }
    return SendTimeFit(model, predictions)


def score_send_time(
    model: SendTimeModel,
    engagement: Engagement,
    customers: pd.DataFrame,
    segments: pd.DataFrame | None,
    chunk_size: int = 200_000,
    previous_best: np.ndarray | None = None,
) -> pd.DataFrame:
    """Each customer's posterior against its prior (segment x zone rate, or the zone's) of a fitted model.

    The model may be an earlier fit (daily runs score the customers whose data changed against the stored
    level rates): a zone the fit did not see takes the global rate, a segment it did not see none."""
    config = model.config
    n_users = len(engagement.customer_keys)
    zone_group, segment = _zones_and_segments(engagement, customers, segments, config)
    zone_names = sorted(model.timezone_rates)
    segment_names = sorted(model.segment_responses, key=str)
    user_zone = pd.Index(zone_names, dtype=object).get_indexer(zone_group).astype(np.int64)
    user_segment = pd.Index(segment_names, dtype=object).get_indexer(segment).astype(np.int64)
    smoothing = smoothing_matrix(config.hour_smoothing, config.day_sharing)
    exposure_operator = (circulant(model.kernel) @ smoothing).astype(np.float32)
    smoothing = smoothing.astype(np.float32)
    response_counts = np.bincount(engagement.response_user, minlength=n_users)
    valid_delivery = engagement.delivery_hour >= 0
    delivery_counts = np.bincount(engagement.delivery_user[valid_delivery], minlength=n_users)

    # prior rows: the zones, then the global rate (a zone the fit did not see), then segment x zone
    n_zones = len(zone_names)
    prior_table = np.vstack(
        [model.timezone_rates[z] for z in zone_names]
        + [model.global_rate]
        + [model.segment_rates[(s, z)] for s in segment_names for z in zone_names]
    ).astype(np.float32)
    with_segment = (user_segment >= 0) & (user_zone >= 0)
    prior_of_user = np.where(
        with_segment,
        n_zones + 1 + n_zones * user_segment + user_zone,
        np.where(user_zone >= 0, user_zone, n_zones),
    )
    prior_best, prior_confidence = _best_hours(prior_table)
    best, confidence = prior_best[prior_of_user], prior_confidence[prior_of_user].astype(float)
    previous = np.full(n_users, -1, dtype=np.int64) if previous_best is None else np.asarray(previous_best)
    margin = config.keep_previous_within
    _keep_previous(prior_table, prior_of_user, best, confidence, previous, margin)
    active = np.flatnonzero(response_counts > 0)
    for start, stop, observed, expected in _user_matrices(
        engagement, active, response_counts, delivery_counts, exposure_operator, smoothing, chunk_size
    ):
        rows = active[start:stop]
        posterior = shrink(observed, expected, prior_table[prior_of_user[rows]], config.user_prior_strength)
        chunk_best, chunk_confidence = _best_hours(posterior)
        _keep_previous(posterior, np.arange(len(rows)), chunk_best, chunk_confidence, previous[rows], margin)
        best[rows], confidence[rows] = chunk_best, chunk_confidence

    zone_totals = np.array([model.timezone_responses[z] for z in zone_names] + [0], dtype=float)
    zone_ok = (zone_totals >= config.min_level_responses) & (np.asarray(zone_names + [UNKNOWN]) != UNKNOWN)
    segment_totals = np.array([model.segment_responses[s] for s in segment_names] + [0], dtype=float)
    level = source_levels(
        response_counts,
        segment_totals[user_segment] >= config.min_level_responses,
        zone_ok[user_zone],
        model.global_responses >= config.min_level_responses,
        config.min_user_responses,
    )
    best = np.where(level == "default", config.default_hour_of_week, best)
    confidence = np.where(level == "default", 0.0, confidence)
    return pd.DataFrame(
        {
            KEY: engagement.customer_keys,
            "best_hour_of_week": best,
            "source_level": level,
            "confidence": np.round(confidence, 4),
            "past_responses": response_counts,
        }
    )


def _zones_and_segments(
    engagement: Engagement, customers: pd.DataFrame, segments: pd.DataFrame | None, config: SendTimeConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Per customer: its zone group (UNKNOWN for a missing or invalid zone) and segment id (or None)."""
    _, known_zone = clean_timezones(customers["timezone"], config.default_timezone)
    zone_group = np.where(known_zone, customers["timezone"].astype(object).to_numpy(), UNKNOWN)
    segment = np.full(len(engagement.customer_keys), None, dtype=object)
    if segments is not None and not segments.empty:
        segment_by_key = pd.Series(segments["segment_id"].to_numpy(), index=segments[KEY].to_numpy())
        segment = segment_by_key.reindex(engagement.customer_keys).astype(object).to_numpy()
        segment = np.where(pd.isna(segment), None, segment)
    return zone_group, segment


def _user_matrices(
    engagement: Engagement,
    users: np.ndarray,
    response_counts: np.ndarray,
    delivery_counts: np.ndarray,
    exposure_operator: np.ndarray,
    smoothing: np.ndarray,
    chunk_size: int,
):
    """For `users` (sorted ids), chunk by chunk: (start, stop, smoothed observed, expected) as dense
    168-hour rows; deliveries and responses are held as sparse per-customer histograms."""
    position = np.full(len(engagement.customer_keys), -1, dtype=np.int64)
    position[users] = np.arange(len(users))
    deliveries = _sparse_histograms(position[engagement.delivery_user], engagement.delivery_hour, len(users))
    responses = _sparse_histograms(position[engagement.response_user], engagement.response_hour, len(users))
    for start in range(0, len(users), chunk_size):
        stop = min(start + chunk_size, len(users))
        chunk = users[start:stop]
        counts = response_counts[chunk].astype(np.float32)[:, None]
        delivered = delivery_counts[chunk][:, None]
        spread = np.asarray(deliveries[start:stop] @ exposure_operator, dtype=np.float32)
        expected = np.where(
            delivered > 0, spread * (counts / np.maximum(delivered, 1)), counts / HOURS_OF_WEEK
        )
        observed = np.asarray(responses[start:stop] @ smoothing, dtype=np.float32)
        yield start, stop, observed, expected


def _sparse_histograms(rows: np.ndarray, hours: np.ndarray, n_rows: int) -> sparse.csr_matrix:
    keep = (rows >= 0) & (hours >= 0)
    return sparse.csr_matrix(
        (np.ones(int(keep.sum()), dtype=np.float32), (rows[keep], hours[keep].astype(np.int64))),
        shape=(n_rows, HOURS_OF_WEEK),
    )


def _best_hours(rates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Argmax hour and its confidence: the share of the rate mass within +/- 1 hour of it."""
    best = np.argmax(rates, axis=1)
    rows = np.arange(len(rates))
    window = (
        rates[rows, best] + rates[rows, (best - 1) % HOURS_OF_WEEK] + rates[rows, (best + 1) % HOURS_OF_WEEK]
    )
    return best, window / np.maximum(rates.sum(axis=1), 1e-12)


def _keep_previous(
    table: np.ndarray,
    rows: np.ndarray,
    best: np.ndarray,
    confidence: np.ndarray,
    previous: np.ndarray,
    margin: float,
) -> None:
    """In place: where a customer's previous hour rates within `margin` of its best (its rates are
    table[rows[i]]), keep the previous hour and its confidence."""
    users = np.flatnonzero(previous >= 0)
    if not len(users) or margin <= 0:
        return
    table_rows, hours = rows[users], previous[users].astype(np.int64)
    keep = table[table_rows, hours] >= (1 - margin) * table[table_rows, best[users]]
    users, table_rows, hours = users[keep], table_rows[keep], hours[keep]
    window = (
        table[table_rows, hours]
        + table[table_rows, (hours - 1) % HOURS_OF_WEEK]
        + table[table_rows, (hours + 1) % HOURS_OF_WEEK]
    )
    best[users] = hours
    confidence[users] = window / np.maximum(table[table_rows].sum(axis=1), 1e-12)


def source_levels(
    response_counts: np.ndarray,
    segment_ok: np.ndarray,
    zone_ok: np.ndarray,
    global_ok: bool,
    min_user_responses: int,
) -> np.ndarray:
    """The first level of user -> segment -> timezone -> global -> default that has enough responses."""
    return np.select(
        [response_counts >= min_user_responses, segment_ok, zone_ok, np.full(len(zone_ok), global_ok)],
        ["user", "segment", "timezone", "global"],
        "default",
    ).astype(object)


def next_send_slots(
    best_hour_of_week: np.ndarray, timezones: pd.Series, as_of: pd.Timestamp, default_timezone: str = "UTC"
) -> pd.DataFrame:
    """The next UTC time strictly after `as_of` when it is `best_hour_of_week`:00 local time.

    Returns timezone (the zone used; the default when unknown), local_hour, local_weekday, next_send_at_utc.
    Local times that do not exist (spring-forward gaps) move forward; ambiguous ones take the first."""
    zone, _ = clean_timezones(timezones.reset_index(drop=True), default_timezone)
    hours = np.asarray(best_hour_of_week, dtype=np.int64)
    result = np.empty(len(hours), dtype="datetime64[ns]")
    as_of_utc = pd.Timestamp(as_of).tz_convert("UTC")
    for name in pd.unique(zone):
        mask = zone == name
        local_now = as_of_utc.tz_convert(name).tz_localize(None)
        week_start = local_now.normalize() - pd.Timedelta(days=local_now.dayofweek)
        candidate = week_start + pd.to_timedelta(hours[mask], unit="h")
        candidate = candidate.where(candidate > local_now, candidate + pd.Timedelta(days=7))
        utc = pd.DatetimeIndex(candidate).tz_localize(name, ambiguous=True, nonexistent="shift_forward")
        result[mask] = utc.tz_convert("UTC").tz_localize(None).to_numpy()
    return pd.DataFrame(
        {
            "timezone": zone,
            "local_hour": hours % 24,
            "local_weekday": hours // 24,
            "next_send_at_utc": pd.DatetimeIndex(result).tz_localize("UTC"),
        }
    )
