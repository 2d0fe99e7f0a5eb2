"""Running the whole pipeline in-process on the persistent Dagster instance (demo, CLI, tests)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg

from dagster_project.settings import Settings

PROGRESS_RUN_CONFIG = {"loggers": {"progress": {}}}
SUMMARY_SCHEMAS = ("raw", "staging", "intermediate", "marts", "snapshots", "ml", "activation", "ops")


@dataclass(frozen=True)
class Outcome:
    success: bool
    message: str
    run_ids: tuple[str, ...]
    reasons: tuple[str, ...] = ()  # a line per failed step or blocking check (run_report)

    def report(self) -> str:
        """The message, then why: what the demo and `sendwise run` print on failure."""
        from dagster_project.automation.run_report import format_failures

        return self.message + ("\n" + format_failures(list(self.reasons)) if self.reasons else "")


def materialize_everything(
    settings: Settings,
    instance: dg.DagsterInstance | None = None,
    run_config: dict | None = None,
) -> Outcome:
    """Load every available day of events in one run, then build everything else in a second run."""
    from dagster_project.automation.run_report import failure_lines
    from dagster_project.automation.stopping import PID_TAG
    from dagster_project.definitions import defs
    from dagster_project.ingestion.partitions import available_partition_keys

    instance = instance or dg.DagsterInstance.get()
    run_config = PROGRESS_RUN_CONFIG if run_config is None else run_config
    run_ids: list[str] = []
    pid_tag = {PID_TAG: str(os.getpid())}  # a run whose process died is recognised as stale (stopping.py)
    days = available_partition_keys(settings)
    if days:
        result = defs.resolve_job_def("ingest_events").execute_in_process(
            instance=instance,
            run_config=run_config,
            tags={
                "dagster/asset_partition_range_start": days[0],
                "dagster/asset_partition_range_end": days[-1],
                **pid_tag,
            },
            raise_on_error=False,
        )
        run_ids.append(result.run_id)
        if not result.success:
            reasons = tuple(failure_lines(result))
            return Outcome(False, f"event load failed (run {result.run_id})", tuple(run_ids), reasons)
    result = defs.resolve_job_def("build_everything").execute_in_process(
        instance=instance, run_config=run_config, tags=pid_tag, raise_on_error=False
    )
    run_ids.append(result.run_id)
    reasons = tuple(failure_lines(result))
    if not result.success:
        return Outcome(False, f"build failed (run {result.run_id})", tuple(run_ids), reasons)
    failed_checks = [
        f"{e.asset_key.to_user_string()}:{e.check_name}"
        for e in result.get_asset_check_evaluations()
        if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR
    ]
    if failed_checks:
        return Outcome(False, "blocking checks failed: " + ", ".join(failed_checks), tuple(run_ids), reasons)
    return Outcome(True, "ok", tuple(run_ids))


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def prepare_warehouse(settings: Settings) -> str:
    """The warehouse URL, with Sendwise's schemas and the Dagster home in place."""
    from dagster_project.automation.instance import ensure_dagster_home
    from dagster_project.automation.stopping import cancel_leftovers
    from dagster_project.warehouse import connection

    cancel_leftovers(ensure_dagster_home(settings))
    url = connection.warehouse_url(settings)
    connection.ensure_schemas(url)
    return url


def run_and_report(settings: Settings, url: str, started: float, step: int, steps: int) -> int:
    """Steps `step` and `step + 1` of demo and run: materialize everything, then print the summary."""
    from dagster_project.automation.progress import quiet
    from dagster_project.automation.summary import run_summary
    from dagster_project.privacy.masking import mask_url
    from dagster_project.warehouse.connection import psql_command

    say(f"[{step}/{steps}] materializing every asset (Dagster runs, visible in the UI)")
    with quiet(settings.home / "logs" / "run.log") as log_path:
        say(f"      dbt's output and warnings: {log_path}")
        outcome = materialize_everything(settings)
    say(f"[{step + 1}/{steps}] summary")
    print(warehouse_summary(url, lambda: summary_table(url) + "\n\n" + run_summary(url)))
    print(f"Warehouse:   {mask_url(url)}")
    print(f"             {psql_command(url, settings)}")
    print("Dagster UI:  make dev, then open http://127.0.0.1:3000 (these runs are there)")
    print("ESP sandbox: .venv/bin/sendwise esp show <email>   (what the sandbox ESP received)")
    print(f"Finished in {time.monotonic() - started:.0f}s: "
          + ("all runs succeeded." if outcome.success else f"FAILED: {outcome.report()}"))  # fmt: skip
    return 0 if outcome.success else 1


def warehouse_summary(url: str, build: Callable[[], str]) -> str:
    """The summary the warehouse gives, or one line saying why it cannot (a warehouse that went down
    mid-run must end the command in its FAILED line, not in a traceback from the summary)."""
    import psycopg
    import sqlalchemy as sa

    try:
        return build()
    except (psycopg.Error, sa.exc.SQLAlchemyError, OSError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return f"(no summary: the warehouse did not answer: {first})"


def table_row_counts(url: str) -> list[tuple[str, str, int]]:
    """(schema, table, exact row count) for Sendwise's schemas."""
    import sqlalchemy as sa

    from dagster_project.warehouse.connection import create_engine

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            tables = conn.execute(
                sa.text(
                    "select table_schema, table_name from information_schema.tables "
                    "where table_schema = any(:schemas) and table_type = 'BASE TABLE' "
                    "order by table_schema, table_name"
                ),
                {"schemas": list(SUMMARY_SCHEMAS)},
            ).all()
            return [
                (
                    schema,
                    table,
                    conn.execute(sa.text(f'select count(*) from "{schema}"."{table}"')).scalar_one(),
                )
                for schema, table in tables
            ]
    finally:
        engine.dispose()


def summary_table(url: str) -> str:
    rows = table_row_counts(url)
    width = max((len(f"{s}.{t}") for s, t, _ in rows), default=10)
    lines = [f"{'table':<{width}}  {'rows':>12}", f"{'-' * width}  {'-' * 12}"]
    lines += [f"{f'{s}.{t}':<{width}}  {n:>12,}" for s, t, n in rows]
    return "\n".join(lines)
