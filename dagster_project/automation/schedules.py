"""The daily schedule: load yesterday's event files at 02:00 UTC (the build follows via a sensor)."""

from __future__ import annotations

import dagster as dg

from dagster_project.automation.jobs import ingest_events_job

daily_events_schedule = dg.build_schedule_from_partitioned_job(
    ingest_events_job,
    name="daily_event_load",
    description="Every day at 02:00 UTC, load the previous day's web and ESP event files.",
    hour_of_day=2,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
