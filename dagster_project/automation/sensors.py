"""Sensors: build everything after each successful event load; pick up event files that arrive late."""

from __future__ import annotations

import hashlib

import dagster as dg

from dagster_project.automation.jobs import build_everything_job, ingest_events_job
from dagster_project.settings import Settings


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
    description=(
        "Requests one load run over the days whose event files are new or changed since they were loaded "
        "(with SENDWISE_ESP_EVENTS_SOURCE=api, after pulling new ESP events into the day files)."
    ),
)
def unloaded_event_files(context: dg.SensorEvaluationContext):
    # Files and ops.load_state decide, not Dagster's materializations: a day materialized before its
    # file arrived (0 rows) must still be loaded when the file shows up.
    from dagster_project.ingestion.partitions import changed_partition_keys
    from dagster_project.settings import get_settings

    settings = get_settings()
    pull_from_esp_api(context, settings)
    changed = changed_partition_keys(settings)
    if not changed:
        return dg.SkipReason("no event file is new or changed since it was loaded")
    return event_load_request(settings, changed, context.instance)


def event_load_request(
    settings: Settings, changed: list[str], instance: dg.DagsterInstance | None = None
) -> dg.RunRequest:
    """One run over the range of the changed days, not a run per day (120 per-day runs in one tick
    swamped `make dev`); days in between whose files did not change are skipped by the loader."""
    from dagster_project.ingestion.partitions import day_file_fingerprints

    # One run per version of the changed days' files: a file rewritten later gets a new run.
    versions = ",".join(
        f"{day}:" + "-".join(day_file_fingerprints(settings, day).values()) for day in changed
    )
    digest = hashlib.sha1(versions.encode()).hexdigest()[:16]
    run_key = f"events-{changed[0]}..{changed[-1]}-{digest}"
    return dg.RunRequest(
        run_key=uncanceled_run_key(instance, run_key) if instance is not None else run_key,
        tags={
            "dagster/asset_partition_range_start": changed[0],
            "dagster/asset_partition_range_end": changed[-1],
            "sendwise/changed_days": str(len(changed)),
        },
    )


def uncanceled_run_key(instance: dg.DagsterInstance, run_key: str) -> str:
    """Dagster never requests a run key twice; a load canceled by stopping `sendwise dev` must still
    happen, so its key gets a suffix. A failed run keeps its key (no retry loop every tick)."""
    key, attempt = run_key, 0
    while True:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/run_key": key}), limit=1)
        if not runs or runs[0].status != dg.DagsterRunStatus.CANCELED:
            return key
        attempt += 1
        key = f"{run_key}-again{attempt}"


def pull_from_esp_api(context: dg.SensorEvaluationContext, settings) -> None:
    """In api mode, new ESP events become day files first; a failed pull leaves the files as they are."""
    from dagster_project.activation.events_pull import check_events_source, pull_with_settings

    if check_events_source(settings.esp_events_source) != "api":
        return
    try:
        pulled = pull_with_settings(settings)
    except Exception as error:  # the ESP being down must not stop the loads of the files already there
        context.log.warning(
            f"ESP events API pull failed ({type(error).__name__}: {error}); next tick retries"
        )
        return
    days = ", ".join(pulled.days) or "-"
    context.log.info(f"ESP events API: pulled {pulled.pulled}, wrote {pulled.written} new into {days}")
