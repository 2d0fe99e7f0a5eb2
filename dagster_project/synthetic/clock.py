"""Time helpers: epoch milliseconds, ISO-8601 strings, time-zone offsets and hour-of-week."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
NEVER = np.iinfo(np.int64).max
"""Marks a moment that has not happened (not registered, never unsubscribed, ...)."""


def epoch_ms(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)


def iso(ms: np.ndarray) -> list[str]:
    """UTC ISO-8601 strings with an explicit offset, e.g. 2026-08-01T12:00:00.123+00:00."""
    text = np.datetime_as_string(np.asarray(ms, dtype=np.int64).astype("datetime64[ms]"), unit="ms")
    return [value + "+00:00" for value in text.tolist()]


def iso_one(ms: int) -> str:
    """The same text as `iso` for one moment, fast enough to call per event."""
    day, rest = divmod(ms, DAY_MS)
    prefix = _DAY_PREFIX.get(day)
    if prefix is None:
        prefix = _DAY_PREFIX[day] = (_EPOCH + dt.timedelta(days=day)).date().isoformat() + "T"
    seconds, millis = divmod(rest, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{prefix}{hour:02d}:{minute:02d}:{second:02d}.{millis:03d}+00:00"


_DAY_PREFIX: dict[int, str] = {}


def utc_offsets_ms(zones: tuple[str, ...], day: dt.date) -> np.ndarray:
    """UTC offset of each zone at noon UTC of `day` (DST switches inside the day are ignored)."""
    noon = dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.UTC)
    return np.array(
        [int(noon.astimezone(ZoneInfo(zone)).utcoffset().total_seconds() * 1000) for zone in zones],
        dtype=np.int64,
    )


def hour_of_week(local_ms: np.ndarray) -> np.ndarray:
    """Monday=0 * 24 + hour (0..167) of local epoch milliseconds (1970-01-01 was a Thursday)."""
    days = np.floor_divide(local_ms, DAY_MS)
    weekday = (days + 3) % 7
    hour = np.floor_divide(local_ms - days * DAY_MS, HOUR_MS)
    return (weekday * 24 + hour).astype(np.int64)
