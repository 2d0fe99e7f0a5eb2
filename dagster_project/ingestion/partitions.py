"""Daily partitions of the event assets: one partition per file date (YYYY-MM-DD)."""

from __future__ import annotations

import logging

import dagster as dg

from dagster_project.ingestion.sources import ESP_EVENTS_DIR, WEB_EVENTS_DIR, event_file_dates
from dagster_project.settings import Settings, get_settings

log = logging.getLogger(__name__)
NO_FILES_START = "2025-01-01"


def events_partitions_def(settings: Settings | None = None) -> dg.DailyPartitionsDefinition:
    """Days from `partitions_start` through today (files are named by the day they were written).

    Built when the Definitions load (once per process: code server, run worker, CLI), so the range
    follows the files present then; a file dated before it needs a reload (or SENDWISE_EVENTS_START)."""
    settings = settings or get_settings()
    return dg.DailyPartitionsDefinition(start_date=partitions_start(settings), end_offset=1)


def partitions_start(settings: Settings) -> str:
    """SENDWISE_EVENTS_START when set; else the earliest web/ESP event file date in the source folder;
    else (no files yet) NO_FILES_START, early enough that files written after the definitions loaded
    (a world generated in the same process, a first export) still fall inside the range."""
    if settings.events_start:
        return settings.events_start
    days = event_file_days(settings)
    return days[0] if days else NO_FILES_START


def event_file_days(settings: Settings) -> list[str]:
    """File dates present in the web or ESP event folders, sorted."""
    days = set(event_file_dates(settings.source_dir, WEB_EVENTS_DIR))
    days |= set(event_file_dates(settings.source_dir, ESP_EVENTS_DIR))
    return sorted(days)


def available_partition_keys(settings: Settings | None = None) -> list[str]:
    """File dates present in the web or ESP event folders, sorted, within the partitions' range."""
    settings = settings or get_settings()
    days = set(event_file_days(settings))
    valid = set(events_partitions_def(settings).get_partition_keys())
    outside = sorted(days - valid)
    if outside:
        log.warning(
            "event files dated %s..%s fall outside the daily partitions (from %s through today) and are "
            "not offered for loading",
            outside[0], outside[-1], partitions_start(settings),
        )  # fmt: skip
    return sorted(days & valid)


def changed_partition_keys(settings: Settings | None = None, warehouse_url: str | None = None) -> list[str]:
    """File dates whose web or ESP file is new or changed since it was last loaded.

    A day materialized before its file arrived counts as loaded for Dagster; this looks at the files
    and at ops.load_state instead, so a sensor can request exactly the days that have something new.
    """
    import psycopg

    from dagster_project.warehouse import connection

    settings = settings or get_settings()
    url = warehouse_url or connection.warehouse_url(settings)
    with psycopg.connect(connection.libpq_url(url)) as conn:
        exists = conn.execute("select to_regclass('ops.load_state') is not null").fetchone()[0]
        rows = (
            conn.execute("select stream, partition_key, fingerprint from ops.load_state").fetchall()
            if exists
            else []
        )
    loaded = {(stream, day): fingerprint for stream, day, fingerprint in rows}
    return [
        day
        for day in available_partition_keys(settings)
        if any(
            loaded.get((stream, day)) != fingerprint
            for stream, fingerprint in day_file_fingerprints(settings, day).items()
        )
    ]


def day_file_fingerprints(settings: Settings, day: str) -> dict[str, str]:
    """Fingerprint (size and mtime) of each event file present for `day`, by stream name."""
    from dagster_project.ingestion.loaders import EVENT_STREAMS
    from dagster_project.ingestion.sources import event_file, file_fingerprint

    paths = {
        stream.name: event_file(settings.source_dir, stream.folder, day) for stream in EVENT_STREAMS.values()
    }
    return {name: file_fingerprint(path) for name, path in paths.items() if path.exists()}
