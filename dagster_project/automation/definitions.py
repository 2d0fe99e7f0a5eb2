"""Jobs, schedules, sensors and loggers that tie the concerns together."""

import dagster as dg

from dagster_project.automation.jobs import build_everything_job, ingest_events_job
from dagster_project.automation.progress import progress_logger
from dagster_project.automation.schedules import daily_event_load
from dagster_project.automation.sensors import build_after_event_load, unloaded_event_files

defs = dg.Definitions(
    jobs=[ingest_events_job, build_everything_job],
    schedules=[daily_event_load],
    sensors=[build_after_event_load, unloaded_event_files],
    loggers={"progress": progress_logger},
)
