"""Hostile shop rows (issue 11 items 5 and 6) on both shop paths: 'infinity' and out-of-range timestamps
and over-long text are quarantined instead of crashing the load, and a far-future updated_at cannot
become the high-water mark that would hide every later change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from ingestion_helpers import SHOP_DDL, execute, query, scalar

from dagster_project.ingestion import loaders, upserts

CUSTOMERS = loaders.SHOP_TABLES["customers"]
FAR_FUTURE = (datetime.now(UTC) + timedelta(days=3650)).isoformat()
HOSTILE_ROWS = {
    # customer_id: (created_at, updated_at, first_name) -> reason the row is quarantined for
    2: (("2025-01-01", "infinity", "Bo"), "'updated_at'"),
    3: (("2025-01-01", "10000-01-01 04:00+00", "Cy"), "'updated_at'"),
    4: (("-infinity", "2025-01-03", "Di"), "'created_at'"),
    5: (("2025-01-01", FAR_FUTURE, "Ed"), "'updated_at' is more than 24 hours in the future"),
    6: (("2025-01-01", "2025-01-03", "F" * 9_000), "'first_name' is over the limit of 8192 characters"),
}


def insert_customers(shop_url: str, rows: dict[int, tuple[str, str, str]]) -> None:
    execute(
        shop_url,
        *(
            f"insert into shop.customers (customer_id, first_name, created_at, updated_at) "
            f"values ({key}, '{name}', '{created}', '{updated}')"
            for key, (created, updated, name) in rows.items()
        ),
    )


def load(url: str, shop_url: str, fast_path: bool) -> loaders.LoadResult:
    with loaders.connect(url) as conn:
        loaders.ensure_tables(conn)
        return upserts.load_shop_table(conn, shop_url, CUSTOMERS, fast_path=fast_path)


@pytest.mark.parametrize("incremental", [False, True], ids=["first-load", "incremental"])
@pytest.mark.parametrize("fast_path", [True, False], ids=["binary-copy", "sqlalchemy"])
def test_hostile_timestamps_and_text_are_quarantined_and_cannot_poison_the_mark(
    fast_path: bool, incremental: bool, warehouse_url: str, shop_url: str
) -> None:
    execute(shop_url, SHOP_DDL)
    insert_customers(shop_url, {1: ("2025-01-01", "2025-01-02", "Al")})
    if incremental:
        load(warehouse_url, shop_url, fast_path)
    insert_customers(shop_url, {key: row for key, (row, _) in HOSTILE_ROWS.items()})
    execute(shop_url, "update shop.customers set updated_at = '2025-01-03' where customer_id = 1")

    result = load(warehouse_url, shop_url, fast_path)

    assert result.status == "success"
    assert (result.received, result.loaded, result.quarantined) == (6, 1, 5)
    reasons = dict(query(warehouse_url, "select source_location, reason from ops.quarantine"))
    for key, (_, reason) in HOSTILE_ROWS.items():
        assert reasons[f"shop.customers:customer_id={key}"].startswith(reason), (key, reasons)
    assert [r[0] for r in query(warehouse_url, "select customer_id from raw.shop_customers")] == [1]
    mark = scalar(warehouse_url, "select high_water_mark from ops.load_state where stream = 'shop_customers'")
    assert datetime.fromisoformat(mark) == datetime(2025, 1, 3, tzinfo=UTC)

    # A real change after the far-future row is still seen; the rows past the mark that are still bad
    # (2, 3, 5) are read and quarantined again, each in place of its earlier entry, not beside it.
    execute(shop_url, "update shop.customers set first_name = 'Al2', updated_at = now() where customer_id=1")
    again = load(warehouse_url, shop_url, fast_path)
    assert (again.loaded, again.quarantined) == (1, 3)
    assert scalar(warehouse_url, "select first_name from raw.shop_customers where customer_id = 1") == "Al2"
    assert scalar(warehouse_url, "select count(*) from ops.quarantine") == 5


def test_a_mark_already_poisoned_by_an_older_version_is_reset(warehouse_url: str, shop_url: str) -> None:
    execute(shop_url, SHOP_DDL)
    insert_customers(shop_url, {1: ("2025-01-01", "2025-01-02", "Al")})
    load(warehouse_url, shop_url, True)
    execute(
        warehouse_url,
        f"update ops.load_state set high_water_mark = '{FAR_FUTURE}' where stream = 'shop_customers'",
    )
    insert_customers(shop_url, {2: ("2025-01-01", "2025-01-05", "Bo")})

    result = load(warehouse_url, shop_url, True)

    assert result.loaded == 1
    assert any("mark" in note and "reset" in note for note in result.notes)
    assert scalar(warehouse_url, "select count(*) from raw.shop_customers") == 2
