"""Re-runs and new data: a rebuild without new raw rows changes nothing; new data keeps keys stable, and
when two known people merge the older key survives and the retired one is mapped to it. A third day
changes lines, a product and an order already built (fct_orders rewrites only the orders they touch):
the incremental warehouse still equals a rebuild from scratch."""

from __future__ import annotations

from pathlib import Path

import psycopg2
import pytest
from dbt_support import create_raw_tables, dbt_build, load_raw, new_database, query
from sendwise_hand_world import PRODUCTS, _item, _order, load_phase, t

from dagster_project.dbt.full_tests import FULL_TESTS_ARGS
from dagster_project.dbt.project import run_dbt

SNAPSHOT_TABLES = {
    "marts.dim_customers": "customer_key",
    "marts.fct_customer_features": "customer_key",
    "marts.fct_email_events": "email_event_id",
    "marts.fct_orders": "order_id",
    "marts.fct_web_sessions": "session_id",
    "staging.stg_web__events": "message_id",
    "staging.stg_esp__events": "event_id",
    "intermediate.int_identity__observations": "1, 2, 3, 4, 5",  # source .. identifier_value
    "intermediate.int_identity__components": "node",
    "intermediate.int_identity__identifiers": "identifier_type, identifier_value",
    "intermediate.int_identity__key_history": "retired_key",
    "snapshots.snap_crm__contacts": "contact_id, dbt_valid_from",
}
# Columns that record when (or as of when) a row was written, not what it says.
VOLATILE = {
    *("dbt_updated_at", "dbt_scd_id", "_loaded_at", "_staged_at", "last_staged_at"),
    *("_built_at", "_as_of_at", "key_changed_at"),
}

# Day 3: product 3 (Socks, in orders 1003, 1004 and 1009) changes category, order 1002's line goes from
# 1 to 3 items, and order 1002 is refunded.
SOCKS = next(p for p in PRODUCTS if p["product_id"] == 3)
PHASE_3 = {
    "shop_products": [dict(SOCKS, category="Hosiery", updated_at=t("2026-04-12"))],
    "shop_order_items": [_item(2, 1002, 2, 3, 50.5, t("2026-04-12"))],
    "shop_orders": [
        dict(_order(1002, 101, "refunded", 50.50, t("2026-03-21", "08:00:00")), updated_at=t("2026-04-12"))
    ],
}


def row_versions(url: str) -> dict[int, str]:
    """order_id -> the transaction that wrote its fct_orders row (Postgres' xmin): a rewrite changes it."""
    rows = query(url, "select order_id, xmin::text as written_by from marts.fct_orders")
    return {r["order_id"]: r["written_by"] for r in rows}


def load_phase_3(url: str) -> None:
    for table, rows in PHASE_3.items():
        load_raw(url, table, rows)


def table_contents(url: str) -> dict[str, list[tuple]]:
    contents = {}
    for table, order in SNAPSHOT_TABLES.items():
        rows = query(url, f"select * from {table} order by {order}")
        contents[table] = [tuple(v for k, v in row.items() if k not in VOLATILE) for row in rows]
    return contents


def record_keys(url: str) -> dict[tuple[str, str], str]:
    rows = query(
        url, "select record_type, record_id, customer_key from intermediate.int_identity__record_keys"
    )
    return {(r["record_type"], r["record_id"]): r["customer_key"] for r in rows}


