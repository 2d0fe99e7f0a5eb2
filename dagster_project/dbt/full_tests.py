"""The weekly full data-test run: every dbt test over every row.

The daily `dbt build` tests only the rows it wrote in the incremental models (var data_tests_new_rows,
macro get_where_subquery; uniqueness tests read the rows sharing a key with them), and leaves out the
whole-table balance assert_staging_quarantine_balances (enabled by var data_tests_full); this job runs
`dbt test --vars '{data_tests_full: true}'` so a bad old row is still found, within a week.
"""

import tempfile
from pathlib import Path

import dagster as dg

from dagster_project.dbt.project import run_dbt
from dagster_project.warehouse.resource import WarehouseResource

FULL_TESTS_ARGS = ("test", "--vars", "{data_tests_full: true}")


@dg.op(description="`dbt test` over every row of every model (var data_tests_full).")
def dbt_full_data_tests(context: dg.OpExecutionContext, warehouse: WarehouseResource) -> None:
    with tempfile.TemporaryDirectory(prefix="sendwise-dbt-full-tests-") as target:
        completed = run_dbt(FULL_TESTS_ARGS, warehouse.get_url(), target_path=Path(target), check=False)
    summary = next((line for line in reversed(completed.stdout.splitlines()) if "PASS=" in line), "")
    context.log.info(summary or completed.stdout[-2000:])
    if completed.returncode != 0:
        raise dg.Failure(f"full dbt tests failed (exit {completed.returncode}): {summary}",
                         metadata={"output": completed.stdout[-6000:]})  # fmt: skip


@dg.job(description="Every dbt test over every row (the daily build tests the new rows of event models).")
def dbt_full_tests():
    dbt_full_data_tests()


weekly_full_dbt_tests = dg.ScheduleDefinition(
    name="weekly_full_dbt_tests",
    job=dbt_full_tests,
    cron_schedule="0 4 * * 0",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Sundays 04:00 UTC: every dbt test over every row.",
)
