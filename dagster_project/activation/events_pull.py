"""Pull ESP engagement from the Klaviyo events API into the daily ESP event files.

The pulled events are written as `esp/events/<day>.jsonl` under the source folder (day = the event's UTC
date), so the existing `raw/esp_events` partitions load them unchanged. A day file only ever grows by
events whose `event_id` it does not hold yet, and is replaced atomically (temp file + rename). The
high-water mark (newest event datetime pulled) is kept in `ops.load_state` under stream `esp_api_pull`;
each pull re-reads `OVERLAP` before it to catch events the ESP recorded late (the ids dedupe them).
"""

from __future__ import annotations

import os
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from dagster_project.activation.klaviyo import KlaviyoClient
from dagster_project.ingestion import loaders
from dagster_project.ingestion.sources import ESP_EVENTS_DIR, event_file
from dagster_project.settings import Settings

STREAM = "esp_api_pull"
OVERLAP = timedelta(hours=1)
EVENTS_SOURCES = ("files", "api")


@dataclass
class PullResult:
    since: datetime | None
    pulled: int = 0
    written: int = 0
    high_water_mark: str | None = None
    written_per_day: dict[str, int] = field(default_factory=dict)

    @property
    def days(self) -> list[str]:
        return sorted(self.written_per_day)


def check_events_source(value: str) -> str:
    if value not in EVENTS_SOURCES:
        raise ValueError(f"SENDWISE_ESP_EVENTS_SOURCE={value!r}: expected one of {', '.join(EVENTS_SOURCES)}")
    return value


def parse_event_time(value: Any) -> datetime | None:
    """The event's datetime in UTC (no offset = UTC), or None when it is missing or not ISO-8601."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def group_by_day(rows: Iterable[dict[str, Any]], fallback_day: str) -> dict[str, list[dict[str, Any]]]:
    """Rows per UTC day of their timestamp; a row without a readable timestamp goes to `fallback_day`,
    where the loader quarantines it with the reason (nothing is dropped here)."""
    days: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        when = parse_event_time(row.get("timestamp"))
        days[when.date().isoformat() if when else fallback_day].append(row)
    return days


def existing_event_ids(path: Path) -> set[str]:
    """The event ids a day file already holds (unreadable lines are left for the loader to quarantine)."""
    if not path.exists():
        return set()
    ids = set()
    for line in path.read_bytes().splitlines():
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("event_id") is not None:
            ids.add(str(record["event_id"]))
    return ids


def merge_into_day_file(path: Path, rows: list[dict[str, Any]]) -> int:
    """Append the rows whose event_id the file does not hold yet; atomic replace. Returns rows written."""
    seen = existing_event_ids(path)
    new_rows = []
    for row in sorted(rows, key=lambda r: (str(r.get("timestamp")), str(r.get("event_id")))):
        event_id = str(row.get("event_id"))
        if event_id in seen:
            continue
        seen.add(event_id)
        new_rows.append(row)
    if not new_rows:
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = path.read_bytes() if path.exists() else b""
    if existing and not existing.endswith(b"\n"):
        existing += b"\n"
    payload = existing + b"".join(orjson.dumps(row) + b"\n" for row in new_rows)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as temp:
            temp.write(payload)
            temp.flush()
            os.fsync(temp.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return len(new_rows)


def pull_esp_events(
    warehouse_url: str, client: KlaviyoClient, source_dir: Path, since: datetime | None = None
) -> PullResult:
    """Events since `since` (default: the stored mark minus OVERLAP; everything on the first pull) into
    the day files; then the mark moves. A crash before the mark commits only means a re-read next time."""
    load = loaders.LoadResult(stream=STREAM, batch_id=loaders.new_batch_id(STREAM))
    with loaders.connect(warehouse_url) as conn:
        loaders.ensure_tables(conn)
        # logged_failure outermost: a failed pull is logged after its transaction rolled back
        with loaders.logged_failure(conn, load), conn.transaction():
            loaders.lock_stream(conn, STREAM)  # one pull at a time (sensor and CLI)
            mark = parse_event_time(loaders.get_state(conn, STREAM).high_water_mark)
            if since is None and mark is not None:
                since = mark - OVERLAP
            result = PullResult(since=since)
            rows = list(client.iter_events(since))
            result.pulled = load.received = len(rows)
            today = datetime.now(UTC).date().isoformat()
            for day, day_rows in sorted(group_by_day(rows, today).items()):
                written = merge_into_day_file(event_file(source_dir, ESP_EVENTS_DIR, day), day_rows)
                if written:
                    result.written_per_day[day] = written
            result.written = load.written = load.loaded = sum(result.written_per_day.values())
            times = [t for t in (parse_event_time(r.get("timestamp")) for r in rows) if t is not None]
            newest = max([*times, *([mark] if mark else [])], default=None)
            result.high_water_mark = load.high_water_mark = newest.isoformat() if newest else None
            load.source_files = [str(event_file(source_dir, ESP_EVENTS_DIR, d)) for d in result.days]
            loaders.record_load(conn, load)
    return result


def pull_with_settings(settings: Settings | None = None, since: datetime | None = None) -> PullResult:
    """The pull from the configured ESP (`ESP_PROVIDER` sandbox or klaviyo) into the source folder."""
    from dagster_project.activation.resources import build_client
    from dagster_project.settings import get_settings
    from dagster_project.warehouse import connection

    settings = settings or get_settings()
    client, target = build_client(settings)
    try:
        if not isinstance(client, KlaviyoClient):
            raise ValueError(
                f"ESP_PROVIDER={target.provider}: the events API pull speaks Klaviyo's events API "
                "(ESP_PROVIDER=klaviyo or sandbox); use the ESP's event file export instead"
            )
        return pull_esp_events(connection.warehouse_url(settings), client, settings.source_dir, since)
    finally:
        client.close()
