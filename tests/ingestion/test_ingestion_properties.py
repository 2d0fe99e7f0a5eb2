"""Property-based tests (hypothesis): generated hostile records mixed into valid ones, for each source
format; see hostile_strategies.py for what each check asserts. One warehouse per test, reset per example.
bench/fuzz_ingestion.py runs the same checks for longer."""

from __future__ import annotations

from pathlib import Path

import pytest
from hostile_strategies import (
    TALLY,
    check_crm_export,
    check_event_file,
    check_shop_table,
    crm_pages,
    esp_lines,
    shop_rows,
    web_lines,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingestion_helpers import SHOP_DDL, execute

from dagster_project.ingestion import loaders

SETTINGS = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


@pytest.fixture
def warehouse(warehouse_url: str) -> str:
    with loaders.connect(warehouse_url) as conn:
        loaders.ensure_tables(conn)
    return warehouse_url


@SETTINGS
@given(generated=web_lines)
def test_web_event_files_account_for_every_line(warehouse: str, tmp_path: Path, generated) -> None:
    check_event_file(warehouse, tmp_path, loaders.WEB_EVENTS, *generated)


@SETTINGS
@given(generated=esp_lines)
def test_esp_event_files_account_for_every_line(warehouse: str, tmp_path: Path, generated) -> None:
    check_event_file(warehouse, tmp_path, loaders.ESP_EVENTS, *generated)


@SETTINGS
@given(generated=crm_pages())
def test_crm_exports_account_for_every_contact(warehouse: str, tmp_path: Path, generated) -> None:
    check_crm_export(warehouse, tmp_path, *generated)


@SETTINGS
@given(rows=shop_rows, fast_path=st.booleans())
def test_shop_rows_account_for_every_row(warehouse: str, shop_url: str, rows, fast_path: bool) -> None:
    execute(shop_url, SHOP_DDL.replace("create table", "create table if not exists"))
    check_shop_table(warehouse, shop_url, rows, fast_path)


def test_zz_print_the_accounting() -> None:
    """Prints what the property tests above tried (run with -s to see it)."""
    print(f"\nproperty tests: {dict(TALLY)}")
    if TALLY:
        assert TALLY["tried"] == TALLY["loaded"] + TALLY["quarantined"]
