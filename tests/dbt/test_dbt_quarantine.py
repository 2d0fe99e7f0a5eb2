"""Staging quarantine: rows that would corrupt facts (a negative order total, a non-positive quantity, a
negative unit price, an event from the future) leave staging and the marts for
their source's quarantine model with a reason; everything else is built; raw = staged + quarantined."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dbt_support import create_raw_tables, dbt_build, load_raw, new_database, query
from sendwise_hand_world import _esp, _item, _order, _page, load_phase, t

from dagster_project.dbt.full_tests import FULL_TESTS_ARGS
from dagster_project.dbt.project import run_dbt

NOW = datetime.now(UTC)
FUTURE = NOW + timedelta(days=30)

BAD_ROWS = {
    "shop_orders": [_order(9001, 101, "completed", -25.00, t("2026-03-12"))],
    "shop_order_items": [
        _item(901, 1001, 1, 0, 100, t("2026-03-10")),
        _item(902, 1002, 2, 1, -5, t("2026-03-21")),
    ],
    "esp_events": [
        _esp("e-future", "open", "esp-1", "alice@mail.org", "m1", FUTURE),
    ],
    "web_events": [_page("w-future", "a-1", "101", FUTURE)],
}
# Copies of one id landed in one load from one file, tied on every timestamp: the file's line order
# decides (the first copy wins, on the staged and the quarantine side alike). They are inserted in the
# opposite order, so a choice by physical order would stage the clean copy.
TIED_COPIES = {
    "esp_events": [
        _esp("e-tie", "open", "esp-1", "alice@mail.org", "m1", FUTURE)
        | {"_source_file": "esp/events/2026-03-12.jsonl", "_source_line": line, "event_timestamp": at}
        for line, at in ((2, t("2026-03-12")), (1, FUTURE))
    ],
    "web_events": [
        _page("w-tie", "a-1", "101", FUTURE) | {
            "_source_file": "web/events/2026-03-12.jsonl", "_source_line": line, "event_timestamp": at,
            "received_at": t("2026-03-12"),
        }
        for line, at in ((7, t("2026-03-12")), (3, FUTURE))
    ],
}  # fmt: skip
EXPECTED = {
    "shop_orders:9001": ("shop", "negative order_total"),
    "shop_order_items:901": ("shop", "quantity <= 0"),
    "shop_order_items:902": ("shop", "unit_price < 0"),
    "esp_events:e-future": ("esp", "event_timestamp in the future"),
    "web_events:w-future": ("web", "event_timestamp in the future"),
    "esp_events:e-tie": ("esp", "event_timestamp in the future"),
    "web_events:w-tie": ("web", "event_timestamp in the future"),
}
RAW_KEYS = {
    "shop_orders": "order_id",
    "shop_order_items": "order_item_id",
    "esp_events": "event_id",
    "web_events": "message_id",
}


def quarantined(url: str) -> dict[str, tuple[str, str]]:
    rows = query(url, "select quarantine_id, source_name, reason from staging.quarantine_rows")
    return {r["quarantine_id"]: (r["source_name"], r["reason"]) for r in rows}


def balance(url: str) -> dict[str, tuple[int, int, int]]:
    """Per raw table: (raw rows after dedupe, staged, quarantined), counted here, not by the model."""
    staged = {
        "shop_orders": "staging.stg_shop__orders",
        "shop_order_items": "staging.stg_shop__order_items",
        "esp_events": "staging.stg_esp__events",
        "web_events": "staging.stg_web__events",
    }
    counts = {}
    for table, key in RAW_KEYS.items():
        raw = query(url, f"select count(distinct {key}) as n from raw.{table}")[0]["n"]
        stg = query(url, f"select count(*) as n from {staged[table]}")[0]["n"]
        quarantine = query(
            url, "select count(*) as n from staging.quarantine_rows where source_table = %s", (table,)
        )[0]["n"]
        counts[table] = (raw, stg, quarantine)
    return counts


@pytest.fixture(scope="module")
def quarantine_world(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    target: Path = tmp_path_factory.mktemp("dbt-quarantine")
    url = new_database(pg_server, "dbt_quar")
    create_raw_tables(url)
    load_phase(url, 1)
    for table, rows in BAD_ROWS.items():
        load_raw(url, table, rows)
    for table, rows in TIED_COPIES.items():
        load_raw(url, table, rows)
    # A second copy of the future event lands later: still one event, still quarantined once.
    load_raw(url, "esp_events", BAD_ROWS["esp_events"][:1], loaded_at=NOW + timedelta(minutes=1))
    output = dbt_build(url, target)
    return {"url": url, "target": target, "output": output}


def test_bad_rows_are_quarantined_with_their_reason(quarantine_world: dict) -> None:
    assert quarantined(quarantine_world["url"]) == EXPECTED
    record = query(
        quarantine_world["url"],
        "select record from staging.stg_shop__quarantine where quarantine_id = 'shop_orders:9001'",
    )[0]["record"]
    assert record["order_total"] == -25.0 and record["customer_id"] == 101


def test_quarantined_rows_are_absent_from_staging_and_marts(quarantine_world: dict) -> None:
    url = quarantine_world["url"]
    absent = [
        ("staging.stg_shop__orders", "order_id", 9001),
        ("marts.fct_orders", "order_id", 9001),
        ("staging.stg_shop__order_items", "order_item_id", 901),
        ("staging.stg_shop__order_items", "order_item_id", 902),
        ("staging.stg_esp__events", "event_id", "e-future"),
        ("marts.fct_email_events", "email_event_id", "e-future"),
        ("staging.stg_web__events", "message_id", "w-future"),
    ]
    for table, column, value in absent:
        assert query(url, f"select 1 from {table} where {column} = %s", (value,)) == [], (table, value)


def test_raw_equals_staged_plus_quarantined(quarantine_world: dict) -> None:
    counts = balance(quarantine_world["url"])
    for table, (raw, staged, quarantine) in counts.items():
        assert raw == staged + quarantine, (table, counts[table])
        assert quarantine > 0, table
    shares = query(quarantine_world["url"], "select * from staging.quarantine_shares")
    assert {s["source_table"]: (s["staged_rows"], s["quarantined_rows"]) for s in shares} == {
        table: (staged, quarantine) for table, (_, staged, quarantine) in counts.items()
    }
    # the dbt test of the same balance is the weekly full tests' (it counts every raw row): it passes
    assert "assert_staging_quarantine_balances" not in quarantine_world["output"]
    weekly = run_dbt(
        ["test", "--select", "assert_staging_quarantine_balances", *FULL_TESTS_ARGS[1:]],
        quarantine_world["url"],
        target_path=quarantine_world["target"],
    )
    assert weekly.returncode == 0 and " PASS assert_staging_quarantine_balances " in weekly.stdout


def test_the_rest_is_built(quarantine_world: dict) -> None:
    url = quarantine_world["url"]
    orders = {r["order_id"] for r in query(url, "select order_id from marts.fct_orders")}
    assert orders == {1001, 1002, 1003, 1004, 1007, 1008}
    customers = query(url, "select count(*) as n from marts.fct_customer_features")[0]["n"]
    assert customers > 0
    lines = query(url, "select sum(line_total) as total from staging.stg_shop__order_items")[0]["total"]
    assert float(lines) == 100 + 50.5 + 30 + 40 + 700 + 500


def test_incremental_rebuild_keeps_the_balance(quarantine_world: dict) -> None:
    """New data, a late clean copy of a quarantined event, and a rebuild without new data."""
    url, target = quarantine_world["url"], quarantine_world["target"]
    load_phase(url, 2)
    load_raw(
        url,
        "web_events",
        [_page("w-future", "a-1", "101", t("2026-04-09"))],
        loaded_at=NOW + timedelta(minutes=2),
    )
    load_raw(url, "esp_events", [_esp("e-late", "open", "esp-1", "a@b.org", "m5", FUTURE)])
    dbt_build(url, target)
    expected = {k: v for k, v in EXPECTED.items() if k != "web_events:w-future"}
    expected["esp_events:e-late"] = ("esp", "event_timestamp in the future")
    assert quarantined(url) == expected
    staged = query(url, "select event_at from staging.stg_web__events where message_id = 'w-future'")
    assert [row["event_at"] for row in staged] == [t("2026-04-09")]
    for table, (raw, staged, quarantine) in balance(url).items():
        assert raw == staged + quarantine, table
    dbt_build(url, target)
    assert quarantined(url) == expected