@pytest.fixture(scope="module")
def incremental_runs(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    target = tmp_path_factory.mktemp("dbt-incremental")
    url = new_database(pg_server, "dbt_incr")
    create_raw_tables(url)
    load_phase(url, 1)
    dbt_build(url, target)
    runs: dict = {"url": url, "keys_1": record_keys(url), "contents_1": table_contents(url)}
    load_phase(url, 2)
    dbt_build(url, target)
    runs["keys_2"] = record_keys(url)
    runs["contents_2"] = table_contents(url)
    runs["versions_2"] = row_versions(url)
    dbt_build(url, target)
    runs["contents_2_rerun"] = table_contents(url)
    runs["versions_2_rerun"] = row_versions(url)
    load_phase_3(url)
    dbt_build(url, target)
    runs["versions_3"] = row_versions(url)
    runs["keys_3"] = record_keys(url)
    runs["contents_3"] = table_contents(url)
    runs["target"] = target
    return runs


def test_a_rerun_without_new_raw_data_changes_nothing(incremental_runs: dict):
    assert incremental_runs["contents_2_rerun"] == incremental_runs["contents_2"]
    assert incremental_runs["contents_2"] != incremental_runs["contents_1"]  # phase 2 did change things


def test_keys_are_stable_and_the_older_key_survives_a_merge(incremental_runs: dict):
    before, after = incremental_runs["keys_1"], incremental_runs["keys_2"]
    bob, gina = before[("shop_customer_id", "102")], before[("shop_customer_id", "107")]
    assert bob != gina
    # crm-9 carries bob's email and gina's phone: one person now, under gina's older key.
    assert after[("shop_customer_id", "102")] == after[("shop_customer_id", "107")] == gina
    assert after[("crm_contact_id", "crm-9")] == gina
    for record, key in before.items():
        if key != bob:
            assert after[record] == key, f"{record} changed key"
    assert ("shop_customer_id", "108") in after and after[("shop_customer_id", "108")] not in before.values()

    url = incremental_runs["url"]
    history = query(url, "select retired_key, surviving_key from intermediate.int_identity__key_history")
    assert [(h["retired_key"], h["surviving_key"]) for h in history] == [(bob, gina)]
    dim = {r["customer_key"]: r for r in query(url, "select * from marts.dim_customers")}
    assert bob not in dim and gina in dim
    assert dim[gina]["source_systems"] == "crm,ecommerce"
    events = query(
        url,
        "select count(*) as n from marts.fct_email_events where customer_key is null "
        "or customer_key not in (select customer_key from marts.dim_customers)",
    )
    assert events[0]["n"] == 0


def test_a_rebuild_from_scratch_gives_the_same_keys(incremental_runs: dict, pg_server: str, tmp_path: Path):
    """Keys come from the earliest identifier of a component, so state only matters for the history."""
    url = new_database(pg_server, "dbt_scratch")
    create_raw_tables(url)
    load_phase(url, 1)
    load_phase(url, 2)
    load_phase_3(url)
    dbt_build(url, tmp_path / "target")
    assert record_keys(url) == incremental_runs["keys_3"] == incremental_runs["keys_2"]
    # Everything else is the same too, but the memory of who was merged into whom (the scratch build never
    # saw bob's key) and the snapshot's validity intervals (one run instead of two).
    history = {"intermediate.int_identity__key_history", "snapshots.snap_crm__contacts"}
    scratch, incremental = table_contents(url), dict(incremental_runs["contents_3"])
    for table in SNAPSHOT_TABLES.keys() - history:
        if table == "intermediate.int_identity__identifiers":  # previous_customer_key is history as well
            scratch[table], incremental[table] = ([r[:-1] for r in c[table]] for c in (scratch, incremental))
        assert scratch[table] == incremental[table], table


def test_changed_lines_products_and_orders_reach_fct_orders(incremental_runs: dict):
    rows = query(
        incremental_runs["url"],
        "select order_id, status, net_revenue, item_quantity, categories from marts.fct_orders order by 1",
    )
    by_id = {
        r["order_id"]: (r["status"], float(r["net_revenue"]), r["item_quantity"], r["categories"])
        for r in rows
    }
    assert by_id[1002] == ("refunded", 0.0, 3, "Outdoor Gear")
    assert by_id[1003][3] == by_id[1004][3] == by_id[1009][3] == "Hosiery"
    assert by_id[1001] == ("completed", 100.0, 1, "Shoes")
    assert incremental_runs["contents_3"] != incremental_runs["contents_2"]


def test_fct_orders_rewrites_only_the_orders_a_build_touches(incremental_runs: dict):
    """A rerun without new data rewrites no order; phase 3 rewrites 1002 (refund, line) and the orders
    holding product 3 (1003, 1004, 1009), not 1001, 1007 or 1008."""
    v1, rerun, v3 = (incremental_runs[k] for k in ("versions_2", "versions_2_rerun", "versions_3"))
    assert rerun == v1
    assert {order for order, version in v3.items() if version != v1[order]} == {1002, 1003, 1004, 1009}


def test_late_events_reshape_their_visitors_sessions(incremental_runs: dict):
    """Phase 2 brings late March events for a-1: one extends the 29th's first session, one moves the 30th's
    session start earlier (a new session_id, the old row gone)."""
    rows = query(
        incremental_runs["url"],
        "select started_at, ended_at, page_views from marts.fct_web_sessions "
        "where anonymous_id = 'a-1' order by started_at",
    )
    assert [(r["started_at"], r["ended_at"], r["page_views"]) for r in rows] == [
        (t("2026-03-29", "10:00:00"), t("2026-03-29", "10:40:00"), 4),
        (t("2026-03-29", "15:00:00"), t("2026-03-29", "15:00:00"), 1),
        (t("2026-03-30", "08:40:00"), t("2026-03-30", "09:01:30"), 3),
        (t("2026-04-10", "12:00:00"), t("2026-04-10", "12:00:00"), 1),
    ]


def test_a_full_refresh_rebuilds_the_same_warehouse_and_keeps_the_key_history(incremental_runs: dict):
    """Runs last: it rebuilds the module's warehouse with --full-refresh. Incremental models start over
    from the same raw rows and must come out the same; the identity models (full_refresh: false) keep
    their memory, so the retired key is still mapped to the survivor."""
    url = incremental_runs["url"]
    dbt_build(url, incremental_runs["target"], "--full-refresh")
    assert table_contents(url) == incremental_runs["contents_3"]
    history = query(url, "select retired_key from intermediate.int_identity__key_history")
    assert len(history) == 1


def test_fct_email_events_daily_tests_check_the_rows_the_build_wrote(incremental_runs: dict):
    """fct_email_events is in var data_tests_new_rows (by _built_at): a bad row an earlier build wrote is
    left to the weekly full tests."""
    url, target = incremental_runs["url"], incremental_runs["target"]
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "update marts.fct_email_events set event_type = 'bogus', _built_at = timestamptz '2000-01-01' "
            "where email_event_id = (select min(email_event_id) from marts.fct_email_events)"
        )
    conn.close()
    select = ("test", "--select", "fct_email_events")
    assert run_dbt(select, url, target_path=target, check=False).returncode == 0
    full = run_dbt((*select, "--vars", "{data_tests_full: true}"), url, target_path=target, check=False)
    assert full.returncode != 0 and "FAIL 1 accepted_values_fct_email_events_event_type" in full.stdout


