"""The daily schedule: load yesterday's event files at 02:00 UTC (the build follows via a sensor)."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from dagster_project.automation.jobs import ingest_events_job


@dg.schedule(
    job=ingest_events_job,
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every day at 02:00 UTC, load the previous day's web and ESP event files.",
)
def daily_event_load(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    # The event partitions run through today (a file can be written during the day), so "the latest
    # partition" would be today's half-written file: ask for yesterday explicitly.
    yesterday = (context.scheduled_execution_time - dt.timedelta(days=1)).date().isoformat()
    return dg.RunRequest(run_key=f"daily-{yesterday}", partition_key=yesterday)
