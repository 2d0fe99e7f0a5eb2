"""The weekly full quality run: every GX suite over every row, with the Data Docs site rebuilt.

The daily checks of suites with `new_rows` look only at the rows loaded since their last passing
validation (see gx_runner.py); this job validates every row so that a bad old row is still found within a
week. It mirrors dagster_project/dbt/full_tests.py.
"""

import dagster as dg

from dagster_project.quality.suites import load_suites
from dagster_project.settings import get_settings
from dagster_project.warehouse.resource import WarehouseResource


@dg.op(description="Every GX suite over every row (the daily checks of upserted tables see new rows only).")
def gx_full_checks(context: dg.OpExecutionContext, warehouse: WarehouseResource) -> None:
    from dagster_project.quality import gx_runner  # GX import (seconds): at run time only

    settings = get_settings()
    failed = []
    for suite in load_suites():
        outcome = gx_runner.run_suite(suite, warehouse.get_url(), context.run.run_id, settings, full=True)
        context.log.info(f"suite {suite.name}: {len(outcome.failed_errors)} error checks failed")
        failed += [f"{suite.name}.{check.check}" for check in outcome.failed_errors]
    if failed:
        raise dg.Failure(f"full quality checks failed: {', '.join(failed)}")


@dg.job(description="Every GX suite over every row (the daily run checks the new rows of upserted tables).")
def quality_full_checks():
    gx_full_checks()


weekly_full_quality_checks = dg.ScheduleDefinition(
    name="weekly_full_quality_checks",
    job=quality_full_checks,
    cron_schedule="30 4 * * 0",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Sundays 04:30 UTC: every GX suite over every row.",
)