def failed_tests(completed) -> set[str]:
    return {line.split(" FAIL ")[1].split()[1] for line in completed.stdout.splitlines() if " FAIL " in line}


def test_a_bad_row_of_today_fails_the_daily_tests_and_the_weekly_tests_check_every_row(incremental_runs):
    """Rows stamped after the test run started count as written by it (2999), rows stamped 2000 as old.
    The daily tests find today's bad rows, among them a new row duplicating an old row's key; the weekly
    full tests also find the old ones."""
    url, target = incremental_runs["url"], incremental_runs["target"]
    orders = "update marts.fct_orders set {} where order_id = (select {}(order_id) from marts.fct_orders)"
    duplicate = "update {0} set _built_at = %s where ctid = (select max(ctid) from {0})"
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(orders.format("status = 'bogus', _built_at = '2000-01-01'", "min"))
        cur.execute(orders.format("categories = 'a,,b', _built_at = '2999-01-01'", "max"))
        for table, stamp in (("survivorship", "2999-01-01"), ("field_candidates", "2000-01-01")):
            table = f"intermediate.int_customers__{table}"
            cur.execute(f"insert into {table} select * from {table} limit 1")  # a copy of an old row
            cur.execute(duplicate.format(table), (stamp,))
    conn.close()
    select = (
        "test",
        "--select",
        "fct_orders",
        "int_customers__survivorship",
        "int_customers__field_candidates",
    )
    daily = failed_tests(run_dbt(select, url, target_path=target, check=False))
    assert daily == {
        "is_comma_list_fct_orders_categories",
        "unique_combination_of_columns_int_customers__survivorship_customer_key__field",
    }
    weekly = failed_tests(run_dbt((*select, *FULL_TESTS_ARGS[1:]), url, target_path=target, check=False))
    old_rows = sorted(weekly - daily)
    assert daily < weekly and len(old_rows) == 2
    assert old_rows[0].startswith("accepted_values_fct_orders_status")
    assert old_rows[1].startswith("unique_combination_of_columns_int_customers__field_candidates")
