"""Schedule and sensors: what they request, evaluated the way the Dagster daemon evaluates them."""

from __future__ import annotations

import os

import dagster as dg

from dagster_project.cli import main as cli_main
from dagster_project.settings import get_settings


def test_event_file_sensor_requests_new_and_rewritten_days_only(warehouse_url: str, shop_url: str):
    from dagster_project.automation.sensors import unloaded_event_files
    from dagster_project.definitions import defs

    settings = get_settings()
    assert (
        cli_main(
            [
                "generate",
                "--customers",
                "200",
                "--days",
                "3",
                "--start",
                "2026-02-02",
                "--seed",
                "3",
                "--out",
                str(settings.source_dir),
                "--quiet",
            ]
        )
        == 0
    )
    instance = dg.DagsterInstance.ephemeral()

    def evaluate():
        return unloaded_event_files(dg.build_sensor_context(instance=instance, definitions=defs))

    request = evaluate()  # three changed days: one run over their range, not a run per day
    assert isinstance(request, dg.RunRequest)
    assert request.partition_key_range == dg.PartitionKeyRange("2026-02-02", "2026-02-04")
    assert request.tags["sendwise/changed_days"] == "3"

    result = defs.resolve_job_def("ingest_events").execute_in_process(instance=instance, tags=request.tags)
    assert result.success
    assert isinstance(evaluate(), dg.SkipReason)

    rewritten = settings.source_dir / "web" / "events" / "2026-02-03.jsonl"
    rewritten.write_text(rewritten.read_text())  # same rows, new file version (a re-delivery)
    stat = rewritten.stat()
    os.utime(rewritten, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    again = evaluate()
    assert again.partition_key_range == dg.PartitionKeyRange("2026-02-03", "2026-02-03")
    assert again.run_key != request.run_key


def test_daily_schedule_loads_yesterdays_partition():
    import datetime as dt

    from dagster_project.definitions import defs

    schedule = defs.resolve_schedule_def("daily_event_load")
    assert schedule.job_name == "ingest_events"
    context = dg.build_schedule_context(
        scheduled_execution_time=dt.datetime(2026, 3, 10, 2, 0, tzinfo=dt.UTC),
        repository_def=defs.get_repository_def(),
    )
    requests = list(schedule.evaluate_tick(context).run_requests or [])
    assert [r.partition_key for r in requests] == ["2026-03-09"]


def test_dagster_home_queues_runs_with_a_concurrency_limit(tmp_path, monkeypatch) -> None:
    from dagster_project.automation.instance import ensure_dagster_home

    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")  # an earlier Sendwise default
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    assert ensure_dagster_home() == home
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 2

    custom = "telemetry:\n  enabled: true\n"  # the user's own file stays as written
    (home / "dagster.yaml").write_text(custom)
    ensure_dagster_home()
    assert (home / "dagster.yaml").read_text() == custom


def test_a_canceled_load_is_requested_again_under_a_new_key() -> None:
    from dagster_project.automation.sensors import uncanceled_run_key

    instance = dg.DagsterInstance.ephemeral()
    job = dg.GraphDefinition(name="g").to_job(name="ingest")
    assert uncanceled_run_key(instance, "events-a") == "events-a"
    canceled = dg.DagsterRunStatus.CANCELED
    instance.create_run_for_job(job, status=canceled, tags={"dagster/run_key": "events-a"})
    assert uncanceled_run_key(instance, "events-a") == "events-a-again1"
    instance.create_run_for_job(job, status=canceled, tags={"dagster/run_key": "events-a-again1"})
    assert uncanceled_run_key(instance, "events-a") == "events-a-again2"
    instance.create_run_for_job(job, status=dg.DagsterRunStatus.FAILURE, tags={"dagster/run_key": "events-b"})
    assert uncanceled_run_key(instance, "events-b") == "events-b"  # a failure is not retried every tick
