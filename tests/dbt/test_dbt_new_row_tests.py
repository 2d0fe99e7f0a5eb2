"""Data tests of the incremental event staging check the rows the run wrote, not the whole history (macro
get_where_subquery, var data_tests_new_rows); var data_tests_full checks every row (the weekly full check)."""

from __future__ import annotations

from pathlib import Path

import psycopg2
import pytest
from dbt_support import create_raw_tables, dbt_build, new_database
from sendwise_hand_world import load_phase

from dagster_project.dbt.project import run_dbt

SELECT = ("--select", "stg_web__events")


@pytest.fixture(scope="module")
def staged(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    url = new_database(pg_server, "dbt_newrows")
    create_raw_tables(url)
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("create schema if not exists marts")  # the on-run-end grant hook expects it
    conn.close()
    load_phase(url, 1)
    target = tmp_path_factory.mktemp("dbt-newrows")
    dbt_build(url, target, *SELECT)
    return url, target


def break_one_staged_event(url: str, staged_at: str) -> None:
    """One staged event gets an event_type the accepted_values test rejects, and the given _staged_at."""
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "update staging.stg_web__events set event_type = 'bogus', _staged_at = %s::timestamptz "
            "where message_id = (select min(message_id) from staging.stg_web__events)",
            (staged_at,),
        )
    conn.close()


def failed_tests(url: str, target: Path, *extra: str) -> list[str]:
    completed = run_dbt(["test", *SELECT, *extra], url, target_path=target, check=False)
    lines = completed.stdout.splitlines()
    return [line.split(" FAIL 1 ")[1].split()[0] for line in lines if " FAIL 1 " in line]


def test_only_the_new_rows_are_tested_unless_a_full_check_is_asked(staged):
    url, target = staged
    accepted_values = "accepted_values_stg_web__events_event_type__page__track__identify"
    break_one_staged_event(url, "2000-01-01")  # an old row: the daily tests do not look at it
    assert failed_tests(url, target) == []
    assert failed_tests(url, target, "--vars", "{data_tests_full: true}") == [accepted_values]
    # a row staged after the test run started counts as new: the daily test finds it
    break_one_staged_event(url, "2999-01-01")
    assert failed_tests(url, target) == [accepted_values]
