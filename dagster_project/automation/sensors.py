"""Sensors: build everything after each successful event load; pick up event files that arrive late."""

from __future__ import annotations

import dagster as dg

from dagster_project.automation.jobs import build_everything_job, ingest_events_job

EVENT_ASSET_KEY = dg.AssetKey(["raw", "web_events"])


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[ingest_events_job],
    request_job=build_everything_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After a day of events loads: refresh shop/CRM extracts, dbt, checks, ML and ESP sync.",
)
def build_after_event_load(context: dg.RunStatusSensorContext):
    return dg.RunRequest(run_key=f"after-{context.dagster_run.run_id}")


@dg.sensor(
    job=ingest_events_job,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests a load for every day whose event file exists but has never been loaded.",
)
def unloaded_event_files(context: dg.SensorEvaluationContext):
    from dagster_project.ingestion.partitions import available_partition_keys
    from dagster_project.settings import get_settings

    loaded = context.instance.get_materialized_partitions(EVENT_ASSET_KEY)
    missing = [day for day in available_partition_keys(get_settings()) if day not in loaded]
    if not missing:
        return dg.SkipReason("every event file present has been loaded")
    return [dg.RunRequest(run_key=f"events-{day}", partition_key=day) for day in missing]
