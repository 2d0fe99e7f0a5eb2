"""Daily partitions of the event assets: one partition per file date (YYYY-MM-DD)."""

from __future__ import annotations

import dagster as dg

from dagster_project.ingestion.sources import ESP_EVENTS_DIR, WEB_EVENTS_DIR, event_file_dates
from dagster_project.settings import Settings, get_settings


def events_partitions_def(settings: Settings | None = None) -> dg.DailyPartitionsDefinition:
    """Days from SENDWISE_EVENTS_START through today (files are named by the day they were written)."""
    settings = settings or get_settings()
    return dg.DailyPartitionsDefinition(start_date=settings.events_start, end_offset=1)


def available_partition_keys(settings: Settings | None = None) -> list[str]:
    """File dates present in the web or ESP event folders, sorted, within the partitions' range."""
    settings = settings or get_settings()
    days = set(event_file_dates(settings.source_dir, WEB_EVENTS_DIR))
    days |= set(event_file_dates(settings.source_dir, ESP_EVENTS_DIR))
    valid = set(events_partitions_def(settings).get_partition_keys())
    return sorted(days & valid)
