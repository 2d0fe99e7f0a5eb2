"""Extraction of a synthetic world (`sendwise generate`): idempotent re-runs, an added day, quarantine."""

from __future__ import annotations

from pathlib import Path

import pytest
from ingestion_helpers import RAW_TABLES, materializations, materialize_raw, query, raw_counts, scalar

from dagster_project.cli import main as sendwise
from dagster_project.ingestion.partitions import available_partition_keys
from dagster_project.settings import get_settings

START = "2025-03-01"
DAYS = ["2025-03-01", "2025-03-02", "2025-03-03", "2025-03-04", "2025-03-05"]


@pytest.fixture
def world(warehouse_url: str, shop_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    source_dir = tmp_path / "world"
    monkeypatch.setenv("SENDWISE_SOURCE_DIR", str(source_dir))
    monkeypatch.setenv("SENDWISE_EVENTS_START", "2025-01-01")
    return source_dir


def generate(*args: str) -> None:
    assert sendwise(["generate", "--quiet", *args]) == 0


def source_counts(shop_url: str, source_dir: Path) -> dict[str, int]:
    """What the sources hold: shop rows, distinct CRM contacts, event lines."""
    counts = {f"shop_{t}": int(scalar(shop_url, f"select count(*) from shop.{t}")) for t in
              ("customers", "products", "orders", "order_items")}  # fmt: skip
    for stream, folder in (("web_events", "web/events"), ("esp_events", "esp/events")):
        counts[stream] = sum(len(p.read_bytes().splitlines()) for p in (source_dir / folder).glob("*.jsonl"))
    return counts


def test_world_loads_once_reruns_add_nothing_and_a_new_day_loads_alone(
    world: Path, warehouse_url: str, shop_url: str
) -> None:
    generate("--customers", "2000", "--days", "5", "--start", START)
    days = available_partition_keys(get_settings())
    assert days == DAYS

    first = materializations(materialize_raw(days))
    after_first = raw_counts(warehouse_url)
    expected = source_counts(shop_url, world)
    assert {k: after_first[k] for k in expected} == expected
    assert after_first["crm_contacts"] > 1000
    assert all(first[f"raw/{t}"]["rows_quarantined"] == 0 for t in RAW_TABLES)

    second = materializations(materialize_raw(days))
    assert raw_counts(warehouse_url) == after_first
    assert {k: m["rows_received"] for k, m in second.items()} == {f"raw/{t}": 0 for t in RAW_TABLES}

    generate("--customers", "2000", "--days", "1", "--start", "2025-03-06")
    new_days = available_partition_keys(get_settings())
    assert new_days == [*DAYS, "2025-03-06"]
    third = materializations(materialize_raw(new_days))

    by_day = {
        table: dict(query(warehouse_url, f"select _file_date::text, count(*) from raw.{table} group by 1"))
        for table in ("web_events", "esp_events")
    }
    before = {
        table: dict(query(warehouse_url, f"select _file_date::text, count(*) from raw.{table} "
                                         "where _file_date < '2025-03-06' group by 1"))
        for table in ("web_events", "esp_events")
    }  # fmt: skip
    for table in ("web_events", "esp_events"):
        assert sum(before[table].values()) == after_first[table]
        new_lines = len(
            (world / table.replace("_", "/")).joinpath("2025-03-06.jsonl").read_bytes().splitlines()
        )
        assert by_day[table]["2025-03-06"] == new_lines == third[f"raw/{table}"]["rows_loaded"] > 0
    loaded_partitions = query(
        warehouse_url,
        "select distinct partition_key from ops.load_log where status = 'success' and batch_id = any(%s)",
        ([third["raw/web_events"]["batch_id"].split(", ")],),
    )
    assert loaded_partitions == [("2025-03-06",)]

    # Shop and CRM: only what changed on the new day (updated_at / the new export folder).
    new_shop_rows = scalar(
        shop_url, "select count(*) from shop.orders where updated_at > %s",
        (first["raw/shop_orders"]["high_water_mark"],),
    )  # fmt: skip
    assert third["raw/shop_orders"]["rows_received"] == new_shop_rows > 0
    assert third["raw/crm_contacts"]["high_water_mark"] == "2025-03-06"
    assert third["raw/crm_contacts"]["source_files"] == len(
        list((world / "crm/contacts/2025-03-06").glob("*.json"))
    )
    assert raw_counts(warehouse_url)["shop_orders"] == scalar(shop_url, "select count(*) from shop.orders")
    duplicates = "select count(*) - count(distinct order_id) from raw.shop_orders"
    assert scalar(warehouse_url, duplicates) == 0


def test_world_with_malformed_lines_quarantines_them_and_loads_the_rest(
    world: Path, warehouse_url: str
) -> None:
    generate("--customers", "300", "--days", "2", "--start", START, "--malformed-rate", "0.02")
    metadata = materializations(materialize_raw(available_partition_keys(get_settings())))

    for table in ("web_events", "esp_events"):
        lines = sum(
            len(p.read_bytes().splitlines()) for p in (world / table.replace("_", "/")).glob("*.jsonl")
        )
        landed = metadata[f"raw/{table}"]
        assert landed["rows_received"] == lines
        assert landed["rows_loaded"] + landed["rows_quarantined"] == lines
        assert landed["rows_quarantined"] > 0
        assert scalar(warehouse_url, f"select count(*) from raw.{table}") == landed["rows_loaded"]
    reasons = query(warehouse_url, "select source_location, reason from ops.quarantine")
    assert all(reason and ".jsonl:" in location for location, reason in reasons)
    assert {r.split(":")[0] for _, r in reasons} >= {"bad JSON", "record is a JSON list, expected an object"}
    logged = query(
        warehouse_url, "select sum(received), sum(loaded), sum(quarantined) from ops.load_log "
        "where stream in ('web_events', 'esp_events')",
    )  # fmt: skip
    received, loaded, quarantined = logged[0]
    assert received == loaded + quarantined and quarantined == len(reasons)
